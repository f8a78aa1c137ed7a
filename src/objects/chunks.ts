import { createCipheriv, createDecipheriv, hkdfSync, randomFillSync, type CipherGCM, type DecipherGCM } from 'node:crypto';

/**
 * The encrypted object format, version 1:
 *
 *   header   44 bytes: "BLUFOBJ" | version 0x01 | log2 of the chunk size | 3 zero bytes | 32-byte random salt
 *   chunks   the plaintext in chunks of 2^log2 bytes (the last one shorter, never empty), each
 *            AES-256-GCM ciphertext followed by its 16-byte tag
 *   trailer  the object's 32-byte address, sealed as one more chunk: 48 bytes
 *
 * Every object has a key of its own, HKDF-SHA256 from the store's key (itself derived from the
 * vault's master key) with the header's salt; so the nonce can be a counter: 7 zero bytes, the
 * chunk's index (32 bits, big-endian), and a byte that is 1 for the trailer only. The header is
 * the associated data of every chunk. What this detects:
 * - a changed byte anywhere: the header is authenticated with every chunk, each chunk by its tag;
 * - chunks swapped, repeated or dropped: the index is in the nonce;
 * - truncation, or bytes appended: only the trailer is sealed as the last, with the index that
 *   follows the last data chunk, and the reader checks it before anything else;
 * - a file moved to another address: the trailer holds the address it was written for.
 * Addresses are keyed hashes (HMAC-SHA256 under another key from the vault), so a file name
 * says nothing about the content to someone who can compute hashes of candidate files.
 */
export const MAGIC = Buffer.from('BLUFOBJ', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 44;
export const TAG_BYTES = 16;
export const ADDRESS_BYTES = 32;
export const TRAILER_BYTES = ADDRESS_BYTES + TAG_BYTES;
/** 64 KiB: a tag per 64 KiB costs 0.02%, and a reader holds at most one unchecked chunk. */
export const DEFAULT_CHUNK_LOG2 = 16;
export const MIN_CHUNK_LOG2 = 4;
export const MAX_CHUNK_LOG2 = 24;
const MAX_CHUNKS = 0xffffffff;

/** Keys of the store: one for addresses, one from which each object's key is derived. */
export function storeKeys(root: Buffer): { address: Buffer; file: Buffer } {
  return {
    address: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), 'blufio/objects/v1/address', 32)),
    file: Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), 'blufio/objects/v1/file', 32)),
  };
}

export function newHeader(chunkLog2 = DEFAULT_CHUNK_LOG2): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(h, 0);
  h[7] = FORMAT_VERSION;
  h[8] = chunkLog2;
  randomFillSync(h, 12, 32);
  return h;
}

/** The chunk size a header declares, or undefined when it is not a header of this format. */
export function headerChunkLog2(h: Buffer): number | undefined {
  if (h.length < HEADER_BYTES || !h.subarray(0, 7).equals(MAGIC) || h[7] !== FORMAT_VERSION) return undefined;
  const log2 = h[8]!;
  if (log2 < MIN_CHUNK_LOG2 || log2 > MAX_CHUNK_LOG2 || h[9] !== 0 || h[10] !== 0 || h[11] !== 0) return undefined;
  return log2;
}

function objectKey(fileKey: Buffer, header: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, header.subarray(12, HEADER_BYTES), header.subarray(0, 12), 32));
}

function nonce(index: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(index, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** The file's size for `size` bytes of plaintext. */
export function sealedSize(size: number, chunkLog2 = DEFAULT_CHUNK_LOG2): number {
  return HEADER_BYTES + size + Math.ceil(size / 2 ** chunkLog2) * TAG_BYTES + TRAILER_BYTES;
}

/** The layout a file of `stored` bytes must have, or undefined when no plaintext size gives it. */
export function layoutOf(stored: number, chunkLog2: number): { size: number; chunks: number; lastChunk: number } | undefined {
  const chunk = 2 ** chunkLog2;
  const data = stored - HEADER_BYTES - TRAILER_BYTES;
  if (data < 0) return undefined;
  const full = Math.floor(data / (chunk + TAG_BYTES));
  const rest = data - full * (chunk + TAG_BYTES);
  if (rest !== 0 && rest <= TAG_BYTES) return undefined;
  const chunks = full + (rest === 0 ? 0 : 1);
  if (chunks > MAX_CHUNKS) return undefined;
  return { size: full * chunk + (rest === 0 ? 0 : rest - TAG_BYTES), chunks, lastChunk: rest === 0 ? chunk : rest - TAG_BYTES };
}

/** Encrypts a stream of pieces into the format above, without holding more than the piece it is given. */
export class ChunkSealer {
  private readonly key: Buffer;
  private readonly chunk: number;
  private cipher: CipherGCM | undefined;
  private filled = 0;
  private index = 0;

  constructor(
    fileKey: Buffer,
    readonly header: Buffer,
  ) {
    this.key = objectKey(fileKey, header);
    this.chunk = 2 ** header[8]!;
  }

  private start(last: boolean): CipherGCM {
    if (this.index > MAX_CHUNKS - 1) throw new RangeError('object too large for its chunk size');
    const c = createCipheriv('aes-256-gcm', this.key, nonce(this.index, last), { authTagLength: TAG_BYTES });
    c.setAAD(this.header);
    return c;
  }

  /** Appends the ciphertext of `piece` to `out`. */
  push(piece: Uint8Array, out: Buffer[]): void {
    let off = 0;
    while (off < piece.length) {
      this.cipher ??= this.start(false);
      const take = Math.min(piece.length - off, this.chunk - this.filled);
      out.push(this.cipher.update(take === piece.length ? piece : piece.subarray(off, off + take)));
      this.filled += take;
      off += take;
      if (this.filled === this.chunk) this.endChunk(out);
    }
  }

  private endChunk(out: Buffer[]): void {
    this.cipher!.final();
    out.push(this.cipher!.getAuthTag());
    this.cipher = undefined;
    this.filled = 0;
    this.index++;
  }

  /** Seals the last chunk and the trailer; the key is zeroed. */
  finish(address: Buffer, out: Buffer[]): void {
    try {
      if (this.cipher !== undefined) this.endChunk(out);
      const t = this.start(true);
      out.push(t.update(address));
      t.final();
      out.push(t.getAuthTag());
    } finally {
      this.key.fill(0);
    }
  }

  /** Drops the key without finishing (the put failed). */
  abandon(): void {
    this.key.fill(0);
  }
}

/** Decrypts one object chunk by chunk; every method returns only authenticated plaintext. */
export class ChunkOpener {
  private readonly key: Buffer;

  constructor(
    fileKey: Buffer,
    private readonly header: Buffer,
  ) {
    this.key = objectKey(fileKey, header);
  }

  private open(index: number, last: boolean, sealed: Buffer): Buffer | undefined {
    const body = sealed.subarray(0, sealed.length - TAG_BYTES);
    try {
      const d: DecipherGCM = createDecipheriv('aes-256-gcm', this.key, nonce(index, last), { authTagLength: TAG_BYTES });
      d.setAAD(this.header);
      d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      const plain = d.update(body);
      try {
        d.final();
      } catch {
        plain.fill(0);
        return undefined;
      }
      return plain;
    } catch {
      return undefined;
    }
  }

  chunk(index: number, sealed: Buffer): Buffer | undefined {
    return this.open(index, false, sealed);
  }

  /** The address the trailer (sealed after `chunks` data chunks) holds. */
  trailer(chunks: number, sealed: Buffer): Buffer | undefined {
    const a = this.open(chunks, true, sealed);
    return a?.length === ADDRESS_BYTES ? a : undefined;
  }

  close(): void {
    this.key.fill(0);
  }
}
