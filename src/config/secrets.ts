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
 * are cut (a multi-line value with all its lines), nothing else is touched. The result is parsed
 * and must equal the original minus exactly those keys; otherwise (a key inside an inline table,
 * a value sharing its line with another key) this returns undefined and nothing should be written.
 */
export function removeKeys(text: string, paths: readonly (readonly string[])[]): string | undefined {
  const drop = new Set<number>();
  for (const p of paths) {
    const at = keyLines(text, p);
    if (at === undefined) return undefined;
    for (let n = at.start; n <= at.end; n++) drop.add(n);
  }
  // Split keeping each line's own ending, so CRLF and LF files stay what they were.
  const pieces = text.split(/(?<=\n)/);
  const kept = pieces.filter((_, i) => !drop.has(i + 1)).join('');
  try {
    const expected = parseToml(text) as Record<string, unknown>;
    for (const p of paths) {
      let node: unknown = expected;
      for (const part of p.slice(0, -1)) node = (node as Record<string, unknown>)[part];
      delete (node as Record<string, unknown>)[p[p.length - 1]!];
    }
    return isDeepStrictEqual(parseToml(kept), expected) ? kept : undefined;
  } catch {
    return undefined;
  }
}
