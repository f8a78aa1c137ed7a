import { AppError, ErrorCode } from '../errors/index.js';

/** What put() takes: bytes in memory, a Node stream, a web stream, or any async iterable of bytes. */
export type ObjectSource = Uint8Array | NodeJS.ReadableStream | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

function badPiece(piece: unknown): AppError {
  return new AppError(ErrorCode.INVALID_INPUT, `an object's stream must yield bytes (Buffer or Uint8Array), not ${piece === null ? 'null' : typeof piece}`, {
    hint: 'read files and sockets without an encoding (no setEncoding, no object mode)',
  });
}

/** The pieces of a source, as Uint8Arrays, with a clear error for anything else. */
export async function* piecesOf(source: ObjectSource): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  if (source === null || typeof source !== 'object' || typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') {
    throw new AppError(ErrorCode.INVALID_INPUT, 'put() takes a Buffer, a Uint8Array, a readable stream or an async iterable of bytes', {
      hint: 'pass fs.createReadStream(file), a Buffer, or a fetch response body',
    });
  }
  for await (const piece of source as AsyncIterable<unknown>) {
    if (!(piece instanceof Uint8Array)) throw badPiece(piece);
    yield piece;
  }
}
