/** A configured redaction pattern (`[redaction] extra_patterns`). */
export interface ExtraRule {
  name: string;
  regex: string;
}

/** Checks a configured pattern: compiles, cannot match empty text, no backreferences or quotes. */
export function checkExtraRule(rule: ExtraRule): string | undefined {
  if (!/^[a-z0-9][a-z0-9-]{0,47}$/.test(rule.name)) return 'name must be 1-48 lowercase letters, digits or -';
  if (rule.regex.length === 0 || rule.regex.length > 1000) return 'regex must be 1 to 1000 characters';
  if (/\\[1-9]|\\k</.test(rule.regex)) return 'regex must not use backreferences';
  if (/\(\?<(?![=!])/.test(rule.regex)) return 'regex must not use named groups';
  if (rule.regex.includes('"')) return 'regex must not match a double quote (it would break JSON log lines)';
  let re: RegExp;
  try {
    re = new RegExp(rule.regex, 'g');
  } catch (err) {
    return `regex does not compile: ${(err as Error).message}`;
  }
  if (matchesEmpty(rule.regex)) return 'regex matches empty text';
  for (const sample of ['', 'x', 'a b-1']) {
    re.lastIndex = 0;
    const m = re.exec(sample);
    if (m !== null && m[0].length === 0) return 'regex matches empty text';
  }
  return undefined;
}

/**
 * Whether the pattern can match empty text somewhere. Zero-width assertions (lookarounds, \b,
 * \B, ^, $) only ever forbid a match; without them the pattern matches empty text exactly when
 * it matches the empty string. Trying sample strings missed `(?=[0-9]{2})`, empty before every
 * two digits. (A pattern whose assertions can never hold together is refused too.)
 */
export function matchesEmpty(source: string): boolean {
  let out = '';
  let i = 0;
  let inClass = false;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1] ?? '';
      out += !inClass && (next === 'b' || next === 'B') ? '(?:)' : c + next;
      i += 2;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      i++;
    } else if (c === '[') {
      inClass = true;
      out += c;
      i++;
    } else if (c === '^' || c === '$') {
      out += '(?:)';
      i++;
    } else if (c === '(' && /^\(\?<?[=!]/.test(source.slice(i, i + 4))) {
      out += '(?:)';
      i = groupEnd(source, i);
    } else {
      out += c;
      i++;
    }
  }
  try {
    return new RegExp(`^(?:${out})$`).test('');
  } catch {
    return new RegExp(`^(?:${source})$`).test('');
  }
}

/** The index after the `)` that closes the group opened at `open`. */
function groupEnd(source: string, open: number): number {
  let depth = 0;
  let inClass = false;
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return source.length;
}

/**
 * The pattern with every greedy repeat that has no upper bound (`+`, `*`, `{n,}`) made lazy:
 * it matches at exactly the same positions (greediness decides which match is taken, never
 * whether one exists), but its match there is the shortest one. The redactor searches for
 * where configured patterns start with this form, then measures the match with the original,
 * in JSON text only as far as the string it starts in: searched greedily over the whole text,
 * `secret.*` ran to the end of a log line at each of its matches (and was then cut back to its
 * string), time quadratic in the line's length (700 KB: over two minutes). The original when
 * the lazy form does not compile or its groups differ (it never should).
 */
export function lazySource(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      out += c + (source[i + 1] ?? '');
      i++;
      continue;
    }
    out += c;
    if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else {
      let end = -1;
      if (c === '+' || c === '*') end = i + 1;
      else if (c === '{') {
        const q = /^\{[0-9]+,\}/.exec(source.slice(i, i + 20));
        if (q !== null) {
          out += q[0].slice(1);
          i += q[0].length - 1;
          end = i + 1;
        }
      }
      if (end !== -1 && source[end] !== '?') out += '?';
    }
  }
  try {
    if (groupCount(out) === groupCount(source)) return out;
  } catch {
    // not compiled: the original (below)
  }
  return source;
}

/**
 * Whether the pattern looks at text after its match: a lookahead (`(?=`, `(?!`) or `$`. Such a
 * pattern cannot be measured on a JSON string cut at its closing quote (the redactor's view):
 * there a lookahead finds nothing and `$` matches, where the whole text has the quote and
 * more, and a match measured so came out shorter, leaving the rest of a secret in clear.
 * Lookbehinds, `\b` and `\B` give the same answer at the cut as before the quote.
 */
export function looksAhead(source: string): boolean {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '$') return true;
    else if (c === '(' && source[i + 1] === '?' && (source[i + 2] === '=' || source[i + 2] === '!')) return true;
  }
  return false;
}

/** How many capture groups the pattern has. */
export function groupCount(source: string): number {
  return new RegExp(`${source}|`).exec('')!.length - 1;
}
