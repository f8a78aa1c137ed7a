import fs from 'node:fs';
import path from 'node:path';
import Database from '../storage/driver.js';
import { AppError, ErrorCode } from '../errors/index.js';
import { assertSideFilesRegular, FILE_MODE, fsyncDir, fsyncFile } from '../storage/files.js';
import { applyCipherKey, selectSqlcipherV4, type Db } from '../storage/sqlite.js';
import { assertNewPassphrase } from '../vault/index.js';
import { cipherCheck, deriveDbKey, fileKind, newSalt, rawKeyLiteral, readSalt } from './keys.js';
import { copyPath, leftovers, removeLeftovers, sideFiles, sizeOrZero } from './layout.js';
import { writeManifest, type Manifest, type MigrationEvent } from './manifest.js';

/**
 * The steps of a migration, in order. After each one the directory is in a state that the next
 * command recognises (see recover): before `swapped` the plaintext database is the live one and
 * the copy is thrown away; from `swapped` on the encrypted copy is, and the rest is completed.
 */
export const MIGRATION_STEPS = [
  'locked',
  'pending_recorded',
  'checkpointed',
  'copied',
  'encrypted',
  'verified',
  'synced',
  'event_recorded',
  'plaintext_closed',
  'swapped',
  'completed',
] as const;
export type MigrationStep = (typeof MIGRATION_STEPS)[number];

export interface MigrateOptions {
  passphrase: string;
  keyReference: string | null;
  /** The time recorded in the migration event (the CLI's --now-ms): runs are reproducible. */
  nowMs: number;
  /** Called after each step; tests use it to fail or die exactly there. */
  onStep?: (step: MigrationStep) => void;
}

function failed(message: string, cause?: unknown, hint?: string): AppError {
  return new AppError(ErrorCode.DB_ENCRYPTION_MIGRATION_FAILED, message, {
    ...(cause === undefined ? {} : { cause }),
    hint: hint ?? 'the plaintext database is untouched and still the live one; fix the cause and run blufio vault db-encrypt migrate again',
  });
}

/**
 * The swap renames the encrypted copy over the database's name: that name must be the file
 * itself. Through a symlink the plaintext file would stay where the link points (and the data
 * would move off that disk); with other hard links it would stay under those names. Both would
 * report success with the whole plaintext database still on disk.
 */
function assertOwnFile(db: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(db);
  } catch (err) {
    throw failed(`cannot read ${db}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
  const how = 'nothing was changed; put the database file itself in the vault directory (no link), then run migrate again';
  if (st.isSymbolicLink()) throw failed(`${db} is a symbolic link (to ${fs.readlinkSync(db)}): the plaintext file it points to would survive the migration`, undefined, how);
  if (!st.isFile()) throw failed(`${db} is not a regular file`, undefined, how);
  if (st.nlink > 1) throw failed(`${db} has ${st.nlink - 1} other hard link(s): the plaintext database would survive under those names`, undefined, how);
}

/**
 * A connection that holds the database for itself: exclusive locking mode, and a write lock
 * taken at once. In WAL mode that fails while any other connection, of any process, has the
 * file open; undefined then.
 */
export function lockExclusive(file: string): Db | undefined {
  // A FIFO there would block the open for ever, with the vault's lock held.
  assertSideFilesRegular(file);
  const db = new Database(file, { fileMustExist: true, timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
    return db;
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return undefined;
    throw err;
  }
}

interface Shape {
  schema: string[];
  tables: Record<string, number>;
  userVersion: number;
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** What must be identical in the copy: every schema entry, rows per table, user_version. */
function shapeOf(db: Db): Shape {
  const rows = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name').all() as {
    type: string;
    name: string;
    tbl_name: string;
    sql: string | null;
  }[];
  // No prototype: a table may be called __proto__.
  const tables: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const r of rows) {
    if (r.type !== 'table' || r.name.startsWith('sqlite_')) continue;
    tables[r.name] = db.prepare(`SELECT count(*) FROM ${quoteIdent(r.name)}`).pluck().get() as number;
  }
  return {
    schema: rows.map((r) => JSON.stringify([r.type, r.name, r.tbl_name, r.sql])),
    tables,
    userVersion: Number(db.pragma('user_version', { simple: true })),
  };
}

function sameShape(a: Shape, b: Shape): string | undefined {
  if (a.userVersion !== b.userVersion) return `user_version ${b.userVersion} instead of ${a.userVersion}`;
  if (a.schema.join('\n') !== b.schema.join('\n')) return 'the schema differs';
  for (const [t, n] of Object.entries(a.tables)) {
    if (b.tables[t] !== n) return `table ${t} has ${String(b.tables[t])} rows instead of ${n}`;
  }
  return undefined;
}

/**
 * Replaces the plaintext database with an encrypted copy. The manifest must say
 * pending_migration. Nothing is deleted until the copy has been verified and is in place; on any
 * failure before that the copy is removed and the plaintext database stays the live one.
 */
export async function migrateDatabase(dir: string, m: Manifest, opts: MigrateOptions): Promise<{ manifest: Manifest; event: MigrationEvent }> {
  const step = opts.onStep ?? ((): void => undefined);
  const db = path.join(dir, m.database_file);
  const copy = copyPath(db);
  assertOwnFile(db);
  if (fileKind(db) !== 'plaintext') throw failed(`${db} is not a plaintext SQLite database`);
  assertNewPassphrase(opts.passphrase, 'database passphrase');
  const salt = newSalt();
  const key = await deriveDbKey(opts.passphrase, salt);
  const literal = rawKeyLiteral(key, salt);
  let manifest: Manifest = {
    ...m,
    db_encryption: { ...m.db_encryption, key_reference: opts.keyReference, pending: { salt_hex: salt.toString('hex'), now_ms: opts.nowMs } },
  };
  let plain: Db | undefined;
  try {
    // The database first: a refusal must leave vault.json as it was.
    plain = lockExclusive(db);
    if (plain === undefined) {
      throw failed(`another process has ${db} open (a running blufio serve, or another command)`);
    }
    step('locked');
    writeManifest(dir, manifest);
    step('pending_recorded');
    const ck = plain.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    if ((ck[0]?.busy ?? 1) !== 0) throw failed('the write-ahead log could not be folded into the database');
    step('checkpointed');
    removeLeftovers(dir, db);
    const bytesBefore = sizeOrZero(db);
    // VACUUM INTO would create the file under the umask; made empty and 0600 first, it (and the
    // journal SQLite derives from it) stays private, and so does the database it becomes.
    fs.closeSync(fs.openSync(copy, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, FILE_MODE));
    plain.prepare('VACUUM INTO ?').run(copy);
    step('copied');
    const c = new Database(copy, { fileMustExist: true });
    try {
      selectSqlcipherV4(c);
      c.pragma(`rekey = "${literal}"`);
    } finally {
      c.close();
    }
    step('encrypted');
    const enc = new Database(copy, { fileMustExist: true });
    let verified: Shape;
    try {
      applyCipherKey(enc, literal);
      const integrity = (enc.pragma('integrity_check', { simple: false }) as { integrity_check: string }[]).map((r) => r.integrity_check);
      if (integrity.length !== 1 || integrity[0] !== 'ok') throw failed(`the encrypted copy fails integrity_check: ${integrity.slice(0, 3).join('; ')}`);
      verified = shapeOf(enc);
    } finally {
      enc.close();
    }
    if (fileKind(copy) !== 'encrypted' || !readSalt(copy)?.equals(salt)) throw failed('the copy is not encrypted with the new salt');
    const cc = cipherCheck(copy, key, salt);
    if (cc.badPages.length > 0 || cc.partialPage || cc.pages === 0) {
      throw failed(`the encrypted copy fails the cipher check (${cc.badPages.length} of ${cc.pages} pages)`);
    }
    const mismatch = sameShape(shapeOf(plain), verified);
    if (mismatch !== undefined) throw failed(`the encrypted copy does not match the database: ${mismatch}`);
    step('verified');
    fsyncFile(copy);
    fsyncDir(dir);
    step('synced');
    const event: MigrationEvent = {
      event: 'db_encryption_migrated',
      at_ms: opts.nowMs,
      mode: 'sqlcipher_v4',
      database_file: m.database_file,
      tables: verified.tables,
      bytes_before: bytesBefore,
      bytes_after: sizeOrZero(copy),
    };
    manifest = { ...manifest, db_encryption: { ...manifest.db_encryption, pending: { salt_hex: salt.toString('hex'), now_ms: opts.nowMs, event } } };
    writeManifest(dir, manifest);
    step('event_recorded');
    // Closing the last connection in WAL mode checkpoints and deletes the -wal; -shm goes too.
    // Both are checked: a plaintext log must never sit beside the encrypted database.
    plain.close();
    plain = undefined;
    for (const f of sideFiles(db)) {
      if (sizeOrZero(f) > 0 && !f.endsWith('-shm')) throw failed(`${f} holds data written after the copy was made`);
      fs.rmSync(f, { force: true });
    }
    step('plaintext_closed');
  } catch (err) {
    try {
      plain?.close();
    } catch {
      // The failure being reported matters more.
    }
    removeLeftovers(dir, db);
    // One code for every failure before the swap (the contract's), the cause's own in the text:
    // a full disk while recording the migration is a failed migration, not a failed write.
    if (err instanceof AppError && err.code === ErrorCode.DB_ENCRYPTION_MIGRATION_FAILED) throw err;
    const cause = err instanceof AppError ? `${err.code}: ${err.message}` : (err as Error).message;
    throw failed(`migration failed: ${cause}`, err);
  } finally {
    key.fill(0);
  }
  fs.renameSync(copy, db);
  fsyncDir(dir);
  step('swapped');
  let done: ReturnType<typeof completeMigration>;
  try {
    done = completeMigration(dir, manifest);
  } catch (err) {
    // The encrypted database is the live one now; only its record is owed, which any later
    // command writes (the manifest still holds the event).
    const cause = err instanceof AppError ? `${err.code}: ${err.message}` : (err as Error).message;
    throw failed(`the encrypted database is in place, but recording the migration failed: ${cause}`, err, 'run blufio vault db-encrypt status once the cause is fixed: it records the migration and removes what is left');
  }
  step('completed');
  return done;
}

/**
 * The encrypted copy is in place (its salt is the one the manifest recorded): record the event,
 * drop the pending block, remove whatever a crash left. Needs no key, so any command can finish
 * an interrupted migration.
 */
export function completeMigration(dir: string, m: Manifest): { manifest: Manifest; event: MigrationEvent } {
  const event = m.db_encryption.pending?.event;
  if (event === undefined) throw new AppError(ErrorCode.INTERNAL, 'completeMigration without a recorded event');
  const { pending: _pending, ...rest } = m.db_encryption;
  const manifest: Manifest = { ...m, db_encryption: { ...rest, enabled: true, state: 'encrypted', last_migration: event } };
  writeManifest(dir, manifest);
  removeLeftovers(dir, path.join(dir, m.database_file));
  return { manifest, event };
}

export { leftovers };
