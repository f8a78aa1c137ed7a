import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { buildConnector, errors } from 'undici';
import { AppError, ErrorCode, type ErrorCodeValue } from '../errors/index.js';
import type { Allowlist } from './allowlist.js';
import { ownInterface } from './own-addresses.js';
import { judge, parseAddress, type Address, type AddressVerdict } from './policy.js';
import type { Resolve } from './resolve.js';

/** What the guard logs with: pino's `error` and `info`, or anything shaped like them. */
export interface NetLogger {
  error(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface GuardOptions {
  allowlist: Allowlist;
  logger: NetLogger;
  resolve: Resolve;
  /** One deadline for the lookup, every address tried and the TLS handshake together. */
  connectTimeoutMs: number;
  /** Extra trust anchors, added to Node's own; verification itself is never optional. */
  ca?: readonly (string | Buffer)[];
}

/**
 * A public address that is one of this machine's own is the machine: judged as not public, so
 * only an allowlist entry lets a connection to it through (see ownInterface).
 */
function ownAddress(verdict: AddressVerdict, addr: Address, cannotRead: (err: unknown) => void): AddressVerdict {
  if (!verdict.global) return verdict;
  const owner = ownInterface(addr, cannotRead);
  return owner === undefined ? verdict : { ...verdict, global: false, reason: `an address of this machine itself (interface ${owner})` };
}

/** A checked address, ready to connect to. */
interface Target {
  addr: Address;
  text: string;
  allowedBy: string | undefined;
}

/**
 * Most addresses of one name that are tried (all are judged). With the single deadline this
 * bounds the SYNs one request can send, however long the DNS answer.
 */
export const MAX_ADDRESSES_TRIED = 4;

/**
 * The resolver's order, with the two families taking turns from its first address's family on
 * (RFC 8305, section 4): only the first MAX_ADDRESSES_TRIED are tried, so a name with many A
 * records and a broken IPv4 route (or the reverse) still gets to its other family.
 */
export function interleaveFamilies<T extends { addr: Address }>(targets: readonly T[]): T[] {
  const first = targets[0]?.addr.kind();
  const same = targets.filter((t) => t.addr.kind() === first);
  const other = targets.filter((t) => t.addr.kind() !== first);
  const out: T[] = [];
  for (let i = 0; i < Math.max(same.length, other.length); i++) {
    if (i < same.length) out.push(same[i]!);
    if (i < other.length) out.push(other[i]!);
  }
  return out;
}

/** Failures of the TCP attempt itself, after which the host's next checked address is worth a try. */
const NEXT_ADDRESS_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'EAFNOSUPPORT',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * TLS settings pinned on every connection, so that nothing process-wide can weaken them:
 * NODE_TLS_REJECT_UNAUTHORIZED=0, --tls-min-v1.0 and --tls-cipher-list (which can also lower
 * OpenSSL's security level and so admit 768-bit keys) all stop at these explicit values.
 */
export const PINNED_TLS = {
  rejectUnauthorized: true,
  minVersion: 'TLSv1.2',
  ciphers: `${crypto.constants.defaultCoreCipherList}:@SECLEVEL=2`,
  checkServerIdentity: tls.checkServerIdentity,
} as const;

/**
 * The connector behind the safe dispatcher: resolves the host once, judges every address, and
 * connects only to an address it judged, by that address, so the name is never looked up a
 * second time (DNS rebinding has nothing to switch). Literal IPs skip the lookup but not the
 * judgement. The TLS rule is applied here too, on the address, not on the name.
 */
export function buildGuardedConnector(options: GuardOptions): buildConnector.connector {
  const { allowlist, logger, resolve, connectTimeoutMs } = options;
  const inner = buildConnector({
    timeout: 0, // undici's own timer is per address (and coarse); the deadline below covers all
    ...PINNED_TLS,
    ...(options.ca === undefined || options.ca.length === 0 ? {} : { ca: [...tls.rootCertificates, ...options.ca] }),
  });

  /** A logger that throws must not turn a refusal into a crash or a hung request. */
  function log(level: 'error' | 'info', obj: object, msg: string): void {
    try {
      logger[level](obj, msg);
    } catch {
      // Nothing sensible to do: the request is still refused or let through as decided.
    }
  }

  /** Logged once per process: a check is off, which whoever runs the agent must know. */
  function interfacesUnreadable(err: unknown): void {
    log('error', { err }, "the machine's own addresses cannot be read here: connections to them are judged by the address ranges alone");
  }

  function refuse(code: ErrorCodeValue, message: string, hint: string, details: Record<string, unknown>): AppError {
    const err = new AppError(code, message, { hint, details });
    log('error', { code, ...details }, message);
    return err;
  }

  /**
   * Judges every address; one bad address refuses the whole name (no quiet fallback to the
   * others). Every address is judged before the TLS rule, so a public-plus-private answer over
   * plain http is reported (and logged) as the SSRF attempt it is, not as a missing https.
   */
  function check(host: string, port: string, protocol: string, found: readonly string[]): Target[] | Error {
    const targets: Target[] = [];
    const where = (address: string): string => (net.isIP(host) === 0 ? `${host} (${address})` : address);
    let offMachine: string | undefined;
    for (const text of found) {
      const addr = parseAddress(text);
      if (addr === undefined) {
        return refuse(ErrorCode.SSRF_BLOCKED, `refused to connect to ${host}: the resolver returned "${text}", which is not an IP address`, 'check the DNS answer for this host', { host, address: text, port });
      }
      const verdict = ownAddress(judge(addr), addr, interfacesUnreadable);
      const allowedBy = verdict.global ? undefined : allowlist.match(addr);
      if (!verdict.global && allowedBy === undefined) {
        return refuse(
          ErrorCode.SSRF_BLOCKED,
          `refused to connect to ${where(verdict.address)}: ${verdict.reason} is not a public address`,
          'if this service is meant to be reachable, add its address to security.allowed_private_ips',
          { host, address: verdict.address, port, reason: verdict.reason, addresses: found },
        );
      }
      if (!verdict.loopback) offMachine ??= verdict.address;
      targets.push({ addr, text: verdict.address, allowedBy });
    }
    if (protocol !== 'https:' && offMachine !== undefined) {
      return refuse(
        ErrorCode.TLS_REQUIRED,
        `refused plain http to ${where(offMachine)}: only loopback addresses may be reached without TLS`,
        'use an https:// URL',
        { host, address: offMachine, port },
      );
    }
    if (targets.length === 0) {
      return Object.assign(new Error(`${host} did not resolve to any address`), { code: 'ENOTFOUND', hostname: host });
    }
    return interleaveFamilies(targets);
  }

  return function connect(opts, cb) {
    const host = opts.hostname;
    // From the URL's host only: a servername passed per request (dispatcher.request) would
    // check the certificate against a name other than the one connected for. For an IP literal
    // there is none, and the certificate is checked against the address.
    const servername = opts.protocol === 'https:' && net.isIP(host) === 0 ? host : undefined;
    const started = performance.now();
    let settled = false;
    let phase = net.isIP(host) === 0 ? `looking up ${host}` : `connecting to ${host}`;
    let current: { sock: net.Socket | undefined; tcpUp: boolean; address: string } | undefined;
    let attemptTimer: NodeJS.Timeout | undefined;

    // One deadline for everything: the lookup, every address tried, the TLS handshake.
    const deadline = setTimeout(() => {
      const err = new errors.ConnectTimeoutError(`${phase} took longer than connectTimeoutMs (${connectTimeoutMs} ms)`);
      if (current?.tcpUp === true && opts.protocol === 'https:') {
        log('error', { code: err.code, host, address: current.address, port: opts.port }, `TLS with ${host} failed: ${err.message}`);
      }
      callback(err, null);
      current?.sock?.destroy(err);
    }, connectTimeoutMs);
    const callback: typeof cb = (...args) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(attemptTimer);
      cb(...args);
    };
    const fail = (err: unknown): void => callback(err instanceof Error ? err : new Error(String(err)), null);

    const attempt = (targets: Target[], i: number, tries: number): void => {
      const target = targets[i]!;
      if (target.allowedBy !== undefined) {
        log('info', { host, address: target.text, port: opts.port, allowedBy: target.allowedBy }, 'connecting to a non-public address allowed by security.allowed_private_ips');
      }
      phase = `connecting to ${host === target.text ? host : `${host} (${targets.slice(0, i + 1).map((t) => t.text).join(', ')})`}`;
      const state: NonNullable<typeof current> = { sock: undefined, tcpUp: false, address: target.text };
      current = state;
      // Only the fields named here reach the socket: a spread of opts would let a caller's
      // servername (or host, from which undici derives one) through for IP-literal origins.
      const connectOpts: buildConnector.Options = {
        hostname: target.text,
        protocol: opts.protocol,
        port: opts.port,
        ...(servername === undefined ? {} : { servername }),
        ...(opts.localAddress == null ? {} : { localAddress: opts.localAddress }),
        ...(opts.httpSocket === undefined ? {} : { httpSocket: opts.httpSocket }),
      };
      const sock = inner(connectOpts, (err, socket) => {
        try {
          clearTimeout(attemptTimer);
          if (settled) {
            // The deadline passed first: nothing more is tried, and a late socket is not kept.
            socket?.destroy();
            return;
          }
          if (err === null) {
            // Belt and braces: the socket must be connected to exactly the address judged.
            const remote = socket.remoteAddress === undefined ? undefined : parseAddress(socket.remoteAddress);
            if (remote !== undefined && remote.toNormalizedString() !== target.addr.toNormalizedString()) {
              socket.destroy();
              callback(refuse(ErrorCode.SSRF_BLOCKED, `connection to ${host} ended up at ${socket.remoteAddress}, not at the checked ${target.text}`, 'report this as a bug', { host, address: socket.remoteAddress, expected: target.text }), null);
              return;
            }
            callback(null, socket);
            return;
          }
          if (opts.protocol === 'https:' && (state.tcpUp || /^(ERR_SSL_|ERR_TLS_)/.test(errno(err) ?? ''))) {
            log('error', { code: errno(err), host, address: target.text, port: opts.port }, `TLS with ${host} failed: ${err.message}`);
          } else if (i + 1 < tries && NEXT_ADDRESS_CODES.has(errno(err) ?? '')) {
            attempt(targets, i + 1, tries);
            return;
          }
          callback(err, null);
        } catch (thrown) {
          fail(thrown);
        }
      }) as unknown;
      // undici's connector returns the socket it made (not in its types): watch for the TCP
      // connect, so that any failure after it on https counts as a TLS failure.
      if (!(sock instanceof net.Socket)) return;
      state.sock = sock;
      sock.once('connect', () => {
        state.tcpUp = true;
        clearTimeout(attemptTimer);
      });
      // An address that drops packets must not eat the whole deadline while others wait: until
      // its TCP connect, each address gets an even share of the time left. The last one (and
      // any TLS handshake) gets whatever remains.
      if (i + 1 < tries) {
        const share = (connectTimeoutMs - (performance.now() - started)) / (tries - i);
        attemptTimer = setTimeout(() => {
          if (!state.tcpUp) sock.destroy(new errors.ConnectTimeoutError(`connecting to ${target.text} took longer than its share of connectTimeoutMs (${Math.round(share)} ms)`));
        }, Math.max(1, share));
      }
    };

    const proceed = (found: readonly string[]): void => {
      if (settled) return; // the lookup answered after the deadline
      try {
        const checked = check(host, opts.port, opts.protocol, found);
        if (checked instanceof Error) callback(checked, null);
        else attempt(checked, 0, Math.min(checked.length, MAX_ADDRESSES_TRIED));
      } catch (err) {
        fail(err);
      }
    };

    if (net.isIP(host) !== 0) {
      proceed([host]);
      return;
    }
    resolve(host).then(proceed, fail);
  };
}
