import fs from 'node:fs';
import path from 'node:path';
import Database from '../driver.js';
import type { Durability } from '../../config/index.js';
import { AppError, ErrorCode } from '../../errors/index.js';
import { FILE_MODE, fsyncDir } from '../files.js';
import { openConnection } from '../sqlite.js';
import { toAppError } from '../sqlite-errors.js';

export interface BackupArgs {
  databasePath: string;
  dest: string;
  force: boolean;
  durability: Durability;
  lockTimeoutMs: number;
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
export function backupDatabase(a: BackupArgs): BackupReport {
  const started = Date.now();
  const dest = path.resolve(a.dest);
  if (dest === path.resolve(a.databasePath)) throw new AppError(ErrorCode.INVALID_INPUT, 'the backup destination is the live database itself');
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
  if (existing !== undefined && !a.force) {
    throw new AppError(ErrorCode.BACKUP_EXISTS, `${dest} already exists`, { hint: 'choose another name, or pass --force to replace it' });
  }
  if (!fs.existsSync(destDir)) throw fail(`the directory ${destDir} does not exist`, undefined, 'create it first');

  let tmpDir: string;
  try {
    tmpDir = fs.mkdtempSync(path.join(destDir, `.${path.basename(dest)}.blufio-backup-`));
    fs.chmodSync(tmpDir, 0o700);
  } catch (err) {
    throw fail(`cannot write in ${destDir}: ${(err as Error).message}`, err);
  }
  const tmp = path.join(tmpDir, 'copy.db');
  try {
    const src = openConnection(a.databasePath, { durability: a.durability, lockTimeoutMs: a.lockTimeoutMs, queryOnly: false });
    try {
      src.prepare('VACUUM INTO ?').run(tmp);
    } catch (err) {
      throw toAppError(err, { file: a.databasePath });
    } finally {
      src.close();
    }
    fs.chmodSync(tmp, FILE_MODE);
    const copy = new Database(tmp, { fileMustExist: true });
    try {
      // A self-contained file: no -wal is needed beside a backup.
      copy.pragma('journal_mode = DELETE');
      const result = copy.pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
      if (result.length !== 1 || result[0]?.integrity_check !== 'ok') {
        throw fail(`the copy failed integrity_check: ${result.map((r) => r.integrity_check).slice(0, 3).join('; ')}`);
      }
    } finally {
      copy.close();
    }
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (existing !== undefined) {
      fs.renameSync(tmp, dest);
    } else {
      // link() fails if something appeared at dest meanwhile: never clobber without --force.
      try {
        fs.linkSync(tmp, dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new AppError(ErrorCode.BACKUP_EXISTS, `${dest} appeared while the backup ran`, { hint: 'choose another name, or pass --force' });
        }
        throw err;
      }
    }
    fsyncDir(destDir);
    return { dest, bytes: fs.statSync(dest).size, integrity: 'ok', durationMs: Date.now() - started };
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw fail(`backup to ${dest} failed: ${(err as Error).message}`, err);
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}
