/**
 * Encoded data is not a credential. A base64url blob of 1 MB (a Gmail attachment as its API
 * returns it, a tool's binary output) holds `sk-` followed by 48 letters and digits about once:
 * the legacy OpenAI format, matched by chance (measured: 66 matches of four formats in 64 MB of
 * random base64url; `AIza` + 35 in standard base64 about once per 50 MB). Redacting the match
 * would corrupt the stored data, so a match of a built-in format that lies inside a long
 * unbroken run of base64 or base64url characters is left alone.
 *
 * What keeps this from hiding real keys: every built-in single-token format is at most about
 * 530 characters long (Anthropic and OpenAI project keys), so a run of BLOB_RUN characters
 * holds at least as much again glued to the key with no space, quote, `.`, `:`, `=`, `,` or
 * line break between; keys are found beside such separators (in headers, config, URLs, JSON,
 * lists). Within a run, a match with no letter or digit on either side (a `+`, `/`, `-`, `_`
 * or the run's end) is a key, not data: form encoding writes a space as `+` (a list of keys in
 * a chat command's body is one long run), paths join segments with `/`; a chance match has a
 * letter or digit on at least one side all but once in a thousand times. The two characters
 * after a `%` are an escape (`%0A`, `%22`), not data: base64 has no `%`. Vault values are never
 * exempt (their base64 forms are meant to be found in blobs), nor configured `extra_patterns`
 * (their length is unknown). A run can hold `\/`, the JSON escape of `/` that PHP writes in
 * base64 strings.
 */
export const BLOB_RUN = 1024;

const isAlnum = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

function isRunChar(text: string, i: number): boolean {
  if (text.charCodeAt(i - 1) === 0x25 || text.charCodeAt(i - 2) === 0x25) return false; // %XX
  const c = text.charCodeAt(i);
  if (isAlnum(c)) return true;
  if (c === 0x2b || c === 0x2f || c === 0x5f || c === 0x2d) return true; // + / _ -
  return c === 0x5c && text.charCodeAt(i + 1) === 0x2f; // \/
}

/**
 * Answers "is this match data?" for increasing positions of one text. The run around
 * the last position asked about is remembered, so each run is measured once however many
 * matches fall in it: the whole scan stays linear.
 */
export class BlobRuns {
  #from = -1;
  #to = -1;

  constructor(private readonly text: string) {}

  /** Whether [start, end), a match of a built-in format, is data: inside a blob, not set apart in it. */
  isData(start: number, end: number): boolean {
    if (!this.#inBlob(start, end)) return false;
    return !(this.#apart(start - 1) && this.#apart(end));
  }

  /** No letter or digit of the run at i: its end, or `+ / - _ \/`. */
  #apart(i: number): boolean {
    return i < this.#from || i >= this.#to || !isAlnum(this.text.charCodeAt(i));
  }

  #inBlob(start: number, end: number): boolean {
    if (start < this.#from || start >= this.#to) {
      if (!isRunChar(this.text, start)) return false;
      let a = start;
      while (a > 0 && isRunChar(this.text, a - 1)) a--;
      let b = start + 1;
      while (b < this.text.length && isRunChar(this.text, b)) b++;
      this.#from = a;
      this.#to = b;
    }
    return end <= this.#to && this.#to - this.#from >= BLOB_RUN;
  }
}
