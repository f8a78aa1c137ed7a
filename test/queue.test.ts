import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { JobError, openBlufio, type BlufioApp, type Job } from '../src/index.js';
import { retryDelay } from '../src/storage/queue/backoff.js';
import { memoryLogger } from './helpers/logger.js';
import { silentLogger, sleep, startFixture, tmpDir } from './helpers/index.js';

async function open(toml = '', dir = tmpDir()): Promise<BlufioApp & { dir: string }> {
  const configPath = path.join(dir, 'blufio.toml');
  fs.writeFileSync(configPath, toml);
  const app = await openBlufio({ dataDir: path.join(dir, 'data'), configPath, logger: silentLogger() });
  return Object.assign(app, { dir });
}

async function rejects(p: Promise<unknown> | (() => unknown), code: string, message?: RegExp): Promise<void> {
  await assert.rejects(
    async () => (typeof p === 'function' ? p() : p),
    (err: { code?: string; message?: string }) => {
      assert.equal(err.code, code, err.message);
      if (message !== undefined) assert.match(err.message ?? '', message);
      return true;
    },
  );
}

function rawDb(app: { dir: string }): InstanceType<typeof Database> {
  return new Database(path.join(app.dir, 'data', 'blufio.db'), { fileMustExist: true });
}

describe('queue: delivery', () => {
  it('enqueue, claim, ack: the payload comes back as given and the job completes', async () => {
    const app = await open();
    try {
      const payload = { text: 'héllo 👋 \u0000 "quoted"', n: [1, 2.5, null, true], nested: { deep: { er: 'x' } } };
      const id = await app.queue.enqueue('inbound', payload);
      assert.match(id, /^[0-9A-Z]{26}$/);
      const first = await app.queue.stats('inbound');
      assert.ok(first.oldestPendingAgeMs >= 0 && first.oldestPendingAgeMs < 5000);
      assert.deepEqual({ ...first, oldestPendingAgeMs: 0 }, {
        queue: 'inbound', pending: 1, delayed: 0, running: 0, completed: 0, dead: 0, oldestPendingAgeMs: 0,
      });
      const [job, more] = await app.queue.claim('inbound', { leaseMs: 5000, limit: 10 });
      assert.equal(more, undefined);
      assert.equal(job!.id, id);
      assert.deepEqual(job!.payload, payload);
      assert.equal(job!.attempts, 1);
      assert.equal(job!.maxAttempts, 5);
      assert.ok(job!.leaseUntil > Date.now() + 4000);
      assert.deepEqual(await app.queue.claim('inbound'), [], 'a leased job is not handed out twice');
      assert.equal((await app.queue.stats('inbound')).running, 1);
      await app.queue.ack(id, job!.leaseToken);
      // The same ack again (a retry after a lost reply) is a no-op, not an error.
      await app.queue.ack(id, job!.leaseToken);
      const info = await app.queue.get(id);
      assert.equal(info.state, 'completed');
      assert.ok(info.finishedAt !== null);
      assert.equal((await app.queue.stats('inbound')).completed, 1);
      assert.deepEqual(await app.queue.names(), ['inbound']);
    } finally {
      await app.close();
    }
  });

  it('payloads of every JSON kind round-trip, including lone surrogates and a payload at the size limit', async () => {
    const app = await open('[queue]\nmax_payload_bytes = 4096\n');
    try {
      const values: unknown[] = [null, 0, -1.5e300, '', 'x', '\uD800 lone', [], {}, [[[]]], true, { 'DROP TABLE jobs; --': "'); DELETE FROM jobs; --" }];
      const limit = 'y'.repeat(4096 - 2);
      values.push(limit);
      const ids = [];
      for (const v of values) ids.push(await app.queue.enqueue('kinds', v));
      const jobs = await app.queue.claim('kinds', { limit: 100 });
      assert.deepEqual(
        jobs.map((j) => j.payload),
        values.map((v) => JSON.parse(JSON.stringify(v)) as unknown),
      );
      assert.deepEqual(jobs.map((j) => j.id), ids);
    } finally {
      await app.close();
    }
  });

  it('due jobs come out by priority, then by the time they became due; delayed ones only once due', async () => {
    const app = await open();
    try {
      const a = await app.queue.enqueue('order', 'a');
      const b = await app.queue.enqueue('order', 'b', { priority: 5 });
      const c = await app.queue.enqueue('order', 'c', { delayMs: 400 });
      const d = await app.queue.enqueue('order', 'd', { priority: -1 });
      const e = await app.queue.enqueue('order', 'e', { priority: 5 });
      const f = await app.queue.enqueue('order', 'f', { priority: 100, delayMs: 400 });
      const [g] = await app.queue.enqueueMany('order', [{ payload: 'g' }, { payload: 'h', priority: 5 }]);
      const stats = await app.queue.stats('order');
      assert.equal(stats.pending, 6);
      assert.equal(stats.delayed, 2);
      const first = await app.queue.claim('order', { limit: 100 });
      const payloads = first.map((j) => j.payload);
      assert.deepEqual(payloads, ['b', 'e', 'h', 'a', 'g', 'd']);
      assert.deepEqual(first.slice(0, 2).map((j) => j.id), [b, e]);
      assert.ok([a, d, g].every((id) => first.some((j) => j.id === id)));
      assert.deepEqual(await app.queue.claim('order', { limit: 100 }), [], 'nothing is due before the delay');
      await sleep(450);
      const later = await app.queue.claim('order', { limit: 100 });
      assert.deepEqual(later.map((j) => j.id), [f, c], 'the delayed jobs, higher priority first');
    } finally {
      await app.close();
    }
  });

  it('queues are separate', async () => {
    const app = await open();
    try {
      await app.queue.enqueue('one', 1);
      await app.queue.enqueue('two', 2);
      const [j] = await app.queue.claim('two', { limit: 5 });
      assert.equal(j!.payload, 2);
      assert.deepEqual((await app.queue.claim('two')).length, 0);
      assert.equal((await app.queue.stats('one')).pending, 1);
      assert.deepEqual(await app.queue.stats('never-used'), {
        queue: 'never-used', pending: 0, delayed: 0, running: 0, completed: 0, dead: 0, oldestPendingAgeMs: 0,
      });
    } finally {
      await app.close();
    }
  });
});

describe('queue: leases and fencing', () => {
  it('an expired lease re-delivers the job, and the old token can no longer ack, fail, extend or release it', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('leases', { work: 1 });
      const [first] = await app.queue.claim('leases', { leaseMs: 150 });
      // Past the deadline the token is void even before anyone claims the job again.
      await sleep(200);
      await rejects(app.queue.ack(id, first!.leaseToken), 'KC_QUEUE_LEASE_LOST', /expired/);
      const [second] = await app.queue.claim('leases', { leaseMs: 5000 });
      assert.equal(second!.id, id);
      assert.equal(second!.attempts, 2);
      assert.notEqual(second!.leaseToken, first!.leaseToken);
      assert.match(second!.lastError ?? '', /lease expired/);
      const before = await app.queue.get(id);
      await rejects(app.queue.ack(id, first!.leaseToken), 'KC_QUEUE_LEASE_LOST', /claimed again/);
      await rejects(app.queue.fail(id, first!.leaseToken, { error: 'stale' }), 'KC_QUEUE_LEASE_LOST');
      await rejects(app.queue.extendLease(id, first!.leaseToken, 60_000), 'KC_QUEUE_LEASE_LOST');
      await rejects(app.queue.release(id, first!.leaseToken), 'KC_QUEUE_LEASE_LOST');
      assert.deepEqual(await app.queue.get(id), before, 'a stale token changed nothing');
      await app.queue.ack(id, second!.leaseToken);
      await rejects(app.queue.fail(id, second!.leaseToken), 'KC_QUEUE_LEASE_LOST', /completed/);
      assert.equal((await app.queue.get(id)).state, 'completed');
    } finally {
      await app.close();
    }
  });

  it('extendLease keeps a job past its first deadline; release hands it back without counting the attempt', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('extend', 'x');
      const [job] = await app.queue.claim('extend', { leaseMs: 200 });
      const until = await app.queue.extendLease(id, job!.leaseToken, 2000);
      assert.ok(until > job!.leaseUntil);
      await sleep(300);
      assert.deepEqual(await app.queue.claim('extend'), [], 'still leased after the first deadline');
      await app.queue.release(id, job!.leaseToken);
      const [again] = await app.queue.claim('extend');
      assert.equal(again!.id, id);
      assert.equal(again!.attempts, 1, 'a released claim is not an attempt');
    } finally {
      await app.close();
    }
  });

  it('the housekeeping sweep returns expired leases without anyone claiming', async () => {
    const app = await open('[queue]\nsweep_interval_ms = 20\n');
    try {
      await app.queue.enqueue('sweep', 1);
      await app.queue.claim('sweep', { leaseMs: 100 });
      await sleep(400);
      const s = await app.queue.stats('sweep');
      assert.equal(s.running, 0);
      assert.equal(s.pending, 1);
    } finally {
      await app.close();
    }
  });

  it('a lease that expires on the last attempt makes the job dead', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('last', 1, { maxAttempts: 1 });
      await app.queue.claim('last', { leaseMs: 100 });
      await sleep(150);
      await app.queue.sweep();
      const info = await app.queue.get(id);
      assert.equal(info.state, 'dead');
      assert.match(info.lastError ?? '', /lease expired/);
    } finally {
      await app.close();
    }
  });

  it('jobs leased by a process that was killed go back to pending at the next open, long lease or not', async () => {
    const dir = tmpDir();
    const app = await open('', dir);
    const ids = await app.queue.enqueueMany('crash', [{ payload: { seq: 1 } }, { payload: { seq: 2 } }, { payload: { seq: 3 } }]);
    await app.close();
    let onReady!: () => void;
    const ready = new Promise<void>((r) => (onReady = r));
    const { child, done } = startFixture('queue-crash', ['work', path.join(dir, 'data'), path.join(dir, 'blufio.toml'), '2'], (line) => {
      if (line.startsWith('S ')) onReady();
    });
    await ready;
    child.kill('SIGKILL');
    await done;
    const log = memoryLogger();
    const again = await openBlufio({ dataDir: path.join(dir, 'data'), configPath: path.join(dir, 'blufio.toml'), logger: log.logger });
    try {
      const s = await again.queue.stats('crash');
      assert.equal(s.running, 0, 'no job is left leased to the dead process');
      assert.equal(s.pending + s.completed, 3);
      assert.ok(log.lines().some((l) => /returned to the queue/.test(String(l.msg))), 'the recovery is logged');
      const jobs = await again.queue.claim('crash', { limit: 10 });
      for (const j of jobs) assert.match(j.lastError ?? '', /process that held the lease exited/);
      assert.ok(jobs.every((j) => ids.includes(j.id)));
    } finally {
      await again.close();
    }
  });
});

describe('queue: failures, backoff and dead jobs', () => {
  it('the backoff window doubles, each wait is at least the last, and the cap holds', () => {
    assert.equal(retryDelay(1, 1000, 60_000, 0), 500);
    assert.equal(retryDelay(1, 1000, 60_000, 1), 1000);
    assert.equal(retryDelay(3, 1000, 60_000, 0), 2000);
    assert.equal(retryDelay(3, 1000, 60_000, 1), 4000);
    assert.equal(retryDelay(40, 1000, 60_000, 1), 60_000);
    assert.equal(retryDelay(5000, 1000, 60_000, 0), 30_000);
    // Below the cap the worst next wait is still no shorter than the best last one.
    for (let n = 1; 7 * 2 ** n <= 1e9; n++) assert.ok(retryDelay(n + 1, 7, 1e9, 0) >= retryDelay(n, 7, 1e9, 1), `attempt ${n}`);
  });

  it('failures back off with growing waits and end in dead with the last error; dead jobs can be listed and re-queued', async () => {
    const app = await open('[queue]\nretry_base_ms = 40\nretry_max_ms = 100000\n');
    try {
      const id = await app.queue.enqueue('flaky', { n: 1 }, { maxAttempts: 4 });
      const waits: number[] = [];
      for (let attempt = 1; attempt <= 4; attempt++) {
        let job: Job | undefined;
        while (job === undefined) {
          [job] = await app.queue.claim('flaky');
          if (job === undefined) await sleep(5);
        }
        assert.equal(job.attempts, attempt);
        const at = Date.now();
        const out = await app.queue.fail(id, job.leaseToken, { error: new Error(`boom ${attempt}`) });
        if (attempt < 4) {
          assert.equal(out.state, 'pending');
          const wait = out.runAt! - at;
          const window = 40 * 2 ** (attempt - 1);
          assert.ok(wait >= window / 2 - 2 && wait <= window + 2, `attempt ${attempt}: waited ${wait} ms, window ${window}`);
          waits.push(wait);
          assert.equal((await app.queue.stats('flaky')).delayed, 1);
        } else {
          assert.deepEqual(out, { state: 'dead', runAt: null });
        }
      }
      for (let i = 1; i < waits.length; i++) assert.ok(waits[i]! >= waits[i - 1]!, `waits grow: ${waits.join(', ')}`);
      const dead = await app.queue.listDead('flaky');
      assert.equal(dead.length, 1);
      assert.equal(dead[0]!.id, id);
      assert.match(dead[0]!.lastError ?? '', /Error: boom 4/);
      assert.equal((await app.queue.stats('flaky')).dead, 1);
      await rejects(app.queue.requeue(id).then(() => app.queue.requeue(id)), 'KC_QUEUE_NOT_DEAD');
      const [back] = await app.queue.claim('flaky');
      assert.equal(back!.id, id);
      assert.equal(back!.attempts, 1, 're-queued with fresh attempts');
      assert.match(back!.lastError ?? '', /boom 4/, 'the last error is kept for the next attempt to see');
    } finally {
      await app.close();
    }
  });

  it('a failure marked not retryable is dead at once; retryAfterMs overrides the backoff', async () => {
    const app = await open();
    try {
      const a = await app.queue.enqueue('f', 'a');
      const b = await app.queue.enqueue('f', 'b');
      const [ja, jb] = await app.queue.claim('f', { limit: 2 });
      assert.deepEqual(await app.queue.fail(a, ja!.leaseToken, { error: 'bad input', retryable: false }), { state: 'dead', runAt: null });
      const at = Date.now();
      const out = await app.queue.fail(b, jb!.leaseToken, { error: 'rate limited', retryAfterMs: 60_000 });
      assert.ok(out.runAt! >= at + 60_000 && out.runAt! < at + 61_000);
    } finally {
      await app.close();
    }
  });

  it('completed jobs are removed after the retention time, and then their idempotency key is free again', async () => {
    const app = await open('[queue]\ncompleted_retention_ms = 0\n');
    try {
      const id = await app.queue.enqueue('r', 1, { idempotencyKey: 'once' });
      assert.equal(await app.queue.enqueue('r', 2, { idempotencyKey: 'once' }), id);
      const [j] = await app.queue.claim('r');
      await app.queue.ack(id, j!.leaseToken);
      assert.equal(await app.queue.enqueue('r', 3, { idempotencyKey: 'once' }), id, 'within retention the key still answers');
      await sleep(5);
      await app.queue.sweep();
      await rejects(app.queue.get(id), 'KC_NOT_FOUND');
      const raw = rawDb(app);
      try {
        assert.equal(raw.prepare('SELECT count(*) FROM job_payloads').pluck().get(), 0, 'the payload went with the job');
      } finally {
        raw.close();
      }
      const fresh = await app.queue.enqueue('r', 4, { idempotencyKey: 'once' });
      assert.notEqual(fresh, id);
    } finally {
      await app.close();
    }
  });
});

describe('queue: idempotency', () => {
  it('concurrent enqueues with one key in one process make one job', async () => {
    const app = await open();
    try {
      const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => app.queue.enqueue('idem', { i }, { idempotencyKey: 'k' })));
      assert.equal(new Set(ids).size, 1);
      const batch = await app.queue.enqueueMany('idem', [
        { payload: 1, idempotencyKey: 'x' },
        { payload: 2, idempotencyKey: 'x' },
        { payload: 3, idempotencyKey: 'k' },
      ]);
      assert.equal(batch[0], batch[1]);
      assert.equal(batch[2], ids[0]);
      assert.equal((await app.queue.stats('idem')).pending, 2);
      // The same key in another queue is another job.
      assert.notEqual(await app.queue.enqueue('idem-2', 1, { idempotencyKey: 'k' }), ids[0]);
    } finally {
      await app.close();
    }
  });

  it('concurrent enqueues of the same keys from four processes make one job per key', async () => {
    const dir = tmpDir();
    const app = await open('', dir);
    await app.close();
    const results = await Promise.all(
      Array.from({ length: 4 }, () => {
        const ids = new Map<string, string>();
        const { done } = startFixture('queue-idem', [path.join(dir, 'data'), path.join(dir, 'blufio.toml')], (line) => {
          const [key, id] = line.split(' ');
          if (key !== undefined && id !== undefined) ids.set(key, id);
        });
        return done.then((r) => ({ r, ids }));
      }),
    );
    for (const { r, ids } of results) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(ids.size, 200);
    }
    for (const [key, id] of results[0]!.ids) {
      for (const other of results.slice(1)) assert.equal(other.ids.get(key), id, `key ${key}`);
    }
    const again = await open('', dir);
    try {
      assert.equal((await again.queue.stats('idem')).pending, 200);
    } finally {
      await again.close();
    }
  });
});

describe('queue: workers', () => {
  it('work() runs every job once, acks on success and retries on failure', async () => {
    const app = await open('[queue]\nretry_base_ms = 5\n');
    try {
      const seen = new Map<number, number>();
      let finish!: () => void;
      const allDone = new Promise<void>((r) => (finish = r));
      const worker = app.queue.work(
        'w',
        async (job) => {
          const n = (job.payload as { n: number }).n;
          seen.set(n, (seen.get(n) ?? 0) + 1);
          if (n % 10 === 0 && job.attempts === 1) throw new Error('first try fails');
          if (n === 7) throw new JobError('never works', { retryable: false });
          if ([...seen.keys()].length === 100 && [...seen.entries()].every(([k, v]) => v >= (k % 10 === 0 ? 2 : 1))) finish();
        },
        { concurrency: 4 },
      );
      await app.queue.enqueueMany('w', Array.from({ length: 100 }, (_, n) => ({ payload: { n } })));
      await allDone;
      await worker.stop();
      const s = await app.queue.stats('w');
      assert.equal(s.completed, 99);
      assert.equal(s.dead, 1);
      assert.equal(s.pending + s.running, 0);
      for (let n = 0; n < 100; n++) assert.equal(seen.get(n), n % 10 === 0 ? 2 : 1, `job ${n}`);
      assert.equal(worker.counts.completed, 99);
      assert.equal(worker.counts.failed, 11);
      assert.match((await app.queue.listDead('w'))[0]!.lastError ?? '', /never works/);
    } finally {
      await app.close();
    }
  });

  it('a worker renews its leases while a handler runs longer than the lease', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('slow', 1);
      let attempts = 0;
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      const worker = app.queue.work(
        'slow',
        async (job) => {
          attempts = job.attempts;
          await sleep(900);
          done();
        },
        { leaseMs: 300 },
      );
      await finished;
      await worker.stop();
      assert.equal(attempts, 1);
      assert.equal((await app.queue.get(id)).state, 'completed');
      assert.equal(worker.counts.lost, 0);
    } finally {
      await app.close();
    }
  });

  it('a handler whose lease is taken away is told through its signal, and its outcome is not recorded', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('lost', 1);
      let aborted!: (reason: unknown) => void;
      const abortedP = new Promise<unknown>((r) => (aborted = r));
      let started!: () => void;
      const startedP = new Promise<void>((r) => (started = r));
      const worker = app.queue.work(
        'lost',
        async (_job, ctx) => {
          started();
          await new Promise((r) => ctx.signal.addEventListener('abort', r));
          aborted(ctx.signal.reason);
        },
        { leaseMs: 600 },
      );
      await startedP;
      // Someone else's clock: the lease is made to run out, and another worker claims the job.
      const raw = rawDb(app);
      raw.prepare("UPDATE jobs SET lease_until = 1 WHERE state = 'running'").run();
      raw.close();
      const [taken] = await app.queue.claim('lost', { leaseMs: 60_000 });
      assert.equal(taken!.id, id);
      const reason = (await abortedP) as { code?: string };
      assert.equal(reason.code, 'KC_QUEUE_LEASE_LOST');
      await worker.stop();
      assert.equal(worker.counts.lost, 1);
      assert.equal(worker.counts.completed, 0);
      const info = await app.queue.get(id);
      assert.equal(info.state, 'running', 'the new holder still has it');
      await app.queue.ack(id, taken!.leaseToken);
    } finally {
      await app.close();
    }
  });

  it('stop() lets running handlers finish within the grace period and hands back what it holds', async () => {
    const app = await open();
    try {
      await app.queue.enqueueMany('stop', Array.from({ length: 20 }, (_, n) => ({ payload: n })));
      const started: number[] = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let stuckSignal: AbortSignal | undefined;
      const worker = app.queue.work(
        'stop',
        async (job, ctx) => {
          started.push(job.payload as number);
          if (job.payload === 0) {
            stuckSignal = ctx.signal;
            await new Promise((r) => ctx.signal.addEventListener('abort', r));
            return;
          }
          await gate;
        },
        { concurrency: 2, prefetch: 4 },
      );
      while (started.length < 2) await sleep(5);
      const stopping = worker.stop({ graceMs: 300 });
      release();
      await stopping;
      assert.equal(stuckSignal?.aborted, true, 'the handler that outlived the grace period was aborted');
      const s = await app.queue.stats('stop');
      assert.equal(s.running, 0, 'nothing is left leased');
      assert.equal(s.completed, 1, 'the handler that finished in time was acked');
      assert.equal(s.pending, 19);
      assert.equal(worker.counts.released, 1 + 4, 'the aborted job and the prefetched ones');
      const jobs = await app.queue.claim('stop', { limit: 100 });
      assert.ok(jobs.every((j) => j.attempts === 1), 'hand-backs do not count as attempts');
    } finally {
      await app.close();
    }
  });

  it('close() stops workers and leaves no job leased', async () => {
    const app = await open();
    await app.queue.enqueueMany('close', Array.from({ length: 50 }, (_, n) => ({ payload: n })));
    const worker = app.queue.work('close', () => sleep(50), { concurrency: 3 });
    await sleep(80);
    await app.close();
    await worker.stopped;
    const again = await open('', app.dir);
    try {
      const s = await again.queue.stats('close');
      assert.equal(s.running, 0);
      assert.equal(s.pending + s.completed, 50);
    } finally {
      await again.close();
    }
  });

  it('a worker wakes for delayed jobs and for jobs enqueued by another process', async () => {
    const dir = tmpDir();
    const app = await open('', dir);
    try {
      const got: unknown[] = [];
      const at = new Map<unknown, number>();
      const worker = app.queue.work('wake', (job) => {
        got.push(job.payload);
        at.set(job.payload, Date.now());
      }, { pollMs: 50 });
      const enqueuedAt = Date.now();
      await app.queue.enqueue('wake', 'later', { delayMs: 200 });
      const other = await open('', dir);
      await other.queue.enqueue('wake', 'from elsewhere');
      await other.close();
      const deadline = Date.now() + 10_000;
      while (got.length < 2 && Date.now() < deadline) await sleep(20);
      // Either may come first: on a busy machine the second open can take longer than the delay.
      assert.deepEqual([...got].sort(), ['from elsewhere', 'later']);
      assert.ok(at.get('later')! >= enqueuedAt + 200, 'the delayed job ran no sooner than its delay');
      await worker.stop();
    } finally {
      await app.close();
    }
  });
});

describe('queue: bad input', () => {
  it('refuses what cannot be stored and leaves the queue as it was', async () => {
    const app = await open('[queue]\nmax_payload_bytes = 65536\n');
    try {
      const keep = await app.queue.enqueue('bad', { keep: true });
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      let deep: unknown = 1;
      for (let i = 0; i < 1001; i++) deep = [deep];
      const payloads: [unknown, RegExp][] = [
        [undefined, /no JSON form/],
        [() => 1, /no JSON form/],
        [Symbol('s'), /no JSON form/],
        [10n, /cannot be serialised/],
        [cyclic, /cannot be serialised/],
        ['x'.repeat(70_000), /70002 bytes as JSON; the limit is 65536/],
        ['é'.repeat(40_000), /bytes as JSON; the limit/],
        [deep, /nested more than 1000/],
      ];
      for (const [p, re] of payloads) await rejects(() => app.queue.enqueue('bad', p), 'KC_INVALID_INPUT', re);
      const options: Record<string, unknown>[] = [
        { delayMs: -1 }, { delayMs: 1.5 }, { delayMs: NaN }, { delayMs: Infinity }, { delayMs: 1e15 }, { delayMs: '5' },
        { priority: 1e7 }, { priority: -1e7 }, { priority: 0.5 }, { maxAttempts: 0 }, { maxAttempts: 1001 },
        { idempotencyKey: '' }, { idempotencyKey: 'k'.repeat(257) }, { idempotencyKey: 5 }, { idempotencyKey: '\uD800' },
      ];
      for (const o of options) await rejects(() => app.queue.enqueue('bad', 1, o), 'KC_INVALID_INPUT');
      for (const name of ['', ' ', 'a b', '../etc', '-x', 'x'.repeat(129), 'tab\t', 'nul\u0000', 'émoji🙂', 5, null]) {
        await rejects(() => app.queue.enqueue(name as string, 1), 'KC_INVALID_INPUT', /queue name/);
      }
      for (const o of [{ leaseMs: -1 }, { leaseMs: 0 }, { leaseMs: 50 }, { leaseMs: 1e12 }, { leaseMs: NaN }, { limit: 0 }, { limit: 1001 }, { limit: 2.5 }]) {
        await rejects(() => app.queue.claim('bad', o), 'KC_INVALID_INPUT');
      }
      // A batch with one bad item stores nothing, and says which item.
      await rejects(() => app.queue.enqueueMany('bad', [{ payload: 1 }, { payload: undefined }]), 'KC_INVALID_INPUT', /batch item 1/);
      await rejects(() => app.queue.enqueueMany('bad', []), 'KC_INVALID_INPUT');
      await rejects(() => app.queue.enqueueMany('bad', Array.from({ length: 10_001 }, () => ({ payload: 1 }))), 'KC_INVALID_INPUT');
      // Unknown and malformed ids, and tokens that are not tokens.
      const unknown = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
      await rejects(() => app.queue.ack(unknown, 'token'), 'KC_NOT_FOUND');
      await rejects(() => app.queue.get(unknown), 'KC_NOT_FOUND');
      await rejects(() => app.queue.requeue(unknown), 'KC_NOT_FOUND');
      await rejects(() => app.queue.ack('not-an-id', 'token'), 'KC_NOT_FOUND');
      await rejects(() => app.queue.ack("'; DROP TABLE jobs; --", 'token'), 'KC_NOT_FOUND');
      await rejects(() => app.queue.ack(42 as unknown as string, 'token'), 'KC_INVALID_INPUT');
      await rejects(() => app.queue.ack(keep, 42 as unknown as string), 'KC_INVALID_INPUT');
      await rejects(() => app.queue.ack(keep, 'x'.repeat(65)), 'KC_INVALID_INPUT');
      await rejects(() => app.queue.ack(keep, 'not-the-token'), 'KC_QUEUE_LEASE_LOST', /waiting to be claimed/);
      await rejects(() => app.queue.extendLease(keep, 'not-the-token', undefined as unknown as number), 'KC_INVALID_INPUT');
      await rejects(() => app.queue.fail(keep, 'not-the-token', { retryAfterMs: -5 }), 'KC_INVALID_INPUT');
      await rejects(() => app.queue.fail(keep, 'not-the-token', { retryable: 'no' as unknown as boolean }), 'KC_INVALID_INPUT');
      assert.throws(() => app.queue.work('bad', 'not a function' as unknown as () => void), { code: 'KC_INVALID_INPUT' });
      assert.throws(() => app.queue.work('bad', () => undefined, { concurrency: 0 }), { code: 'KC_INVALID_INPUT' });

      const s = await app.queue.stats('bad');
      assert.deepEqual([s.pending, s.running, s.delayed, s.dead, s.completed], [1, 0, 0, 0, 0], 'only the good job is there');
      const [job] = await app.queue.claim('bad');
      assert.equal(job!.id, keep);
      assert.deepEqual(job!.payload, { keep: true });
      await app.queue.ack(keep, job!.leaseToken);
      const check = await app.db.check();
      assert.equal(check.ok, true);
    } finally {
      await app.close();
    }
  });

  it('a handler that throws anything at all fails its job with a bounded, readable error', async () => {
    const app = await open('[queue]\nretry_base_ms = 5\n');
    try {
      const oddStack = new Error('odd stack');
      Object.defineProperty(oddStack, 'stack', { value: 42 });
      const bigintBag = Object.assign(Object.create(null) as object, { n: 10n });
      const thrown: unknown[] = [undefined, null, 'plain string', 42, { weird: true }, new Error('x'.repeat(50_000)), Object.create(null), oddStack, bigintBag];
      await app.queue.enqueueMany('throws', thrown.map((_, i) => ({ payload: i, maxAttempts: 1 })));
      const worker = app.queue.work('throws', (job) => {
        throw thrown[job.payload as number];
      });
      const deadline = Date.now() + 5000;
      while ((await app.queue.stats('throws')).dead < thrown.length && Date.now() < deadline) await sleep(20);
      await worker.stop();
      const dead = await app.queue.listDead('throws', { limit: 100 });
      assert.equal(dead.length, thrown.length);
      for (const d of dead) {
        assert.ok(d.lastError !== null && d.lastError.length > 0 && d.lastError.length < 17_000, `job ${String(d.payload)}: ${d.lastError?.length}`);
      }
    } finally {
      await app.close();
    }
  });
});

describe('queue: edge cases found in review', () => {
  it('a job whose lease was lost and that the same worker claims again is tracked as a second run', async () => {
    const app = await open('[queue]\nsweep_interval_ms = 20\n');
    try {
      const id = await app.queue.enqueue('twice', 1);
      const runs: number[] = [];
      let firstStarted!: () => void;
      const started = new Promise<void>((r) => (firstStarted = r));
      const worker = app.queue.work(
        'twice',
        async (job, ctx) => {
          runs.push(job.attempts);
          if (job.attempts === 1) {
            firstStarted();
            // The first run goes on for a while after it is told its lease is gone.
            await new Promise((r) => ctx.signal.addEventListener('abort', r));
            await sleep(300);
          } else {
            await sleep(100);
          }
        },
        { concurrency: 2, leaseMs: 300 },
      );
      await started;
      const raw = rawDb(app);
      raw.prepare("UPDATE jobs SET lease_until = 1 WHERE state = 'running'").run();
      raw.close();
      const deadline = Date.now() + 5000;
      while ((await app.queue.get(id)).state !== 'completed' && Date.now() < deadline) await sleep(20);
      await worker.stop();
      assert.deepEqual(runs, [1, 2]);
      const info = await app.queue.get(id);
      assert.equal(info.state, 'completed');
      assert.equal(info.attempts, 2);
      assert.equal(worker.counts.completed, 1);
      assert.equal(worker.counts.lost, 1);
    } finally {
      await app.close();
    }
  });

  it('a job delayed past the timer limit (24.8 days) does not make an idle worker spin', async () => {
    const app = await open();
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const id = await app.queue.enqueue('far', 1, { delayMs: 30 * 86_400_000 });
      assert.equal((await app.queue.get(id)).state, 'waiting');
      const worker = app.queue.work('far', () => undefined, { pollMs: 20 });
      await sleep(300);
      await worker.stop();
      assert.deepEqual(warnings.map((w) => w.name), []);
      assert.equal((await app.queue.stats('far')).delayed, 1);
    } finally {
      process.off('warning', onWarning);
      await app.close();
    }
  });

  it('thousands of jobs scheduled for later do not get in the way of due ones', async () => {
    const app = await open();
    try {
      await app.queue.enqueueMany('sched', Array.from({ length: 5000 }, (_, i) => ({ payload: i, delayMs: 3_600_000, priority: 10 })));
      const due = await app.queue.enqueue('sched', 'now', { priority: -5 });
      const soon = await app.queue.enqueue('sched', 'soon', { delayMs: 150 });
      let s = await app.queue.stats('sched');
      assert.deepEqual([s.pending, s.delayed], [1, 5001]);
      assert.deepEqual((await app.queue.claim('sched', { limit: 10 })).map((j) => j.id), [due]);
      await sleep(200);
      s = await app.queue.stats('sched');
      assert.deepEqual([s.pending, s.delayed], [1, 5000], 'a waiting job past its time counts as pending before any claim moves it');
      assert.ok(s.oldestPendingAgeMs >= 40);
      assert.deepEqual((await app.queue.claim('sched', { limit: 10 })).map((j) => j.id), [soon]);
    } finally {
      await app.close();
    }
  });

  it("a handler's out-of-range retryAfterMs is brought into range, never lost", async () => {
    const app = await open();
    try {
      const [a, b, c] = await app.queue.enqueueMany('retry', [{ payload: 'neg' }, { payload: 'nan' }, { payload: 'dead' }]);
      const worker = app.queue.work('retry', (job) => {
        if (job.payload === 'neg') throw new JobError('neg', { retryAfterMs: -5 });
        if (job.payload === 'nan') throw new JobError('huge', { retryAfterMs: 1e15 });
        throw new JobError('stop', { retryable: false, retryAfterMs: Number.NaN });
      }, { concurrency: 3 });
      const deadline = Date.now() + 5000;
      while (worker.counts.failed < 3 && Date.now() < deadline) await sleep(10);
      await worker.stop();
      const [ia, ib, ic] = [await app.queue.get(a!), await app.queue.get(b!), await app.queue.get(c!)];
      assert.ok(ia.state === 'pending' || ia.state === 'running' || ia.attempts > 1, `negative wait retried at once (${ia.state})`);
      assert.equal(ib.state, 'waiting');
      assert.ok(ib.runAt > Date.now() + 300 * 86_400_000, 'capped at one year, not refused');
      assert.equal(ic.state, 'dead');
      assert.match(ic.lastError ?? '', /stop/);
    } finally {
      await app.close();
    }
  });

  it('no worker can be started once close() has begun, and null options mean defaults', async () => {
    const app = await open();
    await app.queue.enqueue('n', 1);
    const [j] = await app.queue.claim('n', null as unknown as undefined);
    assert.ok(j !== undefined);
    await app.queue.fail(j.id, j.leaseToken, null as unknown as undefined);
    assert.deepEqual(await app.queue.listDead('n', null as unknown as undefined), []);
    await rejects(() => app.queue.ackMany(null as unknown as []), 'KC_INVALID_INPUT');
    await rejects(() => app.queue.ackMany([null] as unknown as []), 'KC_INVALID_INPUT');
    await rejects(() => app.queue.claim('n', 5 as unknown as undefined), 'KC_INVALID_INPUT');
    const w = app.queue.work('n', () => undefined, null as unknown as undefined);
    await w.stop(null as unknown as undefined);
    const closing = app.close();
    assert.throws(() => app.queue.work('n', () => undefined), { code: 'KC_DB_CLOSED' });
    await closing;
  });

  it('a claimed job whose payload row is gone is set aside as dead, not left leased', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('damaged', 1);
      const raw = rawDb(app);
      raw.prepare('DELETE FROM job_payloads').run();
      raw.close();
      assert.deepEqual(await app.queue.claim('damaged'), []);
      const deadline = Date.now() + 2000;
      while ((await app.queue.stats('damaged')).dead === 0 && Date.now() < deadline) await sleep(10);
      const info = await app.queue.get(id);
      assert.equal(info.state, 'dead');
      assert.equal(info.payload, null);
      assert.match(info.lastError ?? '', /payload row is missing/);
    } finally {
      await app.close();
    }
  });
});

describe('queue: what a second review found', () => {
  it('handBack leaves a lease that ended alone, swept or not: its attempt stays counted', async () => {
    const app = await open();
    try {
      const id = await app.queue.enqueue('hb', 1, { maxAttempts: 1 });
      const [job] = await app.queue.claim('hb', { leaseMs: 100 });
      await sleep(150);
      assert.equal(await app.queue.handBack([job!]), 0);
      await app.queue.sweep();
      assert.equal((await app.queue.get(id)).state, 'dead', 'the last attempt was used: not revived');
    } finally {
      await app.close();
    }
  });

  it('a worker that stops hands its jobs back in their places: the queue keeps its order', async () => {
    const app = await open();
    try {
      for (let i = 1; i <= 6; i++) {
        await app.queue.enqueue('order', i);
        await sleep(3);
      }
      let started = 0;
      const w = app.queue.work('order', () => {
        started++;
        return new Promise<void>(() => undefined);
      }, { concurrency: 1, prefetch: 4, stopGraceMs: 0 });
      while (started === 0) await sleep(10);
      await sleep(50);
      await w.stop();
      assert.ok(w.counts.released >= 2, JSON.stringify(w.counts));
      const order: unknown[] = [];
      for (;;) {
        const [job] = await app.queue.claim('order');
        if (job === undefined) break;
        order.push(job.payload);
        await app.queue.ack(job.id, job.leaseToken);
      }
      assert.deepEqual(order, [1, 2, 3, 4, 5, 6]);
    } finally {
      await app.close();
    }
  });

  it('a worker never starts a job it held past its lease (the event loop was busy): it is lost, and runs again later', async () => {
    const app = await open();
    try {
      await app.queue.enqueue('busy', 'A');
      await app.queue.enqueue('busy', 'B');
      const starts: { payload: unknown; at: number; leaseUntil: number }[] = [];
      const w = app.queue.work('busy', (job) => {
        starts.push({ payload: job.payload, at: Date.now(), leaseUntil: job.leaseUntil });
        if (job.payload === 'A' && job.attempts === 1) {
          const t = Date.now();
          while (Date.now() - t < 400); // B, claimed ahead, waits past its 150 ms lease
        }
      }, { concurrency: 1, prefetch: 1, leaseMs: 150, pollMs: 20 });
      for (let i = 0; i < 200 && (await app.queue.stats('busy')).completed < 2; i++) await sleep(20);
      await w.stop();
      assert.equal((await app.queue.stats('busy')).completed, 2);
      assert.ok(w.counts.lost >= 1, JSON.stringify(w.counts));
      for (const s of starts) assert.ok(s.at < s.leaseUntil, `${String(s.payload)} started ${s.at - s.leaseUntil} ms after its lease ended`);
    } finally {
      await app.close();
    }
  });

  it('a handler that returns an object whose then getter throws, or throws a Proxy whose traps throw, fails its job and nothing else', async () => {
    const app = await open();
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      // Each with the state its job ends in: what can be read fails the job; a native promise
      // that resolved completes it, whatever its own `then` does (an await never reads it).
      const hostile: [() => unknown, string][] = [
        [() => ({ get then(): never { throw new Error('then getter'); } }), 'dead'],
        [
          () => {
            // A native promise with a throwing own `then` (second review: it crashed the process).
            const p = Promise.resolve();
            Object.defineProperty(p, 'then', { get() { throw new Error('then getter'); } });
            return p;
          },
          'completed',
        ],
        [() => { throw new Proxy({}, { getPrototypeOf() { throw new Error('trap'); } }); }, 'dead'],
        [() => { throw new Proxy({}, { get() { throw new Error('trap'); } }); }, 'dead'],
      ];
      for (const [i, [handler, end]] of hostile.entries()) {
        const id = await app.queue.enqueue(`hostile${i}`, i, { maxAttempts: 1 });
        const w = app.queue.work(`hostile${i}`, handler);
        for (let n = 0; n < 100 && (await app.queue.get(id)).state !== end; n++) await sleep(20);
        await w.stop();
        assert.equal((await app.queue.get(id)).state, end, `handler ${i}`);
      }
      await sleep(50);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await app.close();
    }
  });

  it('a payload that redaction makes longer must still fit max_payload_bytes once stored', async () => {
    const dir = tmpDir();
    const configPath = path.join(dir, 'blufio.toml');
    fs.writeFileSync(configPath, '[queue]\nmax_payload_bytes = 1048576\n');
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), configPath, logger: silentLogger(), passphrase: 'queue review passphrase' });
    try {
      await app.vault.set('tool.pin', 'hunter22');
      const unit = 'hunter22 ';
      const near = unit.repeat(Math.floor((1048576 - 2) / unit.length));
      await rejects(app.queue.enqueue('grow', near), 'KC_INVALID_INPUT', /once the secrets in it are redacted; the limit is 1048576/);
      await rejects(app.queue.enqueueMany('grow', [{ payload: 1 }, { payload: near }]), 'KC_INVALID_INPUT', /batch item 1/);
      assert.equal((await app.queue.stats('grow')).pending, 0, 'nothing stored');
      const half = unit.repeat(Math.floor(400_000 / unit.length));
      const id = await app.queue.enqueue('grow', half);
      assert.ok(!JSON.stringify((await app.queue.get(id)).payload).includes('hunter22'));
    } finally {
      await app.close();
    }
  });

  it('stats come from one snapshot: the counts add up while a worker runs', async () => {
    const app = await open();
    try {
      const total = 3000;
      for (let i = 0; i < total; i += 1000) await app.queue.enqueueMany('snap', Array.from({ length: 1000 }, (_, j) => ({ payload: i + j })));
      const w = app.queue.work('snap', () => undefined, { concurrency: 8 });
      const torn: string[] = [];
      for (let n = 0; n < 400; n++) {
        const s = await app.queue.stats('snap');
        const sum = s.pending + s.delayed + s.running + s.completed + s.dead;
        if (sum !== total) torn.push(JSON.stringify(s));
        if (s.completed === total) break;
        await new Promise((r) => setImmediate(r));
      }
      await w.stop();
      assert.deepEqual(torn, []);
    } finally {
      await app.close();
    }
  });
});
