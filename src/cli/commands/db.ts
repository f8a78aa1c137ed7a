import { Command } from 'commander';
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

export function dbCommand(): Command {
  const db = new Command('db').description('the database: check it, back it up');

  db.command('check')
    .description('run integrity and foreign-key checks; show schema version, sizes and counts (creates the database on first use)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      let report: CheckReport;
      try {
        report = await withApp(cmd, (app) => app.db.check());
      } catch (err) {
        // A file blufio will not open still gets a diagnosis, from a read-only look at it.
        if (isAppError(err, ErrorCode.DB_CORRUPT)) {
          const file = loadConfig(configOptions(cmd)).databasePath;
          const integrity = diagnose(file);
          if (opts.json) printJson({ ok: false, databasePath: file, integrity, error: err.toJSON() });
          else printLines([`database   ${printable(file)}`, 'status     DAMAGED', ...integrity.map((l) => `integrity  ${printable(l)}`)]);
        }
        throw err;
      }
      if (opts.json) printJson(report);
      else printLines(describe(report));
      if (!report.ok) {
        throw new AppError(ErrorCode.DB_CORRUPT, `integrity check failed for ${report.databasePath}`, {
          hint: 'stop the daemon and restore the latest backup (blufio db backup makes them)',
        });
      }
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
