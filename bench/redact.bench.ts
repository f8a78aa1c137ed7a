/**
 * Redaction: the app's logger (sync JSON lines to a file) with the full rule set and 100 vault
 * values, against the same logger without a redactor, taking turns every few milliseconds; and scrubbing
 * throughput on message-sized text. Target: the logger within 15% of its unredacted throughput.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../src/log/index.js';
import { Redactor } from '../src/redact/index.js';
import { benchDir, RUN_MS } from './common.js';
import { fmt, type Reporter } from './report.js';

const ROUNDS = 8;

/** 100 values shaped like what a vault holds: provider keys, bot tokens, passwords. */
function vaultValues(): [string, string][] {
  const b64 = (n: number) => crypto.randomBytes(n).toString('base64url');
  const shapes = [
    () => `sk-proj-${b64(48)}`,
    () => `sk-ant-api03-${b64(70)}AA`,
    () => `xoxb-${crypto.randomInt(1e11)}-${crypto.randomInt(1e12)}-${b64(18)}`,
    () => `${crypto.randomInt(1e8, 1e10)}:AA${b64(25)}`,
    () => b64(24),
    () => `correct-horse-${b64(6)}`,
  ];
  return Array.from({ length: 100 }, (_, i) => [`bench.secret_${i}`, shapes[i % shapes.length]!()]);
}

export async function redactBench(rep: Reporter): Promise<void> {
  const dir = benchDir();
  const redactor = new Redactor();
  redactor.replaceSecrets(vaultValues());
  const file = path.join(dir, 'log.jsonl');
  const fd = fs.openSync(file, 'w');
  const plain = createLogger({ fd });
  const redacted = createLogger({ fd, redactor });
  const obj = { session: '01JD3XK8Q9ZB7Y6W5V4T3S2R1P', tool: 'web_search', args: { q: 'weather in Lisbon tomorrow and the day after', lang: 'en' }, tokens: 1234, elapsedMs: 842 };
  const roundMs = Math.max(200, Math.round(RUN_MS / 3));
  // The two loggers take turns every BLOCK lines (a few milliseconds), and each round's ratio is
  // the time both spent on the same number of lines: this machine's speed drifts by tens of
  // percent from one second to the next, and whole rounds of one logger then another measured
  // the drift as often as the redactor.
  const BLOCK = 500;
  const time: Record<'plain' | 'redacted', number[]> = { plain: [], redacted: [] };
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const spent = { plain: 0, redacted: 0 };
    let blocks = 0;
    const end = performance.now() + roundMs * 2;
    while (performance.now() < end) {
      const order = blocks % 2 === 0 ? (['plain', 'redacted'] as const) : (['redacted', 'plain'] as const);
      for (const name of order) {
        const log = name === 'plain' ? plain : redacted;
        const t0 = performance.now();
        for (let i = 0; i < BLOCK; i++) log.info(obj, 'tool call finished');
        spent[name] += performance.now() - t0;
      }
      blocks++;
      if (blocks % 20 === 0) fs.ftruncateSync(fd, 0);
    }
    const lines = blocks * BLOCK;
    time.plain.push(spent.plain / lines);
    time.redacted.push(spent.redacted / lines);
    ratios.push(spent.redacted / spent.plain);
  }
  const rates = { plain: time.plain.map((ms) => 1000 / ms), redacted: time.redacted.map((ms) => 1000 / ms) };
  fs.closeSync(fd);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const overhead = (med(ratios) - 1) * 100;
  rep.say(`  app logger, JSON lines of ~250 bytes, sync to a file, ${ROUNDS} rounds taking turns every ${BLOCK} lines:`);
  for (const name of ['plain', 'redacted'] as const) {
    rep.add({ bench: 'redact', case: 'log lines', subject: name === 'plain' ? 'logger' : 'logger + redaction (rules + 100 vault values)', metric: 'throughput', value: med(rates[name]!), unit: 'lines/s' });
    rep.say(`    ${(name === 'plain' ? 'without redaction' : 'rules + 100 vault values').padEnd(26)} ${fmt(med(rates[name]!)).padStart(9)} lines/s`);
  }
  rep.add({ bench: 'redact', case: 'log lines', subject: 'redaction', metric: 'overhead', value: overhead, unit: '%' });

  const text = Array.from({ length: 40 }, (_, i) => (i % 10 === 9 ? `the key ${vaultValues()[0]![1]} was rotated. ` : 'The user asked about the weather in Lisbon and the agent answered. ')).join('');
  const scrub = (label: string, fn: () => void, bytes: number) => {
    const end = performance.now() + roundMs;
    let n = 0;
    while (performance.now() < end) {
      fn();
      n++;
    }
    const mbs = (n * bytes) / 1e6 / (roundMs / 1000);
    rep.add({ bench: 'redact', case: label, subject: 'redactor', metric: 'throughput', value: mbs, unit: 'MB/s' });
    rep.say(`  ${label.padEnd(44)} ${fmt(mbs).padStart(7)} MB/s`);
  };
  scrub('scrub message text (2.7 KB, 4 secrets)', () => redactor.redact(text), Buffer.byteLength(text));
  const clean = text.replace(/the key \S+ was rotated\. /g, 'nothing secret here at all, see. ');
  scrub('scrub message text (2.7 KB, no secrets)', () => redactor.redact(clean), Buffer.byteLength(clean));
  fs.rmSync(dir, { recursive: true, force: true });
  rep.say(`\n  targets: logger within 15% of its unredacted throughput: ${overhead.toFixed(1)}% ${overhead <= 15 ? 'MET' : 'NOT MET'}`);
}
