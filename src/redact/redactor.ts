import { AppError, ErrorCode } from '../errors/index.js';
import { GramFilter } from './grams.js';
import { RULES, type Rule } from './rules.js';

/** Vault values shorter than this are not matched as text: "1234" would redact every 1234. */
export const MIN_SECRET_LENGTH = 8;

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
  const emit = (node: Trie): string => {
    const branches = [...node.children].map(([ch, child]) => escapeRe(ch) + emit(child));
    if (branches.length === 0) return '';
    const body = branches.length === 1 ? branches[0]! : `(?:${branches.join('|')})`;
    return node.end ? `(?:${body})?` : body;
  };
  return emit(root);
}

/** The forms a secret takes in text: as is, JSON-escaped, URL-encoded, base64 and base64url. */
export function secretForms(value: string): { forms: string[]; jsonSafe: string[] } {
  const json = JSON.stringify(value).slice(1, -1);
  const b64 = Buffer.from(value, 'utf8').toString('base64');
  const all = new Set([value, json, encodeURIComponent(value), encodeURIComponent(value).replace(/%20/g, '+'), b64, b64.replace(/=+$/, ''), Buffer.from(value, 'utf8').toString('base64url')]);
  const forms = [...all].filter((f) => f.length >= MIN_SECRET_LENGTH);
  // In JSON text (a log line) a form with a quote, backslash or control character can only
  // appear escaped, which `json` covers; matching it raw could eat the line's structure.
  return { forms, jsonSafe: forms.filter((f) => f === json || !/["\\\u0000-\u001f]/.test(f)) };
}

export interface ExtraRule {
  name: string;
  regex: string;
}

/** Checks a configured pattern: compiles, cannot match empty text, no backreferences or quotes. */
export function checkExtraRule(rule: ExtraRule): string | undefined {
  if (!/^[a-z0-9][a-z0-9-]{0,47}$/.test(rule.name)) return 'name must be 1-48 lowercase letters, digits or -';
  if (rule.regex.length === 0 || rule.regex.length > 1000) return 'regex must be 1 to 1000 characters';
  if (/\\[1-9]|\\k</.test(rule.regex)) return 'regex must not use backreferences';
  let re: RegExp;
  try {
    re = new RegExp(rule.regex, 'g');
  } catch (err) {
    return `regex does not compile: ${(err as Error).message}`;
  }
  if (re.test('')) return 'regex matches empty text';
  return undefined;
}

interface Compiled {
  re: RegExp;
  /** The same, anchored where lastIndex points: does a match start here? */
  sticky: RegExp;
  /** For each rule (in group order): its name and capture group index. */
  groups: { index: number; rule: Rule | { name: string } }[];
}

function groupCount(source: string): number {
  return new RegExp(`${source}|`).exec('')!.length - 1;
}

/**
 * Replaces secrets in text with `[REDACTED:<rule>]`: the exact values of vault secrets
 * (`[REDACTED:vault]`) in every form they take, and the known formats in RULES plus any
 * configured ones, in one pass of one regex. A secret is replaced whole: when a format match
 * ends inside a vault value, the replacement runs to the end of that value.
 */
export class Redactor {
  readonly #rules: Rule[];
  readonly #values = new Map<string, string>();
  #plain: Compiled | undefined;
  #json: Compiled | undefined;
  /** The rules alone, for text the gram filter says holds no vault value. */
  #rulesOnly: Compiled | undefined;
  #grams: GramFilter | undefined;
  #maxForm = 0;

  constructor(extra: readonly ExtraRule[] = []) {
    for (const r of extra) {
      const problem = checkExtraRule(r);
      if (problem !== undefined) throw new AppError(ErrorCode.INVALID_INPUT, `redaction pattern ${r.name}: ${problem}`);
    }
    this.#rules = [...RULES, ...extra.map((r) => ({ name: r.name, source: r.regex }))];
    this.#compile();
  }

  /** How many vault values are being matched. */
  get size(): number {
    return this.#values.size;
  }

  /** Adds or replaces the value a vault entry is matched by. */
  setSecret(name: string, value: string): void {
    if (this.#values.get(name) === value) return;
    this.#values.set(name, value);
    this.#compile();
  }

  deleteSecret(name: string): void {
    if (this.#values.delete(name)) this.#compile();
  }

  /** Replaces every vault value at once (after an unlock). */
  replaceSecrets(entries: Iterable<[string, string]>): void {
    this.#values.clear();
    for (const [k, v] of entries) this.#values.set(k, v);
    this.#compile();
  }

  clearSecrets(): void {
    if (this.#values.size === 0) return;
    this.#values.clear();
    this.#compile();
  }

  #compile(): void {
    const plainForms = new Set<string>();
    const jsonForms = new Set<string>();
    this.#maxForm = 0;
    for (const value of this.#values.values()) {
      const { forms, jsonSafe } = secretForms(value);
      for (const f of forms) {
        plainForms.add(f);
        this.#maxForm = Math.max(this.#maxForm, f.length);
      }
      for (const f of jsonSafe) jsonForms.add(f);
    }
    const build = (forms: Set<string>): Compiled => {
      const parts: string[] = [];
      const groups: Compiled['groups'] = [];
      let index = 1;
      // Vault values first: at the same start, the exact known secret wins over a format.
      const vault = forms.size === 0 ? undefined : trieSource(forms);
      if (vault !== undefined) {
        parts.push(`(${vault})`);
        groups.push({ index, rule: { name: 'vault' } });
        index += 1;
      }
      for (const rule of this.#rules) {
        parts.push(`(${rule.source})`);
        groups.push({ index, rule });
        index += 1 + groupCount(rule.source);
      }
      const source = parts.join('|');
      return { re: new RegExp(source, 'g'), sticky: new RegExp(source, 'y'), groups };
    };
    this.#plain = build(plainForms);
    this.#json = build(jsonForms);
    this.#rulesOnly = build(new Set());
    this.#grams = plainForms.size === 0 ? undefined : new GramFilter([...plainForms, ...jsonForms], MIN_SECRET_LENGTH);
  }

  /** The scan to run: with the vault values only when the text might hold one. */
  #pick(text: string, withVault: Compiled): Compiled {
    return this.#grams !== undefined && this.#grams.mightContain(text) ? withVault : this.#rulesOnly!;
  }

  /** Redacts plain text (message content, error messages, one string value). */
  redact(text: string): string {
    if (typeof text !== 'string' || text.length < MIN_SECRET_LENGTH) return text;
    return this.#run(text, this.#pick(text, this.#plain!), false);
  }

  /** Redacts JSON text (a serialised log line) without breaking its structure. */
  redactJson(text: string): string {
    if (typeof text !== 'string' || text.length < MIN_SECRET_LENGTH) return text;
    return this.#run(text, this.#pick(text, this.#json!), true);
  }

  /**
   * Redacts JSON text that is about to be stored, and guarantees it is still JSON: a secret
   * that stands outside any string (a numeric vault value matching a JSON number) would break
   * it, so then the value is parsed and its strings redacted one by one instead.
   */
  scrubJson(text: string): string {
    const out = this.redactJson(text);
    if (out === text) return text;
    try {
      JSON.parse(out);
      return out;
    } catch {
      return JSON.stringify(this.redactValue(JSON.parse(text)));
    }
  }

  /** A copy of a JSON-like value with every string (keys too) redacted; the same value when nothing changed. */
  redactValue<T>(value: T): T {
    return this.#walk(value, 0) as T;
  }

  #walk(value: unknown, depth: number): unknown {
    if (typeof value === 'string') return this.redact(value);
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

  #run(text: string, compiled: Compiled, json: boolean): string {
    if (typeof text !== 'string' || text.length < 8) return text;
    const re = compiled.re;
    re.lastIndex = 0;
    let m = re.exec(text);
    if (m === null) return text;
    let out = '';
    let last = 0;
    // JSON text: where a match stands decides how it is replaced (see below).
    let scanned = 0;
    let inString = false;
    const scanTo = (pos: number): void => {
      for (; scanned < pos; scanned++) {
        const c = text.charCodeAt(scanned);
        if (c === 0x22) inString = !inString;
        else if (c === 0x5c && inString) scanned++; // the escaped character cannot end the string
      }
    };
    while (m !== null) {
      let start = m.index;
      let end = this.#wholeEnd(text, start, start + m[0].length, compiled.sticky);
      const g = compiled.groups.find((x) => m![x.index] !== undefined)!;
      const rule = g.rule as Rule;
      let quote = '';
      if (json) {
        // A match that starts just after the backslash of an escape (\n, \t, \u...) takes the
        // backslash too, or a lone backslash would be left before the replacement.
        scanTo(start);
        if (scanned > start && start > last) start -= 1;
        else if (!inString) quote = '"'; // outside any string (a bare number): replace with a string
        scanTo(end);
      }
      const matched = text.slice(start, end);
      const head = rule.keep?.exec(matched)?.[0] ?? '';
      const tail = end === m.index + m[0].length ? (rule.keepEnd?.exec(matched)?.[0] ?? '') : '';
      out += `${text.slice(last, start)}${quote}${head}[REDACTED:${g.rule.name}]${tail}${quote}`;
      last = end;
      re.lastIndex = end === start ? end + 1 : end;
      m = re.exec(text);
    }
    return out + text.slice(last);
  }

  /**
   * Never half a secret: when another secret (a vault value or another format) starts inside
   * this match and runs past its end, the replacement runs to the end of that one too, and so
   * on. Only runs on matches, which are rare in ordinary text.
   */
  #wholeEnd(text: string, start: number, end: number, sticky: RegExp): number {
    let best = end;
    for (let p = start + 1; p < best; p++) {
      sticky.lastIndex = p;
      const v = sticky.exec(text);
      if (v !== null && p + v[0].length > best) best = p + v[0].length;
    }
    return best;
  }
}
