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
}

const BARE = /[A-Za-z0-9_-]+/y;

/** Parses a dotted key starting at `i`; returns the parts and the index after it, or null. */
function readDottedKey(s: string, start: number): { parts: string[]; end: number } | null {
  const parts: string[] = [];
  let i = start;
  for (;;) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    const c = s[i];
    if (c === '"' || c === "'") {
      let j = i + 1;
      let out = '';
      while (j < s.length && s[j] !== c) {
        if (c === '"' && s[j] === '\\' && j + 1 < s.length) {
          out += s[j + 1];
          j += 2;
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
    if (s[i] !== '.') return { parts, end: i };
    i++;
  }
}

/** Net change of `[`/`]` depth on a line, ignoring brackets inside strings and comments. */
function bracketDelta(s: string, from: number): { delta: number; opensMultiline: '"""' | "'''" | null } {
  let depth = 0;
  for (let i = from; i < s.length; i++) {
    const c = s[i];
    if (c === '#') break;
    if (s.startsWith('"""', i) || s.startsWith("'''", i)) {
      const q = s.slice(i, i + 3) as '"""' | "'''";
      const close = s.indexOf(q, i + 3);
      if (close === -1) return { delta: depth, opensMultiline: q };
      i = close + 2;
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
      if (line.includes(inString)) {
        const after = line.indexOf(inString) + 3;
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
    const entry = { path: [...table, ...k.parts], line: n + 1, endLine: n + 1 };
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
export function keyLines(text: string, keyPath: readonly string[]): { start: number; end: number } | undefined {
  const hit = scan(text).find((e) => e.path.length === keyPath.length && e.path.every((p, i) => p === keyPath[i]));
  return hit === undefined ? undefined : { start: hit.line, end: hit.endLine };
}
