import os from 'node:os';
import { addressText, parseAddress, type Address } from './policy.js';

/**
 * How long one look at the machine's interfaces is trusted: addresses come and go (DHCP, IPv6
 * privacy addresses), and reading them costs tens of microseconds, too much for every connection.
 */
const FRESH_MS = 1000;

type Interfaces = ReturnType<typeof os.networkInterfaces>;

/** Interface name by address, in the text addressText gives (os.networkInterfaces() gives no zone ids). */
export function indexInterfaces(interfaces: Interfaces): Map<string, string> {
  const owners = new Map<string, string>();
  for (const [name, list] of Object.entries(interfaces)) {
    for (const info of list ?? []) {
      const addr = parseAddress(info.address);
      if (addr === undefined) continue;
      owners.set(addressText(addr), name);
    }
  }
  return owners;
}

/** The interface in `owners` that holds `addr`, or the IPv4 it maps (::ffff:a.b.c.d). */
export function ownerOf(owners: ReadonlyMap<string, string>, addr: Address): string | undefined {
  if (addr.kind() === 'ipv4') return owners.get(addressText(addr));
  const v6 = addr as Extract<Address, { isIPv4MappedAddress(): boolean }>;
  if (v6.isIPv4MappedAddress()) return owners.get(v6.toIPv4Address().toString());
  const bare = parseAddress(v6.toString().replace(/%.*$/, ''));
  return bare === undefined ? undefined : owners.get(addressText(bare));
}

let seen: { at: number; owners: Map<string, string> } | undefined;
let warned = false;

/**
 * The interface of this machine that holds `addr`, or undefined. The kernel delivers a
 * connection to one of the machine's own addresses to the machine itself, to every service
 * listening on 0.0.0.0 or ::, and host firewalls usually let the machine's own traffic in: the
 * public address on a VPS's interface is the VPS, not the internet, and a hostile URL naming it
 * would reach services kept from the internet. Where the interfaces cannot be read (some
 * sandboxes refuse it), this check is skipped, and `cannotRead` told once: the ranges still apply.
 */
export function ownInterface(addr: Address, cannotRead: (err: unknown) => void): string | undefined {
  const now = performance.now();
  if (seen === undefined || now - seen.at > FRESH_MS) {
    let owners = new Map<string, string>();
    try {
      owners = indexInterfaces(os.networkInterfaces());
    } catch (err) {
      if (!warned) {
        warned = true;
        cannotRead(err);
      }
    }
    seen = { at: now, owners };
  }
  return ownerOf(seen.owners, addr);
}
