import path from 'node:path';
import type { Logger } from 'pino';
import fs from 'node:fs';
import { AppError } from '../errors/index.js';
import { ADDRESS, blobCandidates, fsErrorText, isOwnDir, isPlainFile, listDir, TMP_DIR, TRASH_DIR, type ObjectRows } from '../storage/index.js';
import { isMarkerTemp, MARKER } from './claim.js';
import { checkPresent, openBlob } from './read.js';

export interface VerifyProblem {
  /** The file's address (its name under objects/). */
  address: string;
  /** The objects whose content it is. */
  refs: string[];
  problem: string;
}

export interface VerifyReport {
  ok: boolean;
  dir: string;
  /** Stored files read back in full and found intact. */
  filesOk: number;
  bytesChecked: number;
  problems: VerifyProblem[];
  /** Files under objects/ that no row records (gc removes them): not damage, but not data either. */
  strayFiles: number;
  /** Puts in progress or abandoned. */
  tempFiles: number;
  /** Names under objects/ that the store never writes (left alone, reported). */
  unknownFiles: string[];
  /**
   * Directories under objects/ that could not be listed (permissions), with why: a file no row
   * records there is not seen; a recorded one there is read by its path (a problem if it fails).
   */
  unreadable: string[];
  /**
   * Encrypted files whose content was not checked because the vault is locked: each was found,
   * a regular file of its recorded size (a missing or truncated one is a problem), but not read.
   */
  notChecked: number;
  /** Every stored file's content was checked (false when notChecked > 0). */
  complete: boolean;
}

export interface VerifyInput {
  rows: ObjectRows;
  dir: string;
  inFlight: ReadonlySet<string>;
  /** Needed when any stored file is encrypted. */
  fileKey?: Buffer;
  log: Logger;
  /** The reason to stop (the vault locked, the app closed), checked before each file and between chunks. */
  stopped?: () => Error | undefined;
}

/** Whether something other than a regular file is there (false when nothing is: removed meanwhile). */
function notPlain(file: string): boolean {
  try {
    return !fs.lstatSync(file).isFile();
  } catch {
    return false;
  }
}

/** Throws the reason to stop, if there is one: it wins over whatever else failed meanwhile. */
function stopIfAsked(v: VerifyInput): void {
  const stop = v.stopped?.();
  if (stop !== undefined) throw stop;
}

export async function verifyStore(v: VerifyInput): Promise<VerifyReport> {
  const report: VerifyReport = { ok: true, dir: v.dir, filesOk: 0, bytesChecked: 0, problems: [], strayFiles: 0, tempFiles: 0, unknownFiles: [], unreadable: [], notChecked: 0, complete: true };
  const known = new Set<string>();
  for (const b of v.rows.blobs()) {
    stopIfAsked(v);
    known.add(b.address);
    // Without the key an encrypted file is still looked for and measured; only its content waits.
    const keyless = b.encrypted === 1 && v.fileKey === undefined;
    const info = { address: b.address, encrypted: b.encrypted === 1, size: b.size, storedSize: b.stored_size };
    let problem: string | undefined;
    // Its place, else the trash (a delete or gc whose transaction did not commit moved it there;
    // the next gc moves it back, and get reads it there meanwhile).
    try {
      for (const file of blobCandidates(v.dir, b.address)) {
        try {
          if (keyless) {
            await checkPresent(file, info, `file ${b.address}`);
            report.notChecked++;
          } else {
            const opened = await openBlob(file, info, `file ${b.address}`, v.fileKey);
            for await (const piece of opened.content) {
              report.bytesChecked += piece.length;
              // A lock while a big file is read stops it here (as it ends a get's stream), not
              // after the last chunk was decrypted with the key the lock meant to take away.
              stopIfAsked(v);
            }
            report.filesOk++;
          }
          problem = undefined;
          break;
        } catch (err) {
          stopIfAsked(v);
          problem = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the file is missing' : err instanceof AppError ? err.message : fsErrorText(err);
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') break;
        }
      }
    } catch (err) {
      stopIfAsked(v);
      // Its directory is not the store's own (ownDir): reported, the scan goes on.
      problem = err instanceof AppError ? err.message : String(err);
    }
    if (problem === undefined) continue;
    // Deleted while this ran (a blob row always has an object while it exists): not damage.
    const refs = v.rows.refsOf(b.address);
    if (refs.length === 0) continue;
    report.problems.push({ address: b.address, refs, problem });
  }
  // A directory that cannot be listed is named in the report, and the scan goes on.
  const list = (dir: string, name: string): string[] => {
    try {
      return listDir(dir);
    } catch (err) {
      report.unreadable.push(`${name} (${fsErrorText(err)})`);
      return [];
    }
  };
  // objects/ itself unreadable (or a file) fails the verify: there is no store to report on.
  for (const fan of listDir(v.dir)) {
    if (fan === MARKER && isPlainFile(path.join(v.dir, fan))) continue; // which vault's store this is
    if (isMarkerTemp(fan) && isPlainFile(path.join(v.dir, fan))) {
      report.tempFiles++; // a marker being written, or left by a process killed then (gc removes it)
      continue;
    }
    // Every name here must be a directory of the store's own; anything else (a file, a symlink)
    // is reported and never followed.
    if (!isOwnDir(path.join(v.dir, fan))) {
      report.unknownFiles.push(fan);
      continue;
    }
    if (fan === TMP_DIR) {
      // Only files are temporaries of puts (gc removes those); anything else there is not ours.
      for (const name of list(path.join(v.dir, fan), fan)) {
        if (notPlain(path.join(v.dir, fan, name))) report.unknownFiles.push(`${fan}/${name}`);
        else report.tempFiles++;
      }
      continue;
    }
    if (fan === TRASH_DIR) continue;
    if (!/^[0-9a-f]{2}$/.test(fan)) {
      report.unknownFiles.push(fan);
      continue;
    }
    for (const name of list(path.join(v.dir, fan), fan)) {
      if (!ADDRESS.test(name) || !name.startsWith(fan)) report.unknownFiles.push(`${fan}/${name}`);
      // Named like an address but not a regular file (a FIFO, a link, a directory): gc never
      // removes such a thing, so it is not counted as a stray gc would remove.
      else if (notPlain(path.join(v.dir, fan, name))) report.unknownFiles.push(`${fan}/${name}`);
      // Not known when the scan began: put meanwhile (recorded now), or stray.
      else if (!known.has(name) && !v.rows.hasBlob(name)) report.strayFiles++;
    }
  }
  report.ok = report.problems.length === 0;
  report.complete = report.notChecked === 0;
  if (!report.ok) v.log.error({ dir: v.dir, problems: report.problems.length }, 'object store verification found damaged or missing files');
  return report;
}
