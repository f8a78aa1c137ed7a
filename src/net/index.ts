/**
 * Network guards: the SSRF-safe `fetch` and its dispatcher, the TLS rule, and the address
 * policy they apply (IANA special-purpose ranges, embedded IPv4, the allowlist).
 */
export { createSafeFetch, createSafeDispatcher } from './safe-fetch.js';
export type { SafeFetch, SafeFetchOptions } from './safe-fetch.js';
export type { NetLogger } from './connector.js';
export { Allowlist, parseAllowEntry } from './allowlist.js';
export { judgeAddress } from './policy.js';
export type { AddressVerdict } from './policy.js';
