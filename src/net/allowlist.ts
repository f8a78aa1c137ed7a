import ipaddr from 'ipaddr.js';
import { invalidInput } from '../errors/index.js';
import { parseAddress, type Address } from './policy.js';

/** The network address of `addr/bits`: the address with every bit after the prefix cleared. */
function networkOf(addr: Address, bits: number): Address {
  const bytes = addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return ipaddr.fromByteArray(bytes);
}

/** One `security.allowed_private_ips` entry, checked and in normal form (`10.0.0.0/8`, `::1/128`). */
interface AllowEntry {
  text: string;
  net: Address;
  bits: number;
}

/**
 * Checks one allowlist entry: an address or a CIDR in plain notation. Returns the problem as a
 * sentence a user can act on, or the entry. Strict on purpose: `10.1`, `010.0.0.1` and
 * `10.0.0.1/8` all mean something, just maybe not what the writer thought, and an allowlist is
 * the wrong place to guess.
 */
export function parseAllowEntry(raw: string): AllowEntry | string {
  if (typeof raw !== 'string') return 'must be a string';
  const text = raw.trim();
  if (text === '') return 'must not be empty';
  if (text.includes('%')) return `"${raw}": zone ids (the %… part) are not supported; write the address alone`;
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const addr = parseAddress(addrText);
  if (addr === undefined) {
    return `"${raw}" is not an IP address or CIDR (write IPv4 as four decimal numbers, e.g. 192.168.1.20 or 10.0.0.0/8)`;
  }
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  let bits = max;
  if (slash !== -1) {
    const bitsText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) {
      return `"${raw}": the prefix length must be a number from 0 to ${max}`;
    }
    bits = Number(bitsText);
    const network = networkOf(addr, bits);
    if (network.toNormalizedString() !== addr.toNormalizedString()) {
      return `"${raw}" has bits set after the prefix; did you mean ${network.toString()}/${bits}?`;
    }
  }
  // An IPv4-mapped entry means the IPv4 host; store it that way so one rule covers both forms.
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    const v4 = (addr as ipaddr.IPv6).toIPv4Address();
    return { text: `${v4.toString()}/${bits - 96}`, net: v4, bits: bits - 96 };
  }
  return { text: `${addr.toString()}/${bits}`, net: addr, bits };
}

/** The parsed allowlist. An address is let through when an entry covers it as connected to. */
export class Allowlist {
  readonly entries: readonly string[];
  readonly #v4: AllowEntry[] = [];
  readonly #v6: AllowEntry[] = [];

  /** Throws `KC_INVALID_INPUT` naming the first malformed entry; nothing is silently dropped. */
  constructor(entries: readonly string[] = []) {
    if (!Array.isArray(entries)) {
      throw invalidInput('allowedPrivateIps must be an array of IP addresses or CIDRs');
    }
    const texts: string[] = [];
    for (const raw of entries) {
      const entry = parseAllowEntry(raw);
      if (typeof entry === 'string') {
        throw invalidInput(`allowedPrivateIps: ${entry}`, 'list addresses like "192.168.1.20" or networks like "10.0.0.0/8"');
      }
      (entry.net.kind() === 'ipv4' ? this.#v4 : this.#v6).push(entry);
      texts.push(entry.text);
    }
    this.entries = texts;
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The entry that covers `addr`, if any. An IPv4-mapped address is the IPv4 host itself, so it
   * is matched against the IPv4 entries only: a broad IPv6 entry (`::/0`) must not let
   * ::ffff:10.0.0.1 through where 10.0.0.1 is refused.
   */
  match(addr: Address): string | undefined {
    if (addr.kind() === 'ipv6') {
      const v6 = addr as ipaddr.IPv6;
      if (!v6.isIPv4MappedAddress()) {
        for (const e of this.#v6) if (v6.match(e.net as ipaddr.IPv6, e.bits)) return e.text;
        return undefined;
      }
      addr = v6.toIPv4Address();
    }
    const v4 = addr as ipaddr.IPv4;
    for (const e of this.#v4) if (v4.match(e.net as ipaddr.IPv4, e.bits)) return e.text;
    return undefined;
  }
}
