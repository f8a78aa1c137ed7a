import fs from 'node:fs';
import path from 'node:path';
import { AppError, ErrorCode, shellWord, shown } from '../errors/index.js';
import { writePrivateFile } from '../storage/files.js';
import { fileSystemError } from '../storage/sqlite-errors.js';
import { MANIFEST_FILE } from '../storage/reserved.js';
import { UlidGenerator } from '../storage/ids.js';
import { canonicalJson } from './canonical.js';
import { firstDuplicateKey } from './json-keys.js';
import { LATEST_MANIFEST_VERSION, MANIFEST_SCHEMAS, validate, type ManifestVersion } from './registry.js';

export { isManifestTemp, MANIFEST_FILE } from '../storage/reserved.js';
/** A manifest is a few hundred bytes; anything this large is not one. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

export type DbEncryptionState = 'plaintext' | 'pending_migration' | 'encrypted';

/** The payload recorded when a plaintext database has been replaced by its encrypted copy. */
export interface MigrationEvent {
  event: 'db_encryption_migrated';
  at_ms: number;
  mode: 'sqlcipher_v4';
  database_file: string;
  /** Rows per table, as verified in the copy. */
  tables: Record<string, number>;
  bytes_before: number;
  bytes_after: number;
}

/** vault.json as schema v3 describes it: the one internal model every version is read into. */
export interface Manifest {
  schema_version: 3;
  vault_id: string;
  created_at_ms: number;
  database_file: string;
  object_store: { enabled: boolean; dir: string; encryption: { enabled: boolean; algorithm: 'aes-256-gcm' } };
  db_encryption: {
    enabled: boolean;
    mode: 'sqlcipher_v4';
    kdf: { algorithm: 'pbkdf2_hmac_sha512'; iterations: 256000 };
    /** `env:NAME`, or null: the key is asked for on a terminal. */
    key_reference: string | null;
    state: DbEncryptionState;
    pending?: { salt_hex: string; now_ms: number; event?: MigrationEvent };
    last_migration?: MigrationEvent;
  };
}

export interface LoadedManifest {
  manifest: Manifest;
  /** The schema_version the file was written with (1, 2 or 3). */
  sourceVersion: ManifestVersion;
}

export const SQLCIPHER_KDF_ITERATIONS = 256000;

export function manifestPath(dir: string): string {
  return path.join(dir, MANIFEST_FILE);
}

export function newManifest(databaseFile: string, nowMs: number): Manifest {
  return {
    schema_version: 3,
    vault_id: new UlidGenerator().next(nowMs),
    created_at_ms: nowMs,
    database_file: databaseFile,
    object_store: { enabled: false, dir: 'objects', encryption: { enabled: false, algorithm: 'aes-256-gcm' } },
    db_encryption: {
      enabled: false,
      mode: 'sqlcipher_v4',
      kdf: { algorithm: 'pbkdf2_hmac_sha512', iterations: SQLCIPHER_KDF_ITERATIONS },
      key_reference: null,
      state: 'plaintext',
    },
  };
}

/** A file-system failure of the vault directory as the AppError a person can act on. */
export function ioError(what: string, err: unknown): AppError {
  return fileSystemError(what, err) ?? new AppError(ErrorCode.DB_IO, `${what}: ${(err as Error).message}`, { cause: err });
}

function invalid(file: string, why: string): AppError {
  return new AppError(ErrorCode.MANIFEST_INVALID, `${file} is not a valid vault manifest: ${why}`, {
    // Not `vault export`: it refuses such a manifest the same way.
    hint: `nothing was changed; blufio vault verify ${shellWord(path.dirname(file))} lists its problems; restore vault.json from a backup of this directory (its fields: README, Database encryption)`,
  });
}

/**
 * Reads vault.json, checks it against the schema of the version it declares, and returns it as
 * the v3 model; undefined when there is none. Anything else is refused whole: a manifest that is
 * not JSON, fails its schema, or comes from a newer blufio is never half-read.
 */
export function readManifest(dir: string): LoadedManifest | undefined {
  const file = manifestPath(dir);
  let raw: Buffer;
  try {
    // Not followed: writes replace vault.json by renaming over it, which would replace a link
    // and leave the file it points to stale (and a dangling one is not "no manifest").
    const st = fs.lstatSync(file);
    if (st.isSymbolicLink()) throw invalid(file, 'it is a symbolic link; vault.json must be a file of its own');
    if (!st.isFile()) throw invalid(file, 'it is not a regular file');
    if (st.size > MAX_MANIFEST_BYTES) throw invalid(file, `it is ${st.size} bytes, far more than a manifest holds`);
    raw = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof AppError) throw err;
    throw ioError(`cannot read ${file}`, err);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw invalid(file, 'it is not UTF-8 text');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `it is not JSON (${(err as Error).message})`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw invalid(file, 'it is not a JSON object');
  const twice = firstDuplicateKey(text);
  if (twice !== undefined) throw invalid(file, `the key ${shown(twice)} appears twice in one object, so what it says is ambiguous`);
  const version = (doc as Record<string, unknown>).schema_version;
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw invalid(file, 'schema_version is missing or not a positive integer');
  }
  if (version > LATEST_MANIFEST_VERSION) {
    throw new AppError(
      ErrorCode.MANIFEST_TOO_NEW,
      `${file} has schema_version ${version}; this blufio reads versions 1 to ${LATEST_MANIFEST_VERSION}`,
      { hint: 'it was written by a newer blufio: upgrade blufio to open this vault; nothing was changed' },
    );
  }
  const v = version as ManifestVersion;
  // An encryption mode this blufio does not know is its own error, not a malformed file: a
  // newer blufio (or another tool) may have written it on purpose.
  const mode = ((doc as Record<string, unknown>).db_encryption as Record<string, unknown> | undefined)?.mode;
  if (v >= 3 && typeof mode === 'string' && mode !== 'sqlcipher_v4') {
    throw new AppError(ErrorCode.DB_ENCRYPTION_UNSUPPORTED, `${file} asks for database encryption mode ${JSON.stringify(mode)}; this blufio supports sqlcipher_v4 only`, {
      hint: 'open it with the blufio that enabled that mode; nothing was changed',
    });
  }
  const problems = validate(MANIFEST_SCHEMAS[v], doc);
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).map((p) => `${p.path || '/'} ${p.message}`);
    throw invalid(file, `against schema v${v}: ${shown.join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`);
  }
  return { manifest: normalise(doc as Record<string, unknown>, v), sourceVersion: v };
}

/** v1 and v2 gain the blocks they lack, with the behaviour they had: no object encryption, no DB encryption. */
function normalise(doc: Record<string, unknown>, v: ManifestVersion): Manifest {
  const base = newManifest(doc.database_file as string, doc.created_at_ms as number);
  const out: Manifest = { ...base, vault_id: doc.vault_id as string };
  if (v >= 2) out.object_store = structuredClone(doc.object_store) as Manifest['object_store'];
  if (v >= 3) out.db_encryption = structuredClone(doc.db_encryption) as Manifest['db_encryption'];
  return out;
}

/** The bytes of a manifest: deterministic, always schema v3. */
export function serialiseManifest(m: Manifest): string {
  const problems = validate(MANIFEST_SCHEMAS[3], JSON.parse(JSON.stringify(m)));
  if (problems.length > 0) {
    throw new AppError(ErrorCode.INTERNAL, `refusing to write an invalid vault manifest: ${problems.map((p) => `${p.path} ${p.message}`).join('; ')}`);
  }
  return canonicalJson(m);
}

/**
 * Replaces vault.json atomically: a private temporary file beside it, synced, renamed over it,
 * the directory synced. A crash leaves the old manifest or the new one, never a mix.
 */
export function writeManifest(dir: string, m: Manifest): void {
  const text = serialiseManifest(m);
  try {
    writePrivateFile(dir, MANIFEST_FILE, text);
  } catch (err) {
    throw ioError(`cannot write ${manifestPath(dir)}`, err);
  }
}
