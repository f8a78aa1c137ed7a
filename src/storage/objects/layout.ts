import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError, ErrorCode } from '../../errors/index.js';
import { DIR_MODE, fsyncDir } from '../files.js';
import { fileSystemError } from '../sqlite-errors.js';

/**
 * Where the object store keeps its files, inside `objects/` (vault.json's object_store.dir):
 *   <aa>/<address>   a stored object, under the first two hex digits of its address (so no
 *                    directory grows past a few thousand entries);
 *   .tmp/<owner>.part  a put being written: only ever renamed to its final name inside the
 *                    database transaction that records it, so a crash leaves no half object
 *                    under a final name, and a file with no row is garbage;
 *   .trash/<address> a file whose last row a gc or delete has just removed: moved here inside
 *                    that transaction and unlinked after its commit (restored if the commit
 *                    never happened).
 */
export const TMP_DIR = '.tmp';
export const TRASH_DIR = '.trash';

export const ADDRESS = /^[0-9a-f]{64}$/;
/** A reference: `obj_` and a ULID. */
export const OBJECT_REF = /^obj_[0-9A-HJKMNP-TV-Z]{26}$/;
/** How long a reference is: text given as one that is longer is shown by its length (a pasted token is no ref). */
export const OBJECT_REF_CHARS = 30;
/** A reference as a whole JSON string value, the way message metadata holds one. */
const REF_IN_JSON = /"(obj_[0-9A-HJKMNP-TV-Z]{26})"/g;

/** The fan-out directory a stored file lives in: the first two hex digits of its address. */
export function fanDir(dir: string, address: string): string {
  return path.join(dir, address.slice(0, 2));
}

export function blobPath(dir: string, address: string): string {
  return path.join(fanDir(dir, address), address);
}

/** A file in the trash: `<address>.<random>`, unique per move, so unlinking one never takes another. */
export const TRASH_NAME = /^([0-9a-f]{64})\.[0-9a-f]{12}$/;

export function trashPath(dir: string, name: string): string {
  return path.join(dir, TRASH_DIR, name);
}

/** A fresh trash name for a file of `address`. */
export function trashName(address: string): string {
  return `${address}.${randomBytes(6).toString('hex')}`;
}

/**
 * The trash files holding `address` (a delete or gc whose commit never came). A `.trash` that is
 * not a directory of the store's own (a file, a symlink) holds nothing of the store's: the
 * store never wrote there, and a symlink is not followed out of objects/.
 */
export function inTrash(dir: string, address: string): string[] {
  if (!isOwnDir(path.join(dir, TRASH_DIR))) return [];
  return listDir(path.join(dir, TRASH_DIR))
    .filter((n) => n.startsWith(`${address}.`) && TRASH_NAME.test(n))
    .map((n) => trashPath(dir, n));
}

/** The references named in a JSON text (metadata, a payload), once each. */
export function refsIn(json: string, into: Set<string> = new Set()): Set<string> {
  if (!json.includes('"obj_')) return into;
  for (const m of json.matchAll(REF_IN_JSON)) into.add(m[1]!);
  return into;
}

/**
 * mkdir 0700 that tolerates a directory another process just made; says whether it made it. One
 * that exists must be a directory of its own: a symlink in its place (to another disk, another
 * user's directory) would send writes, and gc's deletions, where the store never meant them to go.
 */
export function makeDir(dir: string): boolean {
  try {
    fs.mkdirSync(dir, { mode: DIR_MODE });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  ownDir(dir);
  return false;
}

/** Whether `dir` exists; when it does it must be a directory, not a symlink to one (see makeDir). */
export function ownDir(dir: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (!st.isDirectory()) {
    throw new AppError(ErrorCode.DB_IO, `${dir} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}; the object store writes only into directories of its own`, {
      hint: 'move it away (blufio objects verify lists what the store holds); nothing was changed',
    });
  }
  return true;
}

/**
 * Where a stored file may be: its place, then the trash (a delete running meanwhile moves the
 * file from one to the other, so the trash is listed only once the place is found empty). Its
 * directory must be the store's own: through a symlink in its place a read would take bytes,
 * and a delete remove a file, outside objects/ (KC_DB_IO, from ownDir).
 */
export function* blobCandidates(dir: string, address: string): Generator<string> {
  ownDir(fanDir(dir, address));
  yield blobPath(dir, address);
  yield* inTrash(dir, address);
}

/** ownDir that answers instead of throwing: false for a symlink, a file, or nothing there. */
export function isOwnDir(dir: string): boolean {
  try {
    return ownDir(dir);
  } catch {
    return false;
  }
}

/** A name under objects/ that is a plain file (not a directory, symlink, FIFO or device). */
export function isPlainFile(file: string): boolean {
  try {
    return fs.lstatSync(file).isFile();
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

/**
 * Moves `from` to `to` (creating `to`'s directory) and syncs the directory, so the new name
 * survives power loss. Idempotent for the transaction retry: when `from` is already gone and
 * `to` is there, the move happened. Two files at one address hold the same content (plain) or
 * open to the same content (encrypted), so replacing one with the other loses nothing.
 */
export function place(from: string, to: string): void {
  const parent = path.dirname(to);
  if (makeDir(parent)) fsyncDir(path.dirname(parent));
  try {
    fs.renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && exists(to) && !exists(from)) return;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AppError(ErrorCode.DB_IO, `the object's temporary file ${from} disappeared before it was stored`, {
        hint: 'put it again (a gc that judged the put abandoned may have removed it)',
      });
    }
    throw err;
  }
  fsyncDir(parent);
}

/**
 * A file-system failure as an AppError a person can act on, so that it fails only the request
 * it belongs to (the writer fails a whole batch on anything else) and carries a stable code.
 */
export function fileError(what: string, err: unknown): unknown {
  return fileSystemError(what, err, {
    io: 'check the data directory and its objects/ (blufio objects verify)',
    readonly: 'check the permissions of the data directory and its objects/',
    full: 'free some space (blufio objects gc removes what nothing references)',
  }) ?? err;
}

/** Unlinks a file, quietly when it is already gone; returns whether it was there. */
export function removeFile(p: string): boolean {
  try {
    fs.unlinkSync(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** `.tmp/<pid>_<starttime>_<hex>.part`: the owner token (see liveness.ts) with `_` for `:`. */
export function tempOwner(name: string): string | undefined {
  const m = /^(\d+_\d*_[0-9a-f]+)_[0-9a-f]+\.part$/.exec(name);
  return m === null ? undefined : m[1]!.replaceAll('_', ':');
}

export function tempName(owner: string, nonce: string): string {
  return `${owner.replaceAll(':', '_')}_${nonce}.part`;
}
