import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { AppError, ErrorCode } from '../errors/index.js';
import { FILE_MODE } from '../storage/files.js';
import { ChunkSealer, DEFAULT_CHUNK_LOG2, newHeader } from './chunks.js';
import { PipelinedWriter } from './io.js';
import { piecesOf, type ObjectSource } from './source.js';
import { unlinkQuietly } from './unlink.js';

export interface WriteOptions {
  /** Present when the object is to be encrypted: the store's keys (see storeKeys). */
  keys?: { address: Buffer; file: Buffer };
  maxBytes: number;
  chunkLog2?: number;
  signal?: AbortSignal;
}

export interface Written {
  /** SHA-256 of the content (plain), or HMAC-SHA256 under the store's address key (encrypted). */
  address: string;
  size: number;
  storedSize: number;
  encrypted: boolean;
}

export function tooLarge(limit: number): AppError {
  return new AppError(ErrorCode.OBJECT_TOO_LARGE, `the object is larger than the limit of ${limit} bytes`, {
    hint: 'raise [objects] max_object_bytes in the config file, or store a smaller file; nothing was stored',
  });
}

/**
 * Streams `source` into the new file `tmp` (0600, created here), hashing it and, with keys,
 * encrypting it on the way; the file is synced before this returns. The content passes through
 * in the pieces the source gives: nothing waits in memory but the writes in flight. On any
 * failure the file is removed.
 */
export async function writeBlob(source: ObjectSource, tmp: string, opts: WriteOptions): Promise<Written> {
  // Plain objects are named by the SHA-256 of their content (what sha256sum prints); encrypted
  // ones by the keyed hash the sealer computes.
  const sealer = opts.keys === undefined ? undefined : await new ChunkSealer(opts.keys.file, opts.keys.address, newHeader(opts.chunkLog2 ?? DEFAULT_CHUNK_LOG2)).init();
  let fh: FileHandle;
  try {
    fh = await open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, FILE_MODE);
  } catch (err) {
    sealer?.abandon();
    throw err;
  }
  const writer = new PipelinedWriter(fh);
  const hash = sealer === undefined ? createHash('sha256') : undefined;
  const out: Buffer[] = sealer === undefined ? [] : [sealer.header];
  let size = 0;
  try {
    for await (const piece of piecesOf(source)) {
      if (opts.signal?.aborted === true) throw opts.signal.reason;
      size += piece.length;
      if (size > opts.maxBytes) throw tooLarge(opts.maxBytes);
      if (sealer === undefined) {
        hash!.update(piece);
        out.push(Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength));
      } else {
        await sealer.push(piece, out);
      }
      await writer.add(out);
    }
    if (opts.signal?.aborted === true) throw opts.signal.reason;
    const digest = sealer === undefined ? hash!.digest() : await sealer.finish(out);
    await writer.add(out);
    await writer.flush();
    await fh.sync();
    await fh.close();
    return { address: digest.toString('hex'), size, storedSize: writer.written, encrypted: sealer !== undefined };
  } catch (err) {
    sealer?.abandon();
    await writer.settle();
    await fh.close().catch(() => {});
    await unlinkQuietly(tmp);
    throw err;
  }
}
