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
 * How long the other family may still take once one has answered with addresses (RFC 8305's
 * "resolution delay", a little longer): a server that drops AAAA (or A) queries without an
 * answer costs this, not c-ares' timeouts, which outlast the connect deadline.
 */
export const RESOLUTION_DELAY_MS = 250;

/**
 * The A and the AAAA lookup settled, in that order; once one has addresses, the other gets
 * RESOLUTION_DELAY_MS more and, if later, counts as having none. Safe: whatever is used is still
 * judged before any connect; only a late address goes untried.
 */
function bothFamilies(queries: readonly Promise<string[]>[]): Promise<PromiseSettledResult<string[]>[]> {
  const results: (PromiseSettledResult<string[]> | undefined)[] = queries.map(() => undefined);
  return new Promise((resolve) => {
    let grace: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(grace);
      resolve(results.map((r) => r ?? { status: 'fulfilled', value: [] }));
    };
    queries.forEach((query, i) => {
      const settle = (r: PromiseSettledResult<string[]>) => {
        results[i] = r;
        if (results.every((x) => x !== undefined)) finish();
        else if (r.status === 'fulfilled' && r.value.length > 0) grace ??= setTimeout(finish, RESOLUTION_DELAY_MS);
      };
      query.then((value) => settle({ status: 'fulfilled', value }), (reason: unknown) => settle({ status: 'rejected', reason }));
    });
  });
}

/**
 * A resolver that asks the given DNS servers directly (c-ares), A and AAAA at once, e.g. a
 * filtering resolver on the LAN, or a test's server on loopback. Servers are `ip` or `ip:port`
 * (`[v6]:port`).
 */
export function dnsServerResolve(servers: readonly string[], timeoutMs: number): Resolve {
  const resolver = new dns.promises.Resolver({ timeout: Math.max(1, Math.min(timeoutMs, 5000)), tries: 2 });
  try {
    resolver.setServers([...servers]);
  } catch (err) {
    throw invalidInput(`dnsServers: ${(err as Error).message}`, 'list servers as "192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:53"');
  }
  return async (hostname) => {
    const settled = await bothFamilies([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    // IPv4 first, as before: the connector interleaves the families from the first address on.
    const found = settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    if (found.length > 0) return found;
    const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !nodata(r.reason));
    if (failure !== undefined) throw failure.reason;
    throw Object.assign(new Error(`${hostname} has no A or AAAA record`), { code: 'ENOTFOUND', hostname });
  };
}
