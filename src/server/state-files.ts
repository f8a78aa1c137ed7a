import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson } from '../dbcrypt/index.js';
import { fileLockHeld } from '../storage/file-lock.js';
import { writePrivateFile } from '../storage/files.js';

export const DAEMON_FILE = 'daemon.json';
export const TOKEN_FILE = 'rpc.token';
/** Held (SQLite's exclusive lock, dropped by the kernel when the process dies) while a daemon serves the directory. */
export const DAEMON_LOCK_FILE = 'daemon.lock';

export interface DaemonInfo {
  pid: number;
  port: number;
  /** The bound address, e.g. 127.0.0.1. */
  address: string;
  /** Where to POST calls. */
  url: string;
  started_at_ms: number;
}

/*
 * The order of the two files is what keeps a token from reaching a port that is not its
 * daemon's. A killed daemon leaves both behind, and its port is free for anyone to bind:
 * - a starting daemon removes the stale pair as soon as it holds daemon.lock (before the slow
 *   part of its start: a passphrase prompt, Argon2), and writes daemon.json before rpc.token;
 * - a reader reads rpc.token first and daemon.json second (readStateFiles).
 * So a reader that holds a new token finds the new daemon.json (or a later one) beside it; a
 * stale token paired with a new port is merely refused (401), and a stale token is worthless.
 */

/** Writes daemon.json, then rpc.token (0600, atomically): rpc.token appearing means daemon.json beside it is its daemon's. */
export function writeStateFiles(dir: string, info: DaemonInfo, token: string): void {
  writePrivateFile(dir, DAEMON_FILE, `${canonicalJson(info)}\n`);
  writePrivateFile(dir, TOKEN_FILE, token);
}

/** rpc.token first, the reverse of writing, so a token is never left beside a missing daemon.json. Missing files are fine. */
export function removeStateFiles(dir: string): void {
  for (const f of [TOKEN_FILE, DAEMON_FILE]) fs.rmSync(path.join(dir, f), { force: true });
}

/**
 * What a client needs to call the daemon of `dir`, read in the safe order (rpc.token, then
 * daemon.json); undefined while either is missing (no daemon, or one still starting) and when
 * no daemon holds daemon.lock: a daemon killed with SIGKILL left its files behind, and its port
 * may be anyone's now, who would get the request (its body, a passphrase say) and could answer
 * it. The lock says it, not the pid: a pid may have been reused since, or belong to another
 * pid namespace (a container sharing the directory); the kernel drops the lock with its holder.
 * Only where the lock file cannot be read does the pid decide.
 */
export function readStateFiles(dir: string): { token: string; info: DaemonInfo } | undefined {
  let found: { token: string; info: DaemonInfo };
  try {
    const token = fs.readFileSync(path.join(dir, TOKEN_FILE), 'utf8');
    const info = JSON.parse(fs.readFileSync(path.join(dir, DAEMON_FILE), 'utf8')) as DaemonInfo;
    found = { token, info };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const held = daemonLockHeld(dir);
  if (held !== undefined) return held ? found : undefined;
  try {
    process.kill(found.info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
  }
  return found;
}

/** Whether a process holds daemon.lock (see fileLockHeld); a daemon starting meanwhile waits for the probe (see daemon.ts). */
export function daemonLockHeld(dir: string): boolean | undefined {
  // One that cannot be probed is not taken for a live daemon: a client would send its token
  // (and a vault_unlock passphrase) to whatever holds that port now.
  return fileLockHeld(path.join(dir, DAEMON_LOCK_FILE), false);
}

/** The pid a running daemon recorded, for the "already running" message; undefined when unreadable. */
export function recordedPid(dir: string): number | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(dir, DAEMON_FILE), 'utf8')) as { pid?: unknown };
    return typeof v.pid === 'number' ? v.pid : undefined;
  } catch {
    return undefined;
  }
}
