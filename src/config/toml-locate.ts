/**
 * Finds the line on which a key path is written in a TOML document, so that a validation error
 * can say "line 12, key storage.durability" instead of just the key. smol-toml parses values but
 * keeps no positions; this scanner only needs to recognise table headers and `key =` lines, and to
 * skip the inside of multi-line strings and arrays where such text could appear as data.
 */

type KeyPath = readonly (string | number)[];

interface Located {
  path: string[];
  line: number;
  /** The last line of the value, for a key whose value spans lines (a multi-line string or array). */
  endLine: number;
  /**
   * For a dotted key (`openai.api_key = ...`): the line that keeps its table when the assignment
   * is cut (`openai = {}`), for a table that exists only through this key.
   */
  stub?: string;
}

const BARE = /[A-Za-z0-9_-]+/y;
const ESCAPES: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', e: '\u001b', '"': '"', '\\': '\\' };

/** Decodes the escape at `s[j]` (a backslash) in a basic string; null when it is not a valid one. */
function unescapeAt(s: string, j: number): { text: string; next: number } | null {
  const e = s[j + 1] ?? '';
  if (e === 'u' || e === 'U') {
    const n = e === 'u' ? 4 : 8;
    const hex = s.slice(j + 2, j + 2 + n);
    if (hex.length !== n || !/^[0-9A-Fa-f]+$/.test(hex)) return null;
    const cp = parseInt(hex, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    return { text: String.fromCodePoint(cp), next: j + 2 + n };
  }
  const text = ESCAPES[e];
  return text === undefined ? null : { text, next: j + 2 };
}

/**
 * Parses a dotted key starting at `start`: the parts as the parser reads them (escapes decoded),
 * the index after the key, and where its last separating dot is (-1 for a key of one part).
 */
function readDottedKey(s: string, start: number): { parts: string[]; end: number; lastDot: number } | null {
  const parts: string[] = [];
  let i = start;
  let lastDot = -1;
  for (;;) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    const c = s[i];
    if (c === '"' || c === "'") {
      let j = i + 1;
      let out = '';
      while (j < s.length && s[j] !== c) {
        if (c === '"' && s[j] === '\\') {
          const u = unescapeAt(s, j);
          if (u === null) return null;
          out += u.text;
          j = u.next;
          continue;
        }
        out += s[j];
        j++;
      }
      if (j >= s.length) return null;
      parts.push(out);
      i = j + 1;
    } else {
      BARE.lastIndex = i;
      const m = BARE.exec(s);
      if (m === null) return null;
      parts.push(m[0]);
      i += m[0].length;
    }
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (s[i] !== '.') return { parts, end: i, lastDot };
    lastDot = i;
    i++;
  }
}

/**
 * Where the `q` that closes a multi-line string ends (with up to two more quotes, which belong
 * to the value), searching from `from`; -1 when it does not close on this line. In a basic
 * string (`"""`) a backslash escapes the next character, so `\"""` does not close it.
 */
function closeAfter(s: string, from: number, q: '"""' | "'''"): number {
  for (let i = from; i < s.length; i++) {
    if (q === '"""' && s[i] === '\\') i++;
    else if (s.startsWith(q, i)) {
      let end = i + 3;
      for (let extra = 0; extra < 2 && s[end] === q[0]; extra++) end++;
      return end;
    }
  }
  return -1;
}

/** Net change of `[`/`]` depth on a line, ignoring brackets inside strings and comments. */
function bracketDelta(s: string, from: number): { delta: number; opensMultiline: '"""' | "'''" | null } {
  let depth = 0;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (c === '#') break;
    if (s.startsWith('"""', i) || s.startsWith("'''", i)) {
      const q = s.slice(i, i + 3) as '"""' | "'''";
      const end = closeAfter(s, i + 3, q);
      if (end === -1) return { delta: depth, opensMultiline: q };
      i = end - 1;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += c === '"' && s[j] === '\\' ? 2 : 1;
      i = j;
      continue;
    }
    if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
  }
  return { delta: depth, opensMultiline: null };
}

function scan(text: string): Located[] {
  const lines = text.split(/\r?\n/);
  const found: Located[] = [];
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();
  let inString: '"""' | "'''" | null = null;
  let depth = 0;
  let open: Located | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n] ?? '';
    if (open !== undefined) open.endLine = n + 1;
    if (inString !== null) {
      const after = closeAfter(line, 0, inString);
      if (after !== -1) {
        inString = null;
        const d = bracketDelta(line, after);
        depth += d.delta;
        inString = d.opensMultiline;
      }
      if (depth <= 0 && inString === null) open = undefined;
      continue;
    }
    if (depth > 0) {
      const d = bracketDelta(line, 0);
      depth += d.delta;
      inString = d.opensMultiline;
      if (depth <= 0 && inString === null) open = undefined;
      continue;
    }
    const trimmed = line.trimStart();
    const indent = line.length - trimmed.length;
    if (trimmed.startsWith('[[')) {
      const k = readDottedKey(line, indent + 2);
      if (k !== null) {
        const name = k.parts.join('\u0000');
        const idx = arrayCounts.get(name) ?? 0;
        arrayCounts.set(name, idx + 1);
        table = [...k.parts, String(idx)];
        found.push({ path: table, line: n + 1, endLine: n + 1 });
      }
      continue;
    }
    if (trimmed.startsWith('[')) {
      const k = readDottedKey(line, indent + 1);
      if (k !== null) {
        table = k.parts;
        found.push({ path: table, line: n + 1, endLine: n + 1 });
      }
      continue;
    }
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const k = readDottedKey(line, indent);
    if (k === null || line[k.end] !== '=') continue;
    const entry: Located = { path: [...table, ...k.parts], line: n + 1, endLine: n + 1 };
    if (k.lastDot !== -1) entry.stub = `${line.slice(0, k.lastDot).trimEnd()} = {}`;
    found.push(entry);
    const d = bracketDelta(line, k.end + 1);
    depth += d.delta;
    inString = d.opensMultiline;
    open = depth > 0 || inString !== null ? entry : undefined;
  }
  return found;
}

/**
 * The line where `keyPath` (or the nearest enclosing table or key that is written) appears, or
 * undefined when nothing of it is written in the file (a missing required key, say).
 */
export function locateKey(text: string, keyPath: KeyPath): number | undefined {
  const want = keyPath.map(String);
  const entries = scan(text);
  for (let len = want.length; len > 0; len--) {
    const prefix = want.slice(0, len);
    const hit = entries.find(
      (e) => e.path.length === prefix.length && e.path.every((p, i) => p === prefix[i]),
    );
    if (hit !== undefined) return hit.line;
  }
  return undefined;
}

/**
 * The lines (1-based, inclusive) of the assignment of exactly `keyPath`, or undefined when it is
 * not written as its own `key = value` (absent, or inside an inline table).
 */
export function keyLines(text: string, keyPath: readonly string[]): { start: number; end: number; stub?: string } | undefined {
  const hit = scan(text).find((e) => e.path.length === keyPath.length && e.path.every((p, i) => p === keyPath[i]));
  if (hit === undefined) return undefined;
  return hit.stub === undefined ? { start: hit.line, end: hit.endLine } : { start: hit.line, end: hit.endLine, stub: hit.stub };
}
