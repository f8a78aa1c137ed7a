import { AppError, ErrorCode, invalidInput } from '../errors/index.js';
import { ANCHORED, firstRuleStart } from './anchors.js';
import { BlobRuns } from './blobs.js';
import { ConfiguredMatches } from './cursor.js';
import { isAlnum } from './chars.js';
import { GramFilter } from './grams.js';
import { RULES, type Rule } from './rules.js';
import { checkExtraRule, groupCount, lazySource, looksAhead, type ExtraRule } from './extra-rule.js';
import { privateBytes } from '../vault/seal.js';

/** Vault values shorter than this are not matched as text: "1234" would redact every 1234. */
export const MIN_SECRET_LENGTH = 8;

/** Characters that continue a bare JSON value (number, true, false, null). */
function isJsonTokenChar(c: number): boolean {
  return isAlnum(c) || c === 0x2e || c === 0x2b || c === 0x2d;
}

function allTokenChars(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isJsonTokenChar(text.charCodeAt(i))) return false;
  return true;
}

/** Where the JSON string that `from` is inside of ends: its closing quote (the text's end when it has none). */
function stringClose(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i;
    i += c === 0x5c ? 2 : 1;
  }
  return text.length;
}

/** Where a sticky regex's match at `at` ends; -1 for none. */
function measured(re: RegExp, text: string, at: number): number {
  re.lastIndex = at;
  const m = re.exec(text);
  return m === null ? -1 : at + m[0].length;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

interface Trie {
  children: Map<string, Trie>;
  end: boolean;
}

/**
 * One regex for many literal strings, shaped as a trie so the engine tests one branch per
 * character instead of every string at every position. Children are tried before a string may
 * end, so at any start the longest string wins.
 */
function trieSource(words: Iterable<string>): string {
  const root: Trie = { children: new Map(), end: false };
  for (const w of words) {
    let node = root;
    for (const ch of w) {
      let next = node.children.get(ch);
      if (next === undefined) node.children.set(ch, (next = { children: new Map(), end: false }));
      node = next;
    }
    node.end = true;
  }
  // A run of single-child nodes is one literal, walked without recursion: recursing per
  // character overflowed the stack for values of a few thousand characters (a PEM key).
  const emit = (from: Trie): string => {
    let literal = '';
    let node = from;
    while (node.children.size === 1 && !node.end) {
      const [ch, child] = node.children.entries().next().value as [string, Trie];
      literal += escapeRe(ch);
      node = child;
    }
    const branches = [...node.children].map(([ch, child]) => escapeRe(ch) + emit(child));
    if (branches.length === 0) return literal;
    const body = branches.length === 1 ? branches[0]! : `(?:${branches.join('|')})`;
    return literal + (node.end ? `(?:${body})?` : body);
  };
  return emit(root);
}

const hex2 = (c: string): string => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
const lowerHex = (s: string): string => s.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());
const unicodeEscape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * The forms a secret takes in text: as is; JSON-escaped (as JSON.stringify writes it, with `\/`
 * as PHP does, with `\uXXXX` for everything but printable ASCII as Python's ensure_ascii does,
 * for `<>&` as Go's encoder does, and both as PHP's json_encode does by default); URL-encoded
 * (encodeURIComponent, RFC 3986 as Go, Python, curl and PHP's rawurlencode write it, Python's
 * quote() that keeps `/`, quote_plus and Go's QueryEscape, form encoding, `+` for space,
 * lower-case hex); and base64/base64url, with and without padding, and as the start of
 * a longer blob (a `token:` Basic credential): the characters the value alone decides, so at
 * most the 2 or 4 bits of its last character are left beside the replacement.
 */
export function secretForms(value: string): { forms: string[]; jsonSafe: string[] } {
  // A value stored with whitespace around it (a TOML multi-line string keeps the line break
  // before its closing quotes; `printf 'tok\n\n' | blufio config set-secret` keeps one) is
  // used trimmed: an HTTP header, a URL, a message hold it without. Its trimmed forms too.
  const trimmed = value.trim();
  const own = formsOf(value);
  if (trimmed === value) return own;
  const bare = formsOf(trimmed);
  return { forms: [...new Set([...own.forms, ...bare.forms])], jsonSafe: [...new Set([...own.jsonSafe, ...bare.jsonSafe])] };
}

function formsOf(value: string): { forms: string[]; jsonSafe: string[] } {
  // A short value is not matched in any form: its encodings are no more its own than it is
  // (base64 of "1234567" would be found in unrelated base64 data, and cut it).
  if (value.length < MIN_SECRET_LENGTH) return { forms: [], jsonSafe: [] };
  const json = JSON.stringify(value).slice(1, -1);
  // The value's bytes in a buffer of their own, zeroed at once: Buffer.from(value) would leave a
  // copy in Node's shared pool, which travels with any small Buffer sent to another thread.
  const bytes = privateBytes(value);
  const b64 = bytes.toString('base64');
  const b64url = bytes.toString('base64url');
  const decided = Math.floor((bytes.length * 4) / 3);
  bytes.fill(0);
  let uri = value;
  try {
    uri = encodeURIComponent(value);
  } catch {
    // A lone surrogate has no URL encoding; the other forms still apply.
  }
  const strict = uri.replace(/[!'()*]/g, hex2);
  const all = new Set([
    value,
    json,
    json.replace(/\//g, '\\/'),
    json.replace(/[\u007f-\uffff]/g, unicodeEscape),
    json.replace(/[<>&\u2028\u2029]/g, unicodeEscape),
    json.replace(/\//g, '\\/').replace(/[\u0080-\uffff]/g, unicodeEscape), // PHP's json_encode by default
    uri,
    uri.replace(/%20/g, '+'),
    lowerHex(uri),
    lowerHex(uri).replace(/%20/g, '+'),
    strict,
    lowerHex(strict),
    strict.replace(/%2F/g, '/'),
    strict.replace(/%20/g, '+'), // Go's QueryEscape, Python's quote_plus
    new URLSearchParams({ v: value }).toString().slice(2), // form encoding: also !'()~ and + for space
    b64,
    b64.replace(/=+$/, ''),
    b64url,
    b64.slice(0, decided),
    b64url.slice(0, decided),
  ]);
  const forms = [...all].filter((f) => f.length >= MIN_SECRET_LENGTH);
  // In JSON text (a log line, a stored document) a form with a quote, backslash or control
  // character can only appear escaped; matching it raw could eat the line's structure. Escaped
  // once it is `json` (the value in a string); escaped twice, a JSON document that holds the
  // value, kept as a string (an upstream response body in a log line): its JSON text is added.
  const special = /["\\\u0000-\u001f]/;
  const jsonSafe = new Set<string>();
  for (const f of forms) {
    if (f === json || !special.test(f)) jsonSafe.add(f);
    else jsonSafe.add(JSON.stringify(f).slice(1, -1));
  }
  if (special.test(json)) jsonSafe.add(JSON.stringify(json).slice(1, -1));
  return { forms, jsonSafe: [...jsonSafe] };
}

/** The names of the rules whose replacements stand in redacted text (for messages that must not quote it). */
export function firedRules(redacted: string): string[] {
  return [...new Set(Array.from(redacted.matchAll(/\[REDACTED:([a-z0-9-]{1,48})\]/g), (m) => m[1]!))];
}

/**
 * Forms longer than this are matched by their first LONG_FORM characters, then followed as far
 * as the text agrees with them: the regex of a vault holding a PEM key or a service account's
 * JSON in all its forms (hundreds of KB) is too large for V8 to build, and a stack overflowed
 * building it.
 */
const LONG_FORM = 256;

/** The private-key rule's body has no bound: see #wholeEnd for why that needs care. */
const PEM_START = '-----BEGIN ';
const PEM_RULE = RULES.find((r) => r.name === 'private-key')!;
const BUILT_IN: ReadonlySet<Rule | { name: string }> = new Set(RULES);

interface Compiled {
  re: RegExp;
  /** The same, anchored where lastIndex points: does a match start here? */
  sticky: RegExp;
  /** The sticky one without the private-key rule (see #keptHead). */
  stickyNoPem: RegExp;
  /** The sticky one without the private-key rule and without configured patterns: what #wholeEnd tries at every position. */
  stickyInner: RegExp;
  /** Each configured pattern alone, global, for ConfiguredMatches; none without configured patterns. */
  configuredEach: RegExp[];
  /** All configured patterns, sticky, for ConfiguredMatches. */
  stickyConfigured: RegExp | undefined;
  /**
   * Each configured pattern alone, sticky, by its rule: how far its match goes where `re` found
   * one start (`re` holds the patterns' shortest forms: see lazySource).
   */
  configuredSticky: Map<Rule | { name: string }, RegExp>;
  /** Whether group 1 is the vault's values. */
  vault: boolean;
  /** The first LONG_FORM characters of each longer form of this set, and the forms that start so. */
  long: Map<string, string[]>;
  /** For each rule (in group order): its name and capture group index. */
  groups: { index: number; rule: Rule | { name: string } }[];
  /**
   * The sticky one with the built-in formats made to fail (their groups kept, so the numbers
   * stay those of `groups`): what configured patterns match where a built-in one won, at a match
   * taken for encoded data (blobs.ts) and at a JWT payload's '.' (#wholeEnd). Only with
   * configured patterns; a vault value there would have won already.
   */
  stickyNoBuiltIn: RegExp | undefined;
}

/**
 * Replaces secrets in text with `[REDACTED:<rule>]`: the exact values of vault secrets
 * (`[REDACTED:vault]`) in every form they take, and the known formats in RULES plus any
 * configured ones, in one pass of one regex. A secret is replaced whole: when another secret
 * starts inside a match and runs past its end, the replacement runs to the end of that one.
 */
export class Redactor {
  readonly #rules: Rule[];
  /** Per vault entry, every value it has had since it was loaded: a rotated key may still be in use. */
  #values = new Map<string, Set<string>>();
  /** Values of this process's own secrets (the daemon's RPC token): kept when the vault's change or go. */
  #pinned = new Map<string, string>();
  /** The rules alone, for text the gram filter says holds no vault value; fixed at construction. */
  readonly #rulesOnly: Compiled;
  #plain: Compiled;
  #json: Compiled;
  #grams: GramFilter | undefined;
  #maxForm = 0;
  readonly #pemSticky = new RegExp(PEM_RULE.source, 'y');
  /** Whether anchors.ts knows where every rule can start (not so with configured extra rules). */
  readonly #anchored: boolean;
  /** Text shorter than this holds no secret: no vault value or format is, a configured pattern may be (a 6-digit code). */
  readonly #short: number;
  /** Whether a match inside a JSON string may be measured on the text cut at its closing quote (no configured pattern looks ahead). */
  readonly #cutSafe: boolean;

  constructor(extra: readonly ExtraRule[] = []) {
    for (const r of extra) {
      const problem = checkExtraRule(r);
      if (problem !== undefined) throw invalidInput(`redaction pattern ${r.name}: ${problem}`);
    }
    this.#rules = [...RULES, ...extra.map((r) => ({ name: r.name, source: r.regex }))];
    this.#anchored = this.#rules.every((r) => ANCHORED.has(r.name)) && extra.length === 0;
    this.#short = extra.length === 0 ? MIN_SECRET_LENGTH : 1;
    this.#cutSafe = !extra.some((r) => looksAhead(r.regex));
    this.#rulesOnly = this.#build(new Set());
    this.#plain = this.#json = this.#rulesOnly;
  }

  /** How many vault values are being matched. */
  get size(): number {
    return this.#values.size;
  }

  /** Adds the value a vault entry is matched by (a value it had before is still matched until deleteSecret). */
  setSecret(name: string, value: string): void {
    this.addSecrets([[name, value]]);
  }

  /** setSecret for many at once: one recompilation. */
  addSecrets(entries: Iterable<[string, string]>): void {
    const values = this.#copyValues();
    let changed = false;
    for (const [name, value] of entries) {
      const known = values.get(name);
      if (known?.has(value) === true) continue;
      if (known === undefined) values.set(name, new Set([value]));
      else known.add(value);
      changed = true;
    }
    if (changed) this.#compile(values, this.#pinned);
  }

  deleteSecret(name: string): void {
    const values = this.#copyValues();
    if (values.delete(name)) this.#compile(values, this.#pinned);
  }

  /** Replaces every vault value at once (after an unlock). */
  replaceSecrets(entries: Iterable<[string, string]>): void {
    const values = new Map<string, Set<string>>();
    for (const [k, v] of entries) values.set(k, new Set([v]));
    this.#compile(values, this.#pinned);
  }

  /** Matches `value` until unpin(name), whatever happens to the vault's values (lock, unlock, replace). */
  pin(name: string, value: string): void {
    this.pinAll([[name, value]]);
  }

  /** pin() for many at once: one recompilation. */
  pinAll(entries: Iterable<[string, string]>): void {
    const pinned = new Map(this.#pinned);
    for (const [name, value] of entries) pinned.set(name, value);
    if ([...pinned].some(([k, v]) => this.#pinned.get(k) !== v)) this.#compile(this.#values, pinned);
  }

  unpin(name: string): void {
    const pinned = new Map(this.#pinned);
    if (pinned.delete(name)) this.#compile(this.#values, pinned);
  }

  clearSecrets(): void {
    if (this.#values.size === 0) return;
    this.#compile(new Map(), this.#pinned);
  }

  #copyValues(): Map<string, Set<string>> {
    return new Map([...this.#values].map(([k, v]) => [k, new Set(v)]));
  }

  /**
   * Builds everything for the given values, then makes it current: a value that cannot be
   * compiled fails the call that brought it and leaves the redactor as it was, still matching
   * everything it matched before.
   */
  #compile(values: Map<string, Set<string>>, pinned: Map<string, string>): void {
    const plainForms = new Set<string>();
    const jsonForms = new Set<string>();
    const longPlain = new Map<string, string[]>();
    const longJson = new Map<string, string[]>();
    let maxForm = 0;
    const cut = (f: string, long: Map<string, string[]>): string => {
      if (f.length <= LONG_FORM) return f;
      const head = f.slice(0, LONG_FORM);
      const fulls = long.get(head);
      if (fulls === undefined) long.set(head, [f]);
      else if (!fulls.includes(f)) fulls.push(f);
      return head;
    };
    for (const set of [...values.values(), pinned.values()]) {
      for (const value of set) {
        const { forms, jsonSafe } = secretForms(value);
        for (const f of forms) plainForms.add(cut(f, longPlain));
        for (const f of jsonSafe) jsonForms.add(cut(f, longJson));
      }
    }
    for (const f of [...plainForms, ...jsonForms]) maxForm = Math.max(maxForm, f.length);
    let plain = this.#rulesOnly;
    let json = this.#rulesOnly;
    try {
      if (plainForms.size > 0) {
        plain = this.#build(plainForms, longPlain);
        json = this.#build(jsonForms, longJson);
      }
      // Compiled now, not at the first line that needs it: a regex V8 cannot build throws here.
      for (const c of [plain, json]) for (const re of [c.re, c.sticky, c.stickyNoPem, c.stickyInner, c.stickyNoBuiltIn, c.stickyConfigured]) re?.test('');
    } catch {
      // V8's message would quote the regex, and with it every secret.
      throw new AppError(ErrorCode.INTERNAL, `the redactor cannot match ${plainForms.size} forms of ${values.size + pinned.size} secrets at once (the regex is too large); nothing was changed`, {
        hint: 'keep fewer or shorter values in the vault',
      });
    }
    const grams = plainForms.size === 0 ? undefined : new GramFilter([...plainForms, ...jsonForms]);
    this.#values = values;
    this.#pinned = pinned;
    this.#maxForm = maxForm;
    this.#plain = plain;
    this.#json = json;
    this.#grams = grams;
  }

  #build(forms: Set<string>, long = new Map<string, string[]>()): Compiled {
    const parts: string[] = [];
    const groups: Compiled['groups'] = [];
    let index = 1;
    // Vault values first: at the same start, the exact known secret wins over a format.
    if (forms.size > 0) {
      parts.push(`(${trieSource(forms)})`);
      groups.push({ index, rule: { name: 'vault' } });
      index += 1;
    }
    for (const rule of this.#rules) {
      parts.push(`(${rule.source})`);
      groups.push({ index, rule });
      index += 1 + groupCount(rule.source);
    }
    const source = parts.join('|');
    const noPem = parts.filter((_, i) => groups[i]!.rule !== PEM_RULE).join('|');
    // Configured patterns come last, so leaving them out keeps the other groups' numbers.
    const firstConfigured = parts.length - (this.#rules.length - RULES.length);
    const isConfigured = (i: number): boolean => i >= firstConfigured;
    const inner = parts.filter((_, i) => groups[i]!.rule !== PEM_RULE && !isConfigured(i)).join('|');
    const configured = this.#rules.slice(RULES.length).map((r) => `(?:${r.source})`);
    const failing = (rule: Rule): string => `(${'()'.repeat(groupCount(rule.source))}(?!))`;
    // Where matches start is searched with configured patterns' shortest matches (lazySource);
    // their ends are measured apart (#configuredEnd).
    const sourceOf = (i: number): string => (groups[i]!.rule as Rule).source;
    const lazy = parts.map((part, i) => (isConfigured(i) ? `(${lazySource(sourceOf(i))})` : part));
    const noBuiltIn = lazy.map((part, i) => (BUILT_IN.has(groups[i]!.rule) ? failing(groups[i]!.rule as Rule) : part)).join('|');
    const measure = new Map<Compiled['groups'][number]['rule'], RegExp>();
    for (let i = firstConfigured; i < parts.length; i++) measure.set(groups[i]!.rule, new RegExp(sourceOf(i), 'y'));
    return {
      re: new RegExp(lazy.join('|'), 'g'),
      configuredSticky: measure,
      sticky: new RegExp(source, 'y'),
      stickyNoPem: new RegExp(noPem, 'y'),
      stickyInner: new RegExp(inner, 'y'),
      configuredEach: configured.map((source) => new RegExp(source, 'g')),
      stickyConfigured: configured.length === 0 ? undefined : new RegExp(configured.join('|'), 'y'),
      stickyNoBuiltIn: this.#rules.length > RULES.length ? new RegExp(noBuiltIn, 'y') : undefined,
      groups,
      vault: forms.size > 0,
      long,
    };
  }

  /**
   * The scan to run and where it may start: most text holds nothing that could match, and
   * then the regex is not run at all. The rules' anchors and the vault filter each give a
   * position no match can start before; the vault part is left out when the filter finds none.
   */
  #scan(text: string, withVault: Compiled, json: boolean, from: number): string {
    const rulesAt = this.#anchored ? firstRuleStart(text, from) : from;
    const hit = this.#grams === undefined ? -1 : this.#grams.firstHit(text, from);
    try {
      if (hit === -1) return rulesAt === -1 ? text : this.#run(text, this.#rulesOnly, json, rulesAt);
      const vaultAt = Math.max(from, hit - (this.#maxForm - 4));
      return this.#run(text, withVault, json, rulesAt === -1 ? vaultAt : Math.min(rulesAt, vaultAt));
    } catch (err) {
      // V8's regex engine gives up on an open-ended configured pattern over a run of several MB
      // (RangeError: its backtrack stack). Text that could not be scanned is never passed on
      // unscanned: the write (or log line) that brought it fails instead.
      if (!(err instanceof RangeError)) throw err;
      throw new AppError(ErrorCode.INVALID_INPUT, `a text of ${text.length} characters could not be scanned for secrets (the regex engine ran out of stack: ${err.message}); it was not stored or written`, {
        hint: 'bound the repetitions of [redaction] extra_patterns (e.g. {32,4096} instead of {32,} or +), or send less text at once',
      });
    }
  }

  /** Redacts plain text (message content, error messages, one string value). */
  redact(text: string): string {
    if (typeof text !== 'string' || text.length < this.#short) return text;
    return this.#scan(text, this.#plain, false, 0);
  }

  /**
   * Redacts JSON text (a serialised log line) without breaking its structure. `from`: the
   * caller knows the text before it holds no secret (the logger's own level and time fields).
   */
  redactJson(text: string, from = 0): string {
    if (typeof text !== 'string' || text.length < this.#short) return text;
    return this.#scan(text, this.#json, true, Number.isFinite(from) ? Math.max(0, Math.min(Math.trunc(from), text.length)) : 0);
  }

  /**
   * Redacts JSON text that is about to be stored, and guarantees it is still JSON. Should the
   * JSON-text pass break it, the value is parsed and its strings redacted one by one instead;
   * a configured pattern that spans fields (a key and its value) cannot match one string alone,
   * so that text is then passed over again as JSON text, and refused when that breaks it too:
   * never stored with the secret in clear.
   */
  scrubJson(text: string): string {
    const out = this.redactJson(text);
    if (out === text) return text;
    if (parses(out)) return out;
    const walked = JSON.stringify(this.redactValue(JSON.parse(text)));
    const again = this.redactJson(walked);
    if (again === walked || parses(again)) return again;
    throw invalidInput(`a JSON text of ${text.length} characters could not be redacted without breaking it; it was not stored`, 'check [redaction] extra_patterns against the stored JSON');
  }

  /** A copy of a JSON-like value with every string (keys too) redacted; the same value when nothing changed. */
  redactValue<T>(value: T): T {
    return this.#walk(value, 0) as T;
  }

  #walk(value: unknown, depth: number): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (typeof value === 'number' && this.#values.size > 0) {
      // A numeric secret stored as a JSON number.
      const text = String(value);
      const out = this.redact(text);
      return out === text ? value : out;
    }
    if (value === null || typeof value !== 'object' || depth > 1000) return value;
    if (Array.isArray(value)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const v = this.#walk(value[i], depth + 1);
        if (v !== value[i]) (out ??= value.slice())[i] = v;
      }
      return out ?? value;
    }
    if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
    let out: Record<string, unknown> | undefined;
    const entries = Object.entries(value as Record<string, unknown>);
    for (const [k, v] of entries) {
      const k2 = this.redact(k);
      const v2 = this.#walk(v, depth + 1);
      if (k2 !== k || v2 !== v) {
        out ??= Object.fromEntries(entries.slice(0, entries.findIndex(([key]) => key === k)));
      }
      if (out !== undefined) out[k2] = v2;
    }
    return out ?? value;
  }

  /** Replaces every match at or after `from` (the caller knows none starts before it). */
  #run(text: string, compiled: Compiled, json: boolean, from: number): string {
    const re = compiled.re;
    re.lastIndex = from;
    let m = re.exec(text);
    if (m === null) return text;
    let out = '';
    let last = 0;
    // JSON text: where a match stands decides how it is replaced (see below).
    let scanned = 0;
    let inString = false;
    let escStart = -1; // the last escape sequence seen: [escStart, escEnd)
    let escEnd = -1;
    const scanTo = (pos: number): void => {
      while (scanned < pos) {
        const c = text.charCodeAt(scanned);
        if (c === 0x22) inString = !inString;
        else if (c === 0x5c && inString) {
          escStart = scanned;
          escEnd = scanned + (text.charCodeAt(scanned + 1) === 0x75 ? 6 : 2); // \uXXXX or \n
          scanned = escEnd;
          continue;
        }
        scanned++;
      }
    };
    let closeAt = -1; // the closing quote of the string the last match started in
    // The text up to closeAt, and configured patterns' matches in it: made once per string.
    let view: { at: number; text: string; configured: ConfiguredMatches | undefined } = { at: -1, text: '', configured: undefined };
    let blobs: BlobRuns | undefined;
    const configured = compiled.stickyConfigured === undefined ? undefined : new ConfiguredMatches(compiled.configuredEach, compiled.stickyConfigured, text);
    while (m !== null) {
      let start = m.index;
      let g = compiled.groups.find((x) => m![x.index] !== undefined)!;
      if ((g.rule as Rule).chance?.test(m[0]) === true && (blobs ??= new BlobRuns(text)).isData(start, start + m[0].length)) {
        // Encoded data, not a key (blobs.ts). A configured pattern may match here too (it comes
        // after the built-ins in the alternation; a vault value comes first, and did not).
        const other = compiled.stickyNoBuiltIn;
        let alt: RegExpExecArray | null = null;
        if (other !== undefined) {
          other.lastIndex = start;
          alt = other.exec(text);
        }
        if (alt === null) {
          // One may start further on, inside the blob or across its end (a JWT glued to it).
          re.lastIndex = start + 1;
          m = re.exec(text);
          continue;
        }
        m = alt;
        g = compiled.groups.find((x) => alt[x.index] !== undefined)!;
      }
      if (m[0].length === 0) {
        // Configured patterns that match empty text are refused at load; should one slip through,
        // it replaces nothing.
        re.lastIndex = m.index + 1;
        m = re.exec(text);
        continue;
      }
      const rule = g.rule as Rule;
      // A match that begins inside its secret (a JWT's payload): the replacement starts where the
      // secret does, or where the last one ended.
      if (rule.startsBefore !== undefined) start = Math.max(last, rule.startsBefore(text, start));
      // In JSON text a match inside a string is measured with the text ending at the string's
      // closing quote: a replacement there ends with it anyway (below), and a configured pattern
      // measured on the whole text (`secret.*`) read to the end of the line at each match. Not
      // when a configured pattern looks ahead (looksAhead): it is measured on the whole text and
      // cut back below, as before, at that cost.
      let within = text;
      let withinConfigured = configured;
      if (json) {
        scanTo(start);
        if (inString && this.#cutSafe) {
          if (closeAt < start) closeAt = stringClose(text, scanned);
          if (view.at !== closeAt) {
            const t = text.slice(0, closeAt);
            view = { at: closeAt, text: t, configured: configured === undefined ? undefined : new ConfiguredMatches(compiled.configuredEach, compiled.stickyConfigured!, t) };
          }
          within = view.text;
          withinConfigured = view.configured;
        }
      }
      const measure = compiled.configuredSticky.get(g.rule);
      let matchEnd = measure === undefined ? this.#matchEnd(text, m.index, m, compiled, 0) : measured(measure, within, m.index);
      if (matchEnd === -1) {
        // Only across the string's end (a key and its value): measured on the whole text, and
        // replaced value by value below.
        within = text;
        withinConfigured = configured;
        matchEnd = measured(measure!, text, m.index);
        if (matchEnd === -1) matchEnd = m.index + m[0].length;
      }
      let end = this.#wholeEnd(within, start, matchEnd, compiled, withinConfigured);
      if (within !== text && configured !== undefined && measure === undefined && end < view.at && configured.crossesBefore(start, end, view.at)) {
        // A configured match that starts inside this one and runs on only across the quote (a
        // vault value followed by `secret1[^&]+&` over the next field) is not in the cut text:
        // the replacement runs to the string's end, as when measured on the whole text.
        end = view.at;
      }
      let quote = '';
      let skip = false;
      let across = false;
      if (json) {
        scanTo(start);
        if (start > escStart && start < escEnd) {
          // The match starts inside an escape (\n, \u0010...): take the whole escape, or a
          // broken one would be left before the replacement.
          if (escStart >= last) start = escStart;
          else skip = true;
        }
        if (skip) {
          // Left alone (see above).
        } else if (!inString) {
          // Outside any string only a whole JSON value can be a secret (a numeric vault value):
          // it becomes a string. Part of a longer number is a different value: left alone. A
          // minus sign in front is not (a Telegram group's id is the negative of a number).
          if (text.charCodeAt(start - 1) === 0x2d && start - 1 >= last && !isJsonTokenChar(text.charCodeAt(start - 2))) start -= 1;
          skip = isJsonTokenChar(text.charCodeAt(start - 1)) || isJsonTokenChar(text.charCodeAt(end));
          quote = '"';
          if (!allTokenChars(text, start, end)) {
            // Nor can anything else be replaced there as it is. A configured pattern that matches
            // JSON's structure (`\W[0-9]{16}\W`, `[^&]{4,}`) may cover a secret: what it covers
            // is replaced value by value below. Built-in formats and vault forms hold no quote:
            // other matches of theirs may start inside it.
            if (BUILT_IN.has(rule) || (rule.name === 'vault' && g.index === 1)) {
              re.lastIndex = m.index + 1;
              m = re.exec(text);
              continue;
            }
            across = true;
            skip = false;
          }
        } else {
          // Inside a string, a replacement ends with it: a configured pattern that matches a
          // quote (`token=\S+`) ran on through the other fields, and a stored document lost them.
          // (Built-in formats and vault forms never match an unescaped quote.)
          if (closeAt < start) closeAt = stringClose(text, scanned);
          if (end > closeAt) {
            if (BUILT_IN.has(rule) || (rule.name === 'vault' && g.index === 1)) end = closeAt;
            else {
              // A configured pattern: matched again with the text ending at the quote. When it
              // does not match so (`password\W{1,4}[A-Za-z0-9]{8,}` over `{"password":"..."}`),
              // the secret runs through the structure: it is replaced value by value below.
              const inner = this.#inString(text, m.index, closeAt, compiled);
              if (inner > m.index) end = inner;
              else across = true;
            }
          }
          if (end <= start) {
            re.lastIndex = m.index + 1;
            m = re.exec(text);
            continue;
          }
        }
        if (across) {
          // Every string's content and every bare value the match covers becomes the marker,
          // the quotes, colons, commas, brackets and spaces between them stay: the text is
          // still JSON, with nothing of the secret left. A bare value is replaced whole (as a
          // string), from its first character even when the match begins inside it.
          const marker = `[REDACTED:${g.rule.name}]`;
          let p = start;
          let s = inString;
          if (!s) while (p > last && isJsonTokenChar(text.charCodeAt(p - 1))) p--;
          let piece = text.slice(last, p);
          while (p < end) {
            const c = text.charCodeAt(p);
            if (s) {
              // The string's content up to the match's end or the closing quote, whichever comes
              // first; an escape the end falls in is taken whole (the same steps as scanTo).
              let i = p;
              while (i < end && i < text.length) {
                const d = text.charCodeAt(i);
                if (d === 0x22) break;
                i += d === 0x5c ? (text.charCodeAt(i + 1) === 0x75 ? 6 : 2) : 1;
              }
              i = Math.min(i, text.length);
              if (i > p) piece += marker;
              p = i;
              if (p < text.length && p < end && text.charCodeAt(p) === 0x22) {
                piece += '"';
                p++;
                s = false;
              } else break;
            } else if (c === 0x22) {
              piece += '"';
              p++;
              s = true;
            } else if (isJsonTokenChar(c)) {
              while (p < text.length && isJsonTokenChar(text.charCodeAt(p))) p++;
              piece += `"${marker}"`;
            } else {
              piece += text[p];
              p++;
            }
          }
          out += piece;
          last = p;
          scanTo(p);
          re.lastIndex = p === m.index ? p + 1 : p;
          m = re.exec(text);
          continue;
        }
        scanTo(end);
        if (end > escStart && end < escEnd) {
          end = escEnd;
          scanned = escEnd;
        }
      }
      if (!skip) {
        const matched = text.slice(start, end);
        const head = rule.keep === undefined ? '' : this.#keptHead(within, start, rule.keep.exec(matched)?.[0] ?? '', compiled);
        const tail = end === m.index + m[0].length ? (rule.keepEnd?.exec(matched)?.[0] ?? '') : '';
        out += `${text.slice(last, start)}${quote}${head}[REDACTED:${g.rule.name}]${tail}${quote}`;
        last = end;
      }
      re.lastIndex = end === m.index ? end + 1 : end;
      m = re.exec(text);
    }
    return out + text.slice(last);
  }

  /** Where a configured pattern's match at `at` ends when the text ends at `close` (its string's end); `at` for none. */
  #inString(text: string, at: number, close: number, compiled: Compiled): number {
    const sticky = compiled.stickyConfigured!;
    // First with the closing quote still there, so that a lookahead at the string's end sees
    // what follows the value (`secret\S+(?=\W)` over "secret_a.BCDEF" left ".BCDEF" in clear
    // when the text ended before the quote); a match that takes the quote in is not one.
    // Never shorter than without it, though: a lookahead that reads up to the quote and looks
    // past it (`(?=[^\x22]*\x22$)`) can let a short alternative win there (third review).
    sticky.lastIndex = at;
    const withQuote = sticky.exec(text.slice(0, close + 1));
    sticky.lastIndex = at;
    const m = sticky.exec(text.slice(0, close));
    // And only where a match without it exists: where none does, the match runs through the
    // structure and is replaced value by value (a pattern that needs the quote, `.{3,}(?=\x22)`,
    // may be meant to take the next value too: the safer reading).
    if (m === null) return at;
    const without = at + m[0].length;
    return withQuote !== null && at + withQuote[0].length <= close ? Math.max(without, at + withQuote[0].length) : without;
  }

  /**
   * Never half a secret: when another secret (a vault value or another format) starts inside
   * this match, or a longer format starts at the same place, and runs past its end, the
   * replacement runs to the end of that one too. Every position of the match is tried, not
   * only its last few hundred: a format may start early in a long match and run past it (a JWT
   * of several KB after "Bearer "). Still linear over the text: the scan goes on from the end
   * of the replacement, so no position is tried twice, and every rule tried at each position
   * has a bounded match there or starts with a fixed word (configured patterns, which may not,
   * are found once each by the cursor).
   */
  #wholeEnd(text: string, start: number, end: number, compiled: Compiled, configured: ConfiguredMatches | undefined): number {
    let best = end;
    const rules = this.#rulesOnly.sticky;
    rules.lastIndex = start;
    const same = rules.exec(text);
    if (same !== null && start + same[0].length > best) best = start + same[0].length;
    // A private key's body runs to its END line (or a quote, or the end of the text), through
    // any other BEGIN line: one that starts inside a key ends where that key does. So the rule
    // is tried at a BEGIN only past the end of the last key found, and each stretch of text is
    // read by it once (trying it at every BEGIN of a line of BEGINs was quadratic).
    let keyEnd = same !== null && text.startsWith(PEM_START, start) ? start + same[0].length : -1;
    const pem = this.#pemSticky;
    const sticky = compiled.stickyInner;
    const rulesInner = this.#rulesOnly.stickyInner;
    // Configured patterns are looked for apart, in linear time (cursor.ts), from the start: at a
    // JWT payload's '.', where the JWT's match begins, it wins over them (they come later in the
    // alternation), and one that starts there may run further.
    for (let p = start; p < best; p++) {
      if (configured !== undefined) best = Math.max(best, configured.endAt(p, best));
      if (p === start) continue;
      sticky.lastIndex = p;
      const v = sticky.exec(text);
      if (v !== null) {
        best = Math.max(best, this.#matchEnd(text, p, v, compiled, best));
        if (compiled.vault && v[1] !== undefined) {
          // The vault's alternative comes first in the regex: a format that starts at the same
          // place may run further (a vault value that is the start of a longer token). The
          // private-key rule is left to the BEGIN check below, which reads each key once.
          rulesInner.lastIndex = p;
          const r = rulesInner.exec(text);
          if (r !== null && p + r[0].length > best) best = p + r[0].length;
        }
      }
      if (p >= keyEnd && text.startsWith(PEM_START, p)) {
        pem.lastIndex = p;
        const k = pem.exec(text);
        if (k !== null) {
          keyEnd = p + k[0].length;
          if (keyEnd > best) best = keyEnd;
        }
      }
    }
    return best;
  }

  /**
   * What a rule keeps of its match (a URL's user name, an Authorization scheme word), redacted
   * itself: a token is often the user name (https://<token>:x-oauth-basic@github.com). And
   * nothing is kept when a secret starts in it and runs past it (a vault value that is a whole
   * `user:password`), or half of that secret would stay.
   */
  #keptHead(text: string, start: number, kept: string, compiled: Compiled): string {
    const keptEnd = start + kept.length;
    const sticky = compiled.stickyNoPem;
    for (let p = start + 1; p < keptEnd; p++) {
      sticky.lastIndex = p;
      const v = sticky.exec(text);
      if (v !== null && this.#matchEnd(text, p, v, compiled, 0) > keptEnd) return '';
    }
    return this.redact(kept);
  }

  /** Where a match found at `start` ends: a vault match of a long form's start is followed (#longEnd). */
  #matchEnd(text: string, start: number, m: RegExpExecArray, compiled: Compiled, covered: number): number {
    const end = start + m[0].length;
    return compiled.vault && m[1] !== undefined ? this.#longEnd(text, start, end, compiled, covered) : end;
  }

  /**
   * A vault match of a long form's first LONG_FORM characters runs as far as the text goes on
   * agreeing with a form that starts so: all of it when it is all there, and a cut-off copy
   * (a truncated log field) up to where it stops.
   */
  #longEnd(text: string, start: number, end: number, compiled: Compiled, covered: number): number {
    if (end - start !== LONG_FORM || compiled.long.size === 0) return end;
    const fulls = compiled.long.get(text.slice(start, end));
    if (fulls === undefined) return end;
    let best = end;
    for (const f of fulls) {
      // From where the replacement already reaches (`covered`): comparing again from the start
      // at every position inside a long match was quadratic for a value that repeats itself.
      // What lies before it is replaced anyway, so this can only replace more.
      let i = Math.max(LONG_FORM, covered - start);
      while (i < f.length && start + i < text.length && text.charCodeAt(start + i) === f.charCodeAt(i)) i++;
      if (start + i > best) best = start + i;
    }
    return best;
  }

}
