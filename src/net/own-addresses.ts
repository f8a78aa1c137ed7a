import os from 'node:os';
import { addressText, parseAddress, type Address } from './policy.js';

/**
 * How long one look at the machine's interfaces is trusted: addresses come and go (DHCP, IPv6
 * privacy addresses), and reading them costs tens of microseconds, too much for every connection.
 */
const FRESH_MS = 1000;

let seen: { at: number; owners: Map<string, string> } | undefined;

function readInterfaces(): Map<string, string> {
  const owners = new Map<string, string>();
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    for (const info of list ?? []) {
      const addr = parseAddress(info.address);
      if (addr !== undefined) owners.set(addressText(addr), name);
    }
  }
  return owners;
}

/**
 * The interface of this machine that holds `addr` (or, for an IPv4-mapped address, the IPv4 it
 * maps), or undefined. The kernel delivers a connection to one of the machine's own addresses to
 * the machine itself, to every service listening on 0.0.0.0 or ::, and host firewalls usually let
 * the machine's own traffic in: the public address of a VPS's interface is the VPS, not the
 * internet, and a hostile URL naming it would reach services kept from the internet.
 */
export function ownInterface(addr: Address): string | undefined {
  const now = performance.now();
  if (seen === undefined || now - seen.at > FRESH_MS) seen = { at: now, owners: readInterfaces() };
  const owner = seen.owners.get(addressText(addr));
  if (owner !== undefined || addr.kind() !== 'ipv6') return owner;
  const v6 = addr as Extract<Address, { isIPv4MappedAddress(): boolean }>;
  return v6.isIPv4MappedAddress() ? seen.owners.get(v6.toIPv4Address().toString()) : undefined;
}
