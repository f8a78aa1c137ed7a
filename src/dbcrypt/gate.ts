import fs from 'node:fs';
import path from 'node:path';
import Database, { BINDING } from '../storage/driver.js';
import type { Env } from '../config/index.js';
import { emitSecretFileWarning, takeSecret, takeSecretEnv, type SecretFileWarning } from '../config/index.js';
import { AppError, ErrorCode, shellWord } from '../errors/index.js';
import { ensurePrivateDir } from '../storage/files.js';
import { assertNewPassphrase, VAULT_KEY_ENV, type PassphraseProvider } from '../vault/index.js';
import { deriveDbKey, fileKind, newSalt, rawKeyLiteral, readSalt } from './keys.js';
import { newManifest, readManifest, writeManifest, type Manifest } from './manifest.js';
import { inspect, mismatch, recover, type VaultState } from './state.js';
import { acquireVaultLock } from './dirlock.js';

export interface GateOptions {
  env: Env;
  ask?: PassphraseProvider | undefined;
  nowMs?: number;
  /** How long to wait for another process that holds the vault directory (a migration). */
  lockTimeoutMs?: number;
  /** Told of a key file (`<NAME>_FILE`) every user can read; Node's warning channel if absent. */
  warn?: SecretFileWarning;
}

export interface Gate {
  manifest: Manifest;
  /** The SQLCipher key literal when the database is encrypted. */
  cipherKey?: string;
  /** The passphrase the key came from, for the redactor to match while the database is open. */
  passphrase?: string;
  /** Releases the vault directory's lock: call it once the database is open (or failed to). */
  release: () => void;
}

let cipherSupported: boolean | undefined;

/** The SQLite build in use must have SQLCipher's format (the binding is built with it; a stand-in may not be). */
export function assertCipherSupport(): void {
  if (cipherSupported === undefined) {
    const db = new Database(':memory:');
    try {
      cipherSupported = String(db.pragma("cipher = 'sqlcipher'", { simple: true })) === 'sqlcipher';
    } catch {
      cipherSupported = false;
    } finally {
      db.close();
    }
  }
  if (!cipherSupported) {
    throw new AppError(ErrorCode.DB_ENCRYPTION_UNSUPPORTED, `the SQLite library in use (${BINDING}) cannot read SQLCipher v4 databases`, {
      hint: 'reinstall blufio so that its own SQLite binding (better-sqlite3-multiple-ciphers) is used',
    });
  }
}

/**
 * Which directory a database key taken from the environment belongs to (see takeSecretEnv):
 * the real path, so that two spellings of one directory (a symlink) are one (.native: as the
 * kernel resolves `..` after a link).
 */
export function keyScope(dir: string): string {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return path.resolve(dir);
  }
}

/**
 * The database key from where key_reference points: the variable it names, or the file that
 * `<NAME>_FILE` names (which keeps it out of the process's initial environment).
 */
export function takeDbKey(env: Env, name: string, dir: string, warn: SecretFileWarning = emitSecretFileWarning): string | undefined {
  return takeSecret(env, name, keyScope(dir), warn);
}

/** `env:NAME` → NAME. */
export function envName(keyReference: string | null): string | undefined {
  return keyReference?.startsWith('env:') ? keyReference.slice(4) : undefined;
}

/**
 * A new vault passphrase while vault.json takes the database key from the vault's own variable
 * (`--passphrase-env BLUFIO_VAULT_KEY`, "one passphrase for both") would leave no value of that
 * variable that opens both: the database keeps the old passphrase (blufio cannot rekey it in
 * place), and a service started headless could open neither. So the change is refused until the
 * database has a variable of its own. A database asked for at a prompt is not concerned: the
 * two passphrases are then asked for one after the other.
 */
export function refuseSharedKeyChange(databasePath: string): void {
  const dir = path.dirname(databasePath);
  const de = readManifest(dir)?.manifest.db_encryption;
  if (de?.enabled !== true || envName(de.key_reference) !== VAULT_KEY_ENV) return;
  throw new AppError(
    ErrorCode.INVALID_INPUT,
    `the encrypted database's key comes from ${VAULT_KEY_ENV} too (key_reference in ${path.join(dir, 'vault.json')}): a new vault passphrase would leave no value of ${VAULT_KEY_ENV} that opens both; nothing was changed`,
    { hint: `give the database its own variable first: BLUFIO_DB_KEY=<the current passphrase> blufio vault db-encrypt enable ${shellWord(dir)} --passphrase-env BLUFIO_DB_KEY; then change the vault passphrase, and set both variables from then on` },
  );
}

export function pendingError(dir: string, m: Manifest): AppError {
  const env = envName(m.db_encryption.key_reference) ?? 'DBKEY';
  return new AppError(
    ErrorCode.DB_ENCRYPTION_PENDING,
    `database encryption is enabled for ${dir} but the plaintext database has not been migrated yet`,
    { hint: `run: blufio vault db-encrypt migrate ${shellWord(dir)} --passphrase-env ${env} --now-ms $(date +%s%3N)` },
  );
}

/** The database passphrase: from where key_reference points, else a hidden prompt, else locked. */
export async function databasePassphrase(m: Manifest, dir: string, opts: GateOptions, isNew = false): Promise<string> {
  const name = envName(m.db_encryption.key_reference);
  const fromEnv = name === undefined ? undefined : takeDbKey(opts.env, name, dir, opts.warn);
  const p = fromEnv ?? (await opts.ask?.(isNew ? 'new-database' : 'database'));
  if (p === undefined || p === '') {
    throw new AppError(ErrorCode.DB_LOCKED, 'the database is encrypted and no key is available', {
      hint: name === undefined ? 'run on a terminal to be asked for it' : `set ${name} (vault.json names it as the key's source) or ${name}_FILE (a file that holds it), or run on a terminal to be asked`,
    });
  }
  return p;
}

/**
 * Everything that must hold before the database is opened: the directory recovered from any
 * interrupted migration, a manifest (written on first use), the file as the manifest says, and,
 * for an encrypted database, its key. A new database under an enabled manifest is encrypted
 * from its first byte (a fresh salt).
 */
export async function openGate(databasePath: string, opts: GateOptions): Promise<Gate> {
  const dir = path.dirname(databasePath);
  const peeked = peek(databasePath);
  takeKeyEnv(peeked?.manifest, dir, opts.env);
  ensurePrivateDir(dir);
  const asked = await askBeforeLock(databasePath, peeked, opts);
  const release = await acquireVaultLock(dir, opts.lockTimeoutMs ?? 60_000);
  try {
    return { ...(await gateLocked(databasePath, dir, opts, asked)), release };
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * A person at a prompt may take minutes, and while the vault directory's lock is held every
 * other open of it waits (a daemon starting under systemd would time out): so when the state
 * read without the lock says a prompt will be needed, it is asked first. The locked pass
 * decides again and uses the answer only if the database is still encrypted.
 */
async function askBeforeLock(databasePath: string, s: VaultState | undefined, opts: GateOptions): Promise<string | undefined> {
  if (opts.ask === undefined || s === undefined) return undefined;
  const de = s.manifest.db_encryption;
  // A config that names another file than vault.json does fails first, without a prompt.
  if (!s.present || de.state !== 'encrypted' || mismatch(s) !== undefined || s.databasePath !== path.resolve(databasePath)) return undefined;
  const name = envName(de.key_reference);
  if (name !== undefined && takeDbKey(opts.env, name, s.dir, opts.warn) !== undefined) return undefined; // no prompt: the variable or its file has it
  return databasePassphrase(s.manifest, s.dir, opts, s.kind !== 'encrypted');
}

/** The directory's state read without its lock: undefined when it cannot be read now (the locked pass reports why). */
function peek(databasePath: string): VaultState | undefined {
  try {
    return inspect(path.dirname(databasePath), path.basename(databasePath));
  } catch {
    return undefined;
  }
}

/**
 * The database key's variable (named by key_reference) leaves the environment whatever the
 * state, and first of all: an open that fails later (the directory's lock held elsewhere, a
 * state mismatch, a wrong key) must leave nothing for a child process. Its value stays at hand
 * for this process (takeSecretEnv).
 */
function takeKeyEnv(m: Manifest | undefined, dir: string, env: Env): void {
  const name = envName(m?.db_encryption.key_reference ?? null);
  if (name !== undefined) takeSecretEnv(env, name, keyScope(dir));
}

async function gateLocked(databasePath: string, dir: string, opts: GateOptions, asked?: string): Promise<Omit<Gate, 'release'>> {
  const { state } = recover(dir, path.basename(databasePath));
  let manifest = state.manifest;
  if (state.databasePath !== path.resolve(databasePath)) {
    throw new AppError(
      ErrorCode.CONFIG_INVALID,
      `${path.join(dir, 'vault.json')} describes the database ${manifest.database_file}, but the config names ${path.basename(databasePath)}`,
      { hint: 'use the file name vault.json records in storage.database_path; nothing was changed' },
    );
  }
  const wrong = mismatch(state);
  if (wrong !== undefined) throw wrong;
  if (!state.present) {
    manifest = newManifest(manifest.database_file, opts.nowMs ?? Date.now());
    writeManifest(dir, manifest);
  }
  const de = manifest.db_encryption;
  takeKeyEnv(manifest, dir, opts.env); // again: vault.json may have changed since it was peeked at
  if (de.state === 'pending_migration') throw pendingError(dir, manifest);
  if (de.state === 'plaintext') return { manifest };
  assertCipherSupport();
  const passphrase = asked ?? (await databasePassphrase(manifest, dir, opts, state.kind !== 'encrypted'));
  return { manifest, cipherKey: await keyFor(state.databasePath, passphrase), passphrase };
}

/** The key literal for `file` under `passphrase`: its own salt, or a fresh one for a new file. */
export async function keyFor(file: string, passphrase: string): Promise<string> {
  const existing = fileKind(file) === 'encrypted';
  if (!existing) assertNewPassphrase(passphrase, 'database passphrase');
  const salt = existing ? readSalt(file) : newSalt();
  if (salt === undefined) throw new AppError(ErrorCode.DB_CORRUPT, `${file} is too short to be a database`);
  const key = await deriveDbKey(passphrase, salt);
  try {
    return rawKeyLiteral(key, salt);
  } finally {
    key.fill(0);
  }
}
