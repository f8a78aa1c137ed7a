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

const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function isUlid(s: unknown): s is string {
  return typeof s === 'string' && ULID_RE.test(s);
}

/**
 * Message IDs carry their own row: the creation time (10 characters, as in a ULID) followed by
 * the message's sequence number (16 characters). They have the ULID shape and sort the same way,
 * and because the writer hands out sequence numbers and non-decreasing times under the write
 * lock, they sort in commit order across every process that writes the file. Decoding one gives
 * the row directly, so no separate index on a text id is needed (one index fewer to update on
 * every append).
 */
export function messageId(createdAt: number, seq: number): string {
  let s = '';
  let v = seq;
  for (let i = 0; i < 16; i++) {
    s = ALPHABET[v % 32] + s;
    v = Math.floor(v / 32);
  }
  return encodeTime(createdAt) + s;
}

const DECODE = new Map([...ALPHABET].map((c, i) => [c, i]));

/** The sequence number inside a message id, or undefined when it is not one. */
export function messageSeq(id: string): { seq: number; createdAt: number } | undefined {
  if (!isUlid(id)) return undefined;
  let seq = 0;
  for (const c of id.slice(10)) seq = seq * 32 + DECODE.get(c)!;
  let t = 0;
  for (const c of id.slice(0, 10)) t = t * 32 + DECODE.get(c)!;
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
  return { seq, createdAt: t };
}
