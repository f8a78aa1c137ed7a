import { isDeepStrictEqual } from 'node:util';
import { parse as parseToml } from 'smol-toml';
import { SECRET_FIELDS } from './schema.js';
import { keyLines } from './toml-locate.js';

/** A secret written in plaintext in the config file: where, its vault name, and its value. */
export interface PlaintextSecret {
  path: [string, string, string];
  /** `providers.openai.api_key`: the name it has in the vault. */
  vaultName: string;
  value: string;
}

/** The secret fields that hold a value in a parsed config file. */
export function plaintextSecrets(parsed: unknown): PlaintextSecret[] {
  const out: PlaintextSecret[] = [];
  if (typeof parsed !== 'object' || parsed === null) return out;
  for (const [table, key] of SECRET_FIELDS) {
    const entries = (parsed as Record<string, unknown>)[table];
    if (typeof entries !== 'object' || entries === null) continue;
    for (const [name, entry] of Object.entries(entries)) {
      const value = (entry as Record<string, unknown> | null)?.[key];
      if (typeof value === 'string' && value.length > 0) {
        out.push({ path: [table, name, key], vaultName: `${table}.${name}.${key}`, value });
      }
    }
  }
  return out;
}

/**
 * The config text without the assignments of `paths`, every other byte as it was: whole lines
 * are cut (a multi-line value with all its lines), nothing else is touched, except that a dotted
 * key which alone made its table (`openai.api_key = ...` under `[providers]`) leaves
 * `openai = {}` in its place, so the table (a configured provider) stays. The result is parsed
 * and must equal the original minus exactly those keys, and must not hold any of `values` (the
 * secrets, or a line of one); otherwise (a key inside an inline table, a value sharing its line
 * with another key) this returns undefined and nothing should be written.
 */
export function removeKeys(text: string, paths: readonly (readonly string[])[], values: readonly string[] = []): string | undefined {
  const cut = new Map<number, string | undefined>();
  const stubs: { line: number; stub: string; parent: readonly string[] }[] = [];
  const lines = text.split(/\r?\n/);
  const written: string[] = [];
  for (const p of paths) {
    const at = keyLines(text, p);
    if (at === undefined) return undefined;
    const raw = rawValue(lines[at.start - 1] ?? '');
    if (raw !== undefined) written.push(raw);
    for (let n = at.start; n <= at.end; n++) cut.set(n, undefined);
    if (at.stub !== undefined) stubs.push({ line: at.start, stub: at.stub, parent: p.slice(0, -1) });
  }
  try {
    const expected = parseToml(text) as Record<string, unknown>;
    const nodeAt = (keys: readonly string[]): Record<string, unknown> =>
      keys.reduce<Record<string, unknown>>((node, k) => node[k] as Record<string, unknown>, expected);
    for (const p of paths) delete nodeAt(p.slice(0, -1))[p[p.length - 1]!];
    // A table left empty existed only through the cut keys: one stub (the first) keeps it.
    const stubbed = new Set<string>();
    for (const s of stubs) {
      const parent = JSON.stringify(s.parent);
      if (stubbed.has(parent) || Object.keys(nodeAt(s.parent)).length > 0) continue;
      stubbed.add(parent);
      cut.set(s.line, s.stub);
    }
    // Split keeping each line's own ending, so CRLF and LF files stay what they were.
    const kept = text
      .split(/(?<=\n)/)
      .map((piece, i) => {
        if (!cut.has(i + 1)) return piece;
        const stub = cut.get(i + 1);
        return stub === undefined ? '' : stub + (/\r?\n$/.exec(piece)?.[0] ?? '');
      })
      .join('');
    if (leftover(kept, [...values, ...values.map(escaped), ...written])) return undefined;
    return isDeepStrictEqual(parseToml(kept), expected) ? kept : undefined;
  } catch {
    return undefined;
  }
}

/** A value as a TOML basic string holds it, escaped (JSON's escapes are TOML's). */
const escaped = (v: string): string => JSON.stringify(v).slice(1, -1);

/**
 * The text between the quotes of a one-line string value on `line` (`key = "..."`), as written:
 * a copy elsewhere in the file written with the same escapes is found by it whatever they are.
 */
function rawValue(line: string): string | undefined {
  const rest = line.slice(line.indexOf('=') + 1).trimStart();
  const q = rest[0];
  if ((q !== '"' && q !== "'") || rest.startsWith(q.repeat(3))) return undefined;
  let i = 1;
  while (i < rest.length && rest[i] !== q) i += q === '"' && rest[i] === '\\' ? 2 : 1;
  return rest.slice(1, i);
}

/**
 * Whether a secret, or a line of a multi-line one, is still in the text: the check behind the
 * parser's, for a value the line scanner cut short or one also kept in a comment (an old line
 * left for reference), which the parser ignores; `values` holds each secret as decoded, escaped
 * as a basic string, and as written on its line. A value of 8 characters or more counts anywhere;
 * a shorter one (a channel password) only after a `#`, where it is hardly anything else.
 */
function leftover(kept: string, values: readonly string[]): boolean {
  const comments = kept
    .split(/\r?\n/)
    .map((line) => line.slice(line.indexOf('#') + 1 || line.length))
    .join('\n');
  for (const v of values) {
    const t = v.trim();
    if (t.length >= 8 ? kept.includes(t) : t.length >= 4 && comments.includes(t)) return true;
    for (const line of t.split(/\r?\n/)) {
      const l = line.trim();
      if (l.length >= 12 && kept.includes(l)) return true;
    }
  }
  return false;
}
