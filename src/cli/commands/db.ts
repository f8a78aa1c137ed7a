import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { fileKind } from '../../dbcrypt/index.js';
import { loadConfig } from '../../config/index.js';
import { AppError, ErrorCode, isAppError, shellWord } from '../../errors/index.js';
import { diagnose, sideFileNotRegular, type CheckReport } from '../../storage/index.js';
import { configOptions, withApp } from '../context.js';
import { formatBytes, printable, printJson, printLines } from '../output.js';

function describe(r: CheckReport): string[] {
  const c = r.counts;
  return [
    `database   ${printable(r.databasePath)}`,
    `status     ${r.ok ? 'ok' : 'DAMAGED'}`,
    `schema     version ${r.schemaVersion} (this blufio supports up to ${r.supportedSchemaVersion})`,
    `journal    ${r.journalMode}, durability ${r.durability}`,
    `sqlite     ${r.sqlite.version} (${r.sqlite.binding})`,
    `size       ${formatBytes(r.sizes.databaseBytes)} + ${formatBytes(r.sizes.walBytes)} WAL; ${r.sizes.pageCount} pages of ${r.sizes.pageSize} bytes, ${r.sizes.freePages} free`,
    ...(c === null
      ? []
      : [
          `sessions   ${c.sessions.total} (active ${c.sessions.active}, paused ${c.sessions.paused}, interrupted ${c.sessions.interrupted}, closed ${c.sessions.closed})`,
          `messages   ${c.messages}`,
          `jobs       ${c.jobs.total} (waiting ${c.jobs.waiting}, pending ${c.jobs.pending}, running ${c.jobs.running}, dead ${c.jobs.dead}, completed ${c.jobs.completed})`,
        ]),
    ...(r.ok
      ? []
      : [
          ...r.integrity.map((l) => `integrity  ${printable(l)}`),
          `foreign keys: ${r.foreignKeyViolations} violation(s)`,
        ]),
  ];
}

function corrupt(file: string): AppError {
  return new AppError(ErrorCode.DB_CORRUPT, `integrity check failed for ${file}`, {
    hint: 'stop the daemon and restore the latest backup (blufio db backup makes them)',
  });
}

/**
 * The open's refusals of the file itself (what it holds, its state, vault.json's word on it), as
 * against failures around it (a lock held elsewhere, a full disk, an I/O error, a prompt left):
 * `db check` still says what a read-only look finds in such a file.
 */
const REFUSALS: readonly string[] = [
  ErrorCode.DB_CORRUPT,
  ErrorCode.DB_OPEN_FAILED,
  ErrorCode.DB_READONLY,
  ErrorCode.SCHEMA_TOO_NEW,
  ErrorCode.DB_MIGRATION_MODIFIED,
  ErrorCode.DB_MIGRATION_FAILED,
  ErrorCode.DB_ENCRYPTION_PENDING,
  ErrorCode.DB_ENCRYPTION_UNSUPPORTED,
  ErrorCode.DB_STATE_MISMATCH,
  ErrorCode.DB_LOCKED,
  ErrorCode.DB_KEY_INVALID,
  ErrorCode.MANIFEST_INVALID,
  ErrorCode.MANIFEST_TOO_NEW,
];

/** What `db check` prints for a file it will not open: why, and what integrity_check says of it. */
function printRefused(file: string, integrity: string[], err: AppError, json: boolean | undefined): void {
  if (json) printJson({ ok: false, databasePath: file, integrity, error: err.toJSON() });
  else {
    const status = err.code === ErrorCode.DB_CORRUPT ? 'DAMAGED' : `REFUSED (${err.code})`;
    printLines([`database   ${printable(file)}`, `status     ${status}`, ...integrity.map((l) => `integrity  ${printable(l)}`)]);
  }
}

/**
 * Why integrity_check cannot run on `file` through a read-only connection, or undefined when it
 * can. A missing or empty file holds nothing to check. Without SQLite's header the file is
 * encrypted, whose pages only its key reads (which this look has not), or no database at all:
 * SQLite would call both "not a database", so neither is guessed at. What is not a regular file
 * is not opened (a FIFO would block SQLite's open).
 */
function whyNotReadable(file: string): string | undefined {
  try {
    switch (fileKind(file)) {
      case 'plaintext':
        return sideFileNotRegular(file);
      case 'missing':
        return 'there is no database file';
      case 'empty':
        return 'the file is empty';
      case 'encrypted':
        return `the file does not start with SQLite's header: it is encrypted (only its key can check it: blufio vault verify ${shellWord(path.dirname(file))}) or not a database`;
    }
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why the open will create the database: its file is missing or empty; undefined when it is not. */
function freshFile(file: string): string | undefined {
  try {
    const kind = fileKind(file);
    return kind === 'missing' ? 'there was no database file' : kind === 'empty' ? 'the database file was empty' : undefined;
  } catch {
    return undefined; // the open says what it is
  }
}

/**
 * What a file the open refused is found to hold: integrity_check through a read-only connection,
 * which changes nothing (it does not even play back a hot -journal: SQLite's refusal to is then
 * the answer), or one line saying why it was not run.
 */
function diagnosis(file: string): string[] {
  const why = whyNotReadable(file);
  return why === undefined ? diagnose(file).integrity : [`not checked: ${why}`];
}

/**
 * A plaintext file is checked on a read-only connection before the app opens it, whatever its
 * journal mode: the open writes (it switches a rollback-journal file, as every backup is, to
 * WAL; it returns the jobs and marks the sessions of dead processes; it may migrate; its close
 * checkpoints), so damage found only afterwards would be reported on a file already changed.
 * A healthy file is checked twice for it. Empty when it looks whole, or when it cannot be judged
 * here: missing, empty or encrypted (only the app's open has the key), not a file or beside a
 * side file that is not one (the open says so), beside a -journal that only a writer may roll
 * back, or when SQLite could not look for a reason that is not damage.
 */
function damageSeenReadOnly(file: string): string[] {
  if (whyNotReadable(file) !== undefined || fs.existsSync(`${file}-journal`)) return [];
  const { integrity, judged } = diagnose(file);
  // Not judged (a lock, an I/O error): the open that follows says what it is.
  return !judged || (integrity.length === 1 && integrity[0] === 'ok') ? [] : integrity;
}

export function dbCommand(): Command {
  const db = new Command('db').description('the database: check it, back it up');

  db.command('check')
    .description('run integrity and foreign-key checks; show schema version, sizes and counts (creates the database on first use)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const file = loadConfig(configOptions(cmd)).databasePath;
      // A missing or empty file is made a new, empty database by the open below: said, never
      // reported as a plain "ok" (a database truncated to 0 bytes, or deleted, came back empty
      // and healthy, its sessions and vault entries gone without a word).
      const fresh = freshFile(file);
      const seen = damageSeenReadOnly(file);
      if (seen.length > 0) {
        const err = corrupt(file);
        printRefused(file, seen, err, opts.json);
        throw err;
      }
      let report: CheckReport;
      try {
        report = await withApp(cmd, (app) => app.db.check());
      } catch (err) {
        // A file blufio will not open still gets a diagnosis, from a read-only look at it.
        if (isAppError(err) && REFUSALS.includes(err.code)) printRefused(file, diagnosis(file), err, opts.json);
        throw err;
      }
      if (opts.json) printJson(fresh === undefined ? report : { ...report, created: fresh });
      else printLines([...describe(report), ...(fresh === undefined ? [] : [`created    ${fresh}: this check created a new, empty database (if it held data, restore it from a backup)`])]);
      if (!report.ok) throw corrupt(report.databasePath);
    });

  db.command('backup')
    .description('write a consistent, checked copy of the live database to <dest> (mode 0600, atomic)')
    .argument('<dest>', 'path of the backup file to create')
    .option('--force', 'replace <dest> if it exists')
    .option('--json', 'print the result as JSON')
    .action(async (dest: string, opts: { force?: boolean; json?: boolean }, cmd: Command) => {
      const r = await withApp(cmd, (app) => app.db.backup(dest, { force: opts.force ?? false }));
      if (opts.json) printJson(r);
      else printLines([`backup written to ${printable(r.dest)} (${formatBytes(r.bytes)}, integrity ok, ${r.durationMs} ms)`]);
    });

  return db;
}
