import { AppError, ErrorCode } from '../errors/index.js';
import { checkLimit } from './validate.js';

/**
 * The UTF-8 bytes of JSON.stringify(s), quotes included, without making it: a page's bound must
 * be checked before its rows are serialised. JSON.stringify writes `"` `\` and \b \f \n \r \t as
 * two characters, every other control character as \u00XX and a lone surrogate as \uDXXX (six).
 */
export function jsonStringBytes(s: string): number {
  let n = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c) n += 1;
      else n += c === 0x22 || c === 0x5c || (c >= 0x08 && c <= 0x0d && c !== 0x0b) ? 2 : 6;
    } else if (c < 0x800) n += 2;
    else if (c < 0xd800 || c > 0xdfff) n += 3;
    else if (c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a pair: one four-byte character
      i++;
    } else n += 6;
  }
  return n;
}

/**
 * Stored JSON (metadata) as it appears in an answer. It was written by JSON.stringify (and the
 * scrubber, which only swaps text for ASCII markers), so parsing and serialising it again gives
 * no more bytes than it has.
 */
export function jsonTextBytes(text: string | null): number {
  return text === null ? 4 : Buffer.byteLength(text, 'utf8');
}

export interface PageLimits {
  /** UTF-16 characters of the rows' texts together. */
  maxChars?: number;
  /** Bytes of the page as JSON (UTF-8), an upper bound computed before it is serialised. */
  maxBytes?: number;
}

/**
 * The bounds of one list call, charged row by row as rows are read: the first row that passes
 * either fails the call with KC_RESULT_TOO_LARGE, so no more is read and nothing serialised.
 */
export class PageBound {
  private readonly maxChars: number;
  private readonly maxBytes: number;
  private chars = 0;
  private bytes = 2; // []
  private rows = 0;

  constructor(
    limits: PageLimits,
    private readonly what: 'messages' | 'sessions',
  ) {
    this.maxChars = limits.maxChars === undefined ? Infinity : checkLimit(limits.maxChars, 'maxChars', 0, Number.MAX_SAFE_INTEGER);
    this.maxBytes = limits.maxBytes === undefined ? Infinity : checkLimit(limits.maxBytes, 'maxBytes', 0, Number.MAX_SAFE_INTEGER);
  }

  /** Whether bytes are counted at all (the scan of every text costs a pass over it). */
  get countsBytes(): boolean {
    return this.maxBytes !== Infinity;
  }

  /** One more row of `chars` characters and (when countsBytes) `bytes` bytes of JSON, its comma included. */
  charge(chars: number, bytes: number): void {
    this.rows++;
    this.chars += chars;
    this.bytes += bytes + (this.rows > 1 ? 1 : 0);
    const over = this.chars > this.maxChars ? `${this.maxChars} characters` : this.bytes > this.maxBytes ? `${this.maxBytes} bytes as JSON` : undefined;
    if (over === undefined) return;
    throw new AppError(ErrorCode.RESULT_TOO_LARGE, `the ${this.rows} newest ${this.what} asked for hold more than ${over}`, {
      hint: 'ask for fewer at a time (limit), paging back with before',
    });
  }
}
