/**
 * The address policy's data: IANA's IPv4 and IPv6 Special-Purpose Address Registries (as of
 * 2025), plus multicast, site-local and the IPv6 space outside 2000::/3 that IANA has not
 * allocated for global unicast. Each entry says whether its addresses are globally reachable;
 * where a block and a smaller block inside it disagree (192.0.0.0/24 is not global, its
 * 192.0.0.9/32 anycast is), the most specific entry decides.
 *
 * `carries` marks IPv6 forms with an IPv4 address inside: they are judged by that IPv4.
 */
export type Embedding =
  /** The IPv4 in the last 32 bits (mapped, compatible, translated, NAT64 /96). */
  | 'tail'
  /** 6to4: the IPv4 in bits 16-47. */
  | '6to4'
  /** Teredo: the server's IPv4 in bits 32-63 and the client's, inverted, in the last 32. */
  | 'teredo'
  /** A NAT64 local-use /48: every RFC 6052 layout that fits in it (/48, /56, /64, /96), since an operator may use any. */
  | 'nat64-48';

export interface RangeEntry {
  cidr: string;
  /** What the registry calls it, with its RFC: this text appears in error messages. */
  name: string;
  global: boolean;
  carries?: Embedding;
}

export const IPV4_RANGES: readonly RangeEntry[] = [
  { cidr: '0.0.0.0/8', name: '"this network" (RFC 791)', global: false },
  { cidr: '10.0.0.0/8', name: 'private-use (RFC 1918)', global: false },
  { cidr: '100.64.0.0/10', name: 'shared address space / CGNAT (RFC 6598)', global: false },
  { cidr: '127.0.0.0/8', name: 'loopback (RFC 1122)', global: false },
  { cidr: '169.254.0.0/16', name: 'link-local, incl. cloud metadata (RFC 3927)', global: false },
  { cidr: '172.16.0.0/12', name: 'private-use (RFC 1918)', global: false },
  { cidr: '192.0.0.0/24', name: 'IETF protocol assignments (RFC 6890)', global: false },
  { cidr: '192.0.0.9/32', name: 'port control protocol anycast (RFC 7723)', global: true },
  { cidr: '192.0.0.10/32', name: 'TURN anycast (RFC 8155)', global: true },
  { cidr: '192.0.2.0/24', name: 'documentation TEST-NET-1 (RFC 5737)', global: false },
  { cidr: '192.31.196.0/24', name: 'AS112-v4 (RFC 7535)', global: true },
  { cidr: '192.52.193.0/24', name: 'AMT (RFC 7450)', global: true },
  { cidr: '192.88.99.0/24', name: 'deprecated 6to4 relay anycast (RFC 7526)', global: false },
  { cidr: '192.168.0.0/16', name: 'private-use (RFC 1918)', global: false },
  { cidr: '192.175.48.0/24', name: 'AS112 direct delegation (RFC 7534)', global: true },
  { cidr: '198.18.0.0/15', name: 'benchmarking (RFC 2544)', global: false },
  { cidr: '198.51.100.0/24', name: 'documentation TEST-NET-2 (RFC 5737)', global: false },
  { cidr: '203.0.113.0/24', name: 'documentation TEST-NET-3 (RFC 5737)', global: false },
  { cidr: '224.0.0.0/4', name: 'multicast (RFC 5771)', global: false },
  { cidr: '240.0.0.0/4', name: 'reserved (RFC 1112)', global: false },
  { cidr: '255.255.255.255/32', name: 'limited broadcast (RFC 919)', global: false },
];

export const IPV6_RANGES: readonly RangeEntry[] = [
  // Only 2000::/3 is allocated for global unicast; everything else is reserved by the IETF.
  { cidr: '::/0', name: 'outside global unicast 2000::/3 (RFC 4291)', global: false },
  { cidr: '2000::/3', name: 'global unicast (RFC 4291)', global: true },
  { cidr: '::/128', name: 'unspecified (RFC 4291)', global: false },
  { cidr: '::1/128', name: 'loopback (RFC 4291)', global: false },
  { cidr: '::/96', name: 'IPv4-compatible, deprecated (RFC 4291)', global: false, carries: 'tail' },
  { cidr: '::ffff:0:0/96', name: 'IPv4-mapped (RFC 4291)', global: false, carries: 'tail' },
  { cidr: '::ffff:0:0:0/96', name: 'IPv4-translated (RFC 2765)', global: false, carries: 'tail' },
  { cidr: '64:ff9b::/96', name: 'NAT64 well-known prefix (RFC 6052)', global: false, carries: 'tail' },
  { cidr: '64:ff9b:1::/48', name: 'NAT64 local-use prefix (RFC 8215)', global: false, carries: 'nat64-48' },
  { cidr: '100::/64', name: 'discard-only (RFC 6666)', global: false },
  { cidr: '100:0:0:1::/64', name: 'dummy prefix (RFC 9780)', global: false },
  { cidr: '2001::/23', name: 'IETF protocol assignments (RFC 2928)', global: false },
  { cidr: '2001::/32', name: 'Teredo (RFC 4380)', global: false, carries: 'teredo' },
  { cidr: '2001:1::1/128', name: 'port control protocol anycast (RFC 7723)', global: true },
  { cidr: '2001:1::2/128', name: 'TURN anycast (RFC 8155)', global: true },
  { cidr: '2001:1::3/128', name: 'DNS-SD service registration anycast (RFC 9665)', global: true },
  { cidr: '2001:2::/48', name: 'benchmarking (RFC 5180)', global: false },
  { cidr: '2001:3::/32', name: 'AMT (RFC 7450)', global: true },
  { cidr: '2001:4:112::/48', name: 'AS112-v6 (RFC 7535)', global: true },
  { cidr: '2001:10::/28', name: 'ORCHID, deprecated (RFC 4843)', global: false },
  { cidr: '2001:20::/28', name: 'ORCHIDv2 (RFC 7343)', global: true },
  { cidr: '2001:30::/28', name: 'drone remote ID DETs (RFC 9374)', global: true },
  { cidr: '2001:db8::/32', name: 'documentation (RFC 3849)', global: false },
  { cidr: '2002::/16', name: '6to4 (RFC 3056)', global: false, carries: '6to4' },
  { cidr: '3fff::/20', name: 'documentation (RFC 9637)', global: false },
  { cidr: '5f00::/16', name: 'SRv6 SIDs (RFC 9602)', global: false },
  { cidr: 'fc00::/7', name: 'unique-local (RFC 4193)', global: false },
  { cidr: 'fe80::/10', name: 'link-local (RFC 4291)', global: false },
  { cidr: 'fec0::/10', name: 'site-local, deprecated (RFC 3879)', global: false },
  { cidr: 'ff00::/8', name: 'multicast (RFC 4291)', global: false },
];
