import { createHash, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { AppError, ErrorCode } from '../errors/index.js';
import { ChunkOpener, HEADER_BYTES, headerChunkLog2, layoutOf, TAG_BYTES, TRAILER_BYTES } from './chunks.js';
import { readBlocks, readExactly, ShortReadError } from './io.js';

/** What a reader needs to know of a stored file, from its row. */
export interface BlobInfo {
  address: string;
  encrypted: boolean;
  size: number;
  storedSize: number;
}

const READ_BLOCK = 1024 * 1024;

export function corrupt(what: string, why: string): AppError {
  return new AppError(ErrorCode.OBJECT_CORRUPT, `${what} fails its check: ${why}`, {
    hint: 'the file under objects/ was changed or damaged; restore it from a backup, or delete the objects that hold it: blufio objects delete <ref> (with --force for one that is still referenced; blufio objects verify lists them)',
  });
}

/**
 * Opens a stored file and checks what can be checked before any byte is handed out: its size
 * against the row, and for an encrypted one the header and the trailer (so truncation, appended
 * bytes and a file moved from another address are refused up front). The content then comes
 * chunk by chunk, each authenticated before it is yielded; a plain file's hash is compared at
 * the end, where a mismatch fails the stream. `fileKey` is needed for encrypted files and not
 * kept: the per-object key is derived from it here.
 */
export interface OpenedBlob {
  content: AsyncGenerator<Buffer>;
  /** Releases the file and the key; idempotent. The content's end calls it too, but a stream destroyed before it started reading must call it. */
  close(): Promise<void>;
}

/**
 * Opens a stored file and checks what needs no key: a regular file of the size its row records.
 * Not following a symlink, not waiting on a FIFO: a name under objects/ that is not a plain file
 * is damage, reported, never a hang or a read of /dev/zero.
 */
async function openSized(file: string, blob: BlobInfo, what: string): Promise<FileHandle> {
  const fh = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw corrupt(what, 'its file is a symbolic link');
    throw err;
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw corrupt(what, 'its file is not a regular file');
    if (st.size !== blob.storedSize) throw corrupt(what, `the file has ${st.size} bytes where ${blob.storedSize} were stored`);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The checks openBlob makes before it needs a key (verify without the vault); its content is not read. */
export async function checkPresent(file: string, blob: BlobInfo, what: string): Promise<void> {
  await (await openSized(file, blob, what)).close();
}

export async function openBlob(file: string, blob: BlobInfo, what: string, fileKey?: Buffer): Promise<OpenedBlob> {
  const fh = await openSized(file, blob, what);
  let opener: ChunkOpener | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    opener?.close();
    closing ??= fh.close();
    return closing;
  };
  try {
    const size = blob.storedSize; // what the file has (openSized)
    if (!blob.encrypted) return { content: plainContent(fh, blob, what, close), close };
    if (fileKey === undefined) throw new AppError(ErrorCode.INTERNAL, 'an encrypted object was opened without its key');
    const header = await readExactly(fh, 0, Math.min(HEADER_BYTES, size));
    const log2 = headerChunkLog2(header);
    if (log2 === undefined) throw corrupt(what, 'its header is not that of an encrypted object');
    const layout = layoutOf(size, log2);
    if (layout === undefined || layout.size !== blob.size) throw corrupt(what, 'its length does not match its chunks');
    opener = new ChunkOpener(fileKey, header);
    const address = opener.trailer(layout.chunks, await readExactly(fh, size - TRAILER_BYTES, TRAILER_BYTES));
    if (address === undefined) throw corrupt(what, 'its last chunk fails authentication (truncated, extended or altered)');
    if (!timingSafeEqual(address, Buffer.from(blob.address, 'hex'))) throw corrupt(what, 'it was written for another address');
    return { content: sealedContent(fh, opener, 2 ** log2, size - HEADER_BYTES - TRAILER_BYTES, what, close), close };
  } catch (err) {
    await close();
    if (err instanceof ShortReadError) throw corrupt(what, err.message);
    throw err;
  }
}

async function* plainContent(fh: FileHandle, blob: BlobInfo, what: string, close: () => Promise<void>): AsyncGenerator<Buffer> {
  try {
    const hash = createHash('sha256');
    for await (const block of readBlocks(fh, 0, blob.storedSize, READ_BLOCK)) {
      hash.update(block);
      yield block;
    }
    if (hash.digest('hex') !== blob.address) throw corrupt(what, 'its content does not match its SHA-256');
  } catch (err) {
    if (err instanceof ShortReadError) throw corrupt(what, err.message);
    throw err;
  } finally {
    await close();
  }
}

async function* sealedContent(
  fh: FileHandle,
  opener: ChunkOpener,
  chunk: number,
  dataBytes: number,
  what: string,
  close: () => Promise<void>,
): AsyncGenerator<Buffer> {
  const sealed = chunk + TAG_BYTES;
  const block = Math.max(1, Math.floor(READ_BLOCK / sealed)) * sealed;
  let index = 0;
  try {
    // Each block is decrypted into buffers of its own (gcmOpen never returns a view of its
    // input) before the next is asked for, so its buffer is reused.
    for await (const b of readBlocks(fh, HEADER_BYTES, dataBytes, block, true)) {
      for (let off = 0; off < b.length; off += sealed) {
        const plain = opener.chunk(index, b.subarray(off, Math.min(off + sealed, b.length)));
        if (plain === undefined) throw corrupt(what, `chunk ${index} fails authentication (altered, moved or reordered)`);
        index++;
        yield plain;
      }
    }
  } catch (err) {
    if (err instanceof ShortReadError) throw corrupt(what, err.message);
    throw err;
  } finally {
    await close();
  }
}
