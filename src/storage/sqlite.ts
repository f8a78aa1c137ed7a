import fs from 'node:fs';
import Database, { type BetterSqlite3 } from './driver.js';
import type { Durability } from '../config/index.js';
import { AppError, ErrorCode } from '../errors/index.js';
import { orphanedWal, walPath } from './files.js';
import { MIGRATIONS, verifyApplied } from './migrations/index.js';
import { isSqliteError, toAppError } from './sqlite-errors.js';

export type Db = BetterSqlite3.Database;
export type Statement = BetterSqlite3.Statement;

export interface ConnectionOptions {
  durability: Durability;
  /** How long a statement waits for another connection's lock before failing. */
  lockTimeoutMs: number;
  /** Connections that only read refuse writes at the SQLite level (a bug becomes an error). */
  queryOnly?: boolean;
  readonly?: boolean;
  /** SQLCipher v4 key literal (see dbcrypt/keys.ts); absent for a plaintext database. */
  cipherKey?: string;
}

/**
 * The key pragmas, before anything else touches the file: SQLCipher v4's format in the binding's
 * emulation of it (cipher and legacy select the exact v4 profile), then the key.
 */
export function applyCipherKey(db: Db, cipherKey: string): void {
  selectSqlcipherV4(db);
  db.pragma(`key = "${cipherKey}"`);
}

export function selectSqlcipherV4(db: Db): void {
  db.pragma("cipher = 'sqlcipher'");
  db.pragma('legacy = 4');
}

/**
 * Opens one connection and applies the pragma set every connection must have. journal_mode is
 * persistent in the file, the others are per connection, so all of them run on every open.
 * `fullfsync` only matters on macOS, where plain fsync() does not reach the platter; "full"
 * durability asks for the real flush there.
 */
export function openConnection(file: string, opts: ConnectionOptions): Db {
  try {
    if (!opts.readonly) probeReadOnly(file, opts);
    const db = openChecked(file, opts);
    try {
      applyPragmas(db, opts);
    } catch (err) {
      closeQuietly(db);
      throw err;
    }
    return db;
  } catch (err) {
    throw toAppError(err, { file });
  }
}

/**
 * When a -wal is there, the checks that may refuse the file run first on a read-only connection:
 * closing a read-write one folds the pending -wal into the file (the last connection
 * checkpoints), so a file we refuse would not be left as it was. A read-only connection never
 * checkpoints. Without a -wal there is nothing to fold in, and a read-only connection would be
 * worse: on a WAL file it creates an empty -wal and -shm and, unlike a read-write one, leaves them.
 */
function probeReadOnly(file: string, opts: ConnectionOptions): void {
  if (!fs.existsSync(walPath(file))) return;
  const orphan = orphanedWal(file);
  if (orphan !== undefined) throw orphan;
  let db: Db;
  try {
    // The schema's shape too: refused only by the writer's open, a changed schema still in the
    // -wal was folded into the file by that connection's close.
    db = openChecked(file, { ...opts, readonly: true }, { shape: true });
  } catch (err) {
    // A hot rollback journal (a writer died mid-transaction) is rolled back only by a writer: the
    // read-write open recovers the last committed state and runs the same checks on it.
    if (isSqliteError(err, 'SQLITE_READONLY_ROLLBACK')) return;
    throw err;
  }
  db.close();
}

/** A connection whose file is ours, with a schema this blufio knows: nothing written yet. */
function openChecked(file: string, opts: ConnectionOptions, checks: { shape?: boolean } = {}): Db {
  const db = new Database(file, {
    fileMustExist: true,
    timeout: opts.lockTimeoutMs,
    readonly: opts.readonly ?? false,
  });
  try {
    if (opts.cipherKey !== undefined) applyCipherKey(db, opts.cipherKey);
    try {
      assertOurs(db, file);
    } catch (err) {
      // The first read is where a key shows whether it fits: SQLCipher sees only noise otherwise.
      if (opts.cipherKey !== undefined && (err as { code?: string }).code === 'SQLITE_NOTADB') {
        throw new AppError(ErrorCode.DB_KEY_INVALID, `the database key does not open ${file}`, {
          hint: 'the passphrase is wrong (or the file is damaged): check the variable vault.json names in db_encryption.key_reference; nothing was changed',
        });
      }
      throw err;
    }
    verifyApplied(db, MIGRATIONS, file, checks);
    return db;
  } catch (err) {
    closeQuietly(db);
    throw err;
  }
}

function closeQuietly(db: Db): void {
  try {
    db.close();
  } catch {
    // The open already failed; the first error is the one to report.
  }
}

/**
 * Runs before anything that could write (even switching to WAL rewrites the header): a file
 * that holds tables but no `_migrations` belongs to another program and is left alone. Reading
 * the schema is also where a damaged or foreign file first shows itself.
 */
function assertOurs(db: Db, file: string): void {
  const tables = db
    .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name = '_migrations' DESC LIMIT 1")
    .pluck()
    .get() as string | undefined;
  if (tables !== undefined && tables !== '_migrations') {
    throw new AppError(
      ErrorCode.DB_OPEN_FAILED,
      `${file} is a SQLite database but not a blufio one (it has a table "${tables}" and no _migrations)`,
      { hint: 'point BLUFIO_DATA_DIR or storage.database_path at a blufio database; nothing was changed' },
    );
  }
}

export function applyPragmas(db: Db, opts: ConnectionOptions): void {
  if (!opts.readonly) {
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') {
      throw new Error(`could not switch the database to WAL mode (still ${String(mode)})`);
    }
  }
  db.pragma(`synchronous = ${opts.durability === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma(`fullfsync = ${opts.durability === 'full' ? 'ON' : 'OFF'}`);
  db.pragma(`busy_timeout = ${Math.trunc(opts.lockTimeoutMs)}`);
  db.pragma('foreign_keys = ON');
  db.pragma('cache_size = -16000');
  db.pragma('temp_store = MEMORY');
  // Checkpoint every 4000 pages (16 MiB of WAL) instead of SQLite's 1000: a hot page that is
  // rewritten many times is copied to the database file once per checkpoint, so fewer
  // checkpoints mean fewer writes. An idle WAL is trimmed back to 64 MiB at most.
  db.pragma('wal_autocheckpoint = 4000');
  db.pragma('journal_size_limit = 67108864');
  if (opts.queryOnly) db.pragma('query_only = ON');
}
