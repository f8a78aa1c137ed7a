import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createLockFile, fileLockHeld, tryFileLock } from './file-lock.js';
import { ensurePrivateDir } from './files.js';

/**
 * Who holds an active session, a job's lease, an object store's temporary file:
 * `pid:starttime:instance`. The random instance part tells two opens in one process apart, so
 * that one clean close releases only its own sessions; it also names the owner's lock file,
 * `<database>.owners/<instance>.lock`, which the owner holds locked for as long as it lives.
 *
 * Whether an owner is alive is that lock's to say: the kernel drops it when the process dies,
 * and other processes see it whatever pid namespace they are in (a daemon in a container and a
 * CLI on the host, two containers on one volume), where the pid in the token means nothing, or
 * names another process. Only when the lock file is missing or unreadable (an owner from before
 * lock files, or one that could not make its file) do the pid and its start time (from /proc on
 * Linux) decide, as they did before.
 */
function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19]; // field 22, starttime
  } catch {
    return undefined;
  }
}

/** The directory of a database's owner lock files. */
export function ownersDir(databasePath: string): string {
  return `${databasePath}.owners`;
}

const LOCK_SUFFIX = '.lock';

function lockFile(dir: string, token: string): string | undefined {
  const instance = token.split(':')[2];
  return instance !== undefined && /^[0-9a-f]{1,64}$/.test(instance) ? path.join(dir, `${instance}${LOCK_SUFFIX}`) : undefined;
}

export interface HeldOwner {
  readonly token: string;
  /** Whether its lock file is held; false: it is judged by its pid (see holdOwner). */
  readonly locked: boolean;
  /** Unlocks and removes the lock file: from then on the token is judged by its pid. Idempotent. */
  release(): void;
}

/**
 * A new owner token, with its lock file in `dir` held. When the file cannot be made (no room,
 * no descriptors left) the token is still good, judged by its pid as before lock files.
 */
export function holdOwner(dir: string): HeldOwner {
  const token = newOwnerToken();
  const file = lockFile(dir, token)!;
  let unlock: (() => void) | undefined;
  // Again when it fails: another owner's release may remove the (then empty) directory between
  // the two steps, and may do so more than once under churn.
  for (let attempt = 0; attempt < 10 && unlock === undefined; attempt++) {
    try {
      ensurePrivateDir(dir);
      createLockFile(file);
      unlock = tryFileLock(file); // a fresh random name: nobody else can hold it
    } catch {
      unlock = undefined;
    }
  }
  if (unlock === undefined) fs.rmSync(file, { force: true });
  return {
    token,
    locked: unlock !== undefined,
    release: () => {
      if (unlock === undefined) return;
      // The name first: while it is gone and the lock still held, a reader falls back to the
      // pid, which is alive.
      fs.rmSync(file, { force: true });
      unlock();
      unlock = undefined;
      // The last owner out leaves no empty directory behind (any other owner's file keeps it).
      try {
        fs.rmdirSync(dir);
      } catch {
        // not empty, or gone
      }
    },
  };
}

export function newOwnerToken(): string {
  return `${process.pid}:${procStartTime(process.pid) ?? ''}:${randomBytes(6).toString('hex')}`;
}

/** Whether the owner of `token` lives; `dir` is where its lock file would be (see ownersDir). */
export function isOwnerAlive(token: string, dir?: string): boolean {
  const file = dir === undefined ? undefined : lockFile(dir, token);
  // A lock file that cannot be probed counts as held: nothing of a live owner is taken over.
  const held = file === undefined ? undefined : fileLockHeld(file, true);
  if (held !== undefined) return held;
  const [pidText, start] = token.split(':');
  const pid = Number(pidText);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (start === undefined || start === '') return true;
  const now = procStartTime(pid);
  return now === undefined || now === start;
}

/** Past this age a lock file nobody holds is a dead owner's (a live one locks its file at once). */
const STALE_LOCK_MS = 60_000;

/**
 * Removes the lock files of owners that died without releasing them (SIGKILL, a crash): a few
 * bytes each, but one per process that ever opened the database. At most `max` files are looked
 * at per call. Returns how many went.
 */
export function removeStaleOwnerLocks(dir: string, max = 1000): number {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  const cutoff = Date.now() - STALE_LOCK_MS;
  for (const name of names.slice(0, max)) {
    if (!name.endsWith(LOCK_SUFFIX)) continue;
    const file = path.join(dir, name);
    try {
      const st = fs.lstatSync(file);
      if (!st.isFile() || st.mtimeMs > cutoff || fileLockHeld(file) !== false) continue;
      fs.rmSync(file, { force: true });
      removed++;
    } catch {
      // Gone meanwhile, or not ours to remove: the next open tries again.
    }
  }
  return removed;
}
