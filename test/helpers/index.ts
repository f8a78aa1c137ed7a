import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/ root of the compiled project (tests run from dist/test/...). */
export const DIST = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(DIST, 'src', 'cli', 'main.js');
export const fixture = (name: string): string => path.join(DIST, 'test', 'fixtures', `${name}.js`);

const made: string[] = [];
process.on('exit', () => {
  if (process.env.BLUFIO_KEEP_TEST_DIRS === '1') return;
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(prefix = 'blufio-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** An environment with no blufio settings from the developer's shell leaking into a test. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('BLUFIO_') || k.startsWith('XDG_')) delete env[k];
  const home = tmpDir('blufio-home-');
  env.HOME = home;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

type RunOptions = { env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string; uid?: number; gid?: number; timeoutMs?: number };

/** Runs a script of node's, as a service would be run (see runProgram). */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProgram(process.execPath, [file, ...args], opts);
}

/**
 * Runs `script` in bash, with `blufio` a function that runs this build's CLI: a command line that
 * a hint tells a user to paste, run as they would paste it.
 */
export function runShell(script: string, opts: RunOptions = {}): Promise<RunResult> {
  const blufio = `blufio() { ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"; }`;
  return runProgram('bash', ['-c', `${blufio}\n${script}`], opts);
}

/** Runs a program, as a service would be run: detached, its output collected, a timeout. */
export function runProgram(program: string, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // detached: a new session with no controlling terminal, like a service, so a prompt that
    // would open /dev/tty finds none even when the tests run in a developer's terminal.
    const so: SpawnOptions = { env: opts.env ?? cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'], detached: true };
    if (opts.cwd !== undefined) so.cwd = opts.cwd;
    if (opts.uid !== undefined) so.uid = opts.uid;
    if (opts.gid !== undefined) so.gid = opts.gid;
    const child = spawn(program, argv, so);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child that stops reading before the end (a size limit) closes the pipe: not an error here.
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.input ?? '');
  });
}

export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(CLI, args, opts);
}

/** Starts a fixture and hands back each stdout line as it arrives. */
export function startFixture(
  name: string,
  args: string[],
  onLine: (line: string) => void,
  env: NodeJS.ProcessEnv = cleanEnv(),
): { child: ChildProcess; done: Promise<RunResult> } {
  const child = spawn(process.execPath, [fixture(name), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<RunResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A quiet pino logger for tests that open the app in-process. */
export { silentLogger } from './logger.js';

import type BetterSqlite from 'better-sqlite3';
import { rowId } from '../../src/storage/ids.js';

/** The public ids of every message in a raw database handle. */
export function storedMessageIds(db: BetterSqlite.Database): string[] {
  return (db.prepare('SELECT seq, created_at FROM messages ORDER BY seq').all() as { seq: number; created_at: number }[]).map((r) =>
    rowId(r.created_at, r.seq),
  );
}

import { spawnSync } from 'node:child_process';

export const NOBODY = 65534;

/**
 * How to run the CLI as an unprivileged user, for tests of permissions (root ignores file
 * modes). Outside root: the CLI as it is. As root: as `nobody`, from the checkout when nobody can
 * reach it, else from a world-readable copy of dist/ and node_modules/.
 */
export function unprivilegedCli(): { cli: string; opts: { uid?: number; gid?: number } } {
  if (process.getuid?.() !== 0) return { cli: CLI, opts: {} };
  const ids = { uid: NOBODY, gid: NOBODY };
  const probe = spawnSync(process.execPath, [CLI, '--version'], { ...ids, encoding: 'utf8' });
  if (probe.status === 0) return { cli: CLI, opts: ids };
  const root = path.join(tmpDir('blufio-nobody-'));
  fs.chmodSync(root, 0o755);
  const project = path.resolve(DIST, '..');
  fs.cpSync(DIST, path.join(root, 'dist'), { recursive: true });
  fs.cpSync(path.join(project, 'node_modules'), path.join(root, 'node_modules'), { recursive: true });
  fs.copyFileSync(path.join(project, 'package.json'), path.join(root, 'package.json'));
  return { cli: path.join(root, 'dist', 'src', 'cli', 'main.js'), opts: ids };
}
