import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { readManifest, type Manifest } from '../dbcrypt/index.js';
import { AppError, ErrorCode } from '../errors/index.js';
import { isPlainFile, isPrivateTemp, listDir, writePrivateFile } from '../storage/index.js';

/**
 * The file in objects/ that says which vault the directory belongs to. objects/ may be a
 * symlink to another disk, and a copy of the data directory (cp -a) copies the link: two vaults
 * would then share one directory, and each one's gc would take the other's files for garbage.
 * The name starts with a dot, so it is never taken for an object or a fan-out directory.
 */
export const MARKER = '.vault';

interface Marker {
  vault_id: string;
  /** The real path of the vault directory (vault.json's home) that wrote it. */
  vault_dir: string;
}

export interface ClaimInput {
  /** The objects/ directory. */
  dir: string;
  vaultId: string;
  vaultDir: string;
  log: Logger;
}

function readMarker(dir: string): Marker | undefined {
  let text: string;
  try {
    // Not followed: a link in its place could make another vault's marker speak for this one.
    const fd = fs.openSync(path.join(dir, MARKER), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw notADirectory(dir);
    throw unreadable(dir, (err as NodeJS.ErrnoException).code ?? String(err));
  }
  try {
    const m = JSON.parse(text) as Partial<Marker>;
    if (typeof m.vault_id === 'string' && typeof m.vault_dir === 'string') return { vault_id: m.vault_id, vault_dir: m.vault_dir };
  } catch {
    // said below
  }
  throw unreadable(dir, 'it is not a marker this store wrote');
}

/** The object store's directory is a file (or a link to one): nothing there is the store's. */
export function notADirectory(dir: string): AppError {
  return new AppError(ErrorCode.DB_OPEN_FAILED, `the object store ${dir} is a file, not a directory`, {
    hint: `move ${dir} away (blufio makes the directory again at the next put); nothing was changed`,
    details: { dir },
  });
}

function unreadable(dir: string, why: string): AppError {
  const file = path.join(dir, MARKER);
  return new AppError(ErrorCode.DB_STATE_MISMATCH, `cannot tell which vault the object store ${dir} belongs to: ${file}: ${why}`, {
    hint: `if ${dir} holds this vault's objects and no other's, remove ${file} (the next write puts it back); nothing was changed`,
  });
}

function serialise(m: Marker): string {
  return `${JSON.stringify(m)}\n`;
}

function realDir(dir: string): string | undefined {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return undefined;
  }
}

/** Whether `other` is a vault directory of the same vault whose object store is this very directory (not a copy of it). */
function sharedWith(other: string, c: ClaimInput): boolean {
  let m: Manifest | undefined;
  try {
    m = readManifest(other)?.manifest;
  } catch {
    return true; // a vault.json there that cannot be read: not known to be gone, so not taken over
  }
  if (m === undefined || m.vault_id !== c.vaultId) return false;
  try {
    const theirs = fs.statSync(path.join(other, m.object_store.dir));
    const ours = fs.statSync(c.dir);
    return theirs.dev === ours.dev && theirs.ino === ours.ino;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function refused(c: ClaimInput, found: Marker): AppError {
  const copy = found.vault_id === c.vaultId;
  return new AppError(
    ErrorCode.DB_STATE_MISMATCH,
    copy
      ? `the object store ${c.dir} is also that of the vault in ${found.vault_dir}, of which this data directory is a copy; writes here could lose that vault's attachments (gc takes what its database does not record for garbage)`
      : `the object store ${c.dir} belongs to another vault (vault_id ${found.vault_id}, in ${found.vault_dir}); writes here could lose its attachments (gc takes what this database does not record for garbage)`,
    {
      hint: copy
        ? `give this data directory an object store of its own: replace ${c.dir} (a link to the shared directory) with a copy of what it holds (cp -a --dereference), then run blufio objects gc; reads still work; nothing was changed`
        : `point ${c.dir} at a directory of its own (this vault's objects, or an empty one); if the other vault is gone for good and its attachments are not wanted, remove ${path.join(c.dir, MARKER)} and this vault takes the directory over; reads still work; nothing was changed`,
    },
  );
}

/**
 * Makes sure objects/ is this vault's before anything is written or removed there. No marker
 * yet (a new store, or one from before markers): this vault writes one. The same vault in
 * another directory: the data directory was moved (the marker is rewritten) unless that
 * directory still holds the vault and the same objects/, which is then shared by a copy, and
 * refused like another vault's store. Returns false when there is no objects/ (nothing to guard).
 */
export function claimObjectDir(c: ClaimInput): boolean {
  if (!fs.existsSync(c.dir)) return false;
  const mine: Marker = { vault_id: c.vaultId, vault_dir: fs.realpathSync.native(c.vaultDir) }; // .native: `..` as the kernel takes it
  let found = readMarker(c.dir);
  if (found === undefined) {
    if (writePrivateFile(c.dir, MARKER, serialise(mine), { exclusive: true })) return true;
    found = readMarker(c.dir) ?? mine; // another process wrote one first (and may have gone again)
  }
  if (found.vault_id === mine.vault_id && found.vault_dir === mine.vault_dir) return true;
  // The directory it names may now be a symlink to this one (moved, a link left at the old
  // path): that is this vault, not a copy sharing its store.
  const sameDir = found.vault_id === mine.vault_id && realDir(found.vault_dir) === mine.vault_dir;
  if (!sameDir && (found.vault_id !== mine.vault_id || sharedWith(found.vault_dir, c))) throw refused(c, found);
  writePrivateFile(c.dir, MARKER, serialise(mine));
  c.log.info({ dir: c.dir, from: found.vault_dir, to: mine.vault_dir }, 'the object store moved with its data directory; it now names the new one');
  return true;
}

/**
 * When the marker was written (its mtime): the files of objects/ no row records are swept only
 * when written after it. Older ones were there before this vault claimed the directory (a store
 * from before markers, one whose marker was removed, or taken over), and may be another copy's
 * (one whose objects/ was the same directory when this vault wrote its marker): they are kept,
 * and verify counts them. Infinity (nothing swept) when there is no marker to go by.
 */
export function claimedSince(dir: string): number {
  try {
    return fs.lstatSync(path.join(dir, MARKER)).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** A marker is written in one synchronous call: a temporary of it older than this was left by a process killed meanwhile. */
const MARKER_TEMP_STALE_MS = 60_000;

/** Whether `name` (in objects/) is a temporary file of a marker being written. */
export function isMarkerTemp(name: string): boolean {
  return isPrivateTemp(name, MARKER);
}

/** Removes temporaries of markers whose writer was killed; returns how many. */
export function sweepMarkerTemps(dir: string): number {
  let removed = 0;
  for (const name of listDir(dir)) {
    const file = path.join(dir, name);
    if (!isMarkerTemp(name) || !isPlainFile(file)) continue;
    try {
      if (Date.now() - fs.lstatSync(file).mtimeMs < MARKER_TEMP_STALE_MS) continue;
      fs.unlinkSync(file);
      removed++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}
