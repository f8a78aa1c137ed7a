/**
 * How far inside the end of a replacement configured patterns are tried at every position (see
 * ConfiguredMatches); further back, only the global search of each finds them.
 */
export const CONFIGURED_WINDOW = 256;

/** One pattern's matches as a global regex finds them: left to right, each search from the last match's end. */
class Cursor {
  #from = -1;
  #match: { index: number; end: number } | null = null;

  constructor(
    private readonly re: RegExp,
    private readonly text: string,
  ) {}

  /** The first match of the sequence that starts at or after `q`. */
  at(q: number): { index: number; end: number } | null {
    let from = q;
    if (this.#from !== -1 && q >= this.#from) {
      // The last search read [from, match.index] (or the rest of the text): its answer holds
      // for any q in that stretch, so the text is searched once however often this is asked.
      if (this.#match === null || q <= this.#match.index) return this.#match;
      // Past the start of that match, the next one starts at or after its end.
      if (q <= this.#match.end) from = this.#match.index + 1;
      q = Math.max(q, this.#match.end);
    }
    this.re.lastIndex = q;
    const m = this.re.exec(this.text);
    this.#from = from;
    this.#match = m === null ? null : { index: m.index, end: m.index + m[0].length };
    return this.#match;
  }
}

/**
 * Where configured patterns' matches that start inside a replacement end (#wholeEnd), in
 * linear time. Trying them at every position, as the built-in formats are, was quadratic: an
 * open-ended one (`[a-f0-9]{32,}`) read from each position to the end of its run, and 80 KB of
 * hex took 5 s. So each pattern is searched for once over the text, as a global regex finds it
 * (another pattern's match inside it is found by that pattern's search), and only in the last
 * CONFIGURED_WINDOW characters of a replacement are they tried at every position too (a
 * pattern's match that starts inside its own earlier one and runs further, `tok-aaaa-tok-bbbb...`).
 */
export class ConfiguredMatches {
  readonly #cursors: Cursor[];

  constructor(
    each: readonly RegExp[],
    private readonly sticky: RegExp,
    private readonly text: string,
  ) {
    this.#cursors = each.map((re) => new Cursor(re, text));
  }

  /**
   * Whether a configured match found starting in [from, to) (as endAt finds them for a
   * replacement ending at `to`) ends past `limit`.
   */
  crossesBefore(from: number, to: number, limit: number): boolean {
    for (let p = from; p < to; p++) if (this.endAt(p, to) > limit) return true;
    return false;
  }

  /** The furthest end of a configured match found starting at `p`, -1 for none; `best`: where the replacement ends so far. */
  endAt(p: number, best: number): number {
    let end = -1;
    for (const c of this.#cursors) {
      const m = c.at(p);
      if (m !== null && m.index === p && m.end > end) end = m.end;
    }
    if (p >= best - CONFIGURED_WINDOW) {
      this.sticky.lastIndex = p;
      const m = this.sticky.exec(this.text);
      if (m !== null && p + m[0].length > end) end = p + m[0].length;
    }
    return end;
  }
}
