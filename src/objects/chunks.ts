import { createCipheriv, createHmac, hkdfSync, randomFillSync, webcrypto } from 'node:crypto';
import { gcmOpen } from '../vault/index.js';

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
 * Addresses are keyed hashes (see ChunkSealer), so a file name says nothing about the content
 * to someone who can compute hashes of candidate files.
 */
export const MAGIC = Buffer.from('BLUFOBJ', 'latin1');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 44;
export const TAG_BYTES = 16;
export const ADDRESS_BYTES = 32;
export const TRAILER_BYTES = ADDRESS_BYTES + TAG_BYTES;
/**
 * 256 KiB: large enough that the per-chunk cost of handing work to another thread vanishes, small
 * enough that a reader never holds much unchecked data (a tag per chunk costs 0.006%).
 */
export const DEFAULT_CHUNK_LOG2 = 18;
/** The first byte of what the address HMAC covers: the address scheme's version. */
const ADDRESS_VERSION = 1;
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

const { subtle } = webcrypto;
/** Chunks being sealed at once: enough to keep both cores busy, little memory (2 × 8 chunks). */
const SEALING = 8;

/**
 * Encrypts a stream of pieces into the format above and computes the object's address on the
 * way. The work per chunk (AES-256-GCM, and the SHA-256 of the chunk for the address) goes to
 * WebCrypto, which runs it on libuv's threads: chunks are sealed in parallel with each other, with
 * the file writes, and with the source, instead of one after another on the event loop.
 *
 * The address of an encrypted object is HMAC-SHA256, under the store's address key, of the
 * chunk size, the SHA-256 of each chunk in order, and the length: a keyed hash of the content
 * (the same content gives the same address, so it is stored once) that reveals nothing of it
 * to whoever lacks the key. Only the trailer, which holds the address, is sealed here.
 */
export class ChunkSealer {
  private readonly chunk: number;
  private key: webcrypto.CryptoKey | undefined;
  private readonly raw: Buffer;
  private readonly hmac;
  /** A chunk being assembled from pieces that do not fill it by themselves (copied). */
  private stage: Buffer | undefined;
  private staged = 0;
  private index = 0;
  private size = 0;
  private readonly sealing: { sealed: Promise<ArrayBuffer>; digest: Promise<ArrayBuffer> }[] = [];

  constructor(
    fileKey: Buffer,
    addressKey: Buffer,
    readonly header: Buffer,
  ) {
    this.raw = objectKey(fileKey, header);
    this.chunk = 2 ** header[8]!;
    this.hmac = createHmac('sha256', addressKey);
    this.hmac.update(Buffer.from([ADDRESS_VERSION, header[8]!]));
  }

  /** Must be awaited before the first push. */
  async init(): Promise<this> {
    this.key = await subtle.importKey('raw', this.raw, 'AES-GCM', false, ['encrypt']);
    return this;
  }

  /** `chunk` must not change until its sealing is collected: it is never reused here. */
  private seal(chunk: Uint8Array): void {
    if (this.index > MAX_CHUNKS - 1) throw new RangeError('object too large for its chunk size');
    const iv = nonce(this.index++, false);
    const sealed = subtle.encrypt({ name: 'AES-GCM', iv, additionalData: this.header, tagLength: TAG_BYTES * 8 }, this.key!, chunk);
    // The chunk's hash for the address goes to libuv's threads too (measured 10% more put
    // throughput than hashing here, with the event loop left free for the I/O).
    const digest = subtle.digest('SHA-256', chunk);
    sealed.catch(() => {});
    digest.catch(() => {});
    this.sealing.push({ sealed, digest });
  }

  /** Sealed chunks, in order, until at most `keep` are still being sealed. */
  private async collect(keep: number, out: Buffer[]): Promise<void> {
    while (this.sealing.length > keep) {
      const next = this.sealing.shift()!;
      out.push(Buffer.from(await next.sealed));
      this.hmac.update(Buffer.from(await next.digest));
    }
  }

  /** Appends the sealed chunks that are ready (and waits when too many are being sealed). */
  async push(piece: Uint8Array, out: Buffer[]): Promise<void> {
    this.size += piece.length;
    let off = 0;
    while (off < piece.length) {
      if (this.staged === 0 && piece.length - off >= this.chunk) {
        this.seal(piece.subarray(off, off + this.chunk));
        off += this.chunk;
      } else {
        this.stage ??= Buffer.allocUnsafe(this.chunk);
        const take = Math.min(piece.length - off, this.chunk - this.staged);
        this.stage.set(piece.subarray(off, off + take), this.staged);
        this.staged += take;
        off += take;
        if (this.staged === this.chunk) {
          this.seal(this.stage);
          // A new one for the next chunk: this one may still be read by the sealing thread.
          this.stage = undefined;
          this.staged = 0;
        }
      }
      if (this.sealing.length >= SEALING) await this.collect(SEALING / 2, out);
    }
  }

  /** Seals what is left and the trailer; returns the address. The key is zeroed. */
  async finish(out: Buffer[]): Promise<Buffer> {
    try {
      if (this.staged > 0) this.seal(this.stage!.subarray(0, this.staged));
      await this.collect(0, out);
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(this.size));
      const address = this.hmac.update(len).digest();
      const t = createCipheriv('aes-256-gcm', this.raw, nonce(this.index, true), { authTagLength: TAG_BYTES });
      t.setAAD(this.header);
      out.push(t.update(address));
      t.final();
      out.push(t.getAuthTag());
      return address;
    } finally {
      this.abandon();
    }
  }

  /** Drops the key (the put failed, or finished). */
  abandon(): void {
    this.raw.fill(0);
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
    return gcmOpen(this.key, nonce(index, last), this.header, sealed);
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
