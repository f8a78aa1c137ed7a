import { AppError, ErrorCode, shown, thrownText } from '../errors/index.js';
import { noop, orAbort } from './abort.js';
import { readFileStream, untouchedFileStream } from './file-source.js';

/** What put() takes: bytes in memory, a Node stream, a web stream, or any async iterable of bytes. */
export type ObjectSource = Uint8Array | NodeJS.ReadableStream | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

function badPiece(piece: unknown): AppError {
  return new AppError(ErrorCode.INVALID_INPUT, `an object's stream must yield bytes (Buffer or Uint8Array), not ${piece === null ? 'null' : typeof piece}`, {
    hint: 'read files and sockets without an encoding (no setEncoding, no object mode)',
  });
}

function isNodeStream(s: unknown): s is NodeJS.ReadableStream & { destroy?: (err?: Error) => void } {
  try {
    return typeof (s as { on?: unknown } | null)?.on === 'function' && typeof (s as { pipe?: unknown }).pipe === 'function';
  } catch {
    return false; // a revoked Proxy, a throwing getter: piecesOf refuses it
  }
}

/**
 * From the moment put() is called until it has finished with it, a Node stream's 'error' is
 * listened to: one that fails before it is read (a file that does not exist, a socket reset)
 * would otherwise be an unhandled 'error' event that ends the process. The error itself still
 * reaches put() through the stream's iterator. Returns the undo.
 */
export function holdSource(source: unknown): () => void {
  if (!isNodeStream(source)) return noop;
  source.on('error', noop);
  return () => void source.removeListener('error', noop);
}

/** A put that failed lets go of its source: a file stream closes its descriptor, a socket is released. */
export function releaseSource(source: unknown): void {
  try {
    if (isNodeStream(source)) source.destroy?.();
    else if (source instanceof ReadableStream) {
      if (!source.locked) source.cancel().catch(noop);
    } else if (typeof (source as AsyncGenerator | null)?.return === 'function') {
      (source as AsyncGenerator).return(undefined).catch(noop);
    }
  } catch {
    // Letting go is best effort; the put's own error is what the caller hears about.
  }
}

const MAX_SLICE = 16 * 1024 * 1024;

/**
 * Bytes in a SharedArrayBuffer can change under the put (another thread writes them) between
 * the hash and the write, which would store content other than the address names: they are
 * copied once, here.
 */
function own(piece: Uint8Array): Uint8Array {
  return piece.buffer instanceof ArrayBuffer ? piece : Buffer.from(piece);
}

/**
 * The source's next piece, or the signal's reason as soon as it is aborted. A listener per wait,
 * removed when the wait ends (a Promise.race against one long-lived promise would keep every
 * piece alive through the reactions it piles up on that promise).
 */
function nextOrAbort(it: AsyncIterator<unknown>, signal: AbortSignal | undefined): Promise<unknown> {
  if (signal?.aborted === true) return Promise.reject(signal.reason as Error);
  // As for await does: next() may hand back its result without a promise.
  return orAbort(Promise.resolve(it.next()), signal);
}

/** What the source itself threw or rejected with (a stream's error, a generator's throw), as refused input. */
function sourceFailed(err: unknown): AppError {
  if (err instanceof AppError) return err;
  return new AppError(ErrorCode.INVALID_INPUT, `the source failed: ${thrownText(err)}`, {
    hint: 'nothing was stored; fix what the stream reads from and put it again',
    cause: err,
  });
}

function notAnIterator(what: string, value: unknown): AppError {
  return new AppError(ErrorCode.INVALID_INPUT, `the source's async iterator ${what} ${shown(value, 40)}, not ${what === 'is' ? 'an object with next()' : 'an object { done, value }'}`, {
    hint: 'pass a Node or web stream, or an async generator of Buffers',
  });
}

/**
 * A web stream is read through a reader of our own: its cancel() ends even a read that is
 * waiting (a stalled fetch body releases its socket), where the stream's async iterator would
 * queue the cancel behind that read.
 */
function iteratorOf(source: AsyncIterable<unknown>): AsyncIterator<unknown> {
  if (!(source instanceof ReadableStream)) return source[Symbol.asyncIterator]();
  // Locked: someone else holds its reader, and would take pieces from under the put.
  if (source.locked) {
    throw new AppError(ErrorCode.INVALID_INPUT, 'put() was given a web stream that is already being read (locked to a reader)', {
      hint: 'pass the stream before reading from it, or call releaseLock() on its reader first',
    });
  }
  const reader = (source as ReadableStream<unknown>).getReader();
  return {
    next: () => reader.read() as Promise<IteratorResult<unknown>>,
    return: async () => {
      await reader.cancel();
      return { done: true, value: undefined };
    },
  };
}

/**
 * The pieces of a source, as Uint8Arrays, with a clear error for anything else. A piece is the
 * caller's until it asks for the next one, no longer: a file stream's are read into buffers
 * that are then refilled (file-source.ts), as some sources' own are. `signal` stops
 * the wait for the next piece at once (a source that has gone quiet cannot hold up close()),
 * and the source is told to stop (a Node stream is destroyed, a generator returns).
 */
export async function* piecesOf(source: ObjectSource, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const file = untouchedFileStream(source);
  if (file !== undefined) {
    let done: boolean;
    try {
      done = yield* readFileStream(file, signal);
    } catch (err) {
      throw signal?.aborted === true && err === signal.reason ? err : sourceFailed(err);
    }
    if (done) return;
  }
  let bytes: boolean;
  let iterable: boolean;
  try {
    // Asking can throw: a revoked Proxy, a getter of Symbol.asyncIterator that throws.
    bytes = source instanceof Uint8Array;
    iterable = !bytes && source !== null && typeof source === 'object' && typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
  } catch (err) {
    throw sourceFailed(err);
  }
  if (bytes) {
    const b = source as Uint8Array;
    for (let off = 0; off === 0 || off < b.length; off += MAX_SLICE) yield own(b.length <= MAX_SLICE ? b : b.subarray(off, off + MAX_SLICE));
    return;
  }
  if (!iterable) {
    throw new AppError(ErrorCode.INVALID_INPUT, 'put() takes a Buffer, a Uint8Array, a readable stream or an async iterable of bytes', {
      hint: 'pass fs.createReadStream(file), a Buffer, or a fetch response body',
    });
  }
  let it: AsyncIterator<unknown>;
  try {
    it = iteratorOf(source as AsyncIterable<unknown>);
  } catch (err) {
    throw sourceFailed(err);
  }
  if (it === null || typeof it !== 'object' || typeof it.next !== 'function') throw notAnIterator('is', it);
  try {
    for (;;) {
      let r: unknown;
      try {
        r = await nextOrAbort(it, signal);
      } catch (err) {
        throw signal?.aborted === true && err === signal.reason ? err : sourceFailed(err);
      }
      if (r === null || typeof r !== 'object') throw notAnIterator('gave', r);
      const { done, value } = r as IteratorResult<unknown>;
      if (done === true) return;
      if (!(value instanceof Uint8Array)) throw badPiece(value);
      // A piece of gigabytes is handed on in slices: hashes and writes take at most 2 GiB at once.
      if (value.length <= MAX_SLICE) yield own(value);
      else for (let off = 0; off < value.length; off += MAX_SLICE) yield own(value.subarray(off, off + MAX_SLICE));
    }
  } finally {
    // Not awaited: a source stuck in a read would never answer.
    try {
      if (typeof it.return === 'function') Promise.resolve(it.return()).catch(noop);
    } catch {
      // A source whose return() throws has said all it will.
    }
  }
}
