import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Database from '../src/storage/driver.js';
import pino from 'pino';
import { openBlufio, type BlufioApp, type Durability } from '../src/index.js';
import { benchDir, fsyncRate, RUN_MS } from './common.js';
import { fmt, percentile, type Reporter } from './report.js';


const READ_DB_MESSAGES = Number(process.env.BLUFIO_BENCH_MESSAGES ?? 1_000_000);
const CONCURRENCY = [1, 10, 100];
const DURABILITY: Durability[] = ['full', 'normal'];
const CONTENT = 'The quick brown fox asked the agent to summarise a long thread about SQLite durability. '.repeat(3);

interface RunOutcome {
  perSecond: number;
  maxStallMs: number;
  p99StallMs: number;
}

/** `concurrency` loops, each appending to its own session until the time is up. */
async function drive(concurrency: number, append: (session: number, n: number) => Promise<unknown>): Promise<RunOutcome> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let done = 0;
  const start = performance.now();
  const deadline = start + RUN_MS;
  h.enable();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, s) => {
      for (let n = 0; performance.now() < deadline; n++) {
        await append(s, n);
        done++;
      }
    }),
  );
  h.disable();
  const secs = (performance.now() - start) / 1000;
  return { perSecond: done / secs, maxStallMs: h.max / 1e6, p99StallMs: h.percentile(99) / 1e6 };
}

async function blufioAppend(dir: string, durability: Durability, concurrency: number): Promise<RunOutcome> {
  const app = await openBlufio({ dataDir: dir, durability, logger: pino({ level: 'silent' }), env: {} });
  try {
    const sessions = await Promise.all(Array.from({ length: concurrency }, () => app.sessions.create({ channel: 'bench' })));
    return await drive(concurrency, (s, n) => app.messages.append(sessions[s]!.id, { role: 'user', content: CONTENT, tokenCount: n }));
  } finally {
    await app.close();
  }
}

/**
 * The naive baseline: the same schema and file, one autocommit INSERT per message on the main
 * thread with the same synchronous setting. It yields to the event loop after each insert so
 * that its stall figure is the length of one write, not the whole run.
 */
async function naiveAppend(dir: string, durability: Durability, concurrency: number): Promise<RunOutcome> {
  const app = await openBlufio({ dataDir: dir, durability, logger: pino({ level: 'silent' }), env: {} });
  const sessions = await Promise.all(Array.from({ length: concurrency }, () => app.sessions.create({ channel: 'naive' })));
  await app.close();
  const db = new Database(path.join(dir, 'blufio.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
  const insert = db.prepare(
    'INSERT INTO messages (session_no, role, content, token_count, metadata, created_at) VALUES (?, ?, ?, ?, NULL, ?)',
  );
  const noOf = db.prepare('SELECT no FROM sessions WHERE id = ?').pluck();
  const nos = sessions.map((s) => noOf.get(s.id) as number);
  try {
    return await drive(concurrency, async (s, n) => {
      insert.run(nos[s], 'user', CONTENT, n, Date.now());
      await new Promise((r) => setImmediate(r));
    });
  } finally {
    db.close();
  }
}

/** Builds a database of READ_DB_MESSAGES messages over 1,000 sessions through the library itself. */
async function buildReadDb(dir: string): Promise<string[]> {
  const app = await openBlufio({ dataDir: dir, durability: 'normal', logger: pino({ level: 'silent' }), env: {} });
  try {
    const sessions: string[] = [];
    for (let i = 0; i < 1000; i++) sessions.push((await app.sessions.create({ channel: 'read' })).id);
    const perSession = Math.ceil(READ_DB_MESSAGES / sessions.length);
    await Promise.all(
      sessions.map(async (s) => {
        for (let i = 0; i < perSession; i++) {
          await app.messages.append(s, { role: i % 2 ? 'assistant' : 'user', content: `message ${i} ${CONTENT}`, tokenCount: 40 });
        }
      }),
    );
    return sessions;
  } finally {
    await app.close();
  }
}

export async function storageBench(rep: Reporter): Promise<void> {
  const root = benchDir();
  try {
    rep.say(`storage bench in ${root} (each append run ${RUN_MS} ms)`);
    const disk = fsyncRate(root);
    rep.add({ bench: 'storage', case: 'disk fsync', subject: 'disk', metric: 'fsync_rate', value: disk, unit: 'fsync/s' });
    rep.say(`  raw fsync rate of this disk: ${fmt(disk)} fsync/s (the ceiling for one commit per write at "full")`);
    rep.say('');
    rep.say('  append throughput (msg/s)      blufio   naive-autocommit   ratio   blufio max / p99 stall   naive max stall');

    let i = 0;
    for (const durability of DURABILITY) {
      for (const c of CONCURRENCY) {
        const ours = await blufioAppend(path.join(root, `a${i}`), durability, c);
        const naive = await naiveAppend(path.join(root, `n${i}`), durability, c);
        i++;
        const name = `append ${durability} c=${c}`;
        rep.add({ bench: 'storage', case: name, subject: 'blufio', metric: 'throughput', value: ours.perSecond, unit: 'msg/s' });
        rep.add({ bench: 'storage', case: name, subject: 'blufio', metric: 'event_loop_max_stall', value: ours.maxStallMs, unit: 'ms' });
        rep.add({ bench: 'storage', case: name, subject: 'blufio', metric: 'event_loop_p99_stall', value: ours.p99StallMs, unit: 'ms' });
        rep.add({ bench: 'storage', case: name, subject: 'naive-autocommit', metric: 'throughput', value: naive.perSecond, unit: 'msg/s' });
        rep.add({ bench: 'storage', case: name, subject: 'naive-autocommit', metric: 'event_loop_max_stall', value: naive.maxStallMs, unit: 'ms' });
        rep.add({ bench: 'storage', case: name, subject: 'blufio', metric: 'ratio_vs_naive', value: ours.perSecond / naive.perSecond, unit: 'x' });
        rep.say(
          `  ${name.padEnd(26)} ${fmt(ours.perSecond).padStart(10)} ${fmt(naive.perSecond).padStart(18)} ${(fmt(ours.perSecond / naive.perSecond) + 'x').padStart(7)}   ${`${fmt(ours.maxStallMs)} / ${fmt(ours.p99StallMs)} ms`.padStart(22)}   ${`${fmt(naive.maxStallMs)} ms`.padStart(15)}`,
        );
      }
    }

    rep.say('');
    const readDir = path.join(root, 'read');
    const t0 = performance.now();
    const sessions = await buildReadDb(readDir);
    const buildSecs = (performance.now() - t0) / 1000;
    rep.say(`  built a database of ${READ_DB_MESSAGES.toLocaleString('en-US')} messages over 1,000 concurrent sessions in ${fmt(buildSecs)} s (${fmt(READ_DB_MESSAGES / buildSecs)} msg/s at "normal", c=1000)`);
    const app: BlufioApp = await openBlufio({ dataDir: readDir, logger: pino({ level: 'silent' }), env: {} });
    try {
      const N = 20_000;
      const ours = new Float64Array(N);
      for (let k = 0; k < 2000; k++) await app.messages.list(sessions[k % sessions.length]!, { limit: 50 }); // warm up
      for (let k = 0; k < N; k++) {
        const s = sessions[(k * 7919) % sessions.length]!;
        const t = performance.now();
        const page = await app.messages.list(s, { limit: 50 });
        ours[k] = performance.now() - t;
        if (page.length !== 50) throw new Error('expected 50 messages');
      }
      ours.sort();
      const c = `newest 50 of ${READ_DB_MESSAGES} messages`;
      rep.add({ bench: 'storage', case: c, subject: 'blufio', metric: 'p50_latency', value: percentile(ours, 50), unit: 'ms' });
      rep.add({ bench: 'storage', case: c, subject: 'blufio', metric: 'p99_latency', value: percentile(ours, 99), unit: 'ms' });
      rep.add({ bench: 'storage', case: c, subject: 'blufio', metric: 'max_latency', value: ours[N - 1]!, unit: 'ms' });
      rep.say(
        `  read newest 50 of one session (${N} reads over 1,000 sessions): p50 ${fmt(percentile(ours, 50))} ms, p99 ${fmt(percentile(ours, 99))} ms, max ${fmt(ours[N - 1]!)} ms`,
      );
    } finally {
      await app.close();
    }

    const full100 = rep.results.find((r) => r.case === 'append full c=100' && r.metric === 'ratio_vs_naive')?.value ?? 0;
    const p99 = rep.results.find((r) => r.subject === 'blufio' && r.metric === 'p99_latency')?.value ?? Infinity;
    const stall = Math.max(...rep.results.filter((r) => r.subject === 'blufio' && r.metric === 'event_loop_max_stall').map((r) => r.value));
    rep.say('');
    rep.say(`  targets: group commit at full c=100 >= 10x naive: ${fmt(full100)}x ${full100 >= 10 ? 'MET' : 'MISSED'}`);
    rep.say(`           newest-50 read p99 < 1 ms: ${fmt(p99)} ms ${p99 < 1 ? 'MET' : 'MISSED'}`);
    rep.say(`           event-loop stall < 20 ms during appends: ${fmt(stall)} ms ${stall < 20 ? 'MET' : 'MISSED'}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
