/**
 * The queue beside its SQLite peers on npm, plainjob and liteque, in one process on one disk,
 * with the same payloads, the same handler and the same synchronous setting:
 *   - enqueue, one caller awaiting each job; 256 callers at once; batches of 100;
 *   - end to end (enqueue, claim, handler, ack) with 256 producers and a worker of concurrency 1 and 8;
 *   - latency from the enqueue call to the handler's start, one job per millisecond.
 * Each subject runs at "full" (synchronous=FULL: a commit survives power loss) and "normal"
 * (synchronous=NORMAL, both peers' default). Blufio commits an enqueue with FULL at either
 * setting (DESIGN: an acknowledged enqueue survives power loss), so its "normal" rows are still
 * the more durable ones. The peers poll for work every 10 ms (their defaults are 1000 ms).
 *
 * 256 producers, each awaiting its own enqueue, keep every subject's enqueue path saturated:
 * the peers' enqueue is synchronous (one caller or 256 is the same loop to them), Blufio's waits
 * for a commit that many callers share, so it needs callers in flight to show its throughput.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { Runner, SqliteQueue, buildDBClient } from 'liteque';
import pino from 'pino';
import { better, defineQueue, defineWorker } from 'plainjob';
import { openBlufio, type Durability } from '../src/index.js';
import { benchDir, fsyncRate } from './common.js';
import { fmt, percentile, type Reporter } from './report.js';

const PEER_POLL_MS = 10;
const PRODUCERS = 256;
const PAYLOAD = { chat: 'telegram:123456789', text: 'remind me to water the plants tomorrow at 9', attachments: [] as string[] };
const DURABILITY: Durability[] = ['full', 'normal'];
const SUBJECTS = ['blufio', 'plainjob', 'liteque'] as const;
type SubjectName = (typeof SUBJECTS)[number];

type Handler = (payload: { seq: number; t: number }) => void;

/** One queue implementation behind the calls the bench makes. */
interface Subject {
  enqueue(payload: unknown): Promise<unknown>;
  enqueueBatch?(payloads: unknown[]): Promise<unknown>;
  /** Starts a worker; the returned function stops it and waits for its last acks. */
  work(concurrency: number, handler: Handler): () => Promise<void>;
  close(): Promise<void>;
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

async function blufio(dir: string, durability: Durability): Promise<Subject> {
  const app = await openBlufio({ dataDir: dir, durability, logger: pino({ level: 'silent' }), env: {} });
  return {
    enqueue: (p) => app.queue.enqueue('bench', p),
    enqueueBatch: (ps) => app.queue.enqueueMany('bench', ps.map((payload) => ({ payload }))),
    work(concurrency, handler) {
      const w = app.queue.work('bench', (job) => handler(job.payload as { seq: number; t: number }), { concurrency });
      return () => w.stop();
    },
    close: () => app.close(),
  };
}

function plainjob(dir: string, durability: Durability): Subject {
  const db = new Database(path.join(dir, 'plainjob.db'));
  const queue = defineQueue({ connection: better(db), logger: silent });
  // defineQueue sets WAL and synchronous=NORMAL; "full" overrides it afterwards.
  if (durability === 'full') db.pragma('synchronous = FULL');
  return {
    enqueue: async (p) => queue.add('bench', p),
    enqueueBatch: async (ps) => queue.addMany('bench', ps),
    work(concurrency, handler) {
      const workers = Array.from({ length: concurrency }, () =>
        defineWorker('bench', (job) => handler(JSON.parse(job.data as string) as { seq: number; t: number }), {
          queue,
          logger: silent,
          pollIntervall: PEER_POLL_MS,
        }),
      );
      for (const w of workers) void w.start();
      return async () => void (await Promise.all(workers.map((w) => w.stop())));
    },
    close: async () => {
      queue.close();
      db.close();
    },
  };
}

function liteque(dir: string, durability: Durability): Subject {
  const db = buildDBClient(path.join(dir, 'liteque.db'), { runMigrations: true });
  const client = (db as unknown as { session: { client: InstanceType<typeof Database> } }).session.client;
  if (durability === 'full') client.pragma('synchronous = FULL');
  const queue = new SqliteQueue<{ seq: number; t: number }>('bench', db, { defaultJobArgs: { numRetries: 0 }, keepFailedJobs: false });
  return {
    enqueue: (p) => queue.enqueue(p as { seq: number; t: number }),
    work(concurrency, handler) {
      const runner = new Runner(queue, { run: async (job) => handler(job.data) }, { concurrency, pollIntervalMs: PEER_POLL_MS, timeoutSecs: 60 });
      const running = runner.run();
      return async () => {
        runner.stop();
        await running;
      };
    },
    close: async () => void client.close(),
  };
}

async function openSubject(name: SubjectName, dir: string, durability: Durability): Promise<Subject> {
  fs.mkdirSync(dir, { recursive: true });
  if (name === 'blufio') return blufio(dir, durability);
  return name === 'plainjob' ? plainjob(dir, durability) : liteque(dir, durability);
}

const payload = (seq: number): { seq: number; t: number } & typeof PAYLOAD => ({ ...PAYLOAD, seq, t: performance.now() });

/** `lanes` callers, each awaiting its own enqueues one after another, until `n` jobs are in. */
async function produce(s: Subject, n: number, lanes: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < n) await s.enqueue(payload(next++));
    }),
  );
}

interface Case {
  name: string;
  unit: string;
  /** How many jobs for this subject and durability (the slow ones get fewer, so the bench ends in minutes). */
  jobs: (slow: boolean) => number;
  run: (s: Subject, n: number) => Promise<number>;
}

async function rate(n: number, fn: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await fn();
  return n / ((performance.now() - t) / 1000);
}

async function endToEnd(s: Subject, n: number, concurrency: number): Promise<number> {
  let handled = 0;
  let allHandled!: () => void;
  const done = new Promise<void>((r) => (allHandled = r));
  const t = performance.now();
  const stop = s.work(concurrency, () => {
    if (++handled === n) allHandled();
  });
  await produce(s, n, PRODUCERS);
  await done;
  await stop();
  return n / ((performance.now() - t) / 1000);
}

/** One job per millisecond for `n` jobs; the p99 of enqueue call → handler start. */
async function latency(s: Subject, n: number): Promise<number> {
  const lat = new Float64Array(n);
  let handled = 0;
  let allHandled!: () => void;
  const done = new Promise<void>((r) => (allHandled = r));
  const stop = s.work(8, (p) => {
    lat[p.seq] = performance.now() - p.t;
    if (++handled === n) allHandled();
  });
  for (let i = 0; i < n; i++) {
    void s.enqueue(payload(i));
    await new Promise((r) => setTimeout(r, 1));
  }
  await done;
  await stop();
  lat.sort();
  return percentile(lat, 99);
}

const CASES: Case[] = [
  { name: 'enqueue, 1 caller', unit: 'jobs/s', jobs: () => 3000, run: (s, n) => rate(n, () => produce(s, n, 1)) },
  { name: `enqueue, ${PRODUCERS} callers`, unit: 'jobs/s', jobs: (slow) => (slow ? 3000 : 20_000), run: (s, n) => rate(n, () => produce(s, n, PRODUCERS)) },
  {
    name: 'enqueue, batches of 100',
    unit: 'jobs/s',
    jobs: () => 20_000,
    run: (s, n) =>
      rate(n, async () => {
        for (let i = 0; i < n; i += 100) await s.enqueueBatch!(Array.from({ length: 100 }, (_, k) => payload(i + k)));
      }),
  },
  { name: 'end to end, concurrency 1', unit: 'jobs/s', jobs: (slow) => (slow ? 2000 : 30_000), run: (s, n) => endToEnd(s, n, 1) },
  { name: 'end to end, concurrency 8', unit: 'jobs/s', jobs: (slow) => (slow ? 2000 : 30_000), run: (s, n) => endToEnd(s, n, 8) },
  { name: 'p99 enqueue → handler start', unit: 'ms', jobs: () => 2000, run: latency },
];

export async function queueBench(rep: Reporter): Promise<void> {
  const root = benchDir();
  try {
    const disk = fsyncRate(root);
    rep.add({ bench: 'queue', case: 'disk fsync', subject: 'disk', metric: 'fsync_rate', value: disk, unit: 'fsync/s' });
    rep.say(`queue bench in ${root}; this disk does ${fmt(disk)} fsync/s; peers poll every ${PEER_POLL_MS} ms`);
    const columns = SUBJECTS.flatMap((s) => DURABILITY.map((d) => ({ s, d })));
    rep.say('');
    rep.say(`  ${''.padEnd(30)}${columns.map(({ s, d }) => `${s} ${d}`.padStart(17)).join('')}   vs best peer: full / normal / our full vs their default`);
    let i = 0;
    for (const c of CASES) {
      const got = new Map<string, number>();
      for (const { s, d } of columns) {
        if (c.name.includes('batches') && s === 'liteque') continue; // liteque has no batch enqueue
        const subject = await openSubject(s, path.join(root, `${i++}`), d);
        try {
          const slow = s === 'liteque' || (s === 'plainjob' && d === 'full');
          const value = await c.run(subject, c.jobs(slow));
          got.set(`${s} ${d}`, value);
          rep.add({ bench: 'queue', case: `${c.name} (${d})`, subject: s, metric: c.unit === 'ms' ? 'p99_latency' : 'throughput', value, unit: c.unit });
        } finally {
          await subject.close();
        }
      }
      // Higher is better for throughput, lower for latency; ratios always read "x times better".
      const better = (ours: number, theirs: number): number => (c.unit === 'ms' ? theirs / ours : ours / theirs);
      const bestPeer = (d: Durability): number => {
        const vals = SUBJECTS.filter((s) => s !== 'blufio').map((s) => got.get(`${s} ${d}`)).filter((v): v is number => v !== undefined);
        return c.unit === 'ms' ? Math.min(...vals) : Math.max(...vals);
      };
      const ratios = [
        better(got.get('blufio full')!, bestPeer('full')),
        better(got.get('blufio normal')!, bestPeer('normal')),
        better(got.get('blufio full')!, bestPeer('normal')),
      ];
      ['ratio_full', 'ratio_normal', 'ratio_full_vs_peer_default'].forEach((metric, k) =>
        rep.add({ bench: 'queue', case: c.name, subject: 'blufio', metric, value: ratios[k]!, unit: 'x' }),
      );
      rep.say(
        `  ${`${c.name} (${c.unit})`.padEnd(30)}${columns.map(({ s, d }) => { const v = got.get(`${s} ${d}`); return (v === undefined ? 'n/a' : fmt(v)).padStart(17); }).join('')}   ${ratios.map((r) => `${fmt(r)}x`).join(' / ')}`,
      );
    }
    const e2e = rep.results.filter((r) => r.bench === 'queue' && r.case.startsWith('end to end') && r.metric.startsWith('ratio'));
    const equal = e2e.filter((r) => r.metric !== 'ratio_full_vs_peer_default');
    const minEqual = Math.min(...equal.map((r) => r.value));
    const minDefault = Math.min(...e2e.filter((r) => r.metric === 'ratio_full_vs_peer_default').map((r) => r.value));
    rep.say('');
    rep.say(`  targets: end to end >= 3x the faster SQLite peer at equal durability: worst ${fmt(minEqual)}x ${minEqual >= 3 ? 'MET' : 'MISSED'}`);
    rep.say(`           our "full" faster than the peers at their default, end to end: worst ${fmt(minDefault)}x ${minDefault > 1 ? 'MET' : 'MISSED'}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
