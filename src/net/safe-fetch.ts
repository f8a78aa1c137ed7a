import { Agent, FormData as UndiciFormData, Request as UndiciRequest, fetch as undiciFetch } from 'undici';
import { AppError, ErrorCode } from '../errors/index.js';
import { createLogger } from '../log/index.js';
import { Allowlist } from './allowlist.js';
import { buildGuardedConnector, type NetLogger } from './connector.js';
import { dnsServerResolve, systemResolve, withTimeout } from './resolve.js';

export interface SafeFetchOptions {
  /**
   * Non-public addresses that may be reached anyway: IPs and CIDRs (`192.168.1.20`,
   * `10.0.0.0/8`, `::1`). Malformed entries throw `KC_INVALID_INPUT`. Every connection one of
   * them lets through is logged.
   */
  allowedPrivateIps?: readonly string[];
  /** Where refusals (ERROR) and allowlisted connections (INFO) go; a stderr logger by default. */
  logger?: NetLogger;
  /** Ask these DNS servers (`ip`, `ip:port`) instead of the system resolver. */
  dnsServers?: readonly string[];
  /** Extra certificate authorities to trust besides Node's (PEM). Verification cannot be turned off. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** Bound on the lookup and, separately, on the TCP+TLS connect; 10 s by default. */
  connectTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept; 4 s by default (undici's default). */
  keepAliveTimeoutMs?: number;
  /** Most connections per origin; unlimited by default (undici's default). */
  connections?: number;
}

/** `fetch` with the guard, plus the dispatcher behind it and a way to close its connections. */
export type SafeFetch = typeof globalThis.fetch & {
  readonly dispatcher: Agent;
  close(): Promise<void>;
};

function positiveInt(name: string, value: number | undefined, def: number): number {
  if (value === undefined) return def;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new AppError(ErrorCode.INVALID_INPUT, `${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * The undici dispatcher behind the safe fetch, for code that takes a dispatcher (undici's own
 * `request`, `stream`, `fetch`). Every connection it opens goes through the guard.
 */
export function createSafeDispatcher(options: SafeFetchOptions = {}): Agent {
  if (options === null || typeof options !== 'object') {
    throw new AppError(ErrorCode.INVALID_INPUT, 'createSafeFetch options must be an object');
  }
  const connectTimeoutMs = positiveInt('connectTimeoutMs', options.connectTimeoutMs, 10_000);
  const allowlist = new Allowlist(options.allowedPrivateIps ?? []);
  const base = options.dnsServers === undefined ? systemResolve : dnsServerResolve(options.dnsServers, connectTimeoutMs);
  const ca = options.ca === undefined ? undefined : Array.isArray(options.ca) ? options.ca : [options.ca as string | Buffer];
  const connect = buildGuardedConnector({
    allowlist,
    logger: options.logger ?? createLogger(),
    resolve: withTimeout(base, connectTimeoutMs),
    connectTimeoutMs,
    ...(ca === undefined ? {} : { ca }),
  });
  return new Agent({
    connect,
    keepAliveTimeout: positiveInt('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 4_000),
    ...(options.connections === undefined ? {} : { connections: positiveInt('connections', options.connections, 1) }),
  });
}

/** Request objects from another fetch implementation (Node's built-in one) are rebuilt as undici's. */
function adoptRequest(input: Request): UndiciRequest {
  return new UndiciRequest(input.url, {
    method: input.method,
    headers: [...input.headers],
    ...(input.body === null ? {} : { body: input.body, duplex: 'half' }),
    redirect: input.redirect,
    signal: input.signal,
    keepalive: input.keepalive,
    integrity: input.integrity,
    referrer: input.referrer,
    referrerPolicy: input.referrerPolicy,
    cache: input.cache,
    credentials: input.credentials,
  });
}

function adoptFormData(body: FormData): UndiciFormData {
  const copy = new UndiciFormData();
  for (const [key, value] of body) {
    if (typeof value === 'string') copy.append(key, value);
    else copy.append(key, value, value.name);
  }
  return copy;
}

/**
 * A drop-in for the global `fetch` (LLM SDKs take one as their `fetch` option) that refuses
 * non-public addresses and plain http off the machine, on the first request and on every
 * redirect. A refusal rejects with fetch's usual `TypeError('fetch failed')` whose `cause` is
 * the `AppError` (`KC_SSRF_BLOCKED`, `KC_TLS_REQUIRED`). Proxies from the environment are never
 * used, and a `dispatcher` passed per call is ignored: the guard cannot be bypassed per request.
 *
 * Built on undici's own `fetch`, so responses are undici `Response`s (the same API as the
 * global class, but `instanceof Response` is false).
 */
export function createSafeFetch(options: SafeFetchOptions = {}): SafeFetch {
  const dispatcher = createSafeDispatcher(options);
  const safeFetch = (input: unknown, init?: RequestInit): Promise<unknown> => {
    let request = input;
    if (typeof input === 'object' && input !== null && !(input instanceof URL) && !(input instanceof UndiciRequest)) {
      if (typeof Request === 'function' && input instanceof Request) request = adoptRequest(input);
    }
    const body = init?.body;
    const adopted =
      typeof FormData === 'function' && body instanceof FormData && !(body instanceof UndiciFormData)
        ? { body: adoptFormData(body) }
        : {};
    return undiciFetch(request as string, { ...(init as object), ...adopted, dispatcher });
  };
  return Object.assign(safeFetch as unknown as typeof globalThis.fetch, {
    dispatcher,
    close: () => dispatcher.close(),
  });
}
