/**
 * Whole-database encryption: the write paths of the storage and queue benches on a SQLCipher v4
 * database beside the same on a plaintext one, in alternating rounds in one process, as a ratio
 * (plaintext throughput / encrypted throughput; the target is at most 1.3x). And what opening
 * costs: the PBKDF2 key derivation (256,000 rounds of HMAC-SHA512), paid once per process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { openBlufio, type BlufioApp, type Durability } from '../src/index.js';
import { dbEncryptEnable, deriveDbKey } from '../src/dbcrypt/index.js';
import { benchDir, RUN_MS } from './common.js';
import { fmt, type Reporter } from './report.js';

const ROUNDS = 3;
const PASS = 'bench passphrase, long enough to be realistic';
const CONTENT = 'The user asked about the weather in Lisbon tomorrow, and the agent answered with a forecast. '.repeat(4);
const PAYLOAD = { chat: 'telegram:123456789', text: 'remind me to water the plants tomorrow at 9', attachments: [] as string[] };

async function openApp(dir: string, encrypted: boolean, durability: Durability): Promise<BlufioApp> {
  fs.mkdirSync(dir, { recursive: true });
  const env = { DBKEY: PASS };
  if (encrypted && !fs.existsSync(path.join(dir, 'vault.json'))) await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
  return openBlufio({ dataDir: dir, durability, logger: pino({ level: 'silent' }), env: encrypted ? env : {} });
}

/** `lanes` loops calling `op` until the time is up; operations per second. */
async function drive(lanes: number, op: (lane: number, n: number) => Promise<unknown>): Promise<number> {
  let done = 0;
  const start = performance.now();
  const deadline = start + RUN_MS / 2;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let n = 0; performance.now() < deadline; n++) {
        await op(lane, n);
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

interface Case {
  name: string;
  durability: Durability;
  run: (app: BlufioApp) => Promise<number>;
}

const appendCase = (lanes: number, durability: Durability): Case => ({
  name: `message append, ${lanes} caller${lanes === 1 ? '' : 's'}`,
  durability,
  run: async (app) => {
    const sessions = await Promise.all(Array.from({ length: lanes }, () => app.sessions.create({ channel: 'bench' })));
    return drive(lanes, (s, n) => app.messages.append(sessions[s]!.id, { role: 'user', content: CONTENT, tokenCount: n }));
  },
});

const CASES: Case[] = [
  appendCase(1, 'normal'),
  appendCase(64, 'normal'),
  appendCase(64, 'full'),
  { name: 'enqueue, 256 callers', durability: 'full', run: (app) => drive(256, (_l, n) => app.queue.enqueue('bench', { ...PAYLOAD, n })) },
  {
    name: 'enqueue, batches of 100',
    durability: 'full',
    run: (app) => drive(1, (_l, n) => app.queue.enqueueMany('bench', Array.from({ length: 100 }, (_, k) => ({ payload: { ...PAYLOAD, n, k } })))).then((r) => r * 100),
  },
  {
    name: 'end to end, concurrency 8',
    durability: 'full',
    run: async (app) => {
      let handled = 0;
      let enqueued = 0;
      const w = app.queue.work('bench', () => void handled++, { concurrency: 8 });
      const start = performance.now();
      await drive(256, async (_l, n) => {
        await app.queue.enqueue('bench', { ...PAYLOAD, n });
        enqueued++;
      });
      // Until the worker has caught up with every job enqueued (bounded, should it stall).
      while (handled < enqueued && performance.now() - start < RUN_MS * 10) await new Promise((r) => setTimeout(r, 2));
      await w.stop();
      return handled / ((performance.now() - start) / 1000);
    },
  },
];

export async function dbcryptBench(rep: Reporter): Promise<void> {
  const root = benchDir();
  try {
    rep.say(`  writes on a SQLCipher v4 database vs plaintext, ${ROUNDS} alternating rounds each, median of the per-round ratios`);
    rep.say(`  ${''.padEnd(36)}${'plaintext'.padStart(12)}${'encrypted'.padStart(12)}   plaintext / encrypted`);
    let i = 0;
    let worst = 0;
    for (const c of CASES) {
      const rates = { plain: [] as number[], enc: [] as number[] };
      const ratios: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const got: Record<string, number> = {};
        for (const kind of r % 2 === 0 ? (['plain', 'enc'] as const) : (['enc', 'plain'] as const)) {
          const app = await openApp(path.join(root, `${i++}`), kind === 'enc', c.durability);
          try {
            got[kind] = await c.run(app);
          } finally {
            await app.close();
          }
          rates[kind].push(got[kind]!);
        }
        ratios.push(got.plain! / got.enc!);
      }
      const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const ratio = med(ratios);
      worst = Math.max(worst, ratio);
      const label = `${c.name} (${c.durability})`;
      rep.add({ bench: 'dbcrypt', case: label, subject: 'plaintext', metric: 'throughput', value: med(rates.plain), unit: 'ops/s' });
      rep.add({ bench: 'dbcrypt', case: label, subject: 'encrypted', metric: 'throughput', value: med(rates.enc), unit: 'ops/s' });
      rep.add({ bench: 'dbcrypt', case: label, subject: 'encrypted', metric: 'slowdown', value: ratio, unit: 'x' });
      rep.say(`  ${label.padEnd(36)}${fmt(med(rates.plain)).padStart(12)}${fmt(med(rates.enc)).padStart(12)}   ${fmt(ratio)}x`);
    }

    // Opening: the key derivation alone, then a whole openBlufio + close of each kind.
    const salt = Buffer.alloc(16, 1);
    let t = performance.now();
    (await deriveDbKey(PASS, salt)).fill(0);
    const kdfMs = performance.now() - t;
    const openMs: Record<string, number> = {};
    for (const kind of ['plain', 'enc'] as const) {
      const dir = path.join(root, `open-${kind}`);
      await (await openApp(dir, kind === 'enc', 'normal')).close();
      const times: number[] = [];
      for (let r = 0; r < 3; r++) {
        t = performance.now();
        await (await openApp(dir, kind === 'enc', 'normal')).close();
        times.push(performance.now() - t);
      }
      openMs[kind] = times.sort((a, b) => a - b)[1]!;
    }
    rep.add({ bench: 'dbcrypt', case: 'open', subject: 'pbkdf2', metric: 'latency', value: kdfMs, unit: 'ms' });
    rep.add({ bench: 'dbcrypt', case: 'open', subject: 'plaintext', metric: 'latency', value: openMs.plain!, unit: 'ms' });
    rep.add({ bench: 'dbcrypt', case: 'open', subject: 'encrypted', metric: 'latency', value: openMs.enc!, unit: 'ms' });
    rep.say(`  open + close: plaintext ${fmt(openMs.plain!)} ms, encrypted ${fmt(openMs.enc!)} ms (of which the key derivation ${fmt(kdfMs)} ms, once per process)`);
    rep.say(`  targets: encrypted writes within 1.3x of plaintext: worst ${fmt(worst)}x ${worst <= 1.3 ? 'MET' : 'NOT MET'}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
