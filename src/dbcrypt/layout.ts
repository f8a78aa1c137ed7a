import fs from 'node:fs';
import path from 'node:path';
import { AppError, ErrorCode } from '../errors/index.js';
import { isManifestTemp, migrationCopyPath as copyPath, sideFiles } from '../storage/reserved.js';

export { migrationCopyPath as copyPath, OBJECTS_DIR, RESERVED_NAMES, sideFiles } from '../storage/reserved.js';

/**
 * What an interrupted migration or manifest write leaves in the vault directory: the copy and
 * its side files, and temporary manifests. Names only, sorted.
 */
export function leftovers(dir: string, db: string): string[] {
  const copy = copyPath(db);
  const ours = new Set([copy, ...sideFiles(copy)].map((f) => path.basename(f)));
  // Never the live database or its own files, whatever they are called.
  const live = new Set([db, ...sideFiles(db)].map((f) => path.basename(f)));
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => !live.has(n) && (ours.has(n) || isManifestTemp(n))).sort();
}

/** Removes the copy a migration builds (temporary manifests are recover()'s, which checks their writer is dead). */
export function removeLeftovers(dir: string, db: string): string[] {
  const gone = leftovers(dir, db).filter((n) => !isManifestTemp(n));
  for (const n of gone) removeLeftover(path.join(dir, n));
  return gone;
}

/**
 * Removes a file (or link) blufio left at one of its own temporary names. Anything else there (a
 * directory) is not blufio's to remove: it is named, and the command stops before it changes
 * anything more, rather than failing on it with Node's own error.
 */
export function removeLeftover(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return; // already gone
  }
  if (st.isDirectory()) {
    throw new AppError(ErrorCode.DB_OPEN_FAILED, `${file} is a directory, at a name blufio uses for a temporary file of its own`, {
      hint: 'move it away (or remove it), then run the command again',
    });
  }
  fs.rmSync(file, { force: true });
}

export function sizeOrZero(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
