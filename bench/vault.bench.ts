/**
 * The vault: Argon2id at the default parameters in each candidate implementation (the one that
 * unlocks Blufio's vault is @node-rs/argon2), a whole unlock through the library, and get/set
 * latency once unlocked.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { hashRaw } from '@node-rs/argon2';
import argon2 from 'argon2';
import { argon2id } from 'hash-wasm';
import pino from 'pino';
import { openBlufio } from '../src/index.js';
import { DEFAULT_KDF } from '../src/vault/kdf.js';
import { benchDir } from './common.js';
import { fmt, percentile, type Reporter } from './report.js';

const ROUNDS = 5;
const pass = Buffer.from('correct horse battery staple');
const salt = Buffer.alloc(16, 7);
const { memoryKib, iterations, parallelism } = DEFAULT_KDF;

const candidates: Record<string, () => Promise<unknown>> = {
  '@node-rs/argon2': () => hashRaw(pass, { salt, memoryCost: memoryKib, timeCost: iterations, parallelism, outputLen: 32, algorithm: 2 }),
  argon2: () => argon2.hash(pass, { salt, memoryCost: memoryKib, timeCost: iterations, parallelism, hashLength: 32, type: argon2.argon2id, raw: true }),
  'hash-wasm': () => argon2id({ password: pass, salt, memorySize: memoryKib, iterations, parallelism, hashLength: 32, outputType: 'binary' }),
};

async function median(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const t: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  return t.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

export async function vaultBench(rep: Reporter): Promise<void> {
  rep.say(`  Argon2id m=${memoryKib / 1024} MiB, t=${iterations}, p=${parallelism}, median of ${ROUNDS}:`);
  for (const [name, fn] of Object.entries(candidates)) {
    const ms = await median(fn);
    rep.add({ bench: 'vault', case: 'argon2id default params', subject: name, metric: 'kdf_time', value: ms, unit: 'ms' });
    rep.say(`    ${name.padEnd(18)} ${fmt(ms).padStart(8)} ms`);
  }
  const root = benchDir();
  try {
    const dir = path.join(root, 'v');
    const setup = await openBlufio({ dataDir: dir, passphrase: 'bench passphrase', logger: pino({ level: 'silent' }), env: {} });
    for (let i = 0; i < 100; i++) await setup.vault.set(`secret_${i}`, `sk-proj-${'x'.repeat(40)}${i}`);
    await setup.close();
    const unlock = await median(async () => {
      const app = await openBlufio({ dataDir: dir, passphrase: 'bench passphrase', logger: pino({ level: 'silent' }), env: {} });
      await app.vault.unlock();
      await app.close();
    });
    rep.add({ bench: 'vault', case: 'open + unlock (100 secrets)', subject: 'blufio', metric: 'time', value: unlock, unit: 'ms' });
    rep.say(`  open the app and unlock the vault: ${fmt(unlock)} ms`);
    const app = await openBlufio({ dataDir: dir, passphrase: 'bench passphrase', logger: pino({ level: 'silent' }), env: {} });
    await app.vault.unlock();
    for (const op of ['get', 'set'] as const) {
      const lat = new Float64Array(2000);
      for (let i = 0; i < lat.length; i++) {
        const s = performance.now();
        if (op === 'get') (await app.vault.get(`secret_${i % 100}`)).wipe();
        else await app.vault.set(`secret_${i % 100}`, `sk-proj-${'y'.repeat(40)}${i}`);
        lat[i] = performance.now() - s;
      }
      lat.sort();
      rep.add({ bench: 'vault', case: `${op} after unlock`, subject: 'blufio', metric: 'p50_latency', value: percentile(lat, 50), unit: 'ms' });
      rep.add({ bench: 'vault', case: `${op} after unlock`, subject: 'blufio', metric: 'p99_latency', value: percentile(lat, 99), unit: 'ms' });
      rep.say(`  ${op} after unlock: p50 ${fmt(percentile(lat, 50))} ms, p99 ${fmt(percentile(lat, 99))} ms`);
    }
    await app.close();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
