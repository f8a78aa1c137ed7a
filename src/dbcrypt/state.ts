import fs from 'node:fs';
import path from 'node:path';
import { AppError, ErrorCode } from '../errors/index.js';
import { orphanedWal } from '../storage/files.js';
import { isOwnerAlive } from '../storage/liveness.js';
import { fileKind, readSalt, type FileKind } from './keys.js';
import { copyPath, leftovers, removeLeftover, sideFiles, sizeOrZero } from './layout.js';
import { isManifestTemp, newManifest, readManifest, type Manifest } from './manifest.js';
import { completeMigration, lockExclusive } from './migrate.js';
import { DATABASE_FILE_NAME } from '../config/index.js';

/** A vault directory as it is on disk: its manifest (or the defaults) and its database file. */
export interface VaultState {
  dir: string;
  /** False: there is no vault.json yet and `manifest` holds the defaults. */
  present: boolean;
  sourceVersion: 1 | 2 | 3 | null;
  manifest: Manifest;
  databasePath: string;
  kind: FileKind;
  bytes: number;
  walBytes: number;
  leftovers: string[];
}

export function inspect(dir: string, defaultFile = DATABASE_FILE_NAME): VaultState {
  const abs = path.resolve(dir);
  const loaded = readManifest(abs);
  const manifest = loaded?.manifest ?? newManifest(defaultFile, 0);
  const databasePath = path.join(abs, manifest.database_file);
  return {
    dir: abs,
    present: loaded !== undefined,
    sourceVersion: loaded?.sourceVersion ?? null,
    manifest,
    databasePath,
    kind: fileKind(databasePath),
    bytes: sizeOrZero(databasePath),
    walBytes: sizeOrZero(sideFiles(databasePath)[1]!),
    leftovers: leftovers(abs, databasePath),
  };
}

/** What the file says against what the manifest says; undefined when they agree. */
export function mismatch(s: VaultState): AppError | undefined {
  const st = s.manifest.db_encryption.state;
  // Whatever vault.json says: no open can use these files, and `enable` must not take the
  // database for one not yet made (its pages, in clear, are in the -wal).
  if ((s.kind === 'missing' || s.kind === 'empty') && s.walBytes > 0) {
    const orphan = orphanedWal(s.databasePath);
    if (orphan !== undefined) return orphan;
  }
  if (!s.present && s.kind === 'encrypted') {
    return new AppError(
      ErrorCode.DB_CORRUPT,
      `${s.databasePath} is not a SQLite database: it is damaged, or it is an encrypted database whose vault.json is missing`,
      { hint: 'nothing was changed; restore the file (or its vault.json) from a backup, or move it away to start fresh' },
    );
  }
  if (st === 'plaintext' && s.kind === 'encrypted') {
    return new AppError(
      ErrorCode.DB_STATE_MISMATCH,
      `${s.databasePath} is encrypted (or not a SQLite file), but ${path.join(s.dir, 'vault.json')} says the database is plaintext`,
      { hint: 'restore the vault.json that belongs to this database (blufio vault export shows the state); nothing was changed' },
    );
  }
  if (st === 'pending_migration' && s.kind === 'encrypted') {
    return new AppError(ErrorCode.DB_STATE_MISMATCH, `${s.databasePath} is already encrypted, but vault.json still waits for its migration`, {
      hint: 'run blufio vault db-encrypt migrate with the database passphrase: if it opens the file, vault.json is put right',
    });
  }
  const migrated = s.manifest.db_encryption.last_migration;
  if (st === 'encrypted' && (s.kind === 'missing' || s.kind === 'empty') && migrated !== undefined) {
    // An open would otherwise create a new, empty database under whatever passphrase it is given.
    return new AppError(
      ErrorCode.DB_STATE_MISMATCH,
      `${s.databasePath} is ${s.kind}, but vault.json records that it was migrated to encryption (at ${migrated.at_ms} ms)`,
      { hint: 'restore the encrypted database from a backup; to start afresh instead, move vault.json away too; nothing was changed' },
    );
  }
  if (st === 'encrypted' && s.kind === 'plaintext') {
    return new AppError(
      ErrorCode.DB_STATE_MISMATCH,
      `${s.databasePath} is a plaintext database, but vault.json says it is encrypted`,
      { hint: 'a plaintext file was put where the encrypted database belongs; move it away and restore the encrypted one; nothing was changed' },
    );
  }
  return undefined;
}

/**
 * Brings the directory back to a state without ambiguity after a crash, and says what it did:
 * - the encrypted copy of a migration is in place (its salt is the one recorded): the migration
 *   is completed (manifest, event, leftovers), which needs no key;
 * - the plaintext database is still in place: the copy is removed (unless a migration is running
 *   right now, which holds the database), and the intent stays recorded;
 * - temporary manifests of dead writers are removed.
 */
export function recover(dir: string, defaultFile = DATABASE_FILE_NAME): { state: VaultState; actions: string[] } {
  const actions: string[] = [];
  let s = inspect(dir, defaultFile);
  const de = s.manifest.db_encryption;
  if (s.present && de.state === 'pending_migration' && de.pending !== undefined) {
    const salt = s.kind === 'encrypted' ? readSalt(s.databasePath) : undefined;
    if (salt !== undefined && salt.toString('hex') === de.pending.salt_hex) {
      if (de.pending.event === undefined) {
        throw new AppError(ErrorCode.DB_ENCRYPTION_MIGRATION_FAILED, `${s.databasePath} is an encrypted copy whose verification was never recorded`, {
          hint: 'this should not happen; keep the directory as it is and report it',
        });
      }
      completeMigration(s.dir, s.manifest);
      actions.push('completed an interrupted migration: the encrypted database was already in place');
      s = inspect(dir, defaultFile);
    }
  }
  const copyFiles = [copyPath(s.databasePath), ...sideFiles(copyPath(s.databasePath))].map((f) => path.basename(f));
  const stale = s.leftovers.filter((n) => copyFiles.includes(n));
  if (stale.length > 0 && s.kind === 'plaintext') {
    // A migration in progress holds the plaintext database; its copy is not stale.
    const lock = lockExclusive(s.databasePath);
    if (lock !== undefined) {
      lock.close();
      for (const n of stale) removeLeftover(path.join(s.dir, n));
      actions.push(`removed the copy left by an interrupted migration (${stale.join(', ')}); the plaintext database is still the live one`);
    }
  } else if (stale.length > 0) {
    for (const n of stale) removeLeftover(path.join(s.dir, n));
    actions.push(`removed leftovers of a finished migration (${stale.join(', ')})`);
  }
  for (const n of s.leftovers.filter(isManifestTemp)) {
    const pid = /^\.vault\.json\.(\d+)\./.exec(n)?.[1];
    if (pid !== undefined && isOwnerAlive(`${pid}:`)) continue;
    removeLeftover(path.join(s.dir, n));
    actions.push(`removed ${n}, a manifest write that never finished`);
  }
  if (actions.length > 0) s = inspect(dir, defaultFile);
  return { state: s, actions };
}
