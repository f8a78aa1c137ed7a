/**
 * Bytes in JSON: a Buffer serialises as {"type":"Buffer","data":[104,105,...]} and a typed
 * array as {"0":104,"1":105,...}. Neither a vault value nor a format is found in a list of byte
 * values, yet the bytes decode straight back (a request body, a key read from a file): logs show
 * them as `[binary N bytes]`, storage refuses them.
 */

const BUFFER_JSON = '{"type":"Buffer","data":[';
const TYPED_JSON = '{"0":';

/** Whether JSON text may hold a serialised Buffer or typed array (cheap; may say yes for an object with key "0"). */
export function mayHoldBinary(json: string): boolean {
  return json.includes(BUFFER_JSON) || json.includes(TYPED_JSON);
}

// Outside strings a `"` is structure, so these cannot match inside a string value (there every
// quote is escaped). A typed array's keys run 0, 1, 2, ... (checked below), its values are numbers.
// Every repetition starts with a delimiter, so a failed attempt cannot backtrack much.
const BINARY_RE = /\{"type":"Buffer","data":\[((?:[0-9]{1,3}(?:,[0-9]{1,3})*)?)\]\}|\{("0":-?[0-9][0-9.e+-]*(?:,"[0-9]+":-?[0-9][0-9.e+-]*)*)\}/g;

/** JSON text (a log line) with each serialised Buffer or typed array replaced by the string `[binary N bytes]`. */
export function renderBinary(json: string): string {
  if (!mayHoldBinary(json)) return json;
  return json.replace(BINARY_RE, (whole, data: string | undefined, typed: string | undefined) => {
    if (data !== undefined) return `"[binary ${data === '' ? 0 : data.split(',').length} bytes]"`;
    const keys = typed!.split(',').map((kv) => kv.slice(1, kv.indexOf('"', 1)));
    // An object whose keys are not 0, 1, 2, ... is not an array's.
    return keys.every((k, i) => k === String(i)) ? `"[binary ${keys.length} elements]"` : whole;
  });
}

/**
 * The key under which `value` (already known to serialise) holds a Buffer, a typed array or a
 * DataView, as JSON.stringify sees it (after toJSON); undefined when it holds none.
 */
export function binaryKey(value: unknown): string | undefined {
  let found: string | undefined;
  try {
    JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
      if (ArrayBuffer.isView(this[key]) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
        found = key;
        throw new Error('binary');
      }
      return v;
    });
  } catch {
    // Thrown above to stop at the first one.
  }
  return found;
}
