import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DIST } from './index.js';

/**
 * Stock SQLCipher 4 (zetetic's, compiled from its own amalgamation by
 * scripts/build-stock-sqlcipher.sh) as a command-line program, for interop tests against our
 * binding's SQLCipher mode.
 */

const SCRIPT = path.join(DIST, '..', 'scripts', 'build-stock-sqlcipher.sh');
let built: string | undefined;

/**
 * Builds the stock program if its cache lacks it (once per process: later calls reuse the
 * answer) and returns its path. The first build on a machine compiles SQLite and takes a
 * while (about half a minute on two cores); after that the script answers at once.
 */
export function stockSqlcipher(): string {
  if (built !== undefined) return built;
  const r = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 15 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw new Error(`${SCRIPT} did not run: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) throw new Error(`${SCRIPT} failed (exit ${r.status ?? r.signal}):\n${r.stderr}`);
  const bin = r.stdout.trimEnd().split('\n').at(-1) ?? '';
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    throw new Error(`${SCRIPT} did not name a program on its last line of output (got ${JSON.stringify(bin)}):\n${r.stderr}`);
  }
  built = bin;
  return bin;
}

/**
 * Runs SQL against dbFile in the stock program and returns its standard output (one line a
 * row, columns joined by '|', NULL empty, blobs as X'hex'). The SQL goes on standard input, not
 * in argv, because it carries the passphrase (`PRAGMA key`) and argv is visible in `ps`; for
 * the same reason the error thrown on a non-zero exit carries stderr but not the SQL.
 */
export function runStock(bin: string, dbFile: string, sql: string): string {
  const r = spawnSync(bin, [dbFile], { input: sql, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`stock sqlcipher did not run: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) throw new Error(`stock sqlcipher failed (exit ${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}
