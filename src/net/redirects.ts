import type { Dispatcher } from 'undici';

/**
 * Request headers that may follow a redirect to another origin: they describe the answer
 * wanted, never who is asking. Everything else stays with the origin the caller addressed:
 * authorization and cookie, but also x-api-key, api-key, x-goog-api-key, an SDK's own headers
 * and whatever a provider invents next (fetch itself strips only authorization, cookie,
 * proxy-authorization and host).
 */
export const CROSS_ORIGIN_HEADERS: ReadonlySet<string> = new Set([
  'accept',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'content-language',
  'content-length',
  'content-type',
  'pragma',
  'range',
  'sec-fetch-mode',
  'user-agent',
]);

type Headers = Dispatcher.DispatchOptions['headers'];
type Value = string | string[] | undefined;

/** The harmless headers of any form undici takes (object, flat array, iterable of pairs), as an object. */
export function harmlessOnly(headers: Headers): Record<string, string | string[]> {
  let pairs: [string, Value][] = [];
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([String(headers[i]), String(headers[i + 1])]);
  } else if (headers !== undefined && headers !== null) {
    pairs = Symbol.iterator in headers ? [...(headers as Iterable<[string, Value]>)] : Object.entries(headers as Record<string, Value>);
  }
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of pairs) {
    const key = name.toLowerCase();
    if (!CROSS_ORIGIN_HEADERS.has(key) || value === undefined) continue;
    const before = kept[key];
    kept[key] = before === undefined ? value : [...[before].flat(), ...[value].flat()];
  }
  return kept;
}
