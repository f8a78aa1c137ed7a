import { AppError, ErrorCode } from '../../errors/index.js';
import type { Db } from '../sqlite.js';
import { isSqliteError, toAppError } from '../sqlite-errors.js';
import { verifyShape } from './shape.js';
import { checksum, latestVersion, type Migration } from './list.js';

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS _migrations (
  version     INTEGER PRIMARY KEY,
  name        TEXT NOT NULL,
  checksum    TEXT NOT NULL,
  applied_at  INTEGER NOT NULL
) STRICT`;

function hasTable(db: Db, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function readApplied(db: Db, file: string): AppliedRow[] {
  if (!hasTable(db, '_migrations')) return [];
  try {
    return db.prepare('SELECT version, name, checksum FROM _migrations ORDER BY version').all() as AppliedRow[];
  } catch (err) {
    // A column renamed or dropped: the record of what was applied cannot be read, so nothing is.
    if (!isSqliteError(err, 'SQLITE_ERROR')) throw err;
    throw new AppError(ErrorCode.DB_CORRUPT, `the _migrations table of ${file} was changed outside blufio: ${(err as Error).message}`, {
      hint: 'nothing was written to it; restore the database from a backup (blufio db backup makes one)',
      details: { file },
      cause: err,
    });
  }
}

/** Checks what is applied against what this code knows; returns the migrations still to apply. */
function plan(applied: AppliedRow[], list: readonly Migration[], file: string): Migration[] {
  const known = new Map(list.map((m) => [m.version, m]));
  const latest = latestVersion(list);
  for (const row of applied) {
    if (row.version > latest) {
      throw new AppError(
        ErrorCode.SCHEMA_TOO_NEW,
        `${file} has schema version ${applied[applied.length - 1]?.version ?? row.version}, newer than this blufio understands (${latest})`,
        { hint: 'upgrade blufio; nothing in the database was changed', details: { file, version: row.version, supported: latest } },
      );
    }
    const m = known.get(row.version);
    if (m === undefined || checksum(m) !== row.checksum) {
      throw new AppError(
        ErrorCode.DB_MIGRATION_MODIFIED,
        `migration ${row.version} (${row.name}) recorded in ${file} does not match the migration embedded in this blufio`,
        {
          hint: 'this database was migrated by a different build; use the blufio version that created it, nothing was changed',
          details: { file, version: row.version },
        },
      );
    }
  }
  const done = new Set(applied.map((r) => r.version));
  return list.filter((m) => !done.has(m.version)).sort((a, b) => a.version - b.version);
}

/**
 * Checks, without writing anything, that what the file records as applied is what this code
 * knows: throws KC_SCHEMA_TOO_NEW or KC_DB_MIGRATION_MODIFIED. Runs before a connection switches
 * the file to WAL, so a refused file is left exactly as it was.
 */
export function verifyApplied(db: Db, list: readonly Migration[], file: string, opts: { shape?: boolean } = {}): void {
  const applied = readApplied(db, file);
  plan(applied, list, file);
  if (opts.shape === true) shapeOfApplied(db, applied, list, file);
}

/** The schema must be the one the applied migrations make (see shape.ts). */
function shapeOfApplied(db: Db, applied: AppliedRow[], list: readonly Migration[], file: string): void {
  if (applied.length === 0) return;
  const done = new Set(applied.map((r) => r.version));
  verifyShape(db, list.filter((m) => done.has(m.version)), CREATE_TABLE, file);
}

export interface MigrationResult {
  version: number;
  applied: number[];
}

/**
 * Applies the pending migrations, each in its own IMMEDIATE transaction with its `_migrations`
 * row, so a failure rolls back to the previous schema exactly. The check runs first without a
 * write lock: an up-to-date database (the common case) is never written to on open.
 */
export function runMigrations(db: Db, list: readonly Migration[], file: string, now: () => number): MigrationResult {
  try {
    const applied = readApplied(db, file);
    const pending = plan(applied, list, file);
    shapeOfApplied(db, applied, list, file);
    if (pending.length === 0) {
      return { version: applied[applied.length - 1]?.version ?? 0, applied: [] };
    }
    const done: number[] = [];
    for (;;) {
      db.exec('BEGIN IMMEDIATE');
      let next: Migration | undefined;
      try {
        // Another process may have migrated while we waited for the lock: plan again inside it.
        db.exec(CREATE_TABLE);
        next = plan(readApplied(db, file), list, file)[0];
        if (next === undefined) {
          db.exec('COMMIT');
          break;
        }
        db.exec(next.sql);
        db.prepare('INSERT INTO _migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)').run(
          next.version,
          next.name,
          checksum(next),
          now(),
        );
        db.exec('COMMIT');
        done.push(next.version);
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        if (err instanceof AppError || next === undefined) throw err;
        throw new AppError(
          ErrorCode.DB_MIGRATION_FAILED,
          `migration ${next.version} (${next.name}) failed and was rolled back: ${(err as Error).message}`,
          { hint: 'the database keeps its previous schema; report this with the output of blufio db check', cause: err },
        );
      }
    }
    const final = readApplied(db, file);
    return { version: final[final.length - 1]?.version ?? 0, applied: done };
  } catch (err) {
    throw toAppError(err, { file });
  }
}

export function schemaVersion(db: Db, file: string): number {
  const rows = readApplied(db, file);
  return rows[rows.length - 1]?.version ?? 0;
}
