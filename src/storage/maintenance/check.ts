import fs from 'node:fs';
import type { Durability } from '../../config/index.js';
import { latestVersion, schemaVersion } from '../migrations/index.js';
import Database from '../driver.js';
import { openConnection, type Db } from '../sqlite.js';
import { BINDING } from '../driver.js';
import { walPath } from '../files.js';
import { isSqliteError } from '../sqlite-errors.js';
import { JOB_STATES, type JobState } from '../queue/types.js';
import { SESSION_STATES, type SessionState } from '../types.js';
import type { WriterPragmas } from '../writer/protocol.js';

export interface CheckReport {
  ok: boolean;
  databasePath: string;
  schemaVersion: number;
  supportedSchemaVersion: number;
  journalMode: string;
  durability: Durability;
  /** The SQLite library in use: its version and the binding package it came from. */
  sqlite: { version: string; binding: string };
  /** The settings of this process's writer connection, as SQLite reports them. */
  writer: WriterPragmas;
  integrity: string[];
  foreignKeyViolations: number;
  sizes: {
    databaseBytes: number;
    walBytes: number;
    pageSize: number;
    pageCount: number;
    freePages: number;
  };
  /** Null when the file is damaged: counting would only fail on the same damage. */
  counts: {
    sessions: Record<SessionState, number> & { total: number };
    messages: number;
    jobs: Record<JobState, number> & { total: number };
  } | null;
}

function fileSize(f: string): number {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
}

export interface CheckArgs {
  databasePath: string;
  durability: Durability;
  lockTimeoutMs: number;
  cipherKey?: string;
}

function countRows(db: Db): NonNullable<CheckReport['counts']> {
  const sessions = { active: 0, paused: 0, closed: 0, interrupted: 0, total: 0 };
  for (const r of db.prepare('SELECT state, count(*) AS n FROM sessions GROUP BY state').all() as { state: SessionState; n: number }[]) {
    if ((SESSION_STATES as readonly string[]).includes(r.state)) sessions[r.state] = r.n;
    sessions.total += r.n;
  }
  const jobs = { waiting: 0, pending: 0, running: 0, completed: 0, dead: 0, total: 0 };
  for (const r of db.prepare('SELECT state, count(*) AS n FROM jobs GROUP BY state').all() as { state: JobState; n: number }[]) {
    if ((JOB_STATES as readonly string[]).includes(r.state)) jobs[r.state] = r.n;
    jobs.total += r.n;
  }
  return { sessions, messages: db.prepare('SELECT count(*) FROM messages').pluck().get() as number, jobs };
}

/**
 * For a file that blufio refuses to open (damaged, truncated, not a database): what SQLite's
 * integrity_check says of it, through a read-only connection that changes nothing. Every
 * failure becomes a line of the answer; this never throws.
 */
export function diagnose(file: string): Diagnosis {
  // Only damage SQLite names says anything of the content; a lock, an I/O error or a side file
  // it cannot use says nothing (a healthy file beside a FIFO -shm was called damaged).
  const failed = (what: string, err: unknown): Diagnosis => ({
    integrity: [`${what}: ${(err as Error).message}`],
    judged: isSqliteError(err, 'SQLITE_CORRUPT') || isSqliteError(err, 'SQLITE_NOTADB'),
  });
  let db: Db;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    return failed('cannot open it', err);
  }
  try {
    return { integrity: (db.pragma('integrity_check(100)', { simple: false }) as { integrity_check: string }[]).map((r) => r.integrity_check), judged: true };
  } catch (err) {
    return failed('integrity_check cannot run', err);
  } finally {
    db.close();
  }
}

/** What diagnose() found: integrity_check's lines, or why it could not run. */
export interface Diagnosis {
  integrity: string[];
  /** False when SQLite could not look for a reason that is not damage: nothing is said of the content. */
  judged: boolean;
}

/**
 * integrity_check and foreign_key_check over the whole file, with sizes and counts. Runs on its
 * own connection inside one read transaction (a consistent snapshot while writers go on).
 */
export function checkDatabase(a: CheckArgs): Omit<CheckReport, 'writer'> {
  const db = openConnection(a.databasePath, {
    durability: a.durability,
    lockTimeoutMs: a.lockTimeoutMs,
    queryOnly: true,
    ...(a.cipherKey === undefined ? {} : { cipherKey: a.cipherKey }),
  });
  try {
    db.exec('BEGIN');
    const integrity = (db.pragma('integrity_check(100)', { simple: false }) as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
    const integrityOk = integrity.length === 1 && integrity[0] === 'ok';
    const fk = integrityOk ? (db.pragma('foreign_key_check', { simple: false }) as unknown[]).length : 0;
    const counts = integrityOk ? countRows(db) : null;
    const report: Omit<CheckReport, 'writer'> = {
      ok: integrityOk && fk === 0,
      databasePath: a.databasePath,
      schemaVersion: schemaVersion(db, a.databasePath),
      supportedSchemaVersion: latestVersion(),
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      sqlite: { version: String(db.prepare('SELECT sqlite_version()').pluck().get()), binding: BINDING },
      durability: a.durability,
      integrity,
      foreignKeyViolations: fk,
      sizes: {
        databaseBytes: fileSize(a.databasePath),
        walBytes: fileSize(walPath(a.databasePath)),
        pageSize: Number(db.pragma('page_size', { simple: true })),
        pageCount: Number(db.pragma('page_count', { simple: true })),
        freePages: Number(db.pragma('freelist_count', { simple: true })),
      },
      counts,
    };
    db.exec('COMMIT');
    return report;
  } finally {
    db.close();
  }
}
