import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import ipaddr from 'ipaddr.js';
import { shown } from '../errors/index.js';

/** 127.0.0.0/8, ::1, and the IPv4-mapped forms of the first. */
export function isLoopback(address: string): boolean {
  try {
    return ipaddr.process(address.replace(/^\[(.*)\]$/, '$1')).range() === 'loopback';
  } catch {
    return false;
  }
}

const forms = new Map<string, string>();

/** An address as it appears in a Host header or a URL: IPv6 in brackets, IPv4-mapped unwrapped. */
export function hostForm(address: string): string {
  // Asked for every request with the socket's local address: a handful of distinct values.
  let f = forms.get(address);
  if (f === undefined) {
    const a = ipaddr.process(address.replace(/^\[(.*)\]$/, '$1'));
    f = a.kind() === 'ipv6' ? `[${a.toString()}]` : a.toString();
    if (forms.size < 64) forms.set(address, f);
  }
  return f;
}

/**
 * The Host header must name the address the connection arrived on (or `localhost` on loopback,
 * or a configured name), with the port. A DNS-rebinding page reaches us under its own name and
 * is refused here, before anything else is looked at.
 */
export function hostAllowed(host: string | undefined, localAddress: string | undefined, port: number, extra: readonly string[], defaultPort = 80): boolean {
  if (host === undefined || localAddress === undefined) return false;
  const h = host.toLowerCase();
  let local: string;
  try {
    local = hostForm(localAddress);
  } catch {
    return false;
  }
  // The port may be left out only where it is the scheme's own (80, 443), as clients then do.
  const withPort = (name: string): boolean => h === `${name}:${port}` || (port === defaultPort && h === name);
  if (withPort(local)) return true;
  if (isLoopback(localAddress) && withPort('localhost')) return true;
  return extra.some((e) => h === e || withPort(e));
}

/**
 * Why a request that a browser may have sent is refused, or undefined. Browsers send Origin on
 * every POST made by a page (fetch, XHR, a form) and Sec-Fetch-Site on every request; a local
 * program (curl, an SDK) sends neither. A page is allowed only from an origin in
 * `server.allowed_origins`.
 */
export function browserRefusal(headers: IncomingHttpHeaders, allowedOrigins: readonly string[]): string | undefined {
  const origin = headers.origin;
  if (origin !== undefined) return allowedOrigins.includes(origin) ? undefined : `a request from the web origin ${shown(origin, 200)}`;
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'none' && site !== 'same-origin') return `a ${shown(site, 40)} browser request`;
  return undefined;
}

/**
 * The bearer token check. Both sides are hashed first, so the comparison is constant-time over
 * equal lengths whatever the caller sends, and the token itself is never compared byte by byte.
 */
export class BearerCheck {
  readonly #digest: Buffer;

  constructor(token: string) {
    this.#digest = createHash('sha256').update(token, 'utf8').digest();
  }

  accepts(authorization: string | undefined): boolean {
    if (authorization === undefined || authorization.length > 1024) return false;
    const m = /^Bearer +([^\s]+) *$/i.exec(authorization);
    const given = createHash('sha256')
      .update(m?.[1] ?? '', 'utf8')
      .digest();
    // Always compared, so a missing or malformed header costs the same as a wrong token.
    return timingSafeEqual(given, this.#digest) && m !== null;
  }

  /** Forgets the digest (close). */
  clear(): void {
    this.#digest.fill(0);
  }
}
