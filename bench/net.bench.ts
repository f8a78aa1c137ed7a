/**
 * The safe fetch against plain undici fetch with the same keep-alive agent settings, to an
 * allowlisted loopback server in another process. Rounds alternate between the two so that
 * machine noise falls on both alike. Target: overhead under 5% (requests/s and p99).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Agent, fetch as undiciFetch } from 'undici';
import { createSafeFetch } from '../src/index.js';
import { RUN_MS } from './common.js';
import { fmt, percentile, type Reporter } from './report.js';

const ROUNDS = 8;
type Fetch = (url: string) => Promise<{ arrayBuffer(): Promise<ArrayBuffer> }>;

async function drive(f: Fetch, url: string, concurrency: number, ms: number): Promise<{ n: number; lat: number[] }> {
  const lat: number[] = [];
  const end = performance.now() + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await (await f(url)).arrayBuffer();
        lat.push(performance.now() - t0);
        n++;
      }
    }),
  );
  return { n, lat };
}

async function compare(rep: Reporter, label: string, url: string, concurrency: number): Promise<number> {
  const plainAgent = new Agent({ keepAliveTimeout: 4_000 });
  const plain: Fetch = (u) => undiciFetch(u, { dispatcher: plainAgent });
  const safe = createSafeFetch({ allowedPrivateIps: ['127.0.0.1', '::1'], logger: pino({ level: 'silent' }), keepAliveTimeoutMs: 4_000 });
  const subjects: [string, Fetch][] = [['plain fetch', plain], ['safe fetch', safe as unknown as Fetch]];
  const roundMs = Math.max(200, Math.round(RUN_MS / 2));
  const rates = new Map<string, number[]>(subjects.map(([n]) => [n, []]));
  const ratios: number[] = []; // plain/safe per round: adjacent runs share the machine's mood
  const lats = new Map<string, number[]>(subjects.map(([n]) => [n, []]));
  for (const [, f] of subjects) await drive(f, url, concurrency, 150); // warm up: connections, JIT
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? subjects : [...subjects].reverse();
    const round = new Map<string, number>();
    for (const [name, f] of order) {
      const { n, lat } = await drive(f, url, concurrency, roundMs);
      round.set(name, n);
      rates.get(name)!.push(n / (roundMs / 1000));
      lats.get(name)!.push(...lat);
    }
    ratios.push(round.get('plain fetch')! / round.get('safe fetch')!);
  }
  const summary = new Map<string, { rps: number; p50: number; p99: number }>();
  for (const [name] of subjects) {
    const rs = rates.get(name)!.sort((a, b) => a - b);
    const ls = lats.get(name)!.sort((a, b) => a - b);
    const s = { rps: rs[Math.floor(rs.length / 2)]!, p50: percentile(ls, 50), p99: percentile(ls, 99) };
    summary.set(name, s);
    rep.add({ bench: 'net', case: `${label}, c=${concurrency}`, subject: name, metric: 'throughput', value: s.rps, unit: 'req/s' });
    rep.add({ bench: 'net', case: `${label}, c=${concurrency}`, subject: name, metric: 'p99', value: s.p99, unit: 'ms' });
    rep.say(`    ${name.padEnd(12)} ${fmt(s.rps).padStart(8)} req/s   p50 ${fmt(s.p50).padStart(6)} ms   p99 ${fmt(s.p99).padStart(6)} ms`);
  }
  const p = summary.get('plain fetch')!;
  const s = summary.get('safe fetch')!;
  const rpsOverhead = (ratios.sort((x, y) => x - y)[Math.floor(ratios.length / 2)]! - 1) * 100;
  const p99Overhead = (s.p99 / p.p99 - 1) * 100;
  rep.add({ bench: 'net', case: `${label}, c=${concurrency}`, subject: 'safe vs plain', metric: 'throughput_overhead', value: rpsOverhead, unit: '%' });
  rep.add({ bench: 'net', case: `${label}, c=${concurrency}`, subject: 'safe vs plain', metric: 'p99_overhead', value: p99Overhead, unit: '%' });
  rep.say(`    overhead: throughput ${rpsOverhead.toFixed(1)}% (median of per-round ratios), p99 ${p99Overhead.toFixed(1)}%`);
  await plainAgent.close();
  await safe.close();
  return Math.max(rpsOverhead, p99Overhead);
}

export async function netBench(rep: Reporter): Promise<void> {
  const server = spawn(process.execPath, [fileURLToPath(new URL('./net-server.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [chunk] = (await once(server.stdout!, 'data')) as [Buffer];
    const port = Number(chunk.toString().trim());
    rep.say(`  safe fetch vs plain undici fetch, same keep-alive settings, server in another process, median of ${ROUNDS} alternating rounds:`);
    let worst = -Infinity;
    for (const c of [1, 16]) {
      rep.say(`  keep-alive, ${c} concurrent caller(s):`);
      worst = Math.max(worst, await compare(rep, 'keep-alive', `http://127.0.0.1:${port}/`, c));
    }
    rep.say('  a new connection per request via localhost (lookup, check, connect), 1 caller:');
    await compare(rep, 'new connection each', `http://localhost:${port}/close`, 1);
    rep.say(`\n  targets: safe fetch overhead < 5% (keep-alive, req/s and p99): worst ${worst.toFixed(1)}% ${worst < 5 ? 'MET' : 'NOT MET'}`);
  } finally {
    server.kill('SIGTERM');
    await once(server, 'exit');
  }
}
