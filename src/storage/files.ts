import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { withFileDescriptor } from './held-files.js';
import path from 'node:path';
import { AppError, ErrorCode } from '../errors/index.js';
import { toAppError } from './sqlite-errors.js';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

export function walPath(db: string): string {
  return `${db}-wal`;
}
export function shmPath(db: string): string {
  return `${db}-shm`;
}

/** Files SQLite may keep beside `db`: its rollback journal, WAL and shared memory. */
export function sideFiles(db: string): string[] {
  return [`${db}-journal`, walPath(db), shmPath(db)];
}

function sizeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw toAppError(err, { file });
  }
}

/**
 * fsync a file (its data and size) or a directory (so that a file created or renamed in it
 * survives power loss). A read-only descriptor is enough for both on Linux and macOS.
 */
function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export const fsyncFile = fsyncPath;
export const fsyncDir = fsyncPath;

/** The name a writePrivateFile temporary has while it is written: `.<name>.<pid>.<hex>.tmp`. */
export function isPrivateTemp(name: string, of: string): boolean {
  return name.startsWith(`.${of}.`) && name.endsWith('.tmp');
}

/**
 * Replaces `dir/name` atomically with a 0600 file holding `text`: a private temporary beside it,
 * synced, renamed over it, the directory synced. A crash leaves the old file or the new one,
 * never a mix, and the content is never readable by others, not even for a moment. Throws the
 * raw file system error; callers say what the file was.
 *
 * `exclusive`: only when there is no such file yet (it is linked into place, which fails when
 * another process got there first); returns whether this call wrote it.
 */
export function writePrivateFile(dir: string, name: string, text: string, opts: { exclusive?: boolean } = {}): boolean {
  const tmp = path.join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, FILE_MODE);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const to = path.join(dir, name);
    if (opts.exclusive !== true) fs.renameSync(tmp, to);
    else if (!linkNew(tmp, to)) return false;
    fsyncDir(dir);
    return true;
  } finally {
    fs.rmSync(tmp, { force: true }); // gone after a rename; the second name after a link
  }
}

/** Links `tmp` to the new name `to`; false when `to` exists. */
function linkNew(tmp: string, to: string): boolean {
  try {
    fs.linkSync(tmp, to);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // A file system without hard links (FAT, some FUSE mounts): the check and the rename leave a
    // moment in which another process's file can be replaced.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    if (fs.existsSync(to)) return false;
    fs.renameSync(tmp, to);
    return true;
  }
}

/**
 * chmod of the directory itself, never of what a symbolic link planted in its place (by whoever
 * can write the parent, between our mkdir and this call) points at: O_NOFOLLOW refuses a link
 * (ELOOP), O_DIRECTORY anything but a directory, and fchmod changes what was opened.
 */
function chmodDirNoFollow(d: string, mode: number): void {
  // Windows has neither flag (nor POSIX modes to speak of).
  if (fs.constants.O_NOFOLLOW === undefined || fs.constants.O_DIRECTORY === undefined) return fs.chmodSync(d, mode);
  const fd = fs.openSync(d, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  try {
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Creates every missing directory on the way to `dir` with mode 0700 (umask can only remove
 * bits, but the chmod makes the intent explicit). A directory that already exists is never
 * changed: it may be shared (/tmp, a home directory, a group's folder) and its mode is its
 * owner's business; `exposed` says when others can list it, so the caller can warn. The files
 * inside are 0600 either way.
 */
/**
 * Refuses a database directory on a read-only file system before anything is tried there: WAL
 * mode writes `-wal`, `-shm` and lock files beside the database even to read it, and SQLite
 * (and the owner lock) reported that as "unable to open database file" and a warning about pid
 * namespaces. A directory merely not writable by this user is left to the open, which says so.
 */
export function assertWritableMount(dir: string): void {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EROFS') return;
    throw new AppError(ErrorCode.DB_READONLY, `${dir} is on a read-only file system, and blufio writes beside the database (-wal, -shm, lock files) even to read it`, {
      hint: 'remount it read-write, or copy the database somewhere writable and point --data-dir (BLUFIO_DATA_DIR) there; nothing was changed',
      details: { dir },
    });
  }
}

export function ensurePrivateDir(dir: string): { exposed: boolean } {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(d)) break;
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  try {
    for (const d of missing) {
      try {
        fs.mkdirSync(d, { mode: DIR_MODE });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // There, though existsSync said not: a symbolic link in a loop (ELOOP) or to nothing
        // (ENOENT), which the stat names; or another process's mkdir just now.
        fs.statSync(d);
      }
      chmodDirNoFollow(d, DIR_MODE);
    }
    const st = fs.statSync(dir);
    if (!st.isDirectory()) {
      throw new AppError(ErrorCode.DB_OPEN_FAILED, `${dir} exists but is not a directory`, {
        hint: 'point BLUFIO_DATA_DIR or storage.database_path at a directory',
      });
    }
    if (missing.length > 0) fsyncDir(path.dirname(missing[0] ?? dir));
    return { exposed: (st.mode & 0o077) !== 0 };
  } catch (err) {
    throw toAppError(err, { file: dir });
  }
}

/**
 * Makes sure the database file exists with mode 0600 before SQLite opens it. SQLite creates
 * -wal and -shm with the mode of the database file, so creating the file ourselves is what keeps
 * all three private under any umask. Existing files that others may read or write lose those
 * bits; the owner's own bits are left as they are (a 0400 file stays read-only).
 */
export function ensureDatabaseFile(dbPath: string): { created: boolean } {
  let created = false;
  try {
    const fd = fs.openSync(dbPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, FILE_MODE);
    fs.closeSync(fd);
    created = true;
    fsyncDir(path.dirname(dbPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw toAppError(err, { file: dbPath });
  }
  tightenModes(dbPath);
  return { created };
}

export function tightenModes(dbPath: string): void {
  // The -journal too: SQLite opens it for reading when it exists, and a FIFO there blocks for ever.
  for (const f of [dbPath, ...sideFiles(dbPath)]) {
    try {
      const st = fs.statSync(f);
      if (!st.isFile()) {
        throw new AppError(ErrorCode.DB_OPEN_FAILED, `${f} exists but is not a regular file`);
      }
      if ((st.mode & 0o077) !== 0) fs.chmodSync(f, st.mode & 0o700);
    } catch (err) {
      if (err instanceof AppError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      // A file we cannot chmod (another owner) is reported when SQLite tries to use it.
      if (code === 'EPERM') continue;
      throw toAppError(err, { file: f });
    }
  }
}

/**
 * SQLite opens the -journal, -wal and -shm beside a database when they exist: the first of them
 * that is not a regular file (a FIFO blocks the open for ever, a directory fails it as an I/O
 * error), named, for a read-only look that must not open the database then; undefined if none.
 */
export function sideFileNotRegular(dbPath: string): string | undefined {
  for (const side of sideFiles(dbPath)) {
    let st: fs.Stats;
    try {
      st = fs.statSync(side);
    } catch {
      continue; // absent (or unreadable, which SQLite's own answer will say)
    }
    if (!st.isFile()) return `${side} is not a regular file`;
  }
  return undefined;
}

/** The same, as the refusal of an open that is about to happen (KC_DB_OPEN_FAILED, never a hang). */
export function assertSideFilesRegular(dbPath: string): void {
  const side = sideFileNotRegular(dbPath);
  if (side !== undefined) throw new AppError(ErrorCode.DB_OPEN_FAILED, side, { hint: 'move it away; nothing was changed' });
}

const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * A database file missing or empty beside a -wal that holds pages: never blufio's own state (a
 * WAL database always has its header in the file), and opening it would lose the pages (SQLite
 * takes an empty file for a new database and deletes the -wal; a missing one it rebuilds half
 * from the -wal). The error every path gives for it, the open, `db check`, `vault verify` and
 * `db-encrypt enable` alike; undefined when the files are not in that state.
 */
export function orphanedWal(dbPath: string, dbSize = sizeOf(dbPath), walSize = sizeOf(walPath(dbPath)) ?? 0): AppError | undefined {
  if (walSize === 0 || (dbSize !== undefined && dbSize > 0)) return undefined;
  if (dbSize === undefined) {
    return new AppError(ErrorCode.DB_CORRUPT, `${dbPath} is missing but its write-ahead log ${walPath(dbPath)} is still there`, {
      hint: 'restore the database file beside its -wal, or move the -wal away to start a new database',
    });
  }
  return new AppError(ErrorCode.DB_CORRUPT, `${dbPath} is empty, but its -wal holds ${walSize} bytes of committed pages: opening it would discard them`, {
    hint: `nothing was changed; copy ${walPath(dbPath)} somewhere safe before anything opens this database, then restore ${dbPath} from a backup`,
  });
}

/**
 * Cheap checks that catch damage SQLite would only notice deep inside a later query, before
 * anything is written: a database missing while its WAL survives (SQLite would rebuild half a
 * database from the WAL), and a file shorter than its own header says (truncated by a bad copy or
 * a full disk). The size check is only sound when no WAL holds pages still to be checkpointed.
 */
export function preflight(dbPath: string): void {
  assertWritableMount(path.dirname(dbPath));
  const dbSize = sizeOf(dbPath);
  const walSize = sizeOf(walPath(dbPath)) ?? 0;
  const orphan = orphanedWal(dbPath, dbSize, walSize);
  if (orphan !== undefined) throw orphan;
  if (dbSize === undefined || dbSize === 0 || walSize > 0) return;
  const header = Buffer.alloc(100);
  // Through held-files: this process may have the file open already (see there).
  withFileDescriptor(dbPath, () => fs.openSync(dbPath, 'r'), (fd) => fs.readSync(fd, header, 0, 100, 0));
  // Not our business to judge here: SQLite reports a foreign or encrypted file precisely.
  if (dbSize < 100 || !header.subarray(0, 16).equals(SQLITE_MAGIC)) return;
  const rawPageSize = header.readUInt16BE(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  const pageCount = header.readUInt32BE(28);
  const headerValid = header.readUInt32BE(24) === header.readUInt32BE(92) && pageCount > 0;
  if (headerValid && pageSize >= 512 && pageCount * pageSize > dbSize) {
    throw new AppError(
      ErrorCode.DB_CORRUPT,
      `${dbPath} is truncated: its header describes ${pageCount * pageSize} bytes but the file has ${dbSize}`,
      { hint: 'nothing was changed; restore the file from a backup (blufio db backup)' },
    );
  }
}
