/**
 * npm run bench [-- <filter>] [--json]
 * Runs this project and its peers in one process on one machine and prints ratios. Timings
 * live here, never in the test suite.
 */
import { Reporter } from './report.js';
import { queueBench } from './queue.bench.js';
import { storageBench } from './storage.bench.js';
import { vaultBench } from './vault.bench.js';
import { netBench } from './net.bench.js';
import { redactBench } from './redact.bench.js';
import { dbcryptBench } from './dbcrypt.bench.js';
import { rpcBench } from './rpc.bench.js';
import { objectsBench } from './objects.bench.js';

const suites: Record<string, (rep: Reporter) => Promise<void>> = {
  storage: storageBench,
  queue: queueBench,
  vault: vaultBench,
  net: netBench,
  redact: redactBench,
  dbcrypt: dbcryptBench,
  rpc: rpcBench,
  objects: objectsBench,
};

const args = process.argv.slice(2);
const json = args.includes('--json');
const filters = args.filter((a) => !a.startsWith('--'));
const chosen = Object.keys(suites).filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)));
if (chosen.length === 0) {
  process.stderr.write(`no bench matches ${filters.join(', ')}; available: ${Object.keys(suites).join(', ')}\n`);
  process.exit(2);
}
const rep = new Reporter(json);
for (const name of chosen) {
  rep.say(`== ${name}`);
  await suites[name]!(rep);
}
