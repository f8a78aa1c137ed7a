import fs from 'node:fs';
import path from 'node:path';
import { AppError, ErrorCode } from '../errors/index.js';
import { createLockFile, tryFileLock } from '../storage/file-lock.js';
import { ioError } from './manifest.js';

export const LOCK_FILE = 'vault.lock';

/**
 * One process at a time reads and changes a vault directory's state: vault.json, and which
 * database file is the live one. Every db-encrypt command holds this lock for its whole run, and
 * an open holds it from reading vault.json until its connections are open, so an open can never
 * slip in between a migration's last check and its swap, and two migrations cannot interleave.
 *
 * The lock is SQLite's own exclusive lock (a POSIX lock the kernel drops when the process dies,
 * so a SIGKILL leaves no stale lock) on `vault.lock`, an empty file kept in the directory. It is
 * tried without blocking and retried on a timer: a synchronous wait could never end if the
 * holder is this same thread, waiting on an await.
 */
export function acquireVaultLock(dir: string, timeoutMs: number): Promise<() => void> {
  return acquireFileLock(path.join(dir, LOCK_FILE), timeoutMs, () => {
    return new AppError(ErrorCode.DB_LOCK_TIMEOUT, `another blufio process is changing ${dir} (a migration, or an open)`, {
      hint: 'wait for it to finish and run this again',
    });
  });
}

/**
 * Holds SQLite's exclusive lock on `file` (created 0600 if missing) until the returned function
 * is called or the process ends; `busy()` is thrown when another process still holds it after
 * `timeoutMs`. Also used for the daemon's one-per-directory lock.
 */
export async function acquireFileLock(file: string, timeoutMs: number, busy: () => AppError): Promise<() => void> {
  try {
    createLockFile(file);
  } catch (err) {
    throw ioError(`cannot create ${file}`, err);
  }
  const deadline = Date.now() + Math.max(0, timeoutMs);
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    let release: (() => void) | undefined;
    try {
      release = tryFileLock(file);
    } catch (err) {
      throw lockFileError(file, err);
    }
    if (release !== undefined) return release;
    if (Date.now() >= deadline) throw busy();
    await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * The lock file holds nothing (SQLite is used only for its lock): one that is not SQLite's empty
 * file (overwritten, a directory in its place) cannot be locked. It is not replaced here: two
 * processes replacing it at once would each lock a file of their own, and both go on.
 */
function lockFileError(file: string, err: unknown): AppError {
  if (err instanceof AppError) return err;
  const code = (err as { code?: string }).code ?? String(err);
  return new AppError(ErrorCode.DB_IO, `cannot lock ${file} (${code}): it is not the empty lock file blufio keeps there`, {
    hint: 'it holds no data: remove it while no blufio process uses this directory, then run this again',
    cause: err,
  });
}

/** Runs `fn` holding the directory's lock. */
export async function withVaultLock<T>(dir: string, timeoutMs: number, fn: () => Promise<T> | T): Promise<T> {
  const release = await acquireVaultLock(dir, timeoutMs);
  try {
    return await fn();
  } finally {
    release();
  }
}
