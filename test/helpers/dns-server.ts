/**
 * A real DNS server on 127.0.0.1 (UDP) whose answers each test chooses: per name, a function of
 * how many times that name has been asked, so a test can rebind a name between lookups.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface Answers {
  A?: string[];
  AAAA?: string[];
  /** Queries of this type get no answer at all, as from a server or middlebox that drops them. */
  drop?: 'A' | 'AAAA';
}

/** Answers for a name, given how many queries of this type (A or AAAA) it has had, this one included. */
export type Zone = (name: string, nthQuery: number) => Answers | undefined;

export interface DnsServer {
  /** `127.0.0.1:port`, for `dnsServers`. */
  address: string;
  setZone(zone: Zone): void;
  /** How many queries of this type have arrived for this name. */
  queries(name: string, type?: 'A' | 'AAAA'): number;
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<DnsServer> {
  const socket = dgram.createSocket('udp4');
  let zone: Zone = () => undefined;
  const counts = new Map<string, number>();

  socket.on('message', (msg, rinfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const q = query.questions?.[0];
    if (q === undefined) return;
    const name = q.name.toLowerCase();
    const key = `${q.type} ${name}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    const known = zone(name, n);
    if (known?.drop === q.type) return;
    const addrs = q.type === 'A' ? known?.A : q.type === 'AAAA' ? known?.AAAA : undefined;
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known === undefined ? 3 : 0), // rcode 3: NXDOMAIN
      questions: [q],
      answers: (addrs ?? []).map((data) => ({ type: q.type as 'A' | 'AAAA', class: 'IN' as const, name: q.name, ttl: 0, data })),
    });
    socket.send(response, rinfo.port, rinfo.address);
  });

  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    setZone(z) {
      zone = z;
      counts.clear();
    },
    queries: (name, type = 'A') => counts.get(`${type} ${name.toLowerCase()}`) ?? 0,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
