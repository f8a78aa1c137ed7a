import dns from 'node:dns';
import { invalidInput } from '../errors/index.js';

/** Resolves a host name to every address it has; the guard checks them all before connecting. */
export type Resolve = (hostname: string) => Promise<string[]>;

/** The system's resolver (getaddrinfo: /etc/hosts, nsswitch, resolv.conf), as `fetch` itself uses. */
export const systemResolve: Resolve = (hostname) =>
  new Promise((resolve, reject) => {
    // The callback API costs about 20 µs less per lookup than dns.promises here. Called through
    // the module object on purpose: the test harness watches dns.lookup.
    dns.lookup(hostname, { all: true }, (err, found) => (err ? reject(err) : resolve(found.map((a) => a.address))));
  });

function nodata(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENODATA' || code === 'ENOTFOUND';
}

/**
 * A resolver that asks the given DNS servers directly (c-ares), A then AAAA, e.g. a filtering
 * resolver on the LAN, or a test's server on loopback. Servers are `ip` or `ip:port` (`[v6]:port`).
 */
export function dnsServerResolve(servers: readonly string[], timeoutMs: number): Resolve {
  const resolver = new dns.promises.Resolver({ timeout: Math.max(1, Math.min(timeoutMs, 5000)), tries: 2 });
  try {
    resolver.setServers([...servers]);
  } catch (err) {
    throw invalidInput(`dnsServers: ${(err as Error).message}`, 'list servers as "192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:53"');
  }
  return async (hostname) => {
    const [a, aaaa] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    const found = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
    if (found.length > 0) return found;
    const failure = [a, aaaa].find((r): r is PromiseRejectedResult => r.status === 'rejected' && !nodata(r.reason));
    if (failure !== undefined) throw failure.reason;
    throw Object.assign(new Error(`${hostname} has no A or AAAA record`), { code: 'ENOTFOUND', hostname });
  };
}
