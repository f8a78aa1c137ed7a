import { AppError, ErrorCode, checkInt, inspected, invalidInput as bad, optionsObject as checkOptionsObject, shown, type OptionNames } from '../../errors/index.js';
import { parseRowId } from '../ids.js';
import { MAX_JSON_DEPTH, checkId, jsonDepth, refuseBinary, shownId, stringified } from '../validate.js';
import { renderBinary } from '../../redact/index.js';
import type { JobRef, LeaseRef } from './ops.js';
import { MAX_ERROR_CHARS, TRUNCATED_MARK } from './sizes.js';

/** Queue inputs are checked on the caller's thread, before anything reaches the writer. */

export { checkInt };

const DAY_MS = 86_400_000;
export const MAX_DELAY_MS = 365 * DAY_MS;
export const MIN_LEASE_MS = 100;
export const MAX_LEASE_MS = DAY_MS;
export const MAX_PRIORITY = 1_000_000;
export const MAX_ATTEMPTS = 1000;
export const MAX_BATCH = 10_000;
export const MAX_CLAIM = 1000;
const MAX_KEY_CHARS = 256;

/**
 * Queue names show up in CLI tables and logs: letters, digits and `._:/-`, starting with a
 * letter or digit, at most 128 characters. Anything else is refused rather than escaped.
 */
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

export function checkQueueName(value: unknown): string {
  if (typeof value !== 'string' || !QUEUE_NAME.test(value)) {
    throw bad(
      `queue name ${shown(value)} is not valid`,
      'use 1-128 characters: letters, digits and . _ : / -, starting with a letter or digit',
    );
  }
  return value;
}

/** An integer option: undefined gives the default (or is refused without one); otherwise a safe integer in range. */
const PLAIN_DATA = 'pass plain data: objects, arrays, strings, numbers, booleans, null';

/**
 * The payload as stored: its JSON text. Values JSON cannot hold at all (undefined, functions,
 * symbols, BigInt, cycles) are refused; like JSON.stringify everywhere, toJSON() is honoured and
 * a NaN inside becomes null.
 */
export function encodePayload(value: unknown, maxBytes: number): string {
  const text = stringified(value, 'the payload', PLAIN_DATA);
  if (text === undefined) throw bad(`the payload (${typeof value}) has no JSON form`, PLAIN_DATA);
  refuseBinary(value, text, 'the payload');
  // JSON.stringify escapes lone surrogates, so the text is always well formed; only its size matters.
  checkPayloadBytes(text, maxBytes, '');
  // Deeper than the limit takes more than twice as many brackets: short payloads need no scan.
  if (text.length > 2 * MAX_JSON_DEPTH && jsonDepth(text) > MAX_JSON_DEPTH) {
    throw bad(`the payload is nested more than ${MAX_JSON_DEPTH} levels deep`);
  }
  return text;
}

/**
 * The stored payload fits in `maxBytes` (as UTF-8). Checked again after redaction, which may
 * lengthen it (an 8-character secret becomes `[REDACTED:vault]`): a stored payload past the
 * limit would not fit in a claim's answer, and would block its queue for every bounded claim.
 */
export function checkPayloadBytes(text: string, maxBytes: number, when: string): void {
  if (text.length * 3 <= maxBytes) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) {
    throw bad(`the payload is ${bytes} bytes as JSON${when}; the limit is ${maxBytes}`, 'put large data in a file or a message and enqueue a reference to it, or raise queue.max_payload_bytes');
  }
}

export function checkKey(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_CHARS || !value.isWellFormed()) {
    throw bad(`idempotencyKey must be a non-empty string of at most ${MAX_KEY_CHARS} characters`);
  }
  return value;
}

/**
 * An options argument: undefined or null mean none (the queue has always taken null so, and its
 * callers may rely on it); anything else as everywhere (errors/input.ts).
 */
export function optionsObject<T extends object>(value: T | null | undefined, what: string, known?: OptionNames<T>): T {
  return value === null ? ({} as T) : checkOptionsObject(value, what, known);
}

/** A list of { id, leaseToken } objects (ackMany, handBack), every one checked. */
export function leaseRefs(jobs: unknown, what: string): LeaseRef[] {
  if (!inspected(`the jobs given to ${what}`, () => Array.isArray(jobs)) || (jobs as unknown[]).length > MAX_BATCH) {
    throw bad(`${what} takes an array of at most ${MAX_BATCH} { id, leaseToken } objects`);
  }
  return (jobs as unknown[]).map((j) => {
    if (typeof j !== 'object' || j === null) throw bad(`${what} takes { id, leaseToken } objects`);
    const o = j as { id?: unknown; leaseToken?: unknown };
    return inspected(`a job given to ${what}`, () => leaseRef(o.id, o.leaseToken));
  });
}

/** A job id names a row: a malformed one cannot name any job. */
export function jobRef(id: unknown): JobRef {
  const text = checkId(id, 'a job id');
  const parsed = parseRowId(text);
  if (parsed === undefined) {
    throw new AppError(ErrorCode.NOT_FOUND, `no job with id ${shownId(text)}`, {
      hint: 'job ids are the 26-character ids returned by enqueue and claim',
    });
  }
  return { no: parsed.seq, createdAt: parsed.createdAt };
}

export function leaseRef(id: unknown, token: unknown): LeaseRef {
  const ref = jobRef(id);
  if (typeof token !== 'string' || token.length === 0 || token.length > 64) {
    throw bad('leaseToken must be the token that claim returned with the job');
  }
  return { ...ref, token };
}

/**
 * Whatever a handler threw, as bounded text for the job's last_error; never throws itself.
 * `scrub` runs before the cut: a secret that straddled it would be half there and no longer
 * recognisable. The cut then steps back from a replacement it would split.
 */
export function errorText(err: unknown, scrub: (s: string) => string = (s) => s): string {
  let text: string;
  try {
    // All of it: cutting first would leave half a secret at the cut, and a replacement can be
    // any length shorter than what it replaced, so no margin before the cut is safe.
    text = scrub(describeError(err));
  } catch {
    return 'failed (the error could not be described)';
  }
  if (text.length > MAX_ERROR_CHARS) {
    let cut = MAX_ERROR_CHARS;
    const open = text.lastIndexOf('[REDACTED:', cut);
    if (open !== -1) {
      const marker = /^\[REDACTED:[a-z0-9-]{1,48}\]/.exec(text.slice(open, open + 60));
      if (marker !== null && open + marker[0].length > cut) cut = open;
    }
    text = `${text.slice(0, cut)}${TRUNCATED_MARK}`;
  }
  return text.toWellFormed();
}

function describeError(err: unknown): string {
  let text: string;
  if (err instanceof Error) {
    const stack: unknown = err.stack;
    text = typeof stack === 'string' && stack.includes(String(err.message)) ? stack : `${String(err.name)}: ${String(err.message)}`;
  } else if (typeof err === 'string') {
    text = err;
  } else if (err === undefined) {
    text = 'failed';
  } else {
    try {
      text = renderBinary(JSON.stringify(err) ?? String(err));
    } catch {
      text = String(err);
    }
  }
  return text;
}

export function checkDelay(value: unknown, field: string): number {
  return checkInt(value, field, 0, MAX_DELAY_MS, 0, ' ms (one year)');
}

export function checkLease(value: unknown, def: number | undefined): number {
  return checkInt(value, 'leaseMs', MIN_LEASE_MS, MAX_LEASE_MS, def, ' ms (one day)');
}
