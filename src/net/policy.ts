import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { IPV4_RANGES, IPV6_RANGES, type Embedding, type RangeEntry } from './ranges.js';

type IPv4 = ipaddr.IPv4;
type IPv6 = ipaddr.IPv6;
export type Address = IPv4 | IPv6;

interface CompiledRange<T extends Address> {
  net: T;
  bits: number;
  entry: RangeEntry;
}

/** Most specific first, so the first match is the entry that decides. */
function compile<T extends Address>(entries: readonly RangeEntry[], kind: 'ipv4' | 'ipv6'): CompiledRange<T>[] {
  return entries
    .map((entry) => {
      const [net, bits] = ipaddr.parseCIDR(entry.cidr);
      if (net.kind() !== kind) throw new Error(`range table: ${entry.cidr} is not ${kind}`);
      return { net: net as T, bits, entry };
    })
    .sort((a, b) => b.bits - a.bits);
}

const V4: readonly CompiledRange<IPv4>[] = compile<IPv4>(IPV4_RANGES, 'ipv4');
const V6: readonly CompiledRange<IPv6>[] = compile<IPv6>(IPV6_RANGES, 'ipv6');

/** What the policy says about one address, before any allowlist. */
export interface AddressVerdict {
  /** The address in its normal textual form. */
  address: string;
  /** Globally reachable, so allowed without an allowlist entry. */
  global: boolean;
  /** The machine itself (127/8, ::1, or ::ffff:127/104): the only place plain http may go. */
  loopback: boolean;
  /** Why: the deciding range, e.g. `10.0.0.0/8 private-use (RFC 1918)`, or `public`. */
  reason: string;
}

function matchV4(addr: IPv4): RangeEntry | undefined {
  for (const r of V4) if (addr.match(r.net, r.bits)) return r.entry;
  return undefined;
}

function matchV6(addr: IPv6): RangeEntry {
  for (const r of V6) if (addr.match(r.net, r.bits)) return r.entry;
  // ::/0 is in the table, so something always matches.
  throw new Error(`range table has no entry for ${addr.toString()}`);
}

function v4From(hi: number, lo: number): IPv4 {
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

/** Every IPv4 address an IPv6 form carries; each must be acceptable for the IPv6 address to be. */
export function carriedIPv4(addr: IPv6, how: Embedding): IPv4[] {
  const p = addr.parts;
  switch (how) {
    case 'tail':
      return [v4From(p[6]!, p[7]!)];
    case '6to4':
      return [v4From(p[1]!, p[2]!)];
    case 'teredo':
      return [v4From(p[2]!, p[3]!), v4From(p[6]! ^ 0xffff, p[7]! ^ 0xffff)];
    case 'nat64-48': {
      // Which RFC 6052 layout an operator uses under this prefix is unknowable, so every one
      // that fits in it (/48, /56, /64, /96) must carry a public IPv4; byte 8 is the reserved u octet.
      const b = addr.toByteArray();
      const at = (...i: number[]) => new ipaddr.IPv4(i.map((k) => b[k]!));
      return [at(6, 7, 9, 10), at(7, 9, 10, 11), at(9, 10, 11, 12), at(12, 13, 14, 15)];
    }
  }
}

function describe(entry: RangeEntry): string {
  return `${entry.cidr} ${entry.name}`;
}

/** The usual text of an address; IPv4-mapped ones as `::ffff:a.b.c.d`, as people write them. */
export function addressText(addr: Address): string {
  if (addr.kind() === 'ipv6' && (addr as IPv6).isIPv4MappedAddress()) {
    return `::ffff:${(addr as IPv6).toIPv4Address().toString()}`;
  }
  return addr.toString();
}

export function judge(addr: Address): AddressVerdict {
  const address = addressText(addr);
  if (addr.kind() === 'ipv4') {
    const v4 = addr as IPv4;
    const entry = matchV4(v4);
    return {
      address,
      global: entry === undefined || entry.global,
      loopback: v4.octets[0] === 127,
      reason: entry === undefined ? 'public' : describe(entry),
    };
  }
  const v6 = addr as IPv6;
  const entry = matchV6(v6);
  // Linux connects ::ffff:a.b.c.d to the IPv4 host itself; no other embedding reaches it directly.
  const loopback = address === '::1' || (v6.isIPv4MappedAddress() && v6.parts[6]! >> 8 === 127);
  if (entry.carries === undefined) return { address, global: entry.global, loopback, reason: describe(entry) };
  for (const inner of carriedIPv4(v6, entry.carries)) {
    const verdict = judge(inner);
    if (!verdict.global) {
      return { address, global: false, loopback, reason: `${describe(entry)} carrying ${inner.toString()}: ${verdict.reason}` };
    }
  }
  return { address, global: true, loopback, reason: `${describe(entry)} carrying public IPv4` };
}

const DOTTED_TAIL = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Parses an address as a connection would use it: dotted-quad IPv4 or IPv6 (a zone id is kept
 * but plays no part in the verdict). Anything else is not an address here, so `undefined`.
 *
 * An IPv6 address written with a dotted IPv4 tail is rewritten to hex groups first, because
 * ipaddr.js 2.5 reads `::a.b.c.d` (IPv4-compatible, what inet_ntop prints for ::7f00:1) as
 * `::ffff:a.b.c.d` (IPv4-mapped): a different address, and one that reaches the IPv4 host.
 */
export function parseAddress(text: string): Address | undefined {
  if (net.isIPv4(text)) return ipaddr.IPv4.isValidFourPartDecimal(text) ? ipaddr.IPv4.parse(text) : undefined;
  if (!net.isIPv6(text)) return undefined;
  const zoneAt = text.indexOf('%');
  const bare = zoneAt === -1 ? text : text.slice(0, zoneAt);
  const hex = bare.replace(DOTTED_TAIL, (_m, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  );
  const addr = ipaddr.IPv6.parse(hex);
  if (zoneAt !== -1) addr.zoneId = text.slice(zoneAt + 1);
  return addr;
}

/** The policy's verdict on a textual address; throws on text that is not an address. */
export function judgeAddress(text: string): AddressVerdict {
  const addr = parseAddress(text);
  if (addr === undefined) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  return judge(addr);
}
