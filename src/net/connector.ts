import net from 'node:net';
import tls from 'node:tls';
import { buildConnector } from 'undici';
import { AppError, ErrorCode, type ErrorCodeValue } from '../errors/index.js';
import type { Allowlist } from './allowlist.js';
import { judge, parseAddress, type Address } from './policy.js';
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
  connectTimeoutMs: number;
  /** Extra trust anchors, added to Node's own; verification itself is never optional. */
  ca?: readonly (string | Buffer)[];
}

/** A checked address, ready to connect to. */
interface Target {
  addr: Address;
  text: string;
  allowedBy: string | undefined;
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

/** Certificate verification failures as Node reports them (OpenSSL's X509_V_ERR names). */
const CERT_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
]);

function isTlsFailure(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || CERT_CODES.has(code));
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The connector behind the safe dispatcher: resolves the host once, judges every address, and
 * connects only to an address it judged, by that address, so the name is never looked up a
 * second time (DNS rebinding has nothing to switch). Literal IPs skip the lookup but not the
 * judgement. The TLS rule is applied here too, on the address, not on the name.
 */
export function buildGuardedConnector(options: GuardOptions): buildConnector.connector {
  const { allowlist, logger, resolve } = options;
  const inner = buildConnector({
    timeout: options.connectTimeoutMs,
    // Set explicitly so neither NODE_TLS_REJECT_UNAUTHORIZED=0 nor --tls-min-v1.0 can weaken them.
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    checkServerIdentity: tls.checkServerIdentity,
    ...(options.ca === undefined || options.ca.length === 0 ? {} : { ca: [...tls.rootCertificates, ...options.ca] }),
  });

  function refuse(code: ErrorCodeValue, message: string, hint: string, details: Record<string, unknown>): AppError {
    const err = new AppError(code, message, { hint, details });
    logger.error({ code, ...details }, message);
    return err;
  }

  /** Judges every address; one bad address refuses the whole name (no quiet fallback to the others). */
  function check(host: string, port: string, protocol: string, found: readonly string[]): Target[] | Error {
    const targets: Target[] = [];
    const where = (address: string): string => (net.isIP(host) === 0 ? `${host} (${address})` : address);
    for (const text of found) {
      const addr = parseAddress(text);
      if (addr === undefined) {
        return refuse(ErrorCode.SSRF_BLOCKED, `refused to connect to ${host}: the resolver returned "${text}", which is not an IP address`, 'check the DNS answer for this host', { host, address: text, port });
      }
      const verdict = judge(addr);
      const allowedBy = verdict.global ? undefined : allowlist.match(addr);
      if (!verdict.global && allowedBy === undefined) {
        return refuse(
          ErrorCode.SSRF_BLOCKED,
          `refused to connect to ${where(verdict.address)}: ${verdict.reason} is not a public address`,
          'if this service is meant to be reachable, add its address to security.allowed_private_ips',
          { host, address: verdict.address, port, reason: verdict.reason, addresses: found },
        );
      }
      if (protocol !== 'https:' && !verdict.loopback) {
        return refuse(
          ErrorCode.TLS_REQUIRED,
          `refused plain http to ${where(verdict.address)}: only loopback addresses may be reached without TLS`,
          'use an https:// URL',
          { host, address: verdict.address, port },
        );
      }
      targets.push({ addr, text: verdict.address, allowedBy });
    }
    if (targets.length === 0) {
      return Object.assign(new Error(`${host} did not resolve to any address`), { code: 'ENOTFOUND', hostname: host });
    }
    return targets;
  }

  return function connect(opts, callback) {
    const host = opts.hostname;
    const servername = opts.protocol === 'https:' && net.isIP(host) === 0 ? opts.servername || host : opts.servername;

    const attempt = (targets: Target[], i: number): void => {
      const target = targets[i]!;
      if (target.allowedBy !== undefined) {
        logger.info(
          { host, address: target.text, port: opts.port, allowedBy: target.allowedBy },
          'connecting to a non-public address allowed by security.allowed_private_ips',
        );
      }
      inner({ ...opts, hostname: target.text, ...(servername ? { servername } : {}) }, (err, socket) => {
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
        if (isTlsFailure(err)) {
          logger.error({ code: errno(err), host, address: target.text, port: opts.port }, `TLS failed with ${host}: ${err.message}`);
        } else if (i + 1 < targets.length && NEXT_ADDRESS_CODES.has(errno(err) ?? '')) {
          attempt(targets, i + 1);
          return;
        }
        callback(err, null);
      });
    };

    const proceed = (found: readonly string[]): void => {
      let checked: Target[] | Error;
      try {
        checked = check(host, opts.port, opts.protocol, found);
      } catch (err) {
        checked = err instanceof Error ? err : new Error(String(err));
      }
      if (checked instanceof Error) callback(checked, null);
      else attempt(checked, 0);
    };

    if (net.isIP(host) !== 0) {
      proceed([host]);
      return;
    }
    resolve(host).then(proceed, (err: Error) => callback(err, null));
  };
}
