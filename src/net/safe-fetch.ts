import crypto from 'node:crypto';
import { Agent, type Dispatcher, FormData as UndiciFormData, Request as UndiciRequest, type Response as UndiciResponse, fetch as undiciFetch, getGlobalOrigin } from 'undici';
import { AppError, ErrorCode, checkInt, inspected, invalidInput, optionsObject, type OptionNames } from '../errors/index.js';
import { createLogger } from '../log/index.js';
import { Allowlist } from './allowlist.js';
import { buildGuardedConnector, type NetLogger } from './connector.js';
import { fetchFailed, limitBody } from './limits.js';
import { Deadlines, RequestGuard } from './request-guard.js';
import { dnsServerResolve, systemResolve } from './resolve.js';

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
  /**
   * One deadline for setting up a connection: the lookup, the TCP connect to each address tried
   * (at most 4 of a name's addresses) and the TLS handshake together; 10 s by default.
   */
  connectTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept; 4 s by default (undici's default). */
  keepAliveTimeoutMs?: number;
  /** Most connections per origin; unlimited by default (undici's default). */
  connections?: number;
  /**
   * Largest response body: the bytes that arrive over every hop, and for a content-encoded body
   * also the decoded bytes as they are read; past it the request fails with
   * `KC_RESULT_TOO_LARGE`. 64 MiB by default.
   */
  maxResponseBytes?: number;
  /**
   * Deadline of the whole request on the network: connect, every redirect, the headers and the
   * body until its last byte has arrived (checked by a sweep, so up to a quarter of it, at most
   * 1 s, late); past it the request fails with `KC_NET_TIMEOUT`. A caller's `signal` still works
   * alongside. 10 minutes by default (the LLM SDKs' own request timeout).
   */
  requestTimeoutMs?: number;
}

/** `fetch` with the guard, plus the dispatcher behind it and a way to close its connections. */
export type SafeFetch = typeof globalThis.fetch & {
  readonly dispatcher: Agent;
  /**
   * Closes every connection: requests in flight get `graceMs` (1 s by default) to finish, then
   * are aborted, so a response body nobody reads cannot hold `app.close()` forever. Idempotent.
   */
  close(opts?: CloseOptions): Promise<void>;
};

export type CloseOptions = { graceMs?: number };
const CLOSE_OPTIONS: OptionNames<CloseOptions> = { graceMs: true };

const TEN_MINUTES = 600_000;
const ONE_DAY = 86_400_000;
const MiB = 1 << 20;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every extra CA must be a certificate Node can read: a typo must not silently trust nothing extra. */
function checkCa(ca: SafeFetchOptions['ca']): (string | Buffer)[] | undefined {
  if (ca === undefined) return undefined;
  const list = (Array.isArray(ca) ? ca : [ca]) as unknown[];
  for (const [i, item] of list.entries()) {
    const text = typeof item === 'string' ? item : Buffer.isBuffer(item) ? item.toString('latin1') : undefined;
    const blocks = text?.match(PEM_CERT) ?? [];
    try {
      if (blocks.length === 0) throw new Error('no PEM certificate in it');
      for (const block of blocks) new crypto.X509Certificate(block);
    } catch (err) {
      throw invalidInput(`ca[${i}] is not a PEM certificate: ${(err as Error).message}`, 'pass the CA certificate as PEM text ("-----BEGIN CERTIFICATE-----...")');
    }
  }
  return list as (string | Buffer)[];
}

/**
 * The undici dispatcher behind the safe fetch, for code that takes a dispatcher (undici's own
 * `request`, `stream`, `fetch`). Every connection it opens goes through the guard.
 */
export function createSafeDispatcher(options: SafeFetchOptions = {}): Agent {
  if (options === null || typeof options !== 'object') {
    throw invalidInput('createSafeFetch options must be an object');
  }
  options = inspected('createSafeFetch options', () => ({ ...options }));
  const connectTimeoutMs = checkInt(options.connectTimeoutMs, 'connectTimeoutMs', 1, TEN_MINUTES, 10_000, ' ms');
  const allowlist = new Allowlist(options.allowedPrivateIps ?? []);
  const base = options.dnsServers === undefined ? systemResolve : dnsServerResolve(options.dnsServers, connectTimeoutMs);
  const ca = checkCa(options.ca);
  const connect = buildGuardedConnector({
    allowlist,
    logger: options.logger ?? createLogger(),
    resolve: base, // bounded by the connector's deadline
    connectTimeoutMs,
    ...(ca === undefined ? {} : { ca }),
  });
  return new Agent({
    connect,
    keepAliveTimeout: checkInt(options.keepAliveTimeoutMs, 'keepAliveTimeoutMs', 1, TEN_MINUTES, 4_000, ' ms'),
    ...(options.connections === undefined ? {} : { connections: checkInt(options.connections, 'connections', 1, 65_536, undefined) }),
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

/** The RequestInit members fetch reads, read the way fetch reads them (own, inherited or getters). */
const INIT_KEYS = [
  'method', 'headers', 'body', 'redirect', 'signal', 'referrer', 'referrerPolicy', 'mode',
  'credentials', 'cache', 'integrity', 'keepalive', 'duplex', 'priority', 'window',
] as const;

function readInit(init: RequestInit | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (init === undefined || init === null) return out;
  for (const key of INIT_KEYS) {
    const value = (init as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  if (typeof FormData === 'function' && out.body instanceof FormData && !(out.body instanceof UndiciFormData)) {
    out.body = adoptFormData(out.body);
  }
  return out;
}

/**
 * A URL with a user name or password is refused here: undici's own error for it quotes the whole
 * URL, password included, into whatever logs or reports the error. So does its error for a URL
 * it cannot parse, and a credential needs no ASCII '@' to be in one (a look-alike separator such
 * as U+FF20, or none: `https://user:sk-...` reads the password as a port), so every unparseable
 * URL is refused without being quoted. URL.canParse builds no URL object: only a string with
 * '@' is parsed here, the common case once, by fetch.
 */
function refuseCredentialsInUrl(request: unknown): void {
  if (request instanceof UndiciRequest) return; // its constructor checked it
  const text = String(request);
  const base = getGlobalOrigin()?.href;
  if (!URL.canParse(text, base)) {
    throw fetchFailed(invalidInput('fetch: the URL cannot be parsed (it is not shown here: it may hold a credential)', 'check the URL; send credentials in a header, never in the URL'));
  }
  if (!text.includes('@')) return;
  const url = new URL(text, base);
  if (url.username !== '' || url.password !== '') {
    throw fetchFailed(invalidInput(`fetch: refused a URL with a user name or password in it (${url.protocol}//…@${url.host})`, 'send credentials in a header, never in the URL'));
  }
}

/**
 * undici's error for a header it refuses quotes the header, and the value is often a credential
 * (an API key read from a file with a stray line break in it): replaced by one that names no
 * header. What undici says otherwise (a bad method, a body) quotes nothing of the kind.
 */
function quotesNoHeader(err: unknown): unknown {
  if (!(err instanceof TypeError) || err.cause !== undefined) return err;
  if (!/^Headers[. ]|header (value|name)|ByteString/.test(err.message)) return err;
  return fetchFailed(
    invalidInput('fetch: a request header name or value is invalid (it is not shown here: it may hold a credential)', 'check the headers: a value read from a file or the environment may end in a line break, and header values are Latin-1 text without control characters'),
  );
}

/**
 * A redirect whose Location cannot be parsed: undici's error for it (Node's ERR_INVALID_URL)
 * carries the URL it was resolved against, the request's own, in its `base` field, and a key in
 * its query (`?key=`) or path (`/bot<token>/`) with it, into whatever logs or returns the error.
 * Replaced by one that names only the origin that answered. (The first URL cannot fail so:
 * refuseCredentialsInUrl refuses it before fetch parses it.)
 */
function quotesNoUrl(err: unknown, origin: string | undefined): unknown {
  if (!(err instanceof TypeError) || (err.cause as { code?: unknown } | undefined)?.code !== 'ERR_INVALID_URL') return err;
  const from = origin ?? 'the server';
  return fetchFailed(
    new AppError(ErrorCode.NET_REDIRECT_BLOCKED, `${from} answered with a redirect whose Location cannot be parsed (neither it nor the request's URL is shown here: either may hold a credential)`, {
      hint: 'the server sent a malformed redirect; check the URL, or ask its operator',
      details: { origin: from },
    }),
  );
}

/**
 * A drop-in for the global `fetch` (LLM SDKs take one as their `fetch` option) that refuses
 * non-public addresses and plain http off the machine, on the first request and on every
 * redirect, and keeps credential headers and the body from other origins on a redirect. A
 * refusal rejects with fetch's usual `TypeError('fetch failed')` whose `cause` is the
 * `AppError` (`KC_SSRF_BLOCKED`, `KC_TLS_REQUIRED`, `KC_NET_REDIRECT_BLOCKED`,
 * `KC_INVALID_INPUT` for a URL with credentials or one that cannot be parsed, `KC_NET_TIMEOUT`); a body read that passes
 * `maxResponseBytes` or the deadline fails with `TypeError('terminated')` and the AppError
 * (`KC_RESULT_TOO_LARGE`, `KC_NET_TIMEOUT`). Proxies from the environment are never
 * used, and a `dispatcher` passed per call is ignored: the guard cannot be bypassed per request.
 *
 * Built on undici's own `fetch`, so responses are undici `Response`s (the same API as the
 * global class, but `instanceof Response` is false).
 */
export function createSafeFetch(options: SafeFetchOptions = {}): SafeFetch {
  if (options === null || typeof options !== 'object') {
    throw invalidInput('createSafeFetch options must be an object');
  }
  // Read once (a revoked Proxy cannot be read at all: refused here, not a TypeError later).
  options = inspected('createSafeFetch options', () => ({ ...options }));
  const maxResponseBytes = checkInt(options.maxResponseBytes, 'maxResponseBytes', 1, 2 ** 50, 64 * MiB, ' bytes');
  const requestTimeoutMs = checkInt(options.requestTimeoutMs, 'requestTimeoutMs', 1, ONE_DAY, TEN_MINUTES, ' ms');
  const logger = options.logger ?? createLogger();
  const dispatcher = createSafeDispatcher({ ...options, logger });
  let closed: Promise<void> | undefined;

  /** A redirect that would carry the body to another origin: a security refusal, logged at ERROR. */
  const refuseRedirect = (from: string, to: string): AppError => {
    const message = `refused to follow a redirect from ${from} to ${to}: it would send the request body to another origin`;
    const err = new AppError(ErrorCode.NET_REDIRECT_BLOCKED, message, {
      hint: 'send the request to the new location yourself if it is meant to receive it',
      details: { from, to },
    });
    try {
      logger.error({ code: err.code, from, to }, message);
    } catch {
      // A logger that throws must not change the outcome: the redirect is refused either way.
    }
    return err;
  };
  const limits = { maxResponseBytes, requestTimeoutMs };
  const deadlines = new Deadlines(requestTimeoutMs);

  const safeFetch = (input: unknown, init?: RequestInit): Promise<unknown> => {
    if (closed !== undefined) return Promise.reject(new TypeError('fetch failed: this safe fetch was closed'));
    let request = input;
    let fields: Record<string, unknown>;
    // Like fetch, every failure is a rejected promise, never a throw (callers chain .catch()).
    try {
      if (typeof input === 'object' && input !== null && !(input instanceof URL) && !(input instanceof UndiciRequest)) {
        if (typeof Request === 'function' && input instanceof Request) request = adoptRequest(input);
      }
      refuseCredentialsInUrl(request);
      fields = readInit(init);
    } catch (err) {
      return Promise.reject(err);
    }
    const guard = new RequestGuard(dispatcher, limits, deadlines, refuseRedirect);
    return undiciFetch(request as string, { ...fields, dispatcher: guard as unknown as Dispatcher }).then(
      (res) => {
        guard.answered();
        // Without content-encoding the bytes the guard counted are the body; with it, the decoded
        // body can be far larger than what arrived, so it is counted as it is read.
        return res.headers.has('content-encoding') ? limitBody(res as UndiciResponse, maxResponseBytes, new URL(res.url).origin) : res;
      },
      (err: unknown) => {
        guard.done();
        throw quotesNoUrl(quotesNoHeader(err), guard.at);
      },
    );
  };
  // Not dispatcher.close(): it waits for every body to be read, and a destroy() after it leaves
  // the bodies of fetch responses hanging instead of failing them (undici 7.30). So: wait while
  // requests are in flight, up to the grace period, then destroy, which fails what is left.
  const close = async (graceMs: number): Promise<void> => {
    const busy = () => Object.values(dispatcher.stats).some((s) => s.running + s.pending + (('queued' in s ? s.queued : 0) as number) > 0);
    const deadline = Date.now() + graceMs;
    while (busy() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    await dispatcher.destroy();
  };
  return Object.assign(safeFetch as unknown as typeof globalThis.fetch, {
    dispatcher,
    // Checked on every call, the first or not: a misspelt option is refused, never ignored.
    close: async (opts?: CloseOptions) => {
      const graceMs = checkInt(optionsObject(opts, 'close options', CLOSE_OPTIONS).graceMs, 'graceMs', 1, TEN_MINUTES, 1000, ' ms');
      return (closed ??= close(graceMs));
    },
  });
}
