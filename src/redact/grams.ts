/**
 * A fast "might this text hold a vault value?" test, so most log lines skip the vault part of
 * the scan (a regex over 100 values costs several times the rest of a log line).
 *
 * Every vault form is at least MIN characters long, so any occurrence of one covers a 4-gram
 * starting at a multiple of STRIDE = MIN - 3. The filter holds every 4-gram of every form;
 * the text is sampled only at those positions: a 250-character line costs 50 lookups in a
 * bitmap, and a bitmap hit is confirmed against the exact set. No false negatives; a false
 * positive only costs the full scan.
 */
const GRAM = 4;
const BITS = 22; // 4 Mbit = 512 KiB: about 1% of samples hit the bitmap with 100 values

function hash(s: string, i: number): number {
  let h =
    Math.imul(s.charCodeAt(i), 0x9e3779b1) ^
    Math.imul(s.charCodeAt(i + 1), 0x85ebca77) ^
    Math.imul(s.charCodeAt(i + 2), 0xc2b2ae3d) ^
    Math.imul(s.charCodeAt(i + 3), 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h >>> (32 - BITS);
}

export class GramFilter {
  readonly #bits = new Uint32Array(1 << (BITS - 5));
  readonly #exact = new Set<string>();
  readonly #stride: number;

  constructor(forms: Iterable<string>, minLength: number) {
    this.#stride = minLength - GRAM + 1;
    for (const f of forms) {
      for (let i = 0; i + GRAM <= f.length; i++) {
        const h = hash(f, i);
        this.#bits[h >>> 5]! |= 1 << (h & 31);
        this.#exact.add(f.slice(i, i + GRAM));
      }
    }
  }

  mightContain(text: string): boolean {
    const bits = this.#bits;
    for (let i = 0; i + GRAM <= text.length; i += this.#stride) {
      const h = hash(text, i);
      if ((bits[h >>> 5]! & (1 << (h & 31))) !== 0 && this.#exact.has(text.slice(i, i + GRAM))) return true;
    }
    return false;
  }
}
