import fs from 'node:fs';
import path from 'node:path';
import Database from '../driver.js';
import type { Durability } from '../../config/index.js';
import { AppError, ErrorCode } from '../../errors/index.js';
import { isManifestTemp, MANIFEST_FILE, migrationCopyPath, OBJECTS_DIR, RESERVED_NAMES, reservedDirs, sideFiles } from '../reserved.js';
import { FILE_MODE, fsyncDir, fsyncFile } from '../files.js';
import { ownersDir } from '../liveness.js';
import { applyCipherKey, openConnection } from '../sqlite.js';
import { toAppError } from '../sqlite-errors.js';

export interface BackupArgs {
  databasePath: string;
  dest: string;
  force: boolean;
  durability: Durability;
  lockTimeoutMs: number;
  /** An encrypted database's copy is encrypted with the same key (VACUUM INTO keeps the cipher). */
  cipherKey?: string;
  /** More directories whose contents are blufio's: the object store where vault.json names another one. */
  reservedDirs?: string[];
}

export interface BackupReport {
  dest: string;
  bytes: number;
  integrity: 'ok';
  durationMs: number;
}

function fail(message: string, cause?: unknown, hint?: string): AppError {
  return new AppError(ErrorCode.BACKUP_FAILED, message, {
    ...(cause === undefined ? {} : { cause }),
    hint: hint ?? 'nothing was written at the destination; fix the cause and run the backup again',
  });
}

/**
 * An online backup that writers never wait for. VACUUM INTO copies one read snapshot (so the
 * copy is consistent while writes go on, and it works the same on an encrypted database, where
 * the page-by-page backup API refuses). The copy is made in a private temporary directory beside
 * the destination, checked with integrity_check, synced, and only then moved to `dest` in one
 * rename (or one link when an existing file must not be replaced): a crash at any point leaves
 * either no file at `dest` or a complete, checked one.
 */
function realOrResolved(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch {
    return path.resolve(p);
  }
}

function statOf(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

/** `dest` with its directory's symlinks resolved: the place a rename would really write. */
function realDestination(dest: string): string {
  return path.join(realOrResolved(path.dirname(dest)), path.basename(dest));
}

/**
 * The destination must not be the live database or one of SQLite's files beside it under any
 * other name: through a symlinked directory, a hard link, or a case-insensitive file system.
 * Replacing the database, -wal or -shm would swap the file out from under the running writer and
 * lose acknowledged writes; a file named <db>-journal is taken for a hot journal at the next open,
 * which plays it back into the database and deletes it.
 */
function assertNotLive(dest: string, existing: fs.Stats | undefined, databasePath: string): void {
  // SQLite follows a symlink in the database's own place and keeps its -wal, -shm and -journal
  // beside the file it leads to: those are live too (they were not checked, and a --force backup
  // replaced the -wal of a running writer). A side file that does not exist yet is compared by
  // its directory's real path.
  const real = realOrResolved(databasePath);
  const live = [...new Set([databasePath, ...sideFiles(databasePath), real, ...sideFiles(real)])];
  const realDest = realDestination(dest);
  // The same directory by another path no symlink explains (a bind mount), or the same name in
  // another case (a case-insensitive file system): compared by the directory's identity, and
  // the name without case. A side file not made yet is reached that way too.
  const destDir = statOf(path.dirname(dest));
  const sameDirAndName = (f: string): boolean => {
    const d = statOf(path.dirname(f));
    return d !== undefined && destDir !== undefined && d.dev === destDir.dev && d.ino === destDir.ino && path.basename(f).toLowerCase() === path.basename(dest).toLowerCase();
  };
  const same =
    live.some((f) => realOrResolved(f) === realDest || realDestination(f) === realDest || sameDirAndName(f)) ||
    (existing !== undefined &&
      live.some((f) => {
        try {
          const st = fs.statSync(f);
          return st.dev === existing.dev && st.ino === existing.ino;
        } catch {
          return false;
        }
      }));
  if (same) {
    throw new AppError(ErrorCode.INVALID_INPUT, `${dest} is the live database (or its -journal/-wal/-shm) under another name`, {
      hint: 'write the backup somewhere else',
    });
  }
}

function isInside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * Nor, --force or not, a file blufio keeps beside the database (the vault's manifest and lock,
 * the daemon's state, lock and token) or anything in the object store: a backup there would
 * break the vault or the daemon, or be taken for a stored object; one at the object store's
 * (or the owners') directory itself, not made yet, would keep blufio from making it. Nor a name
 * blufio deletes as a leftover (a DB-encryption migration's copy and its side files, a temporary
 * manifest): the next command would remove the backup it reported as written.
 */
function assertNotReserved(dest: string, databasePath: string, more: readonly string[] = []): void {
  const dir = realOrResolved(path.dirname(databasePath));
  const realDest = realDestination(dest);
  const name = path.basename(realDest);
  const copy = migrationCopyPath(path.basename(databasePath));
  const reserved =
    (path.dirname(realDest) === dir && (RESERVED_NAMES.includes(name) || [copy, ...sideFiles(copy)].includes(name) || isManifestTemp(name))) ||
    [...reservedDirs(path.join(dir, path.basename(databasePath))), ...more].some((d) => {
      // The directory's own path too: before it exists, a file there would stop blufio making it.
      const real = realOrResolved(d);
      return d === realDest || real === realDest || isInside(d, realDest) || isInside(real, realDest);
    });
  if (reserved) {
    const dirs = [OBJECTS_DIR, ...more.map((d) => path.basename(d)).filter((n) => n !== OBJECTS_DIR), path.basename(ownersDir(databasePath))];
    const names = [...RESERVED_NAMES, `${copy}[-journal|-wal|-shm]`, `.${MANIFEST_FILE}.*.tmp`, ...dirs.map((n) => `${n}/`)];
    throw new AppError(ErrorCode.INVALID_INPUT, `${dest} is a name blufio keeps beside the database (${names.join(', ')})`, {
      hint: 'write the backup somewhere else',
    });
  }
}

/** What is at a path, for a message that says why it was not replaced. */
function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * A backup replaces only a regular file, or a symbolic link (the rename replaces the link itself,
 * never what it points to). Anything else at `dest` is somebody's pipe, device or socket, which
 * a rename would silently turn into a plain file.
 */
function assertReplaceable(dest: string): void {
  const st = fs.lstatSync(dest);
  if (st.isFile() || st.isSymbolicLink()) return;
  throw new AppError(ErrorCode.INVALID_INPUT, `${dest} is ${kindOf(st)}; a backup replaces only a regular file`, {
    hint: 'give the path of the backup file to write, e.g. backups/blufio-2026-11-23.db',
  });
}

const TMP_PREFIX = '.blufio-backup-';

function isRealDirectory(p: string): boolean {
  try {
    return fs.lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Temporary directories of backups whose process died (SIGKILL mid-copy) are removed. */
function removeStaleTemps(destDir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(destDir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(TMP_PREFIX) ? /^(\d+)-/.exec(name.slice(TMP_PREFIX.length)) : null;
    if (m === null) continue;
    const pid = Number(m[1]);
    // Only the directories backups make: a backup written under such a name (a file) is not one.
    if (!isRealDirectory(path.join(destDir, name))) continue;
    try {
      process.kill(pid, 0);
      continue; // its backup is still running
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    fs.rmSync(path.join(destDir, name), { recursive: true, force: true });
  }
}

/** Puts the checked copy at `dest` without ever replacing a file that appeared meanwhile. */
function placeNew(tmp: string, dest: string): void {
  try {
    fs.linkSync(tmp, dest);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new AppError(ErrorCode.BACKUP_EXISTS, `${dest} appeared while the backup ran`, { hint: 'choose another name, or pass --force' });
    }
    // File systems without hard links (vfat, some network shares): rename after a last look.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
  }
  if (fs.existsSync(dest)) {
    throw new AppError(ErrorCode.BACKUP_EXISTS, `${dest} appeared while the backup ran`, { hint: 'choose another name, or pass --force' });
  }
  fs.renameSync(tmp, dest);
}

export function backupDatabase(a: BackupArgs): BackupReport {
  const started = Date.now();
  const dest = path.resolve(a.dest);
  const destDir = path.dirname(dest);
  let existing: fs.Stats | undefined;
  try {
    existing = fs.statSync(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(`cannot inspect ${dest}: ${(err as Error).message}`, err);
  }
  if (existing?.isDirectory()) {
    throw new AppError(ErrorCode.INVALID_INPUT, `${dest} is a directory`, { hint: 'give the path of the backup file to write, e.g. backups/blufio-2026-11-23.db' });
  }
  if (existing !== undefined) assertReplaceable(dest);
  // Both before the --force check: the live database always exists, and an answer naming
  // --force would only lead to a second refusal.
  assertNotReserved(dest, a.databasePath, a.reservedDirs);
  assertNotLive(dest, existing, a.databasePath);
  if (existing !== undefined && !a.force) {
    throw new AppError(ErrorCode.BACKUP_EXISTS, `${dest} already exists`, { hint: 'choose another name, or pass --force to replace it' });
  }
  if (!fs.existsSync(destDir)) throw fail(`the directory ${destDir} does not exist`, undefined, 'create it first');
  removeStaleTemps(destDir);

  let tmpDir: string;
  try {
    tmpDir = fs.mkdtempSync(path.join(destDir, `${TMP_PREFIX}${process.pid}-`));
    fs.chmodSync(tmpDir, 0o700);
  } catch (err) {
    throw fail(`cannot write in ${destDir}: ${(err as Error).message}`, err);
  }
  const tmp = path.join(tmpDir, 'copy.db');
  try {
    const key = a.cipherKey === undefined ? {} : { cipherKey: a.cipherKey };
    const src = openConnection(a.databasePath, { durability: a.durability, lockTimeoutMs: a.lockTimeoutMs, queryOnly: false, ...key });
    try {
      src.prepare('VACUUM INTO ?').run(tmp);
    } catch (err) {
      // The copy is what is written: a full disk is the destination's (SQLite's error would name
      // the database's disk, and say an acknowledged write was rolled back).
      // VACUUM INTO only reads the source: a write, sync, truncate or close that fails is the copy's.
      const code = String((err as { code?: unknown }).code);
      if (code === 'SQLITE_FULL' || (code.startsWith('SQLITE_IOERR') && !/READ$/.test(code))) {
        throw fail(`the disk holding ${destDir} is full (or cannot be written): the copy did not fit`, err, `free space there, or write the backup elsewhere; nothing was written at the destination, and the database is unchanged`);
      }
      throw toAppError(err, { file: a.databasePath });
    } finally {
      src.close();
    }
    fs.chmodSync(tmp, FILE_MODE);
    const copy = new Database(tmp, { fileMustExist: true });
    try {
      if (a.cipherKey !== undefined) applyCipherKey(copy, a.cipherKey);
      // A self-contained file: no -wal is needed beside a backup.
      copy.pragma('journal_mode = DELETE');
      const result = copy.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
      if (result.length !== 1 || result[0]?.integrity_check !== 'ok') {
        throw fail(`the copy failed integrity_check: ${result.map((r) => r.integrity_check).slice(0, 3).join('; ')}`);
      }
    } finally {
      copy.close();
    }
    fsyncFile(tmp);
    if (existing !== undefined) fs.renameSync(tmp, dest);
    else placeNew(tmp, dest);
    fsyncDir(destDir);
    return { dest, bytes: fs.statSync(dest).size, integrity: 'ok', durationMs: Date.now() - started };
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw fail(`backup to ${dest} failed: ${(err as Error).message}`, err);
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}
