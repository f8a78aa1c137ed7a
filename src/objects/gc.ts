import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { isOwnerAlive, isPlainFile, listDir, ownDir, TMP_DIR, tempOwner, TRASH_DIR, trashPath, type GcCursor, type ObjectRows } from '../storage/index.js';
import { claimedSince, sweepMarkerTemps } from './claim.js';
import { unlinkQuietly } from './unlink.js';

export interface GcReport {
  /** Objects (references) removed: nothing named them and they were older than the grace time. */
  objectsRemoved: number;
  /** Files removed because no object had their content any more, or no row recorded them. */
  filesRemoved: number;
  bytesFreed: number;
  /** Temporary files of puts whose process died (or that were abandoned for a day). */
  tempFilesRemoved: number;
}

/** A temporary file of a live process untouched this long is abandoned (a put writes continuously). */
const ABANDONED_MS = 86_400_000;
/** Objects per transaction: gc never holds the write lock for long. */
const BATCH = 500;

export interface GcInput {
  rows: ObjectRows;
  dir: string;
  cutoff: number;
  /** This store's owner token, and its puts in progress. */
  owner: string;
  /** Where owners' lock files are. */
  ownersDir: string;
  inFlight: ReadonlySet<string>;
  log: Logger;
  /** Throws when objects/ is not this vault's own (shared with another): called before each step that deletes. */
  claim: () => void;
}

/**
 * Temporary files whose put cannot finish: its process died (pid gone, or reused by another
 * program), it is this store's own and not in progress, or it was abandoned for a day.
 */
/**
 * Whether `.tmp` or `.trash` may be gone through: a directory of the store's own, or nothing yet.
 * Anything else (a symlink, a file) is left alone, logged at ERROR: never followed out of
 * objects/, and no reason to collect nothing else.
 */
function usable(g: GcInput, name: string, skips: string): boolean {
  try {
    ownDir(path.join(g.dir, name));
    return true;
  } catch (err) {
    g.log.error({ err, dir: g.dir }, `gc left ${name} alone: it is not a directory of the store's own (a symlink or a file), so ${skips}; blufio objects verify lists it`);
    return false;
  }
}

async function sweepTemps(g: GcInput): Promise<number> {
  let removed = 0;
  const tmpDir = path.join(g.dir, TMP_DIR);
  if (!usable(g, TMP_DIR, 'no temporary file was removed')) return 0;
  for (const name of listDir(tmpDir)) {
    const file = path.join(tmpDir, name);
    const owner = tempOwner(name);
    // Only what a put writes: a file named the way a put names it. Anything else is left alone.
    if (g.inFlight.has(file) || owner === undefined || !isPlainFile(file)) continue;
    let dead = owner === g.owner || !isOwnerAlive(owner, g.ownersDir);
    if (!dead) {
      try {
        dead = Date.now() - fs.statSync(file).mtimeMs > ABANDONED_MS;
      } catch {
        continue;
      }
    }
    if (dead && (await unlinkQuietly(file))) removed++;
  }
  return removed;
}

/** After the commit: a file that will not go is left for the next gc, and said. */
async function unlinkAll(g: GcInput, names: string[]): Promise<void> {
  await Promise.all(names.map((n) => unlinkQuietly(trashPath(g.dir, n)).catch((err: unknown) => g.log.warn({ err, file: n }, 'cannot remove a file from the object trash'))));
}

export async function collectGarbage(g: GcInput): Promise<GcReport> {
  // Another vault's files are garbage to this one's database: nothing is removed from a store
  // that is not this vault's alone.
  g.claim();
  const report: GcReport = { objectsRemoved: 0, filesRemoved: 0, bytesFreed: 0, tempFilesRemoved: (await sweepTemps(g)) + sweepMarkerTemps(g.dir) };
  // Every removal of an object or a stored file goes through the trash (see ops.ts).
  if (usable(g, TRASH_DIR, 'no object or stored file was removed')) await collectStored(g, report);
  if (report.objectsRemoved + report.filesRemoved + report.tempFilesRemoved > 0) g.log.info(report, 'object store garbage collected');
  return report;
}

async function collectStored(g: GcInput, report: GcReport): Promise<void> {
  let skipped = 0;
  for (let after: GcCursor | undefined; ; ) {
    const r = await g.rows.collect({ dir: g.dir, cutoff: g.cutoff, limit: BATCH, ...(after === undefined ? {} : { after }) });
    after = r.next;
    await unlinkAll(g, r.trash);
    report.objectsRemoved += r.objects;
    skipped += r.skipped;
    report.filesRemoved += r.trash.length;
    report.bytesFreed += r.bytes;
    if (!r.more) break;
  }
  if (skipped > 0) {
    g.log.error({ dir: g.dir, objects: skipped }, 'gc left unreferenced objects alone: their fan-out directory is not the store\'s own (a symlink or a file); blufio objects verify lists it');
  }
  g.claim(); // again before files no row records are swept: a store shared meanwhile loses nothing
  const since = claimedSince(g.dir);
  for (const fan of listDir(g.dir)) {
    if (!/^[0-9a-f]{2}$/.test(fan)) continue;
    const r = await g.rows.sweep({ dir: g.dir, fan, since });
    if (r.unreadable !== undefined) {
      g.log.error({ dir: path.join(g.dir, fan), error: r.unreadable }, 'gc cannot list this directory of the object store; files there that no object records were left (fix its permissions and run gc again)');
    }
    await unlinkAll(g, r.trash);
    report.filesRemoved += r.trash.length;
    report.bytesFreed += r.bytes;
  }
}
