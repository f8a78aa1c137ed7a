/**
 * Deterministic JSON: object keys sorted (by code unit, at every depth), two-space indent, one
 * trailing newline. The same state always gives the same bytes, so manifests, reports and event
 * payloads can be compared, hashed and diffed. Arrays keep their order: where order means
 * nothing, the caller sorts them.
 */
export function canonicalJson(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  // No prototype: a key named __proto__ (a table's name in an event) is data like any other.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(v).sort()) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) out[k] = sortKeys(x);
  }
  return out;
}
