import fs from 'node:fs';
import Database from './driver.js';
import { AppError, ErrorCode } from '../errors/index.js';
import { FILE_MODE, sideFileNotRegular } from './files.js';

/*
 * SQLite's exclusive lock on an empty file, used as a lock between processes. It is a POSIX
 * lock, so the kernel drops it when its holder dies (a SIGKILL leaves no stale lock); other
 * processes see it across pid namespaces (containers sharing the directory), where a pid means
 * nothing; and a pid reused since cannot pass for its holder. SQLite also keeps the lock right
 * between connections of one process, which plain POSIX locks do not (closing any descriptor of
 * a file drops the process's locks on it).
 */

/**
 * Creates `file` (0600, empty) if it is missing. Errors are the file system's. An existing file
 * is not opened at all: closing any descriptor of a file drops every POSIX lock this process
 * holds on it, so opening a lock file this process holds (a second daemon start, a second open
 * of the vault directory) would free it for every other process.
 */
export function createLockFile(file: string): void {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Takes the lock on an existing lock file without waiting: the release function, or undefined
 * while another connection holds it. Other errors (not SQLite's file, gone) are thrown.
 */
export function tryFileLock(file: string): (() => void) | undefined {
  const odd = notRegular(file);
  if (odd !== undefined) {
    throw new AppError(ErrorCode.DB_IO, `cannot lock ${file}: ${odd} (SQLite would wait on a FIFO for ever)`, {
      hint: 'it holds no data: remove it while no blufio process uses this directory, then run this again',
    });
  }
  let db: InstanceType<typeof Database> | undefined;
  try {
    db = new Database(file, { fileMustExist: true, timeout: 0 });
    // No content, so no journal: nothing is left beside the lock file while it is held. The
    // binding opens connections in SQLite's defensive mode, which ignores journal_mode = OFF (a
    // first lock of a new file then kept a -journal beside it while held); this connection runs
    // only the statements below, on a file that holds nothing.
    db.unsafeMode(true);
    db.pragma('journal_mode = OFF');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
  } catch (err) {
    db?.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return undefined;
    throw err;
  }
  let released = false;
  const held = db;
  return () => {
    if (released) return;
    released = true;
    held.close();
  };
}

/**
 * Whether some connection holds the lock on `file`: a read needs SQLite's shared lock, which the
 * holder's exclusive lock refuses (SQLITE_BUSY). undefined when the file cannot be opened and
 * read (gone, not SQLite's, not ours to read). The probe holds the shared lock for microseconds.
 */
export function fileLockHeld(file: string, whenUnprobeable?: boolean): boolean | undefined {
  // A FIFO beside it cannot be probed (the open would block). The caller says what that means
  // for it: a pid check instead would misjudge a holder in another pid namespace.
  if (notRegular(file) !== undefined) return whenUnprobeable;
  let db: InstanceType<typeof Database> | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 0 });
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'SQLITE_BUSY' ? true : undefined;
  } finally {
    db?.close();
  }
}

/**
 * The lock file or a file SQLite opens beside it (its -journal) that is not a regular file,
 * named; a FIFO would block the open for ever. Statted, never opened (see createLockFile).
 */
function notRegular(file: string): string | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (st !== undefined && !st.isFile()) return `${file} is not a regular file`;
  return sideFileNotRegular(file);
}
