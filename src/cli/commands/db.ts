import fs from 'node:fs';
import { Command } from 'commander';
import { fileKind } from '../../dbcrypt/index.js';
import { loadConfig } from '../../config/index.js';
import { AppError, ErrorCode, isAppError } from '../../errors/index.js';
import { diagnose, type CheckReport } from '../../storage/index.js';
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

/** What `db check` prints for a file it will not open: what integrity_check says of it. */
function printDamaged(file: string, integrity: string[], err: AppError, json: boolean | undefined): void {
  if (json) printJson({ ok: false, databasePath: file, integrity, error: err.toJSON() });
  else printLines([`database   ${printable(file)}`, 'status     DAMAGED', ...integrity.map((l) => `integrity  ${printable(l)}`)]);
}

/**
 * A plaintext file is checked on a read-only connection before the app opens it, whatever its
 * journal mode: the open writes (it switches a rollback-journal file, as every backup is, to
 * WAL; it returns the jobs and marks the sessions of dead processes; it may migrate; its close
 * checkpoints), so damage found only afterwards would be reported on a file already changed.
 * A healthy file is checked twice for it. Empty when it looks whole, or when it cannot be judged
 * here: missing, empty or encrypted (only the app's open has the key), not a file (the open
 * says so), or beside a -journal that only a writer may roll back.
 */
function damageSeenReadOnly(file: string): string[] {
  try {
    if (fileKind(file) !== 'plaintext' || fs.existsSync(`${file}-journal`)) return [];
  } catch {
    return [];
  }
  const integrity = diagnose(file);
  return integrity.length === 1 && integrity[0] === 'ok' ? [] : integrity;
}

export function dbCommand(): Command {
  const db = new Command('db').description('the database: check it, back it up');

  db.command('check')
    .description('run integrity and foreign-key checks; show schema version, sizes and counts (creates the database on first use)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const file = loadConfig(configOptions(cmd)).databasePath;
      const seen = damageSeenReadOnly(file);
      if (seen.length > 0) {
        const err = corrupt(file);
        printDamaged(file, seen, err, opts.json);
        throw err;
      }
      let report: CheckReport;
      try {
        report = await withApp(cmd, (app) => app.db.check());
      } catch (err) {
        // A file blufio will not open still gets a diagnosis, from a read-only look at it.
        if (isAppError(err, ErrorCode.DB_CORRUPT)) printDamaged(file, diagnose(file), err, opts.json);
        throw err;
      }
      if (opts.json) printJson(report);
      else printLines(describe(report));
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
