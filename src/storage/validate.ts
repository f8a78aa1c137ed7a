import { AppError, ErrorCode, inspected, invalidInput as bad, shown, thrownText } from '../errors/index.js';
import { binaryKey, mayHoldBinary } from '../redact/index.js';
import { ID_CHARS } from './ids.js';

/**
 * Input checks for everything that is about to be stored. Each failure names the field and the
 * limit, and happens before anything is sent to the writer.
 */

/**
 * SQLite stores UTF-8; a string with an unpaired UTF-16 surrogate cannot be encoded and would be
 * silently altered (U+FFFD), so it is refused instead.
 */
/**
 * `tooLong`: what to do about a value past the limit. Only message content has a configurable
 * limit; a name or a type has a fixed one.
 */
export function checkText(value: unknown, field: string, maxBytes: number, allowEmpty = false, tooLong = `shorten it: ${field} is at most ${maxBytes} bytes`): string {
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  if (!allowEmpty && value.length === 0) throw bad(`${field} must not be empty`);
  if (!value.isWellFormed()) {
    throw bad(`${field} contains an unpaired UTF-16 surrogate and cannot be stored as UTF-8`, 'fix the text encoding of the input');
  }
  // Cheap bound first: a UTF-8 byte count is at most 3 per UTF-16 code unit.
  if (value.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > maxBytes) throw bad(`${field} is ${bytes} bytes; the limit is ${maxBytes}`, tooLong);
  }
  return value;
}

export function checkOptionalText(value: unknown, field: string, maxBytes: number): string | null {
  if (value === undefined || value === null) return null;
  return checkText(value, field, maxBytes);
}

export function checkEnum<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw bad(`${field} must be one of ${allowed.join(', ')} (got ${shown(value, 40)})`);
  }
  return value as T;
}

export function checkCount(value: unknown, field: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw bad(`${field} must be a non-negative integer`);
  }
  return value;
}

export function checkLimit(value: unknown, field: string, def: number, max: number): number {
  if (value === undefined || value === null) return def;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) {
    throw bad(`${field} must be an integer from 1 to ${max}`);
  }
  return value;
}

/** SQLite's JSON functions (and json_valid in our CHECK constraints) stop at this depth. */
export const MAX_JSON_DEPTH = 1000;

export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/**
 * JSON.stringify of what a caller gave; what it throws is KC_INVALID_INPUT naming `field`.
 * Nesting deep enough to exhaust the stack (JSON.stringify recurses) is past the depth limit
 * long before: that says so, not "Maximum call stack size exceeded". (A RangeError can also be
 * a string too long for V8: that one keeps its own words.) A getter or toJSON() that throws
 * something other than an Error has it described, not "undefined".
 */
export function stringified(value: unknown, field: string, hint?: string): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (err instanceof RangeError && /call stack/i.test(err.message)) throw bad(`${field} is nested more than ${MAX_JSON_DEPTH} levels deep`, hint);
    throw bad(`${field} cannot be serialised as JSON: ${thrownText(err)}`, hint);
  }
}

/**
 * Serialises a metadata object; refuses what JSON cannot carry faithfully, and anything whose
 * JSON is not an object (a Date or a toJSON() returning a number would come back as something
 * else). Returns the JSON text and its size in UTF-8 bytes.
 */
export function checkJsonObject(value: unknown, field: string, maxBytes: number): { text: string; bytes: number } | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || inspected(field, () => Array.isArray(value))) throw bad(`${field} must be a JSON object`);
  const text = stringified(value, field);
  if (text === undefined || !text.startsWith('{')) throw bad(`${field} must serialise to a JSON object`);
  refuseBinary(value, text, field);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) throw bad(`${field} is ${bytes} bytes as JSON; the limit is ${maxBytes}`);
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw bad(`${field} is nested more than ${MAX_JSON_DEPTH} levels deep`);
  return { text, bytes };
}

/**
 * Bytes are refused: in JSON a Buffer or typed array is a list of numbers, where redaction
 * finds no secret (a key read from a file, a request body would be stored as it is).
 */
export function refuseBinary(value: unknown, text: string, field: string): void {
  if (!mayHoldBinary(text)) return;
  const key = binaryKey(value);
  if (key === undefined) return;
  throw bad(
    `${field} holds binary data${key === '' ? '' : ` (under the key ${shown(key, 40)})`}: bytes cannot be redacted, so they are not stored`,
    'store bytes with app.objects.put() and keep its reference, or convert them to text (utf8 or base64) yourself',
  );
}

/** IDs are looked up, never interpreted; only their size is bounded. */
export function checkId(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
    throw bad(`${field} must be a non-empty string of at most 256 characters (got ${typeof value === 'string' ? `${value.length} characters` : typeof value})`);
  }
  return value;
}

/**
 * An id the caller gave, for a message: whole when it is no longer than an id (26 characters),
 * else by its length alone, since a token pasted in the wrong place is no id (most are longer).
 */
export function shownId(id: string): string {
  return shown(id, ID_CHARS + 2);
}

/** A session id that names none (see shownId). */
export function sessionNotFound(id: string): AppError {
  return new AppError(ErrorCode.NOT_FOUND, `no session with id ${shownId(id)}`, {
    hint: 'blufio sessions list shows the sessions that exist',
  });
}
