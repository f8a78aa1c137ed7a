import type { FileHandle } from 'node:fs/promises';
import { fileError } from '../storage/index.js';

/** Bytes gathered before a write is issued: big enough that the system call cost vanishes. */
const WRITE_BATCH = 1024 * 1024;
/** Writes in flight at once: the disk works on one while the CPU hashes and seals the next. */
const WRITES_IN_FLIGHT = 2;
/**
 * A batch's size: WRITE_BATCH and room over, so that four sealed 256 KiB chunks with their tags
 * (reserve) fit in one batch and one write rather than three in one and the fourth in the next.
 */
const BATCH_BYTES = WRITE_BATCH + 64 * 1024;
/**
 * The first batch reserve() takes, when that is enough: most encrypted objects are small (a
 * 16 KiB image is a header, one chunk and a trailer), and a megabyte for each would be the very
 * allocation the batches exist to avoid.
 */
const FIRST_RESERVE_BATCH = 64 * 1024;

/**
 * Appends buffers to a file with writes that run on libuv's threads while this thread goes on
 * hashing and encrypting; each write has its own position, so two in flight cannot interleave.
 * `add` and `copyIn` wait only when WRITES_IN_FLIGHT writes are already running: that wait is
 * the backpressure that keeps a fast source from filling memory.
 *
 * The batches copyIn and reserve fill are reused once their write is done, rather than a new
 * megabyte allocated for each: two per writer are all copyIn takes (issue waits whenever two
 * writes run, so a batch is filled while at most one is in flight); reserve takes as many more
 * as one slice's sealed output spans (one more for 256 KiB chunks; tiny chunks, whose tags
 * double the output, take more). Why it matters: every new ArrayBuffer
 * counts towards V8's external memory, and in a process that has run for more than a few
 * seconds (a daemon) V8 then marks and compacts its old generation every 10-20 MiB moved.
 * Measured on the bench machine, three plain puts of 256 MiB from tmpfs in such a process:
 * 370-400 MiB/s with a new batch per megabyte, 470-560 with reuse, and 56 full collections
 * where there were 76 (see the README's bench notes).
 */
export class PipelinedWriter implements BlobSink {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private position = 0;
  private readonly inFlight: Promise<void>[] = [];
  /** The batch copyIn fills, and how far. */
  private batch: Buffer | undefined;
  private batched = 0;
  /** Batches (whole) whose bytes are in `pending`, and batches free for reuse. */
  private pendingBatches: Buffer[] = [];
  private readonly spare: Buffer[] = [];

  constructor(private readonly fh: FileHandle) {}

  /**
   * Copies bytes the caller does not own (a source may refill its buffer as soon as it is asked
   * for the next piece, while a write is still pending), or that would otherwise be held for as
   * long as their write (see above), into batches of WRITE_BATCH bytes, and writes each batch
   * as it fills.
   */
  async copyIn(piece: Uint8Array): Promise<void> {
    for (let off = 0; off < piece.length; ) {
      this.batch ??= this.takeBatch(WRITE_BATCH);
      // A batch reserve() began may be smaller than WRITE_BATCH, or already fuller.
      const end = Math.min(WRITE_BATCH, this.batch.length);
      const take = Math.min(piece.length - off, end - this.batched);
      if (take > 0) {
        this.batch.set(take === piece.length ? piece : piece.subarray(off, off + take), this.batched);
        this.batched += take;
        off += take;
      }
      if (this.batched >= end) {
        this.closeBatch();
        await this.issue();
      }
    }
  }

  /**
   * Room for `n` bytes at the end of the current batch (a new one if it has less left), which
   * the caller fills before it next awaits this writer: the native sealer writes its output here,
   * so sealed chunks go to the disk from reused batches, as copyIn's bytes do.
   * Call commitReserved after filling.
   */
  reserve(n: number): Buffer {
    if (this.batch !== undefined && this.batch.length - this.batched < n) {
      if (this.position === 0 && this.pendingBytes === 0 && this.batch.length < BATCH_BYTES) {
        // Nothing written yet, and the small first batch is full: it grows (doubling, so the
        // copies add up to less than the object) rather than costing a write of its own and a
        // megabyte beside it, for objects of a few hundred KiB.
        const grown = Buffer.allocUnsafeSlow(Math.min(BATCH_BYTES, Math.max(2 * this.batch.length, this.batched + n)));
        this.batch.copy(grown, 0, 0, this.batched);
        this.batch = grown;
      }
      if (this.batch.length - this.batched < n) this.closeBatch();
    }
    this.batch ??= this.takeBatch(n, this.written === 0 ? FIRST_RESERVE_BATCH : BATCH_BYTES);
    const room = this.batch.subarray(this.batched, this.batched + n);
    this.batched += n;
    return room;
  }

  /**
   * Writes what reserve has closed, and the current batch once it holds a write's worth
   * (WRITE_BATCH). Closed batches are written whatever their size: a reserve that did not fit
   * closed one short of WRITE_BATCH, and left unwritten such batches would pile up (pieces that
   * never line up with the chunks would hold a whole object in memory). Buffers add() holds
   * wait, as add() left them, for a write's worth.
   */
  async commitReserved(): Promise<void> {
    if (this.batched >= WRITE_BATCH) this.closeBatch();
    if (this.pendingBatches.length > 0 || this.pendingBytes >= WRITE_BATCH) await this.issue();
  }

  /**
   * A free batch of at least `n` bytes: a spare when one is big enough (a chunk size over 1 MiB
   * needs more), else a new one of `size` (or n, if more).
   */
  private takeBatch(n: number, size = BATCH_BYTES): Buffer {
    // The small first batch, once spare, serves only another small first use: mid-put it would
    // make every other write a small one.
    const least = Math.max(n, Math.min(size, WRITE_BATCH));
    const i = this.spare.findIndex((b) => b.length >= least);
    if (i >= 0) return this.spare.splice(i, 1)[0]!;
    return Buffer.allocUnsafeSlow(Math.max(size, n));
  }

  private closeBatch(): void {
    if (this.batch === undefined) return;
    if (this.batched > 0) {
      this.pending.push(this.batch.subarray(0, this.batched));
      this.pendingBytes += this.batched;
      this.pendingBatches.push(this.batch);
    } else {
      this.spare.push(this.batch);
    }
    this.batch = undefined;
    this.batched = 0;
  }

  get written(): number {
    return this.position + this.pendingBytes + this.batched;
  }

  /** Takes buffers this writer may keep until they are written (nobody else changes them). */
  async add(bufs: Buffer[]): Promise<void> {
    this.closeBatch();
    for (const b of bufs) {
      if (b.length === 0) continue;
      this.pending.push(b);
      this.pendingBytes += b.length;
    }
    bufs.length = 0;
    if (this.pendingBytes >= WRITE_BATCH) await this.issue();
  }

  private async issue(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const bufs = this.pending;
    const at = this.position;
    const total = this.pendingBytes;
    const batches = this.pendingBatches;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingBatches = [];
    this.position += total;
    const p = writeAll(this.fh, bufs, at, total).then(
      // Only a batch whose write is done is reused; one whose write failed is left to the GC.
      () => void this.spare.push(...batches),
      (err: unknown) => {
        throw fileError('writing the object', err);
      },
    );
    // A failure is seen by whoever awaits this write; never unhandled meanwhile.
    p.catch(() => {});
    this.inFlight.push(p);
    if (this.inFlight.length >= WRITES_IN_FLIGHT) await this.inFlight.shift();
  }

  /** Everything added is written (not yet synced). */
  async flush(): Promise<void> {
    this.closeBatch();
    await this.issue();
    while (this.inFlight.length > 0) await this.inFlight.shift();
  }

  /** Waits out the writes in flight, ignoring their outcome (the put is being abandoned). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.inFlight.splice(0));
  }
}

/** Where a put's bytes go: the file (PipelinedWriter), or nowhere once the store has no room left. */
export interface BlobSink {
  readonly written: number;
  copyIn(piece: Uint8Array): Promise<void>;
  reserve(n: number): Buffer;
  commitReserved(): Promise<void>;
  add(bufs: Buffer[]): Promise<void>;
  flush(): Promise<void>;
  settle(): Promise<void>;
}

/**
 * Counts what would have been written and keeps nothing: a put past the store's room goes on
 * reading and hashing its source to learn whether the content is already stored (a duplicate
 * needs no room), without putting another byte on the disk.
 */
export class CountingSink implements BlobSink {
  /** Where reserved bytes go to be dropped: one buffer, grown as needed. */
  private scratch = Buffer.alloc(0);

  constructor(public written: number) {}

  async copyIn(piece: Uint8Array): Promise<void> {
    this.written += piece.length;
  }

  reserve(n: number): Buffer {
    this.written += n;
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafeSlow(n);
    return this.scratch.subarray(0, n);
  }

  async commitReserved(): Promise<void> {}

  async add(bufs: Buffer[]): Promise<void> {
    for (const b of bufs) this.written += b.length;
    bufs.length = 0;
  }

  async flush(): Promise<void> {}

  async settle(): Promise<void> {}
}

async function writeAll(fh: FileHandle, bufs: Buffer[], at: number, total: number): Promise<void> {
  let done = (await fh.writev(bufs, at)).bytesWritten;
  // A short write (rare on a regular file: a signal, a full quota) is finished piece by piece.
  if (done < total) {
    const all = Buffer.concat(bufs);
    while (done < total) {
      const { bytesWritten } = await fh.write(all, done, total - done, at + done);
      if (bytesWritten === 0) throw new Error('the disk accepted no more bytes');
      done += bytesWritten;
    }
  }
}

/**
 * Reads `length` bytes from `offset` in blocks of `block`, one read ahead of the consumer.
 * Fails on a short read: the file changed size under us. With `reuse`, a block is read into
 * again once the consumer has asked for the one after it, so two buffers serve the whole file:
 * only for a consumer that is done with each block by then (one that decrypts it into buffers
 * of its own is; one that hands blocks on is not). Why: see PipelinedWriter. Measured on Node
 * 24, three encrypted gets of 256 MiB from tmpfs: 31 full collections and 490-860 MiB/s with a
 * new buffer per block, 20 and 650-1,030 with reuse.
 */
export async function* readBlocks(fh: FileHandle, offset: number, length: number, block: number, reuse = false): AsyncGenerator<Buffer> {
  const spare: Buffer[] = [];
  const read = (at: number): Promise<Buffer> => {
    const n = Math.min(block, offset + length - at);
    return readExactly(fh, at, n, reuse ? spare.pop() : undefined);
  };
  let at = offset;
  let next: Promise<Buffer> | undefined = length > 0 ? read(at) : undefined;
  while (next !== undefined) {
    const cur = next;
    cur.catch(() => {});
    at += Math.min(block, offset + length - at);
    next = at < offset + length ? read(at) : undefined;
    next?.catch(() => {});
    const b = await cur;
    yield b;
    // The consumer has asked for the next block: this one is free. A short one is the last.
    if (reuse && b.length === block) spare.push(b);
  }
}

/**
 * `n` bytes from `at`, in a buffer of their own, or in the first n bytes of `into` (at least
 * that long); ShortReadError if the file ends first.
 */
export async function readExactly(fh: FileHandle, at: number, n: number, into?: Buffer): Promise<Buffer> {
  if (into !== undefined && into.length < n) throw new RangeError('readExactly: the buffer is shorter than the read');
  const buf = into === undefined ? Buffer.allocUnsafe(n) : into.subarray(0, n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, at + got);
    if (bytesRead === 0) throw new ShortReadError();
    got += bytesRead;
  }
  return buf;
}

export class ShortReadError extends Error {
  constructor() {
    super('the file ended early');
  }
}
