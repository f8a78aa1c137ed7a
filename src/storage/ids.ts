import { randomFillSync } from 'node:crypto';

/**
 * ULIDs: 48 bits of milliseconds and 80 random bits in Crockford base32, 26 characters that sort
 * by creation time. Within one generator the IDs strictly increase even when the clock stalls or
 * steps back (the random part is incremented instead), which is what "sorts by creation time"
 * needs from the single writer that hands them out.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export class UlidGenerator {
  private lastTime = -1;
  private readonly rand = new Uint8Array(10);

  next(now: number = Date.now()): string {
    if (now > this.lastTime) {
      this.lastTime = now;
      randomFillSync(this.rand);
      // Clear the top bit so that ~2^79 increments fit before the random part could overflow.
      this.rand[0] = (this.rand[0] ?? 0) & 0x7f;
    } else {
      this.increment();
    }
    return encodeTime(this.lastTime) + encodeRandom(this.rand);
  }

  private increment(): void {
    for (let i = this.rand.length - 1; i >= 0; i--) {
      const v = (this.rand[i] ?? 0) + 1;
      this.rand[i] = v & 0xff;
      if (v <= 0xff) return;
    }
    // Overflow after 2^79 IDs in one millisecond cannot happen; move time forward to stay sorted.
    this.lastTime += 1;
  }
}

function encodeTime(ms: number): string {
  let out = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits -> 16 characters of 5 bits, most significant first.
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(acc >> bits) & 31];
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

/** Every id blufio hands out (sessions, messages, jobs, objects after their prefix) is this long. */
export const ID_CHARS = 26;
const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function isUlid(s: unknown): s is string {
  return typeof s === 'string' && ULID_RE.test(s);
}

/**
 * Message and job IDs carry their own row: the creation time (10 characters, as in a ULID)
 * followed by the rowid (16 characters). They have the ULID shape and sort the same way, and
 * because the writer hands out message sequence numbers and non-decreasing times under the write
 * lock, message ids sort in commit order across every process that writes the file. Decoding one
 * gives the row directly, so no separate index on a text id is needed (one index fewer to update
 * on every write). The time inside also makes a reused rowid a different id: a row deleted and
 * its number handed out again never answers to the old id.
 */
export function rowId(createdAt: number, seq: number): string {
  let s = '';
  let v = seq;
  for (let i = 0; i < 16; i++) {
    s = ALPHABET[v % 32] + s;
    v = Math.floor(v / 32);
  }
  return encodeTime(createdAt) + s;
}

/** Character code → digit value, -1 for characters outside the alphabet (ids are decoded on every ack). */
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

function decode32(id: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) {
    const c = id.charCodeAt(i);
    const d = c < 128 ? DECODE[c]! : -1;
    if (d < 0) return -1;
    v = v * 32 + d;
  }
  return v;
}

/** The rowid and creation time inside an id made by rowId(), or undefined when it is not one. */
export function parseRowId(id: string): { seq: number; createdAt: number } | undefined {
  if (id.length !== 26) return undefined;
  const createdAt = decode32(id, 0, 10);
  const seq = decode32(id, 10, 26);
  if (createdAt < 0 || !Number.isSafeInteger(seq) || seq < 1) return undefined;
  return { seq, createdAt };
}

/** Message ids are row ids (the name the first migration's notes use). */
export const messageId = rowId;
