import fs from 'node:fs';
import path from 'node:path';
import { AppError, ErrorCode } from '../../errors/index.js';
import { fsErrorText } from '../sqlite-errors.js';
import type { WriterContext } from '../writer/context.js';
import { ADDRESS, blobPath, fanDir, fileError, isPlainFile, listDir, makeDir, ownDir, place, refsIn, removeFile, TRASH_DIR, TRASH_NAME, trashName, trashPath } from './layout.js';

/**
 * Object-store writes, run inside the writer thread's transactions. The file moves happen
 * inside the transaction too, so that no other process's transaction (a put, a gc) can fall
 * between a row changing and its file moving: the database's write lock orders them.
 */

export interface CommitObjectArgs {
  /** The objects/ directory. */
  dir: string;
  /** The finished, synced temporary file; null when the put passed its room and kept nothing (see writeBlob). */
  tmp: string | null;
  address: string;
  encrypted: boolean;
  size: number;
  storedSize: number;
  contentType: string;
  name: string | null;
  /** 0 = no limit. */
  maxTotalBytes: number;
}

export interface CommitObjectResult {
  id: string;
  createdAt: number;
  /** The same content was already stored: the new file was dropped. */
  deduplicated: boolean;
}

const TOTAL = 'objects:total';

/** The size of the file at `p` as it is (a link is not followed), or -1 when there is none. */
function fileSize(p: string): number {
  try {
    const st = fs.lstatSync(p);
    return st.isFile() ? st.size : -1;
  } catch {
    return -1;
  }
}

function storedTotal(ctx: WriterContext): number {
  return ctx.cached(TOTAL, () => ctx.stmt('SELECT coalesce(sum(stored_size), 0) FROM object_blobs').pluck().get() as number);
}

function commit(ctx: WriterContext, a: CommitObjectArgs): CommitObjectResult {
  const final = blobPath(a.dir, a.address);
  const stored = ctx.stmt('SELECT stored_size FROM object_blobs WHERE address = ?').pluck().get(a.address) as number | undefined;
  const known = stored !== undefined;
  const full = (total: number): AppError =>
    new AppError(ErrorCode.OBJECT_STORE_FULL, `storing ${a.storedSize} more bytes would take the object store past its limit of ${a.maxTotalBytes} (${total} stored)`, {
      hint: 'run blufio objects gc, delete objects you no longer need, or raise [objects] max_total_bytes',
    });
  if (a.tmp === null) {
    // Nothing was kept: only content already stored, its file in place and whole as far as its
    // size tells, can be an object now. A put of the content usually repairs a damaged copy (below);
    // this one has no bytes to do it with.
    if (!known) throw full(storedTotal(ctx));
    if (fileSize(final) !== stored) {
      throw new AppError(
        ErrorCode.OBJECT_STORE_FULL,
        `this content is stored, but its file is damaged or missing, and there was no room under the limit of ${a.maxTotalBytes} to store it again (${storedTotal(ctx)} stored)`,
        { hint: 'run blufio objects gc or delete objects you no longer need, then put it again (that repairs the file); blufio objects verify lists what is damaged' },
      );
    }
  } else if (!known) {
    const total = storedTotal(ctx);
    if (a.maxTotalBytes > 0 && total + a.storedSize > a.maxTotalBytes) throw full(total);
    place(a.tmp, final);
    ctx
      .stmt('INSERT INTO object_blobs (address, encrypted, size, stored_size, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(a.address, a.encrypted ? 1 : 0, a.size, a.storedSize, Date.now());
    ctx.remember(TOTAL, total + a.storedSize);
  } else if (stored === a.storedSize || fileSize(final) !== stored) {
    // The same content again: the new file, just hashed, replaces the old one, so a copy that
    // was damaged (or lost) is repaired by the next put of the content. Readers of the old one
    // keep reading it. A file lost, or of the wrong size, may come back in another chunk size
    // (encrypted addresses do not depend on it): the row then records the new file's size.
    if (stored !== a.storedSize) {
      const total = storedTotal(ctx);
      ctx.stmt('UPDATE object_blobs SET stored_size = ? WHERE address = ?').run(a.storedSize, a.address);
      ctx.remember(TOTAL, total - stored + a.storedSize);
    }
    place(a.tmp, final);
  } else {
    removeFile(a.tmp); // the same content in another chunk size: the stored file, whole as far as its size tells, serves
  }
  const now = Date.now();
  const id = `obj_${ctx.newId(now)}`;
  ctx
    .stmt('INSERT INTO objects (id, address, content_type, name, created_at) VALUES (?, ?, ?, ?, ?)')
    .run(id, a.address, a.contentType, a.name, now);
  return { id, createdAt: now, deduplicated: known };
}

/** References named in live rows other than messages: queue payloads, session metadata. */
function otherRefs(ctx: WriterContext): Set<string> {
  const out = new Set<string>();
  for (const t of ctx.stmt(`SELECT payload FROM job_payloads WHERE instr(payload, '"obj_') > 0`).pluck().iterate()) refsIn(t as string, out);
  for (const t of ctx.stmt(`SELECT metadata FROM sessions WHERE instr(metadata, '"obj_') > 0`).pluck().iterate()) refsIn(t as string, out);
  return out;
}

/** Removes an object row; when it was its blob's last, the blob row too, and its file to the trash. */
function dropObject(ctx: WriterContext, dir: string, no: number, address: string): { name: string; bytes: number } | undefined {
  ctx.stmt('DELETE FROM message_objects WHERE object_no = ?').run(no);
  ctx.stmt('DELETE FROM objects WHERE no = ?').run(no);
  if (ctx.stmt('SELECT 1 FROM objects WHERE address = ? LIMIT 1').pluck().get(address) !== undefined) return undefined;
  const bytes = ctx.stmt('DELETE FROM object_blobs WHERE address = ? RETURNING stored_size').pluck().get(address) as number | undefined;
  ctx.forget(); // the cached total
  const name = trashName(address);
  makeDir(path.join(dir, TRASH_DIR));
  // Through a symlink in the fan directory's place, the rename would take a file from outside
  // objects/ into the trash, where it is unlinked: refused (KC_DB_IO), the transaction undone.
  ownDir(fanDir(dir, address));
  try {
    fs.renameSync(blobPath(dir, address), trashPath(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // The file was already gone (verify reports that as missing): the rows go, and nothing on
    // disk was freed, so none is reported.
    return undefined;
  }
  return { name, bytes: bytes ?? 0 };
}

/**
 * Files left in the trash by a gc or delete whose transaction did not commit (their rows are
 * still there: the file goes back) or whose process died before unlinking them (returned, to be
 * unlinked after this transaction: a big unlink must not hold the write lock).
 */
function settleTrash(ctx: WriterContext, dir: string, out: string[]): void {
  if (!ownDir(path.join(dir, TRASH_DIR))) return;
  for (const name of listDir(path.join(dir, TRASH_DIR))) {
    const address = TRASH_NAME.exec(name)?.[1];
    if (address === undefined || !isPlainFile(trashPath(dir, name))) continue;
    const held = ctx.stmt('SELECT 1 FROM object_blobs WHERE address = ?').pluck().get(address) !== undefined;
    if (held && !fs.existsSync(blobPath(dir, address))) place(trashPath(dir, name), blobPath(dir, address));
    else out.push(name); // gone for good, or a put brought the same content back meanwhile
  }
}

export interface DeleteObjectArgs {
  dir: string;
  id: string;
  force: boolean;
}

export interface Freed {
  /** Names of files now in the trash, to unlink once the transaction has committed. */
  trash: string[];
  bytes: number;
  /** Why the directory swept could not be listed (its files were left for a later gc). */
  unreadable?: string;
}

function del(ctx: WriterContext, a: DeleteObjectArgs): Freed {
  const row = ctx.stmt('SELECT no, address FROM objects WHERE id = ?').get(a.id) as { no: number; address: string } | undefined;
  if (row === undefined) throw new AppError(ErrorCode.NOT_FOUND, `no object ${a.id}`, { hint: 'blufio objects stats counts the objects there are' });
  if (!a.force) {
    const messages = ctx.stmt('SELECT count(*) FROM message_objects WHERE object_no = ?').pluck().get(row.no) as number;
    const elsewhere = otherRefs(ctx).has(a.id);
    if (messages > 0 || elsewhere) {
      const where = [messages > 0 ? `${messages} message(s)` : '', elsewhere ? 'a queued job or a session' : ''].filter(Boolean).join(' and ');
      throw new AppError(ErrorCode.OBJECT_REFERENCED, `object ${a.id} is referenced by ${where}`, {
        hint: `pass { force: true } (blufio objects delete ${a.id} --force) to delete it anyway (the references then point at nothing)`,
      });
    }
  }
  const gone = dropObject(ctx, a.dir, row.no, row.address);
  return { trash: gone === undefined ? [] : [gone.name], bytes: gone?.bytes ?? 0 };
}

export interface CollectArgs {
  dir: string;
  /** Objects created before this (ms) and referenced by nothing are removed. */
  cutoff: number;
  /** At most this many per transaction: the write lock is not held for long. */
  limit: number;
  /** Where the previous round stopped (its `next`): objects it kept are not looked at again. */
  after?: GcCursor;
}

/** A place in the objects' (created_at, no) order. */
export interface GcCursor {
  createdAt: number;
  no: number;
}

export interface Collected extends Freed {
  objects: number;
  /** Unreferenced objects left alone because their fan-out directory is not the store's own. */
  skipped: number;
  /** There may be more: call again with `after: next`. */
  more: boolean;
  /** The last object this round looked at. */
  next?: GcCursor;
}

function collect(ctx: WriterContext, a: CollectArgs): Collected {
  const out: Collected = { trash: [], bytes: 0, objects: 0, skipped: 0, more: false };
  settleTrash(ctx, a.dir, out.trash);
  const live = otherRefs(ctx);
  // Paged on (created_at, no) from where the last round stopped: objects it kept (referenced from
  // a job or a session, or behind a foreign fan-out directory) never fill a window again.
  const after = a.after ?? { createdAt: -1, no: 0 };
  const window = a.limit + live.size + 1;
  const candidates = ctx
    .stmt(
      `SELECT no, id, address, created_at FROM objects o
       WHERE created_at < ? AND (created_at, no) > (?, ?)
         AND NOT EXISTS (SELECT 1 FROM message_objects m WHERE m.object_no = o.no)
       ORDER BY created_at, no LIMIT ?`,
    )
    .all(a.cutoff, after.createdAt, after.no, window) as { no: number; id: string; address: string; created_at: number }[];
  let examined = 0;
  for (const c of candidates) {
    if (out.objects >= a.limit) break;
    examined++;
    out.next = { createdAt: c.created_at, no: c.no };
    if (live.has(c.id)) continue;
    // A fan-out directory that is not the store's own (a symlink) is never gone through: its
    // objects stay (verify reports them) and the rest is collected. Checked before any row or
    // file moves: a throw in dropObject would undo the rows but not the files already moved.
    try {
      ownDir(fanDir(a.dir, c.address));
    } catch {
      out.skipped++;
      continue;
    }
    out.objects++;
    const gone = dropObject(ctx, a.dir, c.no, c.address);
    if (gone !== undefined) {
      out.trash.push(gone.name);
      out.bytes += gone.bytes;
    }
  }
  out.more = examined < candidates.length || candidates.length === window;
  return out;
}

export interface SweepArgs {
  dir: string;
  /** One fan-out directory (two hex digits). */
  fan: string;
  /** Only files written after this (ms since 1970) are swept: see claimedSince in objects/claim.ts. */
  since: number;
}

/**
 * Unlinks the files of one fan-out directory that no row records: left by a put whose process
 * died between moving its file into place and committing. Safe while others put: a put moves
 * its file only inside its own transaction, and this one holds the write lock.
 */
function sweep(ctx: WriterContext, a: SweepArgs): Freed {
  const out: Freed = { trash: [], bytes: 0 };
  try {
    if (!ownDir(path.join(a.dir, a.fan))) return out;
  } catch {
    return out; // a symlink or a file in its place: not ours to sweep (verify reports it)
  }
  const held = ctx.stmt('SELECT 1 FROM object_blobs WHERE address = ?').pluck();
  let names: string[];
  try {
    names = listDir(path.join(a.dir, a.fan));
  } catch (err) {
    // One directory this user cannot list (permissions) does not stop the rest of the sweep.
    return { ...out, unreadable: fsErrorText(err) };
  }
  for (const name of names) {
    if (!ADDRESS.test(name) || !name.startsWith(a.fan) || held.get(name) !== undefined) continue;
    const file = path.join(a.dir, a.fan, name);
    let size = 0;
    try {
      const st = fs.lstatSync(file);
      if (!st.isFile()) continue; // not ours: verify reports it
      if (!(st.mtimeMs > a.since)) continue; // from before this vault claimed objects/: maybe another's
      size = st.size;
    } catch {
      continue;
    }
    // To the trash, unlinked after the commit: a big unlink must not hold the write lock.
    makeDir(path.join(a.dir, TRASH_DIR));
    const moved = trashName(name);
    fs.renameSync(file, trashPath(a.dir, moved));
    out.trash.push(moved);
    out.bytes += size;
  }
  return out;
}

/** Records which objects a message's metadata names; every one must exist. */
export function linkMessageObjects(ctx: WriterContext, seq: number, refs: readonly string[]): void {
  for (const id of refs) {
    const no = ctx.stmt('SELECT no FROM objects WHERE id = ?').pluck().get(id) as number | undefined;
    if (no === undefined) {
      throw new AppError(ErrorCode.NOT_FOUND, `the metadata names object ${id}, which does not exist`, {
        hint: 'attach the reference app.objects.put() returned; an object nothing referenced may have been removed by gc after [objects] gc_grace_ms',
      });
    }
    ctx.stmt('INSERT OR IGNORE INTO message_objects (object_no, message_seq) VALUES (?, ?)').run(no, seq);
  }
}

/** File-system failures of an op become AppErrors, so they fail that op alone. */
function guarded<A, R>(what: string, fn: (ctx: WriterContext, a: A) => R): (ctx: WriterContext, a: A) => R {
  return (ctx, a) => {
    try {
      return fn(ctx, a);
    } catch (err) {
      throw fileError(what, err);
    }
  };
}

export const objectOps = {
  'objects.commit': guarded('storing the object', commit),
  'objects.delete': guarded('deleting the object', del),
  'objects.collect': guarded('collecting garbage', collect),
  'objects.sweep': guarded('collecting garbage', sweep),
};
