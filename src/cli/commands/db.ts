import { Command } from 'commander';
import { AppError, ErrorCode } from '../../errors/index.js';
import type { CheckReport } from '../../storage/index.js';
import { withApp } from '../context.js';
import { formatBytes, printable, printJson, printLines } from '../output.js';

function describe(r: CheckReport): string[] {
  const s = r.counts.sessions;
  return [
    `database   ${printable(r.databasePath)}`,
    `status     ${r.ok ? 'ok' : 'DAMAGED'}`,
    `schema     version ${r.schemaVersion} (this blufio supports up to ${r.supportedSchemaVersion})`,
    `journal    ${r.journalMode}, durability ${r.durability}`,
    `sqlite     ${r.sqlite.version} (${r.sqlite.binding})`,
    `size       ${formatBytes(r.sizes.databaseBytes)} + ${formatBytes(r.sizes.walBytes)} WAL; ${r.sizes.pageCount} pages of ${r.sizes.pageSize} bytes, ${r.sizes.freePages} free`,
    `sessions   ${s.total} (active ${s.active}, paused ${s.paused}, interrupted ${s.interrupted}, closed ${s.closed})`,
    `messages   ${r.counts.messages}`,
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
      const report = await withApp(cmd, (app) => app.db.check());
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
