import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';
import { AppError, ErrorCode } from '../errors/index.js';
import { fileError } from '../storage/index.js';
import { FILE_MODE } from '../storage/files.js';
import { ChunkSealer, DEFAULT_CHUNK_LOG2, HEADER_BYTES, newHeader, sealedSize } from './chunks.js';
import { CountingSink, PipelinedWriter, type BlobSink } from './io.js';
import { nativeSealer } from './native.js';
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

/**
 * At most this much of one piece is hashed or sealed at once: a 1 GB Buffer is not doubled in
 * memory, and the event loop is not held for long.
 */
const SLICE = 1024 * 1024;

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
  // Sealed chunks are written into room the writer reserves (the native sealer), or come as new
  // Buffers (node:crypto) in `out`: the header goes first the same way.
  const out: Buffer[] = [];
  if (sealer !== undefined) {
    if (nativeSealer() !== undefined) writer.reserve(HEADER_BYTES).set(sealer.header);
    else out.push(sealer.header);
  }
  let size = 0;
  let sinceTurn = 0;
  try {
    for await (const piece of piecesOf(source, opts.signal)) {
      size += piece.length;
      if (size > opts.maxBytes) throw tooLarge(opts.maxBytes, opts.limitName);
      // One piece may be a whole Buffer in memory, so it is taken a slice at a time: the room
      // and an abort are checked between slices (a source in memory never waits, so the wait
      // for the next piece in piecesOf never sees an abort).
      for (let off = 0; off < piece.length; off += SLICE) {
        opts.signal?.throwIfAborted();
        const slice = piece.length <= SLICE ? piece : piece.subarray(off, off + SLICE);
        if (sealer === undefined) {
          hash!.update(slice);
          await writer.copyIn(slice);
        } else if (dropped) {
          sealer.skip(slice);
        } else {
          sealer.push(slice, out, writer);
          await (out.length > 0 ? writer.add(out) : writer.commitReserved());
        }
        if (over()) await drop();
        // Past the room nothing waits for a write any more: without a turn here now and then, a
        // source in memory would hold the event loop, and a vault lock or a close with it, to
        // its end. Once a MiB, so that a source of many small pieces is not slowed by it.
        if (dropped && (sinceTurn += slice.length) >= SLICE) {
          sinceTurn = 0;
          await setImmediate();
        }
      }
    }
    opts.signal?.throwIfAborted();
    const digest = sealer === undefined ? hash!.digest() : sealer.finish(out, writer);
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
    // Once dropped, the sealer only hashed: the file it would have made has the format's size.
    const storedSize = dropped && sealer !== undefined ? sealedSize(size, sealer.header[8]!) : writer.written;
    return { address: digest.toString('hex'), size, storedSize, encrypted: sealer !== undefined, dropped };
  } catch (err) {
    sealer?.abandon();
    await writer.settle();
    await fh.close().catch(() => {});
    await unlinkQuietly(tmp).catch(() => {});
    throw err;
  }
}
