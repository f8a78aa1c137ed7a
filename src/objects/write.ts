import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { AppError, ErrorCode } from '../errors/index.js';
import { fileError } from '../storage/index.js';
import { FILE_MODE } from '../storage/files.js';
import { ChunkSealer, DEFAULT_CHUNK_LOG2, newHeader } from './chunks.js';
import { CountingSink, PipelinedWriter, type BlobSink } from './io.js';
import { piecesOf, type ObjectSource } from './source.js';
import { unlinkQuietly } from './unlink.js';

export interface WriteOptions {
  /** Present when the object is to be encrypted: the store's keys (see storeKeys). */
  keys?: { address: Buffer; file: Buffer };
  maxBytes: number;
  /** Says which limit maxBytes is, for the error. */
  limitName?: string;
  chunkLog2?: number;
  signal?: AbortSignal;
  /**
   * Stored bytes the store has room for ([objects] max_total_bytes less what is stored), as last
   * known, and how to learn it afresh. Past it, and past it still when learnt afresh (another
   * put or a delete may have changed it), the temporary file is removed and the source only
   * read and hashed (Written.dropped).
   */
  room?: { bytes: number; refresh: () => number };
}

export interface Written {
  /** SHA-256 of the content (plain), or the keyed hash the sealer computes (encrypted). */
  address: string;
  size: number;
  storedSize: number;
  encrypted: boolean;
  /** Passed its room: nothing is on disk; only a put of content already stored can succeed. */
  dropped: boolean;
}

export function tooLarge(limit: number, limitName = '[objects] max_object_bytes'): AppError {
  return new AppError(ErrorCode.OBJECT_TOO_LARGE, `the object is larger than the limit of ${limit} bytes (${limitName})`, {
    hint: `store a smaller file, or raise ${limitName}; nothing was stored`,
  });
}

/** At most this much of one piece is sealed before its output is written: a 1 GB Buffer is not doubled in memory. */
const SEAL_SLICE = 1024 * 1024;

/**
 * Streams `source` into the new file `tmp` (0600, created here), hashing it and, with keys,
 * encrypting it on the way; the file is synced before this returns. Memory stays bounded
 * whatever the source gives: bytes are copied into write batches (plain) or sealed a slice at a
 * time (encrypted), with at most two writes in flight. On any failure the file is removed.
 */
export async function writeBlob(source: ObjectSource, tmp: string, opts: WriteOptions): Promise<Written> {
  // Plain objects are named by the SHA-256 of their content (what sha256sum prints); encrypted
  // ones by the keyed hash the sealer computes.
  const sealer = opts.keys === undefined ? undefined : new ChunkSealer(opts.keys.file, opts.keys.address, newHeader(opts.chunkLog2 ?? DEFAULT_CHUNK_LOG2));
  let fh: FileHandle;
  try {
    fh = await open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, FILE_MODE);
  } catch (err) {
    sealer?.abandon();
    throw fileError('creating the object\'s temporary file', err);
  }
  let writer: BlobSink = new PipelinedWriter(fh);
  let dropped = false;
  // Checked after each write is queued: at most one batch (a megabyte) more than the room is on disk.
  let room = opts.room?.bytes ?? Infinity;
  const over = (): boolean => {
    if (dropped || writer.written <= room) return false;
    room = opts.room!.refresh();
    return writer.written > room;
  };
  const drop = async (): Promise<void> => {
    dropped = true;
    await writer.settle();
    writer = new CountingSink(writer.written);
    await fh.close().catch(() => {});
    await unlinkQuietly(tmp).catch(() => {});
  };
  const hash = sealer === undefined ? createHash('sha256') : undefined;
  const out: Buffer[] = sealer === undefined ? [] : [sealer.header];
  let size = 0;
  try {
    for await (const piece of piecesOf(source, opts.signal)) {
      // A source in memory never waits, so the wait for the next piece (piecesOf) never sees an
      // abort: it is checked here too, and between the slices of one big piece below.
      opts.signal?.throwIfAborted();
      size += piece.length;
      if (size > opts.maxBytes) throw tooLarge(opts.maxBytes, opts.limitName);
      if (sealer === undefined) {
        hash!.update(piece);
        await writer.copyIn(piece);
        if (over()) await drop();
        continue;
      }
      for (let off = 0; off < piece.length; off += SEAL_SLICE) {
        opts.signal?.throwIfAborted();
        sealer.push(piece.length <= SEAL_SLICE ? piece : piece.subarray(off, off + SEAL_SLICE), out);
        await writer.add(out);
        if (over()) await drop();
      }
    }
    opts.signal?.throwIfAborted();
    const digest = sealer === undefined ? hash!.digest() : sealer.finish(out);
    await writer.add(out);
    if (over()) await drop();
    await writer.flush();
    if (!dropped) {
      try {
        await fh.sync();
        await fh.close();
      } catch (err) {
        throw fileError('syncing the object', err);
      }
    }
    return { address: digest.toString('hex'), size, storedSize: writer.written, encrypted: sealer !== undefined, dropped };
  } catch (err) {
    sealer?.abandon();
    await writer.settle();
    await fh.close().catch(() => {});
    await unlinkQuietly(tmp).catch(() => {});
    throw err;
  }
}
