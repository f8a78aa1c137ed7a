import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import Database from '../src/storage/driver.js';
import { sleep, startFixture, tmpDir, type RunResult } from './helpers/index.js';

const KILLS = Number(process.env.BLUFIO_TEST_QUEUE_KILLS ?? 110);
const JOBS = 3000;

interface Role {
  name: string;
  args: string[];
  child?: ChildProcess;
  done?: Promise<RunResult>;
}

/**
 * A producer and two workers (four handlers each) in child processes; one of them is SIGKILLed
 * at a random moment, again and again, and started anew. Afterwards every job whose enqueue was
 * acknowledged must be completed exactly once in the database, nothing may be left pending,
 * running or dead, the file must pass integrity_check, and a handler may have run a job more
 * than once only when the process that ran it earlier was killed while holding its lease.
 */
it(`queue: ${KILLS} SIGKILLs of producer and workers lose no acknowledged job`, async (t) => {
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  const config = path.join(dir, 'blufio.toml');
  // Housekeeping looks for leases of dead processes every 50 ms.
  fs.writeFileSync(config, '[queue]\nsweep_interval_ms = 50\n');
  const acked = new Map<number, string>();
  const starts = new Map<number, number[]>();
  const killed = new Set<number>();
  let produced = false;

  const onLine = (line: string): void => {
    const [kind, x, y, z] = line.split(' ');
    if (kind === 'E') acked.set(Number(x), y!);
    else if (kind === 'S') {
      const list = starts.get(Number(x)) ?? [];
      list.push(Number(z));
      starts.set(Number(x), list);
      void y;
    } else if (kind === 'F') produced = true;
  };
  const nextSeq = (): number => {
    let n = 0;
    while (acked.has(n)) n++;
    return n;
  };
  const producer: Role = { name: 'produce', args: [] };
  const workers: Role[] = [
    { name: 'work', args: ['4'] },
    { name: 'work', args: ['4'] },
  ];
  const spawnRole = (r: Role): void => {
    const args = r.name === 'produce' ? [String(nextSeq()), String(JOBS)] : r.args;
    const { child, done } = startFixture('queue-crash', [r.name, data, config, ...args], onLine);
    r.child = child;
    r.done = done;
  };

  spawnRole(producer);
  for (const w of workers) spawnRole(w);
  let kills = 0;
  let producerKills = 0;
  while (kills < KILLS) {
    await sleep(20 + Math.random() * 180);
    // The producer is a victim only while it still has jobs to enqueue.
    const live = [...workers, ...(produced ? [] : [producer])];
    const victim = live[Math.floor(Math.random() * live.length)]!;
    const pid = victim.child!.pid!;
    victim.child!.kill('SIGKILL');
    const r = await victim.done!;
    if (r.signal === 'SIGKILL') {
      killed.add(pid);
      kills++;
      if (victim === producer) producerKills++;
    } else {
      assert.ok(victim === producer && r.code === 0, `${victim.name} ${pid} ended on its own (${r.code}): ${r.stderr}`);
    }
    if (victim !== producer || !produced) spawnRole(victim);
  }

  // Let the producer finish and the workers drain the queue.
  const deadline = Date.now() + 120_000;
  while (!produced) {
    const r = await Promise.race([producer.done!, sleep(200).then(() => undefined)]);
    if (r !== undefined && !produced) {
      assert.equal(r.code, 0, `producer failed: ${r.stderr}`);
      spawnRole(producer);
    }
    assert.ok(Date.now() < deadline, 'the producer did not finish');
  }
  await producer.done;
  const file = path.join(data, 'blufio.db');
  const count = (sql: string): number => {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql).pluck().get() as number;
    } finally {
      db.close();
    }
  };
  while (count("SELECT count(*) FROM jobs WHERE state <> 'completed'") > 0) {
    assert.ok(Date.now() < deadline, 'the workers did not drain the queue');
    await sleep(200);
  }
  for (const w of workers) {
    w.child!.kill('SIGKILL');
    await w.done;
  }

  const db = new Database(file, { fileMustExist: true });
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    assert.equal(acked.size, JOBS);
    const rows = db
      .prepare(`SELECT j.idempotency_key AS key, j.state, j.attempts, p.payload FROM jobs j JOIN job_payloads p ON p.no = j.no`)
      .all() as { key: string; state: string; attempts: number; payload: string }[];
    assert.equal(rows.length, JOBS, 'one job per enqueued sequence number, no duplicates');
    const byKey = new Map(rows.map((r) => [r.key, r]));
    for (const [seq] of acked) {
      const row = byKey.get(`job-${seq}`);
      assert.ok(row !== undefined, `acknowledged job ${seq} is missing`);
      assert.equal(row.state, 'completed', `job ${seq}`);
      assert.deepEqual(JSON.parse(row.payload), { seq });
    }
    // Every repeated run of a handler is explained by a kill of the process that ran it before.
    let repeated = 0;
    for (const [seq, pids] of starts) {
      assert.ok(byKey.has(`job-${seq}`), `a handler ran job ${seq}, which is not in the database`);
      for (const pid of pids.slice(0, -1)) {
        assert.ok(killed.has(pid), `job ${seq} ran again after process ${pid}, which was not killed, had started it`);
      }
      if (pids.length > 1) repeated++;
    }
    for (const [seq] of acked) assert.ok(starts.has(seq), `job ${seq} completed without its handler running`);
    t.diagnostic(
      `${kills} kills (${producerKills} of the producer), ${acked.size} jobs acknowledged and completed, ${repeated} run again after a kill`,
    );
  } finally {
    db.close();
  }
});
