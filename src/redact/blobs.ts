import { isAlnum, isBase64Url } from './chars.js';

/**
 * Encoded data is not a credential. A base64url blob of 1 MB (a Gmail attachment as its API
 * returns it, a tool's binary output) holds `sk-` followed by 48 letters and digits about once:
 * the legacy OpenAI format, matched by chance (measured: 268 matches in 256 MB of random
 * base64url, all but 6 of them legacy OpenAI, classic GitHub or Google; `AIza` + 35 in standard
 * base64 about once per 50 MB). Redacting the match would corrupt the stored data, so a match of
 * a format whose shape turns up by chance (Rule.chance) that lies inside a long unbroken run of
 * base64 or base64url characters is left alone. Formats with a longer prefix (`sk-proj-`,
 * `sk-ant-`, `glpat-`, `xoxb-`) turn up by chance rarely or never and are never exempt.
 *
 * What keeps this from hiding real keys: these formats are 39 to 259 characters long, so a run of
 * BLOB_RUN characters holds at least 765 more glued to the key with no space, quote, `.`, `:`,
 * `=`, `,` or line break between; keys are found beside such separators (in headers, config,
 * URLs, JSON, lists). And within a run, a match with no letter or digit on either side (a `+`,
 * `/`, `-`, `_` or the run's end) is a key, not data: form encoding writes a space as `+` (a list
 * of keys in a chat command's body is one long run), paths join segments with `/`. A chance match
 * nearly always has a letter or digit beside it (GitHub's format runs until one is missing, so it
 * needs one in front: 31 times in 32). The two characters after a `%` are an escape (`%0A`,
 * `%22`), never data: base64 has no `%`. A run can hold `\/`, the JSON escape of `/` that PHP
 * writes in base64 strings.
 */
export const BLOB_RUN = 1024;


/** The rest of a run, from a character that is one (isRunChar). */
const RUN = /(?:[A-Za-z0-9+/_-]|\\(?=\/))*/y;

function isRunChar(text: string, i: number): boolean {
  if (text.charCodeAt(i - 1) === 0x25 || text.charCodeAt(i - 2) === 0x25) return false; // %XX
  const c = text.charCodeAt(i);
  if (isBase64Url(c) || c === 0x2b || c === 0x2f) return true; // and + /
  return c === 0x5c && text.charCodeAt(i + 1) === 0x2f; // \/
}

/**
 * Answers "is this match data?" for increasing positions of one text. The run around a match is
 * measured once for all the matches in it: back at most BLOB_RUN characters (enough to tell a
 * blob), forward to its end with one regex pass (a 4 MB attachment is not walked character by
 * character in JS for its one chance match).
 */
export class BlobRuns {
  #from = -1;
  #to = -1;

  constructor(private readonly text: string) {}

  /** Whether [start, end), a match of a format that turns up by chance, is data: in a blob, glued to it. */
  isData(start: number, end: number): boolean {
    if (!this.#inBlob(start, end)) return false;
    return !(this.#apart(start - 1) && this.#apart(end));
  }

  /** No letter or digit of the run at i: its end, or `+ / - _ \/`. */
  #apart(i: number): boolean {
    return i < this.#from || i >= this.#to || !isAlnum(this.text.charCodeAt(i));
  }

  #inBlob(start: number, end: number): boolean {
    if (start < this.#from || start > this.#to) {
      // A new window: back at most BLOB_RUN characters (more says nothing more), forward to the
      // run's end in one regex pass (a `%` stops it, so %XX needs no check past the start).
      if (!isRunChar(this.text, start)) return false;
      let a = start;
      const left = Math.max(0, start - BLOB_RUN);
      while (a > left && isRunChar(this.text, a - 1)) a--;
      RUN.lastIndex = start;
      RUN.exec(this.text);
      this.#from = a;
      this.#to = RUN.lastIndex;
    }
    return end <= this.#to && this.#to - this.#from >= BLOB_RUN;
  }
}
