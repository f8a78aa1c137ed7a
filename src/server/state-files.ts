import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson } from '../dbcrypt/index.js';
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

/** Writes rpc.token, then daemon.json (0600, atomically): daemon.json appearing means the token is there. */
export function writeStateFiles(dir: string, info: DaemonInfo, token: string): void {
  writePrivateFile(dir, TOKEN_FILE, token);
  writePrivateFile(dir, DAEMON_FILE, `${canonicalJson(info)}\n`);
}

/** daemon.json first: once it is gone nobody looks for the token. Missing files are fine. */
export function removeStateFiles(dir: string): void {
  for (const f of [DAEMON_FILE, TOKEN_FILE]) fs.rmSync(path.join(dir, f), { force: true });
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
