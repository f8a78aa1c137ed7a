/**
 * Test harness: keeps every TCP connection of this process on loopback, whatever the code under
 * test does. Importing this module patches net.Socket#connect (which net.connect, tls.connect,
 * http and undici all end up in) so that a connection to anything but 127/8 or ::1 throws before
 * the socket is created, and a name is only ever resolved through a lookup that refuses
 * non-loopback answers. It also refuses system DNS lookups of anything but "localhost" and IP
 * literals, so a
 * test name never leaks to the machine's resolver. Every refusal is recorded; tests assert that
 * nothing was recorded, so a broken guard fails the test instead of sending a packet.
 *
 * This is deliberately independent of src/net: it must hold even when the guard under test is
 * broken.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';

export const escapes: string[] = [];

function loopback(address: string): boolean {
  const a = address.replace(/^::ffff:/i, '');
  return net.isIPv4(a) ? a.startsWith('127.') : a === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(a);
}

function refuse(what: string): Error {
  escapes.push(what);
  return Object.assign(new Error(`loopback-guard: refused ${what}`), { code: 'ELOOPBACKGUARD' });
}

type LookupFn = (host: string, opts: object, cb: (err: Error | null, addr: unknown, family?: number) => void) => void;

function guardedLookup(original: LookupFn): LookupFn {
  return (host, opts, cb) => {
    original(host, opts, (err, addr, family) => {
      if (err !== null) return cb(err, addr, family);
      const list = Array.isArray(addr) ? (addr as { address: string }[]).map((a) => a.address) : [String(addr)];
      const bad = list.find((a) => !loopback(a));
      if (bad !== undefined) return cb(refuse(`connect to ${host} resolved to ${bad}`), undefined);
      cb(null, addr, family);
    });
  };
}

const originalConnect = net.Socket.prototype.connect;
const originalLookup = dns.lookup;
const originalPromisesLookup = dns.promises.lookup;

const state = globalThis as { __blufioLoopbackGuard?: boolean };
if (state.__blufioLoopbackGuard !== true) {
  state.__blufioLoopbackGuard = true;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (net.Socket.prototype as any).connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
    // Node passes either its own normalized [options, cb] array or the user's arguments.
    let options: Record<string, unknown>;
    let rebuild: (o: Record<string, unknown>) => unknown[];
    const first = args[0];
    if (Array.isArray(first)) {
      options = (first[0] ?? {}) as Record<string, unknown>;
      rebuild = (o) => {
        const copy = [o, ...first.slice(1)] as unknown[] & Record<symbol, unknown>;
        for (const sym of Object.getOwnPropertySymbols(first)) copy[sym] = (first as unknown as Record<symbol, unknown>)[sym];
        return [copy, ...args.slice(1)];
      };
    } else if (typeof first === 'object' && first !== null) {
      options = first as Record<string, unknown>;
      rebuild = (o) => [o, ...args.slice(1)];
    } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
      return originalConnect.apply(this, args as never); // a unix socket path
    } else {
      options = { port: first, host: typeof args[1] === 'string' ? args[1] : undefined };
      rebuild = (o) => [o, ...args.slice(typeof args[1] === 'string' ? 2 : 1)];
    }
    if (typeof options.path === 'string') return originalConnect.apply(this, args as never);
    const host = typeof options.host === 'string' ? options.host : 'localhost';
    if (net.isIP(host) !== 0) {
      if (!loopback(host)) throw refuse(`connect to ${host}`);
      return originalConnect.apply(this, args as never);
    }
    const lookup = (typeof options.lookup === 'function' ? options.lookup : dns.lookup) as LookupFn;
    return originalConnect.apply(this, rebuild({ ...options, lookup: guardedLookup(lookup) }) as never);
  };

  // IP literals are "looked up" without any query (dgram.bind does this), and localhost comes from /etc/hosts.
  const systemLookupAllowed = (host: unknown): boolean =>
    typeof host === 'string' && (net.isIP(host) !== 0 || host.toLowerCase() === 'localhost');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (dns as any).lookup = function (host: unknown, ...rest: unknown[]) {
    if (!systemLookupAllowed(host)) {
      const cb = rest[rest.length - 1] as (err: Error) => void;
      process.nextTick(() => cb(refuse(`system DNS lookup of ${String(host)}`)));
      return {};
    }
    return (originalLookup as (...a: unknown[]) => unknown)(host, ...rest);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (dns.promises as any).lookup = function (host: unknown, ...rest: unknown[]) {
    if (!systemLookupAllowed(host)) return Promise.reject(refuse(`system DNS lookup of ${String(host)}`));
    return (originalPromisesLookup as (...a: unknown[]) => unknown)(host, ...rest);
  };
}

type Servers = { getServers(): string[] };
const serverHost = (s: string): string =>
  net.isIP(s) !== 0 ? s : s.startsWith('[') ? s.slice(1, s.indexOf(']')) : s.replace(/:\d+$/, '');
const RESOLVE_METHODS = ['resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx',
  'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt', 'reverse'] as const;

/** Wraps c-ares query methods so they only run when every server they would ask is on loopback. */
function guardResolver(target: Record<string, unknown>, servers: (self: unknown) => Servers, promises: boolean): void {
  for (const name of RESOLVE_METHODS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function (this: unknown, ...args: unknown[]) {
      const bad = servers(this).getServers().find((srv) => !loopback(serverHost(srv)));
      if (bad !== undefined) {
        const err = refuse(`DNS query ${name}(${String(args[0])}) to ${bad}`);
        if (promises) return Promise.reject(err);
        const cb = args[args.length - 1];
        if (typeof cb === 'function') process.nextTick(() => (cb as (e: Error) => void)(err));
        return undefined;
      }
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
}

if (state.__blufioLoopbackGuard === true && !(globalThis as { __blufioResolverGuard?: boolean }).__blufioResolverGuard) {
  (globalThis as { __blufioResolverGuard?: boolean }).__blufioResolverGuard = true;
  guardResolver(dns.Resolver.prototype as unknown as Record<string, unknown>, (self) => self as Servers, false);
  guardResolver(dns.promises.Resolver.prototype as unknown as Record<string, unknown>, (self) => self as Servers, true);
  guardResolver(dns as unknown as Record<string, unknown>, () => dns, false);
  guardResolver(dns.promises as unknown as Record<string, unknown>, () => dns, true);

  const originalSend = dgram.Socket.prototype.send;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (dgram.Socket.prototype as any).send = function (this: dgram.Socket, ...args: unknown[]) {
    // send(msg, [offset, length,] port, address, cb): the address is the first string after the message.
    const address = args.slice(1).find((a) => typeof a === 'string');
    if (typeof address === 'string' && net.isIP(address) !== 0 && !loopback(address)) throw refuse(`UDP datagram to ${address}`);
    return (originalSend as (...a: unknown[]) => unknown).apply(this, args);
  };
  const originalUdpConnect = dgram.Socket.prototype.connect;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  (dgram.Socket.prototype as any).connect = function (this: dgram.Socket, ...args: unknown[]) {
    const address = args.find((a) => typeof a === 'string');
    if (typeof address === 'string' && net.isIP(address) !== 0 && !loopback(address)) throw refuse(`UDP connect to ${address}`);
    return (originalUdpConnect as (...a: unknown[]) => unknown).apply(this, args);
  };
}

/** Throws if anything tried to leave loopback since the last call, and clears the record. */
export function assertStayedOnLoopback(): void {
  const seen = escapes.splice(0);
  if (seen.length > 0) throw new Error(`traffic tried to leave loopback: ${seen.join('; ')}`);
}
