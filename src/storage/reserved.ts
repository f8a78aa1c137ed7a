import path from 'node:path';
import { isPrivateTemp } from './files.js';
import { ownersDir } from './liveness.js';

/*
 * The names blufio keeps in the data directory besides the database, in one place for whatever
 * must not write over them or mistake them for something else (a backup, the object store, the
 * vault's search for stray databases).
 */

/** The vault's manifest, beside the database. */
export const MANIFEST_FILE = 'vault.json';

/**
 * The vault directory's own files besides the database: the manifest, the two lock files (each
 * an empty SQLite file, so one looks like a database to whoever reads its header), the daemon's
 * state and token. Never a database, never the object store's directory.
 */
export const RESERVED_NAMES: readonly string[] = [MANIFEST_FILE, 'vault.lock', 'daemon.json', 'daemon.lock', 'rpc.token'];

/**
 * The encrypted copy a DB-encryption migration builds beside the database before it replaces it.
 * The copy and its side files are leftovers that the next open of the vault removes.
 */
export function migrationCopyPath(db: string): string {
  return `${db}.encrypting`;
}

/** Temporary manifests (`.vault.json.<pid>.<hex>.tmp`): removed once their writer is dead. */
export function isManifestTemp(name: string): boolean {
  return isPrivateTemp(name, MANIFEST_FILE);
}

/** The object store's directory beside the database, as a new vault.json names it. */
export const OBJECTS_DIR = 'objects';

export { sideFiles } from './files.js';

/** Directories blufio keeps beside `db` whose contents are its own: the object store, the owners' locks. */
export function reservedDirs(db: string): string[] {
  return [path.join(path.dirname(db), OBJECTS_DIR), ownersDir(db)];
}
