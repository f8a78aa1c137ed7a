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
function harmlessOnly(headers: Headers): Record<string, string | string[]> {
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

/**
 * A view of `dispatcher` for one fetch call, whose hops (fetch follows redirects by dispatching
 * again) are watched: once a hop leaves the origin the caller addressed, that hop and every later
 * one (even one back to the first origin, which the other origin chose) carries only the
 * harmless headers above, and one that would carry the request body is refused with the error
 * `refuse` makes, before anything is sent. fetch itself keeps doing the rest by the spec:
 * 301/302/303 method rewriting, the 20-hop limit, `response.url` and `redirected`.
 */
export function guardRedirects(dispatcher: Dispatcher, origin: string, refuse: (to: string) => Error): Dispatcher {
  let left = false;
  return dispatcher.compose((dispatch) => (opts, handler) => {
    const to = opts.origin instanceof URL ? opts.origin.origin : String(opts.origin);
    left ||= to !== origin;
    if (!left) return dispatch(opts, handler);
    // Thrown, fetch turns it into its usual TypeError('fetch failed') with this as the cause.
    if (opts.body !== undefined && opts.body !== null) throw refuse(to);
    return dispatch({ ...opts, headers: harmlessOnly(opts.headers) }, handler);
  });
}
