import fs from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { noop, orAbort } from './abort.js';

/**
 * A put from fs.createReadStream(path), the usual way to store a file, reads the file itself,
 * into two buffers it reuses, instead of taking the stream's pieces. The stream allocates a new
 * Buffer for every read; V8 counts that memory against its heap limits, and in a process that
 * has run for a while (its heap limits lowered by the memory reducer, as in the daemon) a
 * stream of them keeps a major GC running back to back: measured on the bench machine, a
 * 256 MiB encrypted put took 2.6-3.5 ms of CPU per MiB that way, against 1.0-1.8 read here
 * (README, the object store's bench notes). The bytes stored are the ones the stream
 * would have given: the same file (checked by device and inode against the descriptor the
 * stream opened), the same start and end.
 */

/** The largest piece read at once; a file smaller than this gets buffers of its own size. */
const FILE_PIECE = 1024 * 1024;
const MIN_PIECE = 64 * 1024;

/** What a ReadStream holds that Node's types do not declare, checked. */
interface Range {
  start: number | undefined;
  /** Inclusive, as the option is; Infinity when none was given. */
  end: number;
}

function rangeOf(s: fs.ReadStream): Range | undefined {
  const { start, end } = s as unknown as { start: unknown; end: unknown };
  const okStart = start === undefined || (Number.isSafeInteger(start) && (start as number) >= 0);
  const okEnd = end === Infinity || (Number.isSafeInteger(end) && (end as number) >= ((start as number | undefined) ?? 0) - 1);
  return okStart && okEnd ? { start: start as number | undefined, end: end as number } : undefined;
}

function fdOf(s: fs.ReadStream): number | null {
  const fd = (s as unknown as { fd: unknown }).fd;
  return Number.isSafeInteger(fd) && (fd as number) >= 0 ? (fd as number) : null;
}

/**
 * Node's own ReadStream prototype: the one that opens through `_construct` and `open`. A
 * constructor put in fs.ReadStream's place (graceful-fs's gracefulify() installs one, with an
 * `open` of its own that Node then calls instead, and no 'ready' follows) is not it.
 */
function nodeReadStreamPrototype(): object | undefined {
  for (let p: object | null = fs.ReadStream.prototype; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    if (Object.hasOwn(p, '_construct') && Object.hasOwn(p, 'open') && Object.hasOwn(p, '_read')) return p;
  }
  return undefined;
}

/** Flags a stream reads with: anything else (write-only, O_DIRECT, O_PATH...) is left to the stream. */
const READ_FLAGS = new Set<unknown>(['r', 'rs', 'sr', 'r+', 'rs+', 'sr+', fs.constants.O_RDONLY, fs.constants.O_RDWR]);

function ownSymbol(s: object, description: string): unknown {
  const k = Object.getOwnPropertySymbols(s).find((sym) => sym.description === description);
  return k === undefined ? undefined : (s as Record<symbol, unknown>)[k];
}

/**
 * The stream, when it is one blufio can read the file of in its place: a plain fs.ReadStream
 * opened from a path, with flags that read, by Node's own fs and Node's own ReadStream code (not
 * a subclass or replacement, no `fs` option, no FileHandle, no method of its own), that no one
 * has read from, is reading from or listens to for data, with no encoding. Anything else is
 * read as a stream.
 */
export function untouchedFileStream(source: unknown): fs.ReadStream | undefined {
  try {
    const proto = nodeReadStreamPrototype();
    if (proto === undefined || typeof source !== 'object' || source === null || Object.getPrototypeOf(source) !== proto) return undefined;
    const s = source as fs.ReadStream;
    for (const key of [...Object.getOwnPropertyNames(s), ...Object.getOwnPropertySymbols(s)]) {
      if (typeof (s as unknown as Record<PropertyKey, unknown>)[key] === 'function') return undefined;
    }
    // Node keeps the fs a stream reads through under a symbol of its own; a stream with an `fs`
    // option, or made by FileHandle.createReadStream(), reads through something else. Should a
    // later Node name it differently, no stream is taken and nothing changes but the speed.
    if (ownSymbol(s, 'kFs') !== fs) return undefined;
    if ((typeof s.path !== 'string' && !Buffer.isBuffer(s.path)) || rangeOf(s) === undefined) return undefined;
    if (!READ_FLAGS.has((s as unknown as { flags: unknown }).flags)) return undefined;
    return unread(s) ? s : undefined;
  } catch {
    return undefined; // a getter that throws: leave it to the stream path, which reports it
  }
}

/**
 * Nothing read, being read or asked for: no read of the stream's own running (kIsPerformingIO,
 * `reading`) or due once its file opens (`needReadable`: someone called read() before), nothing
 * buffered or consumed, no one listening for data. Checked when the put is given the stream
 * and again just before the first piece is handed out.
 */
function unread(s: fs.ReadStream): boolean {
  const state = (s as unknown as { _readableState?: { reading?: unknown; needReadable?: unknown } })._readableState;
  return (
    state !== undefined && state.reading === false && state.needReadable === false && ownSymbol(s, 'kIsPerformingIO') === false &&
    s.readableFlowing === null && s.readableLength === 0 && s.bytesRead === 0 && !s.destroyed && !s.readableEnded &&
    s.readableEncoding === null && !s.readableObjectMode
  );
}

/**
 * Waits for the stream to open its file: 'open' or 'ready' (true), or closed first (false), or its open
 * failed (its error), or the signal aborted (its reason).
 */
function opened(s: fs.ReadStream, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      s.off('ready', onReady);
      s.off('open', onReady);
      s.off('error', onError);
      s.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const onReady = (): void => (done(), resolve(true));
    const onClose = (): void => (done(), resolve(false));
    const onError = (err: Error): void => (done(), reject(err));
    const onAbort = (): void => (done(), reject(signal!.reason as Error));
    if (signal?.aborted === true) return onAbort();
    s.on('ready', onReady);
    s.on('open', onReady);
    s.on('error', onError);
    s.on('close', onClose);
    signal?.addEventListener('abort', onAbort);
  });
}

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}

/** Why reading stopped: what the stream was destroyed with, as its own iterator would say. */
function destroyedError(s: fs.ReadStream): Error {
  return s.errored ?? Object.assign(new Error('the stream was destroyed before its end'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Reads the file of `s` (see untouchedFileStream) into reused buffers. Each piece it yields is
 * valid until the next one is asked for: its buffer is refilled then. Returns false, having
 * yielded nothing, when the stream is better read as one (not a regular file, another file
 * than the stream opened, closed before it opened); the stream is untouched then. The open's
 * own error (a file that does not exist) is thrown, as the stream would have. At the end the
 * stream is ended as if read, so 'end' and 'close' come as they would (and its descriptor is
 * closed unless autoClose is off). Throws the signal's reason once it is aborted, and the
 * stream's error should it be destroyed meanwhile (its caller cancelling through it).
 */
export async function* readFileStream(s: fs.ReadStream, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array, boolean> {
  // With a path and no descriptor given, the stream opens the file itself: with no start, it
  // reads from 0, where its descriptor's position is (nothing else knows the descriptor).
  const range = rangeOf(s);
  if (range === undefined) return false;
  if (s.pending && !(await opened(s, signal))) return false;
  const fd = fdOf(s);
  if (fd === null || s.destroyed) return false;
  // Only a regular file: a FIFO or a device would be opened a second time (a second reader of
  // a pipe takes bytes from the first), and an open of either can wait without end.
  let theirs: fs.Stats;
  try {
    theirs = await orAbort(fstat(fd), signal);
  } catch (err) {
    if (signal?.aborted === true) throw err;
    return false; // closed meanwhile: the stream says what became of it
  }
  if (!theirs.isFile()) return false;
  let fh: FileHandle;
  try {
    // Non-blocking: should the path have become a FIFO since, the open does not wait for a writer.
    const flags = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;
    fh = await orAbort(open(s.path, flags), signal, (late) => void late.close().catch(noop));
  } catch (err) {
    if (signal?.aborted === true) throw err;
    return false; // the stream could open it; let the stream read it
  }
  let bufs: Buffer[] = [];
  try {
    const mine = await orAbort(fh.stat(), signal);
    // The stream may have been asked to read while it opened: then it is the stream's to read.
    if (!mine.isFile() || mine.dev !== theirs.dev || mine.ino !== theirs.ino || !unread(s)) return false;
    const start = range.start ?? 0;
    let left = range.end === Infinity ? Infinity : range.end - start + 1;
    const piece = Math.min(FILE_PIECE, Math.max(MIN_PIECE, Math.min(left, mine.size - start) + 1));
    bufs = [Buffer.allocUnsafeSlow(piece), Buffer.allocUnsafeSlow(piece)];
    let pos = start;
    const read = (b: Buffer): Promise<number> => {
      if (left <= 0) return Promise.resolve(0);
      const p = fh.read(b, 0, Math.min(b.length, left), pos).then((r) => r.bytesRead);
      p.catch(noop); // seen where it is awaited; not an unhandled rejection when the caller stopped first
      return p;
    };
    let k = 0;
    let next = read(bufs[0]!);
    let first = true;
    for (;;) {
      let n: number;
      try {
        n = await orAbort(next, signal);
      } catch (err) {
        // A file that takes no positioned reads (ESPIPE) or answers EAGAIN: nothing was handed
        // out yet, so the stream can still read it its own way.
        if (first && signal?.aborted !== true) return false;
        throw err;
      }
      first = false;
      if (s.destroyed) throw destroyedError(s);
      if (n === 0) break;
      pos += n;
      left -= n;
      const got = bufs[k]!.subarray(0, n);
      k ^= 1;
      // The other buffer's piece was handed out last time, and the caller has asked for the next.
      next = read(bufs[k]!);
      yield got;
    }
    s.push(null);
    s.resume();
    return true;
  } finally {
    // FileHandle.close() closes the descriptor only once a read still running on it (the caller
    // stopped early, or an abort) is done, so the descriptor is never reused under it; an abort
    // does not wait for that. The buffers are zeroed once nothing writes into them any more.
    const closing = fh.close().catch(noop);
    void closing.then(() => {
      for (const b of bufs) b.fill(0);
    });
    await orAbort(closing, signal).catch(noop);
  }
}
