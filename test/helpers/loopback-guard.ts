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

/** Throws if anything tried to leave loopback since the last call, and clears the record. */
export function assertStayedOnLoopback(): void {
  const seen = escapes.splice(0);
  if (seen.length > 0) throw new Error(`traffic tried to leave loopback: ${seen.join('; ')}`);
}
