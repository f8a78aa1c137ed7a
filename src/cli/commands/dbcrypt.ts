import { Command } from 'commander';
import {
  canonicalJson,
  dbEncryptEnable,
  dbEncryptMigrate,
  dbEncryptStatus,
  exportVault,
  verifyVault,
  type StatusReport,
} from '../../dbcrypt/index.js';
import { AppError, ErrorCode, type ErrorCodeValue } from '../../errors/index.js';
import { formatBytes, formatTime, printable, printLines } from '../output.js';
import { promptPassphrase } from '../prompt.js';

/** Reports are printed in their canonical form: the same state, the same bytes. */
function printCanonical(v: unknown): void {
  process.stdout.write(canonicalJson(v));
}

function describe(r: StatusReport): string[] {
  const de = r.db_encryption;
  const state = { plaintext: 'off (plaintext)', pending_migration: 'enabled, migration pending', encrypted: 'on (SQLCipher v4)' }[de.state];
  return [
    ...r.recovered.map((a) => `recovered  ${a}`),
    `vault      ${printable(r.vault_path)}${r.manifest_present ? ` (vault.json v${r.manifest_source_version})` : ' (no vault.json yet)'}`,
    `database   ${printable(r.database.file)}: ${r.database.kind}, ${formatBytes(r.database.bytes)} + ${formatBytes(r.database.wal_bytes)} WAL`,
    `encryption ${state}${de.state === 'plaintext' ? '' : `, key from ${de.key_reference === null ? 'a prompt' : printable(de.key_reference)}`}`,
    ...(de.last_migration === undefined ? [] : [`migrated   ${formatTime(de.last_migration.at_ms)} (${formatBytes(de.last_migration.bytes_before)} -> ${formatBytes(de.last_migration.bytes_after)})`]),
    ...(r.consistent ? [] : ['MISMATCH   the database file does not match vault.json (blufio vault verify says more)']),
  ];
}

function nowMs(text: string): number {
  if (!/^\d{1,16}$/.test(text)) throw new AppError(ErrorCode.CLI_USAGE, `--now-ms takes milliseconds since 1970, e.g. $(date +%s%3N); got ${JSON.stringify(text)}`);
  return Number(text);
}

export function dbEncryptCommand(): Command {
  const c = new Command('db-encrypt').description('whole-database encryption (SQLCipher v4): status, enable, migrate');

  c.command('status')
    .description('whether the database is encrypted, pending migration or plaintext; finishes or rolls back an interrupted migration')
    .argument('<vault_path>', 'the data directory (holds vault.json and the database)')
    .option('--json', 'print JSON (deterministic)')
    .action(async (dir: string, opts: { json?: boolean }) => {
      const r = await dbEncryptStatus(dir);
      if (opts.json) printCanonical(r);
      else printLines(describe(r));
    });

  c.command('enable')
    .description('turn encryption on: a new database is encrypted from birth; an existing one waits for migrate (opens refuse until then)')
    .argument('<vault_path>', 'the data directory')
    .requiredOption('--passphrase-env <ENV>', 'environment variable holding the database passphrase; recorded as where the key comes from')
    .option('--json', 'print JSON (deterministic)')
    .action(async (dir: string, opts: { passphraseEnv: string; json?: boolean }) => {
      const r = await dbEncryptEnable(dir, { passphraseEnv: opts.passphraseEnv });
      if (opts.json) printCanonical(r);
      else printLines([...describe(r), r.changed ? 'enabled' : 'already enabled; nothing changed']);
    });

  c.command('migrate')
    .description('encrypt the existing plaintext database: verified copy, atomic swap, plaintext removed; stop blufio serve first')
    .argument('<vault_path>', 'the data directory')
    .requiredOption('--passphrase-env <ENV>', 'environment variable holding the database passphrase')
    .requiredOption('--now-ms <ms>', 'the time to record in the migration event, in ms since 1970 (e.g. $(date +%s%3N))')
    .option('--json', 'print JSON (deterministic)')
    .action(async (dir: string, opts: { passphraseEnv: string; nowMs: string; json?: boolean }) => {
      const r = await dbEncryptMigrate(dir, { passphraseEnv: opts.passphraseEnv, nowMs: nowMs(opts.nowMs) });
      if (opts.json) printCanonical(r);
      else printLines([...describe(r), r.migrated ? 'migrated: the database is encrypted and the plaintext one is gone' : 'nothing to migrate']);
    });
  return c;
}

export function vaultInspectCommands(vault: Command): void {
  vault
    .command('verify')
    .description('check vault.json against its schema, the database against vault.json, and integrity (asks for the key when needed); changes nothing')
    .argument('<vault_path>', 'the data directory')
    .option('--json', 'print JSON (deterministic)')
    .action(async (dir: string, opts: { json?: boolean }) => {
      const r = await verifyVault(dir, { ask: promptPassphrase });
      if (opts.json) printCanonical(r);
      else {
        printLines([
          `vault      ${printable(r.vault_path)}: ${r.ok ? 'ok' : 'PROBLEMS'}`,
          ...(r.cipher_check === null ? [] : [`cipher     ${r.cipher_check.pages - r.cipher_check.bad_pages.length} of ${r.cipher_check.pages} pages authenticated`]),
          ...(r.integrity === null ? [] : [`integrity  ${printable(r.integrity.join('; '))}`]),
          ...r.problems.map((p) => `problem    ${printable(p)}`),
        ]);
      }
      if (!r.ok) throw new AppError((r.code ?? ErrorCode.DB_CORRUPT) as ErrorCodeValue, `verification of ${r.vault_path} found ${r.problems.length} problem(s)`, { hint: 'see the problems listed above' });
    });

  vault
    .command('export')
    .description('print a deterministic JSON report of the vault metadata (manifest, DB encryption state); no secrets')
    .argument('<vault_path>', 'the data directory')
    .action((dir: string) => printCanonical(exportVault(dir)));
}
