import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import v1 from './schemas/vault-v1.schema.json' with { type: 'json' };
import v2 from './schemas/vault-v2.schema.json' with { type: 'json' };
import v3 from './schemas/vault-v3.schema.json' with { type: 'json' };
import report1 from './schemas/export-v1.schema.json' with { type: 'json' };

/**
 * The schema registry: every vault.json version this blufio reads, and the export report, as
 * JSON Schema (draft 2020-12) files under schemas/. They are the contract; the code follows
 * them. A schema is compiled the first time it is needed.
 */
export const MANIFEST_SCHEMAS = { 1: v1, 2: v2, 3: v3 } as const;
export type ManifestVersion = keyof typeof MANIFEST_SCHEMAS;
export const LATEST_MANIFEST_VERSION: ManifestVersion = 3;
export const EXPORT_SCHEMA = report1;

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
// The export report refers to the v3 manifest by its $id.
ajv.addSchema(v3);
const compiled = new Map<object, ValidateFunction>();

export interface SchemaProblem {
  /** JSON pointer to the offending value ('' is the whole document). */
  path: string;
  message: string;
}

/** The problems `doc` has against `schema`, sorted; empty when it is valid. */
export function validate(schema: object, doc: unknown): SchemaProblem[] {
  let fn = compiled.get(schema);
  if (fn === undefined) {
    const id = (schema as { $id?: string }).$id;
    fn = (id === undefined ? undefined : ajv.getSchema(id)) ?? ajv.compile(schema);
    compiled.set(schema, fn);
  }
  if (fn(doc)) return [];
  const seen = new Set<string>();
  const out: SchemaProblem[] = [];
  for (const e of fn.errors ?? []) {
    // if/then and oneOf wrappers repeat what their branches already said.
    if (e.keyword === 'if' || e.keyword === 'allOf') continue;
    const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
    const p = { path: e.instancePath, message: `${e.message ?? e.keyword}${extra}` };
    const key = `${p.path}\u0000${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  return out.sort((a, b) => (a.path === b.path ? (a.message < b.message ? -1 : 1) : a.path < b.path ? -1 : 1));
}
