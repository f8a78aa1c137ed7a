/**
 * The daemon over RPC: message_append and queue_enqueue calls per second with 1 and 64
 * concurrent clients (keep-alive HTTP on loopback, the daemon in its own process), p50/p99, and
 * its resident memory idle and under that load. Beside it, in the same run: the same library
 * calls in-process (the ceiling without HTTP and JSON), and a bare node:http server in another
 * process that parses the JSON body and answers (what HTTP alone costs per call on this machine).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { openBlufio, readStateFiles } from '../src/index.js';
import { benchDir, RUN_MS } from './common.js';
import { fmt, percentile, type Reporter } from './report.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
type Call = (i: number) => Promise<unknown>;

async function drive(call: Call, concurrency: number, ms: number): Promise<{ rate: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const start = performance.now();
  const end = start + ms;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await call(n++);
        lat.push(performance.now() - t0);
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { rate: lat.length / ((performance.now() - start) / 1000), p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

function post(agent: http.Agent, port: number, token: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/rpc', method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 && !text.includes('"error"') ? resolve() : reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

async function startDaemon(dir: string): Promise<{ child: ChildProcess; port: number; token: string }> {
  const cfg = path.join(dir, 'blufio.toml');
  fs.writeFileSync(cfg, '[logging]\nlevel = "warn"\n');
  const data = path.join(dir, 'data');
  const child = spawn(process.execPath, [CLI, '--config', cfg, '--data-dir', data, 'serve'], { stdio: ['ignore', 'ignore', 'inherit'], env: { PATH: process.env.PATH ?? '', HOME: dir } });
  // rpc.token first, daemon.json second: the order that pairs a token with its own daemon's port.
  let files: ReturnType<typeof readStateFiles>;
  for (let i = 0; (files = readStateFiles(data)) === undefined; i++) {
    if (i > 1500 || child.exitCode !== null) throw new Error('the daemon did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, port: files.info.port, token: files.token };
}

/** A bare HTTP server: reads the body, parses it, answers a fixed JSON-RPC result. */
async function startBare(): Promise<{ child: ChildProcess; port: number }> {
  const src = `
    const http = require('node:http');
    const s = http.createServer((req, res) => {
      let b = ''; req.setEncoding('utf8'); req.on('data', (c) => (b += c));
      req.on('end', () => { const r = JSON.parse(b); const out = JSON.stringify({ jsonrpc: '2.0', id: r.id, result: { ok: true } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out); });
    });
    s.keepAliveTimeout = 5000;
    s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));`;
  const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  return { child, port: Number(chunk.toString().trim()) };
}

export async function rpcBench(rep: Reporter): Promise<void> {
  const dir = benchDir();
  const daemon = await startDaemon(dir);
  const bare = await startBare();
  const app = await openBlufio({ dataDir: path.join(dir, 'inproc'), logger: pino({ level: 'silent' }), env: {} });
  try {
    const pid = daemon.child.pid!;
    const idle = rssMiB(pid);
    const body = (method: string, params: unknown, i: number) => JSON.stringify({ jsonrpc: '2.0', id: i, method, params });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const created = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: daemon.port, path: '/rpc', method: 'POST', headers: { authorization: `Bearer ${daemon.token}`, 'content-type': 'application/json' } }, (res) => {
        let t = '';
        res.setEncoding('utf8').on('data', (c: string) => (t += c));
        res.on('end', () => resolve((JSON.parse(t) as { result: { id: string } }).result.id));
      });
      req.on('error', reject);
      req.end(body('session_create', { channel: 'bench' }, 0));
    });
    const local = await app.sessions.create({ channel: 'bench' });
    const content = 'x'.repeat(400);
    const cases: { name: string; rpc: Call; lib: Call; bare: Call }[] = [
      {
        name: 'message_append',
        rpc: (i) => post(agent, daemon.port, daemon.token, body('message_append', { sessionId: created, role: 'user', content }, i)),
        lib: () => app.messages.append(local.id, { role: 'user', content }),
        bare: (i) => post(agent, bare.port, 'x', body('message_append', { sessionId: created, role: 'user', content }, i)),
      },
      {
        name: 'queue_enqueue',
        rpc: (i) => post(agent, daemon.port, daemon.token, body('queue_enqueue', { queue: 'bench', payload: { i, text: content } }, i)),
        lib: (i) => app.queue.enqueue('bench', { i, text: content }),
        bare: (i) => post(agent, bare.port, 'x', body('queue_enqueue', { queue: 'bench', payload: { i, text: content } }, i)),
      },
    ];
    rep.say('  durability full (the default); RPC over keep-alive HTTP to the daemon in its own process; the bench process drives the clients');
    let peak = idle;
    for (const c of cases) {
      for (const conc of [1, 64]) {
        rep.say(`  ${c.name}, ${conc} client(s):`);
        const results = new Map<string, { rate: number; p50: number; p99: number }>();
        for (const [subject, call] of [
          ['blufio rpc', c.rpc],
          ['library in-process', c.lib],
          ['bare node:http', c.bare],
        ] as const) {
          await drive(call, conc, 500); // warm up: connections, JIT, the daemon's first pages
          let sampling = true;
          const sampler = (async () => {
            while (sampling) {
              if (subject === 'blufio rpc') peak = Math.max(peak, rssMiB(pid));
              await new Promise((r) => setTimeout(r, 100));
            }
          })();
          const r = await drive(call, conc, RUN_MS);
          sampling = false;
          await sampler;
          results.set(subject, r);
          const kase = `${c.name}, c=${conc}`;
          rep.add({ bench: 'rpc', case: kase, subject, metric: 'throughput', value: r.rate, unit: 'calls/s' });
          rep.add({ bench: 'rpc', case: kase, subject, metric: 'p50', value: r.p50, unit: 'ms' });
          rep.add({ bench: 'rpc', case: kase, subject, metric: 'p99', value: r.p99, unit: 'ms' });
          rep.say(`    ${subject.padEnd(19)} ${fmt(r.rate).padStart(8)} calls/s   p50 ${fmt(r.p50).padStart(6)} ms   p99 ${fmt(r.p99).padStart(6)} ms`);
        }
        const rpc = results.get('blufio rpc')!.rate;
        rep.say(`    rpc / in-process ${(rpc / results.get('library in-process')!.rate).toFixed(2)}x, rpc / bare http ${(rpc / results.get('bare node:http')!.rate).toFixed(2)}x`);
      }
    }
    agent.destroy();
    rep.add({ bench: 'rpc', case: 'daemon memory', subject: 'blufio rpc', metric: 'rss_idle', value: idle, unit: 'MiB' });
    rep.add({ bench: 'rpc', case: 'daemon memory', subject: 'blufio rpc', metric: 'rss_peak_under_load', value: peak, unit: 'MiB' });
    rep.say(`  daemon resident memory: idle ${idle.toFixed(1)} MiB, peak under the loads above ${peak.toFixed(1)} MiB`);
  } finally {
    await app.close();
    daemon.child.kill('SIGTERM');
    bare.child.kill('SIGTERM');
    await Promise.all([once(daemon.child, 'exit'), once(bare.child, 'exit')]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
