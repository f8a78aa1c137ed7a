import fs from 'node:fs';
import path from 'node:path';
import Database from '../storage/driver.js';
import { withVaultLock } from './dirlock.js';
import { RESERVED_NAMES } from './layout.js';
import type { Env } from '../config/index.js';
import { AppError, ErrorCode, isAppError } from '../errors/index.js';
import { applyCipherKey } from '../storage/sqlite.js';
import { assertSideFilesRegular, sideFileNotRegular } from '../storage/files.js';
import { assertNewPassphrase, type PassphraseProvider } from '../vault/index.js';
import { assertCipherSupport, databasePassphrase, keyFor, pendingError, takeDbKey } from './gate.js';
import { cipherCheck, deriveDbKey, fileKind, rawKeyLiteral, readSalt } from './keys.js';
import { newManifest, readManifest, writeManifest, type Manifest, type MigrationEvent } from './manifest.js';
import { migrateDatabase, type MigrationStep } from './migrate.js';
import { EXPORT_SCHEMA, validate } from './registry.js';
import { inspect, mismatch, recover, type VaultState } from './state.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export interface StatusReport {
  vault_path: string;
  manifest_present: boolean;
  manifest_source_version: 1 | 2 | 3 | null;
  db_encryption: Manifest['db_encryption'];
  database: { file: string; kind: string; bytes: number; wal_bytes: number };
  consistent: boolean;
  /** What this command did to finish or roll back an interrupted migration. */
  recovered: string[];
}

function statusOf(s: VaultState, recovered: string[]): StatusReport {
  return {
    vault_path: s.dir,
    manifest_present: s.present,
    manifest_source_version: s.sourceVersion,
    db_encryption: s.manifest.db_encryption,
    database: { file: s.manifest.database_file, kind: s.kind, bytes: s.bytes, wal_bytes: s.walBytes },
    consistent: mismatch(s) === undefined,
    recovered,
  };
}

/** Where the key is, and the passphrase it holds now. */
function passphraseFrom(envName: string, dir: string, env: Env): { reference: string; passphrase: string } {
  if (!ENV_NAME.test(envName)) {
    // Not quoted: what is given here by mistake is most often the passphrase itself.
    throw new AppError(ErrorCode.INVALID_INPUT, `--passphrase-env must name an environment variable (letters, digits, _); the ${[...envName].length} characters given are not a name`, {
      hint: 'give the name of the variable that holds the passphrase (--passphrase-env BLUFIO_DB_KEY), never the passphrase itself',
    });
  }
  if (envName.endsWith('_FILE')) {
    // The slip of naming the file variable: its value, a path, would become the passphrase, and
    // every later open would read the same path and work, so nothing would ever say so.
    throw new AppError(ErrorCode.INVALID_INPUT, '--passphrase-env names a variable ending in _FILE, whose value (a path) would be taken as the passphrase itself', {
      hint: 'give the name without _FILE (for DBKEY_FILE=/path/to/file, --passphrase-env DBKEY): that reads the passphrase from the file <name>_FILE names; nothing was changed',
    });
  }
  const passphrase = takeDbKey(env, envName, dir);
  if (passphrase === undefined || passphrase === '') {
    // Not named either: a passphrase of letters, digits and _ (CORRECT_HORSE_BATTERY_STAPLE_42)
    // passes for a name, and would have been printed three times. The caller has the name at hand.
    throw new AppError(ErrorCode.INVALID_INPUT, `the environment variable that --passphrase-env names (${[...envName].length} characters) is not set (or empty), nor the same name with _FILE`, {
      hint: 'export that variable with the database passphrase first, or <name>_FILE naming a file that holds it (kept out of the environment); it is read from there now and on every later open. --passphrase-env takes the name, never the passphrase itself',
    });
  }
  return { reference: `env:${envName}`, passphrase };
}

/** Opens an encrypted file with a passphrase and reads its schema: KC_DB_KEY_INVALID if it does not fit. */
async function checkKey(file: string, passphrase: string): Promise<void> {
  // A FIFO beside it would block the open for ever, with the vault's lock held.
  assertSideFilesRegular(file);
  const literal = await keyFor(file, passphrase);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    applyCipherKey(db, literal);
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_NOTADB') {
      throw new AppError(ErrorCode.DB_KEY_INVALID, `the passphrase does not open ${file}`, { hint: 'check the passphrase; nothing was changed' });
    }
    throw err;
  } finally {
    db.close();
  }
}

/** A vault path must be an existing directory: a typo must not create one. */
function assertVaultDir(dir: string): void {
  let ok = false;
  try {
    ok = fs.statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new AppError(ErrorCode.NOT_FOUND, `${dir} is not a directory`, { hint: 'give the data directory that holds blufio.db (and vault.json)' });
}

/** A regular file (a directory, a FIFO or a dangling link is none: skipped, never opened). */
function isRegularFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function usable(s: VaultState, allowPendingEncrypted = false): Manifest {
  const wrong = mismatch(s);
  if (wrong !== undefined && !(allowPendingEncrypted && wrong.code === ErrorCode.DB_STATE_MISMATCH && s.manifest.db_encryption.state === 'pending_migration')) throw wrong;
  if (!s.present && s.kind === 'missing') {
    // No manifest and no blufio.db: a database under another name (storage.database_path) must
    // not be mistaken for a vault without one.
    const other = fs
      .readdirSync(s.dir)
      .find((n) => n !== s.manifest.database_file && !RESERVED_NAMES.includes(n) && isRegularFile(path.join(s.dir, n)) && fileKind(path.join(s.dir, n)) === 'plaintext');
    if (other !== undefined) {
      throw new AppError(ErrorCode.DB_STATE_MISMATCH, `${s.dir} has no vault.json and no ${s.manifest.database_file}, but ${other} is a SQLite database`, {
        hint: 'open it once with blufio (storage.database_path naming it), which writes vault.json for it; nothing was changed',
      });
    }
  }
  return s.present ? s.manifest : newManifest(s.manifest.database_file, Date.now());
}

const COMMAND_LOCK_MS = 60_000;

export async function dbEncryptStatus(dir: string): Promise<StatusReport> {
  assertVaultDir(dir);
  return withVaultLock(dir, COMMAND_LOCK_MS, () => {
    const { state, actions } = recover(dir);
    return statusOf(state, actions);
  });
}

/**
 * Records that the database is to be encrypted, with the key's source. With no database yet, it
 * will be encrypted from birth; over a plaintext database the intent is recorded and every open
 * refuses until `migrate` has run.
 */
export async function dbEncryptEnable(dir: string, opts: { passphraseEnv: string; env?: Env }): Promise<StatusReport & { changed: boolean }> {
  const { reference, passphrase } = passphraseFrom(opts.passphraseEnv, dir, opts.env ?? process.env);
  assertVaultDir(dir);
  // Before anything is recorded: an intent no open could ever fulfil would leave every open refused.
  assertCipherSupport();
  return withVaultLock(dir, COMMAND_LOCK_MS, () => enableLocked(dir, reference, passphrase));
}

async function enableLocked(dir: string, reference: string, passphrase: string): Promise<StatusReport & { changed: boolean }> {
  const { state, actions } = recover(dir);
  const m = usable(state);
  const de = m.db_encryption;
  if (de.state === 'encrypted' && state.kind === 'encrypted') await checkKey(state.databasePath, passphrase);
  // With no encrypted database yet, this passphrase is the one it will be made with.
  else assertNewPassphrase(passphrase, 'database passphrase');
  // Waiting to migrate a plaintext database that is gone: nothing is left to migrate, so the
  // next one is encrypted from birth, as when enabling before there is a database.
  const nothingToMigrate = de.state === 'pending_migration' && (state.kind === 'missing' || state.kind === 'empty');
  const { pending: _pending, ...settled } = de;
  const next: Manifest['db_encryption'] =
    de.state === 'plaintext'
      ? { ...de, enabled: true, key_reference: reference, state: state.kind === 'plaintext' ? 'pending_migration' : 'encrypted' }
      : nothingToMigrate
        ? { ...settled, key_reference: reference, state: 'encrypted' }
        : { ...de, key_reference: reference };
  if (nothingToMigrate) actions.push(`the plaintext database vault.json waited to migrate is ${state.kind}: a new database will be encrypted from birth`);
  const changed = !state.present || JSON.stringify(next) !== JSON.stringify(de);
  if (changed) writeManifest(state.dir, { ...m, db_encryption: next });
  return { ...statusOf(inspect(dir), actions), changed };
}

export interface MigrateCommandOptions {
  passphraseEnv: string;
  nowMs: number;
  env?: Env;
  onStep?: (step: MigrationStep) => void;
}

/** Encrypts the plaintext database in place (enabling first when needed). Idempotent. */
export async function dbEncryptMigrate(dir: string, opts: MigrateCommandOptions): Promise<StatusReport & { migrated: boolean; event: MigrationEvent | null }> {
  if (!Number.isSafeInteger(opts.nowMs) || opts.nowMs < 0 || opts.nowMs > 8.64e15) {
    throw new AppError(ErrorCode.INVALID_INPUT, `--now-ms must be a time in milliseconds since 1970 (a whole number), not ${String(opts.nowMs)}`);
  }
  const { reference, passphrase } = passphraseFrom(opts.passphraseEnv, dir, opts.env ?? process.env);
  assertVaultDir(dir);
  assertCipherSupport();
  return withVaultLock(dir, COMMAND_LOCK_MS, () => migrateLocked(dir, opts, reference, passphrase));
}

async function migrateLocked(
  dir: string,
  opts: MigrateCommandOptions,
  reference: string,
  passphrase: string,
): Promise<StatusReport & { migrated: boolean; event: MigrationEvent | null }> {
  const { state, actions } = recover(dir);
  let m = usable(state, true);
  const de = m.db_encryption;
  if (de.state === 'pending_migration' && state.kind === 'encrypted') {
    // Already encrypted, yet recorded as waiting (a copy in place without its record): if the
    // passphrase opens it, it is this vault's database, and the record is put right.
    await checkKey(state.databasePath, passphrase);
    const { pending: _p, ...rest } = de;
    writeManifest(state.dir, { ...m, db_encryption: { ...rest, state: 'encrypted', key_reference: reference } });
    return { ...statusOf(inspect(dir), [...actions, 'the database was already encrypted: vault.json now says so']), migrated: false, event: null };
  }
  if (de.state === 'pending_migration' && state.kind !== 'plaintext') {
    throw new AppError(ErrorCode.DB_ENCRYPTION_MIGRATION_FAILED, `${state.databasePath} is ${state.kind}, but vault.json waits for it to be migrated`, {
      hint: 'nothing was changed; put the plaintext database back (from a backup) and run migrate again, or run db-encrypt enable again to start a new database, encrypted from birth',
    });
  }
  if (de.state === 'encrypted' || state.kind !== 'plaintext') {
    if (state.kind === 'encrypted') await checkKey(state.databasePath, passphrase);
    if (de.state === 'plaintext') {
      // No database yet: encrypted from birth, nothing to migrate.
      assertNewPassphrase(passphrase, 'database passphrase');
      m = { ...m, db_encryption: { ...de, enabled: true, state: 'encrypted', key_reference: reference } };
      writeManifest(state.dir, m);
    }
    return { ...statusOf(inspect(dir), actions), migrated: false, event: null };
  }
  m = { ...m, db_encryption: { ...de, enabled: true, state: 'pending_migration', key_reference: reference } };
  const { event } = await migrateDatabase(state.dir, m, {
    passphrase,
    keyReference: reference,
    nowMs: opts.nowMs,
    ...(opts.onStep === undefined ? {} : { onStep: opts.onStep }),
  });
  return { ...statusOf(inspect(dir), actions), migrated: true, event };
}

export interface VerifyReport {
  vault_path: string;
  ok: boolean;
  manifest: { present: boolean; source_version: 1 | 2 | 3 | null; valid: boolean };
  database: { file: string; kind: string; bytes: number; wal_bytes: number } | null;
  /** Pages whose HMAC fails; null when the database is not encrypted or could not be checked. */
  cipher_check: { pages: number; bad_pages: number[] } | null;
  integrity: string[] | null;
  problems: string[];
  /** The code verify fails with (the CLI's exit): what an open would fail with first; null when ok. */
  code: string | null;
}

/**
 * The most telling problem's code when the file and vault.json agree (a wrong key is not damage,
 * and a script must be able to tell), else KC_DB_CORRUPT. Leftovers come last: an open would
 * remove them and then fail on the key.
 */
const VERIFY_CODES: readonly string[] = [
  ErrorCode.MANIFEST_TOO_NEW,
  ErrorCode.MANIFEST_INVALID,
  ErrorCode.DB_ENCRYPTION_UNSUPPORTED,
  ErrorCode.NOT_FOUND,
  ErrorCode.DB_OPEN_FAILED,
  ErrorCode.DB_IO,
  ErrorCode.DB_ENCRYPTION_PENDING,
  ErrorCode.DB_LOCKED,
  ErrorCode.DB_KEY_INVALID,
  ErrorCode.DB_CORRUPT,
  ErrorCode.DB_STATE_MISMATCH,
];

function verifyCode(problems: readonly string[], mismatchCode: string | undefined): string | null {
  if (problems.length === 0) return null;
  // A file that disagrees with vault.json is what an open refuses first, whatever else is wrong.
  if (mismatchCode !== undefined) return mismatchCode;
  const codes = new Set(problems.map((p) => /^(KC_[A-Z_]+): /.exec(p)?.[1]));
  return VERIFY_CODES.find((c) => codes.has(c)) ?? ErrorCode.DB_CORRUPT;
}

/**
 * Checks without changing anything: the manifest against its schema, the database against the
 * manifest (encrypted exactly when it says so, no migration pending, no leftovers), and the
 * database's integrity (with its key, when encrypted).
 */
export async function verifyVault(dir: string, opts: { env?: Env; ask?: PassphraseProvider } = {}): Promise<VerifyReport> {
  const abs = path.resolve(dir);
  assertVaultDir(abs);
  let loaded: ReturnType<typeof readManifest>;
  try {
    loaded = readManifest(abs);
  } catch (err) {
    if (!isAppError(err)) throw err;
    return { vault_path: abs, ok: false, manifest: { present: true, source_version: null, valid: false }, database: null, cipher_check: null, integrity: null, problems: [`${err.code}: ${err.message}`], code: err.code };
  }
  let s: VaultState;
  try {
    s = inspect(abs);
  } catch (err) {
    // The manifest is sound; the database file is what cannot be read (a directory in its place).
    if (!isAppError(err)) throw err;
    const manifest = { present: loaded !== undefined, source_version: loaded?.sourceVersion ?? null, valid: true };
    return { vault_path: abs, ok: false, manifest, database: null, cipher_check: null, integrity: null, problems: [`${err.code}: ${err.message}`], code: err.code };
  }
  const problems: string[] = [];
  const de = s.manifest.db_encryption;
  if (!s.present) problems.push(`${ErrorCode.NOT_FOUND}: there is no vault.json (blufio writes one when it first opens the database)`);
  const wrong = mismatch(s);
  if (wrong !== undefined) problems.push(`${wrong.code}: ${wrong.message}`);
  if (de.state === 'pending_migration') problems.push(`${ErrorCode.DB_ENCRYPTION_PENDING}: ${pendingError(abs, s.manifest).message}`);
  if (s.leftovers.length > 0) problems.push(`${ErrorCode.DB_STATE_MISMATCH}: leftover files of an interrupted operation: ${s.leftovers.join(', ')} (any blufio command that opens the vault removes them)`);
  let cipher: VerifyReport['cipher_check'] = null;
  let integrity: string[] | null = null;
  let keyWrong = false;
  const state = s;
  const report = (): VerifyReport => ({
    vault_path: state.dir,
    ok: problems.length === 0,
    manifest: { present: state.present, source_version: state.sourceVersion, valid: true },
    database: { file: state.manifest.database_file, kind: state.kind, bytes: state.bytes, wal_bytes: state.walBytes },
    cipher_check: cipher,
    integrity,
    problems: problems.sort(),
    code: verifyCode(problems, wrong?.code),
  });
  if (wrong === undefined && (s.kind === 'plaintext' || s.kind === 'encrypted')) {
    let key: Buffer | undefined;
    let salt: Buffer | undefined;
    try {
      if (s.kind === 'encrypted') {
        salt = readSalt(s.databasePath);
        if (salt === undefined) {
          problems.push(`${ErrorCode.DB_CORRUPT}: the database file is too short to hold its salt`);
          return report();
        }
        // The HMAC check below needs no SQLCipher, but integrity_check does: a build without it
        // would read every page as damage.
        assertCipherSupport();
        key = await deriveDbKey(await databasePassphrase(s.manifest, s.dir, { env: opts.env ?? process.env, ask: opts.ask }), salt);
        const cc = cipherCheck(s.databasePath, key, salt);
        cipher = { pages: cc.pages, bad_pages: cc.badPages.slice(0, 100) };
        // Not one page authenticates: the key is wrong (damage that thorough is not damage).
        keyWrong = cc.pages > 0 && cc.badPages.length === cc.pages;
        if (keyWrong) {
          problems.push(
            `${ErrorCode.DB_KEY_INVALID}: no page of the database authenticates under this key: the key is wrong, or the file's salt (its first 16 bytes) or the whole file was altered (restore it from a backup if the key is right)`,
          );
        }
        else if (cc.badPages.length > 0) problems.push(`${ErrorCode.DB_CORRUPT}: ${cc.badPages.length} of ${cc.pages} pages fail their HMAC (damage or tampering)`);
        if (cc.partialPage) problems.push(`${ErrorCode.DB_CORRUPT}: the database file is not a whole number of pages`);
      }
      if (keyWrong) return report();
      const side = sideFileNotRegular(s.databasePath);
      if (side !== undefined) {
        problems.push(`${ErrorCode.DB_OPEN_FAILED}: ${side}; integrity_check was not run (SQLite would open it)`);
        return report();
      }
      const db = new Database(s.databasePath, { readonly: true, fileMustExist: true });
      try {
        if (key !== undefined && salt !== undefined) applyCipherKey(db, rawKeyLiteral(key, salt));
        integrity = (db.pragma('integrity_check(100)', { simple: false }) as { integrity_check: string }[]).map((r) => r.integrity_check);
      } finally {
        db.close();
      }
      if (integrity.length !== 1 || integrity[0] !== 'ok') problems.push(`${ErrorCode.DB_CORRUPT}: integrity_check failed`);
    } catch (err) {
      problems.push(isAppError(err) ? `${err.code}: ${err.message}` : `${ErrorCode.DB_CORRUPT}: integrity_check could not run: ${(err as Error).message}`);
    } finally {
      key?.fill(0);
    }
  }
  return report();
}

export interface ExportReport {
  report: 'blufio_vault_export';
  report_version: 1;
  vault_path: string;
  manifest_present: boolean;
  manifest_source_version: 1 | 2 | 3 | null;
  manifest: Manifest;
  database: { file: string; kind: string; bytes: number; wal_bytes: number };
  consistent: boolean;
  leftovers: string[];
}

/** The vault's metadata as a deterministic report, checked against its schema in the registry. */
export function exportVault(dir: string): ExportReport {
  assertVaultDir(dir);
  const s = inspect(dir);
  // Without a manifest there is no metadata to report, and the defaults would carry a vault id
  // made up on the spot: a different report on every run.
  if (!s.present) {
    throw new AppError(ErrorCode.NOT_FOUND, `${path.join(s.dir, 'vault.json')} does not exist: there is no vault metadata to export`, {
      hint: 'blufio writes it when it first opens the database (or run blufio vault db-encrypt enable)',
    });
  }
  const report: ExportReport = {
    report: 'blufio_vault_export',
    report_version: 1,
    vault_path: s.dir,
    manifest_present: s.present,
    manifest_source_version: s.sourceVersion,
    manifest: s.manifest,
    database: { file: s.manifest.database_file, kind: s.kind, bytes: s.bytes, wal_bytes: s.walBytes },
    consistent: mismatch(s) === undefined,
    leftovers: s.leftovers,
  };
  const problems = validate(EXPORT_SCHEMA, JSON.parse(JSON.stringify(report)));
  if (problems.length > 0) {
    throw new AppError(ErrorCode.INTERNAL, `the export report fails its own schema: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`);
  }
  return report;
}
