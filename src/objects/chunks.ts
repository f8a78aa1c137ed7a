import { createCipheriv, createHmac, hkdfSync, randomFillSync, type CipherGCM } from 'node:crypto';
import { gcmOpen } from '../vault/index.js';
import { nativeSealer } from './native.js';

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
 * 256 KiB: large enough that the per-chunk cost (a cipher set up, a tag) vanishes, small enough
 * that a reader never holds much unchecked data (a tag per chunk costs 0.006%).
 */
export const DEFAULT_CHUNK_LOG2 = 18;
/**
 * The first byte of what the address HMAC covers: the address scheme's version. Version 1 (an
 * HMAC over each chunk's SHA-256) named objects written before; only writers compute addresses
 * (a reader checks the one the trailer holds), so those files stay readable as they are.
 */
const ADDRESS_VERSION = 2;
const ZERO_IV = Buffer.alloc(12);
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

/**
 * A keyed hash of the content, for its address: GHASH, the polynomial hash inside AES-GCM's tag,
 * over the plaintext given as the associated data of a GCM computation that encrypts nothing,
 * under a key derived from the address key. Under a secret key GHASH is an almost-universal
 * hash (two different contents of at most L blocks agree with probability at most L / 2^128),
 * and its value goes only into the address HMAC, never stored or shown: so to whoever lacks the
 * keys the address is a PRF of the content, which they cannot make collide. (Whoever holds the
 * keys can, unlike with the HMAC over SHA-256s this replaced; they can read and forge every
 * object anyway, as the README's limits say.) AES-GCM-SIV's synthetic IV (RFC 8452) is made the
 * same way: a universal hash, then a PRF. The fixed IV is sound here for the same reason: the
 * instance's tag never leaves the HMAC. Why not SHA-256: it was the largest cost of an
 * encrypted put (1.0 ms per MiB of CPU on the bench machine, against 0.09 for this, which runs
 * on the carry-less multiply instructions AES-GCM already needs).
 */
function contentHasher(addressKey: Buffer): CipherGCM {
  const k = Buffer.from(hkdfSync('sha256', addressKey, Buffer.alloc(0), 'blufio/objects/v2/content', 32));
  try {
    return createCipheriv('aes-256-gcm', k, ZERO_IV, { authTagLength: TAG_BYTES });
  } finally {
    k.fill(0);
  }
}

/** Room at the end of what is being written, which the sealer fills before its caller next awaits. */
export interface SealTarget {
  reserve(n: number): Buffer;
}

/**
 * Encrypts a stream of pieces into the format above and computes the object's address on the
 * way. Sealing runs here, on the calling thread, as each piece arrives, while the file writes
 * (and a file source's reads) run on libuv's threads: measured, this beat sealing through
 * WebCrypto on those threads, whose copy of every input, zeroing of that copy and of every
 * output, and per-call cost took more CPU than the cipher itself (see the README's bench notes).
 * Given a target (the writer), chunks are sealed by the native sealer (native.ts) straight into
 * the writer's batches when it is built; otherwise, or without a target, by node:crypto into
 * new Buffers. The bytes are the same.
 * The caller keeps what it hands over at once small (write.ts seals a MiB at a time), so the
 * event loop is never held for long.
 *
 * The address of an encrypted object is HMAC-SHA256, under the store's address key, of the
 * scheme's version, the content hash (contentHasher) and the length: a keyed hash of the content
 * (the same content gives the same address whatever its chunk size, so it is stored once) that
 * reveals nothing of it to whoever lacks the keys. Only the trailer, which holds the address,
 * is sealed with it.
 */
export class ChunkSealer {
  private readonly chunk: number;
  private readonly raw: Buffer;
  private readonly hmac;
  private readonly content: CipherGCM;
  private hashed = false;
  /** A chunk being assembled from pieces that do not fill it by themselves (copied). */
  private stage: Buffer | undefined;
  private staged = 0;
  private index = 0;
  private size = 0;

  constructor(
    fileKey: Buffer,
    addressKey: Buffer,
    readonly header: Buffer,
  ) {
    this.raw = objectKey(fileKey, header);
    this.chunk = 2 ** header[8]!;
    this.hmac = createHmac('sha256', addressKey);
    this.hmac.update(Buffer.from([ADDRESS_VERSION]));
    this.content = contentHasher(addressKey);
  }

  private seal(chunk: Uint8Array, out: Buffer[], target: SealTarget | undefined): void {
    if (this.index > MAX_CHUNKS - 1) throw new RangeError('object too large for its chunk size');
    this.sealAs(this.index++, false, chunk, out, target);
  }

  private sealAs(index: number, last: boolean, data: Uint8Array, out: Buffer[], target: SealTarget | undefined): void {
    const native = target === undefined ? undefined : nativeSealer();
    if (native !== undefined) {
      const room = target!.reserve(data.length + TAG_BYTES);
      native.sealInto(this.raw, nonce(index, last), this.header, data, room.subarray(0, data.length), room.subarray(data.length));
      return;
    }
    const c = createCipheriv('aes-256-gcm', this.raw, nonce(index, last), { authTagLength: TAG_BYTES });
    c.setAAD(this.header);
    out.push(c.update(data));
    c.final();
    out.push(c.getAuthTag());
  }

  /**
   * Seals the chunks `piece` completes, into room `target` reserves when the native sealer is
   * there, else as new Buffers appended to `out`; what is left over waits for the next piece.
   */
  push(piece: Uint8Array, out: Buffer[], target?: SealTarget): void {
    this.size += piece.length;
    this.content.setAAD(piece);
    let off = 0;
    while (off < piece.length) {
      if (this.staged === 0 && piece.length - off >= this.chunk) {
        this.seal(piece.subarray(off, off + this.chunk), out, target);
        off += this.chunk;
        continue;
      }
      this.stage ??= Buffer.allocUnsafe(this.chunk);
      const take = Math.min(piece.length - off, this.chunk - this.staged);
      this.stage.set(piece.subarray(off, off + take), this.staged);
      this.staged += take;
      off += take;
      if (this.staged === this.chunk) {
        this.seal(this.stage, out, target);
        this.staged = 0;
      }
    }
  }

  /** Only hashes `piece`: the put keeps no more bytes (past its room), but needs the address. */
  skip(piece: Uint8Array): void {
    this.size += piece.length;
    this.content.setAAD(piece);
  }

  /** Seals what is left and the trailer (as push does); returns the address. The key is zeroed. */
  finish(out: Buffer[], target?: SealTarget): Buffer {
    try {
      if (this.staged > 0) this.seal(this.stage!.subarray(0, this.staged), out, target);
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(this.size));
      this.content.final();
      const address = this.hmac.update(this.content.getAuthTag()).update(len).digest();
      this.hashed = true;
      this.sealAs(this.index, true, address, out, target);
      return address;
    } finally {
      this.abandon();
    }
  }

  /** Drops the keys (the put failed, or finished). */
  abandon(): void {
    this.raw.fill(0);
    this.stage?.fill(0);
    // Finishing frees the OpenSSL contexts that hold the store's content and address keys now,
    // not at garbage collection.
    if (!this.hashed) {
      this.hashed = true;
      // Either may have been finished already (finish failed halfway): that error is the one to report.
      try {
        this.content.final();
      } catch {}
      try {
        this.hmac.digest();
      } catch {}
    }
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
