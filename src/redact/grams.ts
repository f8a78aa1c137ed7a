/**
 * A fast "might this text hold a vault value, and from where?" test, so most log lines skip the
 * vault part of the scan (a regex over 100 values costs several times the rest of a log line).
 *
 * The filter holds every 4-character window of every form, as a 32-bit number (the low byte of
 * each character). Any `stride + 3` consecutive characters contain the window that starts at a
 * multiple of `stride`, so with every form at least that long, looking at those windows alone
 * cannot miss one: the stride is the shortest form's length - 3 (5 for an 8-character
 * password, 20 or more for API keys, whose forms are all long). A hit in the bitmap is
 * confirmed against the exact set. A 250-character line costs 4 to 50 lookups.
 */
const BITS = 22; // 4 Mbit = 512 KiB: a few hundred thousand windows stay well under 10% fill
const MAX_STRIDE = 64;

const window4 = (s: string, i: number): number =>
  (s.charCodeAt(i) & 0xff) | ((s.charCodeAt(i + 1) & 0xff) << 8) | ((s.charCodeAt(i + 2) & 0xff) << 16) | ((s.charCodeAt(i + 3) & 0xff) << 24);
const slot = (w: number): number => Math.imul(w, 0x9e3779b1) >>> (32 - BITS);

export class GramFilter {
  readonly #bits = new Uint32Array(1 << (BITS - 5));
  readonly #exact = new Set<number>();
  readonly #stride: number;

  /** Every form must be at least 4 characters long. */
  constructor(forms: readonly string[]) {
    let shortest = Infinity;
    for (const f of forms) {
      shortest = Math.min(shortest, f.length);
      for (let i = 0; i + 4 <= f.length; i++) {
        const w = window4(f, i);
        const h = slot(w);
        this.#bits[h >>> 5]! |= 1 << (h & 31);
        this.#exact.add(w);
      }
    }
    this.#stride = Math.max(1, Math.min(MAX_STRIDE, shortest - 3));
  }

  /**
   * The index of the first sampled window at or after `from` (give or take a stride) that
   * appears in some form, or -1: no form occurs there. An occurrence of a form starts at most
   * (its length - 4) before the index returned.
   */
  firstHit(text: string, from = 0): number {
    const bits = this.#bits;
    const stride = this.#stride;
    for (let i = from - (from % stride); i + 4 <= text.length; i += stride) {
      const w = window4(text, i);
      const h = slot(w);
      if ((bits[h >>> 5]! & (1 << (h & 31))) !== 0 && this.#exact.has(w)) return i;
    }
    return -1;
  }
}
