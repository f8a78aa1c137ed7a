import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { AppError, createSafeFetch, judgeAddress, loadConfig } from '../src/index.js';
import { Allowlist, parseAllowEntry } from '../src/net/index.js';
import { parseAddress } from '../src/net/policy.js';
import { tmpDir } from './helpers/index.js';

type Row = [address: string, verdict: 'allow' | 'block', loopback?: 'loopback'];

/**
 * Every range of the IANA special-purpose registries, with its first and last address and the
 * addresses just outside it, and the IPv6 forms that carry an IPv4 inside.
 */
const TABLE: Row[] = [
  // 0.0.0.0/8 "this network"
  ['0.0.0.0', 'block'], ['0.0.0.1', 'block'], ['0.255.255.255', 'block'], ['1.0.0.0', 'allow'],
  // 10/8
  ['9.255.255.255', 'allow'], ['10.0.0.0', 'block'], ['10.1.2.3', 'block'], ['10.255.255.255', 'block'], ['11.0.0.0', 'allow'],
  // 100.64/10 CGNAT
  ['100.63.255.255', 'allow'], ['100.64.0.0', 'block'], ['100.100.100.200', 'block'], ['100.127.255.255', 'block'], ['100.128.0.0', 'allow'],
  // 127/8
  ['126.255.255.255', 'allow'], ['127.0.0.0', 'block', 'loopback'], ['127.0.0.1', 'block', 'loopback'],
  ['127.1.2.3', 'block', 'loopback'], ['127.255.255.255', 'block', 'loopback'], ['128.0.0.0', 'allow'],
  // 169.254/16, the cloud metadata endpoint
  ['169.253.255.255', 'allow'], ['169.254.0.0', 'block'], ['169.254.169.254', 'block'], ['169.254.255.255', 'block'], ['169.255.0.0', 'allow'],
  // 172.16/12
  ['172.15.255.255', 'allow'], ['172.16.0.0', 'block'], ['172.20.10.1', 'block'], ['172.31.255.255', 'block'], ['172.32.0.0', 'allow'],
  // 192.0.0/24 with its two globally reachable anycast addresses
  ['191.255.255.255', 'allow'], ['192.0.0.0', 'block'], ['192.0.0.8', 'block'], ['192.0.0.9', 'allow'], ['192.0.0.10', 'allow'],
  ['192.0.0.11', 'block'], ['192.0.0.170', 'block'], ['192.0.0.171', 'block'], ['192.0.0.255', 'block'], ['192.0.1.0', 'allow'],
  // documentation
  ['192.0.2.0', 'block'], ['192.0.2.255', 'block'], ['192.0.3.0', 'allow'],
  ['198.51.99.255', 'allow'], ['198.51.100.0', 'block'], ['198.51.100.255', 'block'], ['198.51.101.0', 'allow'],
  ['203.0.112.255', 'allow'], ['203.0.113.0', 'block'], ['203.0.113.255', 'block'], ['203.0.114.0', 'allow'],
  // globally reachable special-purpose blocks
  ['192.31.196.1', 'allow'], ['192.52.193.1', 'allow'], ['192.175.48.1', 'allow'],
  // deprecated 6to4 relay anycast
  ['192.88.98.255', 'allow'], ['192.88.99.0', 'block'], ['192.88.99.255', 'block'], ['192.88.100.0', 'allow'],
  // 192.168/16
  ['192.167.255.255', 'allow'], ['192.168.0.0', 'block'], ['192.168.1.1', 'block'], ['192.168.255.255', 'block'], ['192.169.0.0', 'allow'],
  // benchmarking 198.18/15
  ['198.17.255.255', 'allow'], ['198.18.0.0', 'block'], ['198.19.255.255', 'block'], ['198.20.0.0', 'allow'],
  // multicast, reserved, broadcast
  ['223.255.255.255', 'allow'], ['224.0.0.0', 'block'], ['224.0.0.251', 'block'], ['239.255.255.255', 'block'],
  ['240.0.0.0', 'block'], ['255.255.255.254', 'block'], ['255.255.255.255', 'block'],
  // ordinary public addresses
  ['1.1.1.1', 'allow'], ['8.8.8.8', 'allow'], ['93.184.215.14', 'allow'], ['151.101.1.69', 'allow'],

  // IPv6 basics
  ['::', 'block'], ['::1', 'block', 'loopback'], ['0:0:0:0:0:0:0:1', 'block', 'loopback'],
  // IPv4-compatible ::/96 (judged by the IPv4; not loopback: Linux does not route it to lo)
  ['::2', 'block'], ['::127.0.0.1', 'block'], ['::10.0.0.1', 'block'], ['::8.8.8.8', 'allow'],
  // IPv4-mapped
  ['::ffff:0.0.0.0', 'block'], ['::ffff:127.0.0.1', 'block', 'loopback'], ['::ffff:7f00:2', 'block', 'loopback'],
  ['::ffff:10.0.0.1', 'block'], ['::ffff:169.254.169.254', 'block'], ['::ffff:192.0.0.9', 'allow'], ['::ffff:8.8.8.8', 'allow'],
  // IPv4-translated ::ffff:0:0:0/96
  ['::ffff:0:127.0.0.1', 'block'], ['::ffff:0:192.168.0.1', 'block'], ['::ffff:0:8.8.8.8', 'allow'],
  // NAT64 well-known /96
  ['64:ff9b::127.0.0.1', 'block'], ['64:ff9b::10.1.2.3', 'block'], ['64:ff9b::169.254.169.254', 'block'],
  ['64:ff9b::255.255.255.255', 'block'], ['64:ff9b::8.8.8.8', 'allow'], ['64:ff9b::1:0:0', 'block'],
  // NAT64 local-use /48: every IPv4 it could carry (RFC 6052 /48 layout, and /96) must be public
  ['64:ff9b:1::10.0.0.1', 'block'], ['64:ff9b:1:a00:1:0:808:808', 'block'], ['64:ff9b:1:808:8:800:808:808', 'allow'],
  ['64:ff9b:1::8.8.8.8', 'block'], ['64:ff9b:1:ffff:ffff:ffff:ffff:ffff', 'block'],
  ['64:ff9b:1:808:7f:0:108:808', 'block'], // public in the /48 and /96 layouts, 127.0.0.1 in the /64 one
  // 6to4
  ['2002::', 'block'], ['2002:a00:1::1', 'block'], ['2002:7f00:1::', 'block'], ['2002:a9fe:a9fe::1', 'block'],
  ['2002:c000:204::', 'block'], ['2002:808:808::1', 'allow'],
  // Teredo: server in bits 32-63, client inverted in the last 32 (RFC 4380's example has 192.0.2.45)
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'block'], ['2001:0:4136:e378:8000:63bf:f7f7:f7f7', 'allow'],
  ['2001:0:a00:1::f7f7:f7f7', 'block'], ['2001:0:4136:e378::', 'block'],
  // other IPv6 special-purpose ranges
  ['100::', 'block'], ['100::ffff:ffff:ffff:ffff', 'block'], ['100:0:0:1::1', 'block'],
  ['2001:1::1', 'allow'], ['2001:1::2', 'allow'], ['2001:1::3', 'allow'], ['2001:1::4', 'block'],
  ['2001:2::1', 'block'], ['2001:2:0:ffff::', 'block'], ['2001:3::1', 'allow'], ['2001:4:112::1', 'allow'], ['2001:4:113::', 'block'],
  ['2001:10::1', 'block'], ['2001:1f:ffff::', 'block'], ['2001:20::1', 'allow'], ['2001:2f:ffff::1', 'allow'], ['2001:30::1', 'allow'],
  ['2001:40::1', 'block'], ['2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'], ['2001:200::', 'allow'],
  ['2001:db7:ffff:ffff:ffff:ffff:ffff:ffff', 'allow'], ['2001:db8::', 'block'], ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'block'], ['2001:db9::', 'allow'],
  ['3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'allow'], ['3fff::', 'block'], ['3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'], ['3fff:1000::', 'allow'],
  // only 2000::/3 is global unicast
  ['1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'], ['2000::', 'allow'], ['3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'allow'],
  ['4000::', 'block'], ['5f00::1', 'block'],
  ['fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'], ['fc00::', 'block'], ['fd00::1', 'block'], ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'],
  ['fe80::', 'block'], ['fe80::1%eth0', 'block'], ['febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'],
  ['fec0::1', 'block'], ['feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'],
  ['ff02::1', 'block'], ['ff0e::1', 'block'], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'block'],
  ['2001:4860:4860::8888', 'allow'], ['2606:4700:4700::1111', 'allow'], ['2a00:1450:4001:82a::200e', 'allow'],
];

test('the range policy: every special-purpose range, its edges and the embedded-IPv4 forms', () => {
  assert.ok(TABLE.length >= 150, `table has ${TABLE.length} rows`);
  const wrong: string[] = [];
  for (const [address, expected, lo] of TABLE) {
    const v = judgeAddress(address);
    const got = v.global ? 'allow' : 'block';
    if (got !== expected) wrong.push(`${address}: expected ${expected}, got ${got} (${v.reason})`);
    if (v.loopback !== (lo === 'loopback')) wrong.push(`${address}: loopback should be ${lo === 'loopback'}`);
    if (!v.global) assert.notEqual(v.reason, 'public');
  }
  assert.deepEqual(wrong, []);
});

test('a blocked address says which range decided, naming the IPv4 an IPv6 form carries', () => {
  assert.match(judgeAddress('169.254.169.254').reason, /^169\.254\.0\.0\/16 link-local/);
  assert.match(judgeAddress('2002:a9fe:a9fe::1').reason, /6to4.*carrying 169\.254\.169\.254: 169\.254\.0\.0\/16/);
  assert.match(judgeAddress('2001:0:4136:e378:8000:63bf:3fff:fdd2').reason, /Teredo.*carrying 192\.0\.2\.45/);
  assert.equal(judgeAddress('::ffff:7f00:1').address, '::ffff:127.0.0.1');
});

test('an IPv6 address with a dotted tail keeps its meaning: ::a.b.c.d is IPv4-compatible, not mapped', () => {
  // ipaddr.js alone turns "::127.0.0.1" into ::ffff:127.0.0.1, a different address.
  assert.equal(parseAddress('::127.0.0.1')!.toNormalizedString(), parseAddress('::7f00:1')!.toNormalizedString());
  assert.equal(parseAddress('::ffff:127.0.0.1')!.toNormalizedString(), parseAddress('::ffff:7f00:1')!.toNormalizedString());
  assert.equal(parseAddress('64:ff9b::10.0.0.1')!.toNormalizedString(), '64:ff9b:0:0:0:0:a00:1');
  assert.equal(judgeAddress('::127.0.0.1').loopback, false);
  assert.equal(judgeAddress('fe80::1%eth0').address, 'fe80::1%eth0');
});

test('only plain dotted-quad IPv4 and IPv6 are addresses to the policy; URL-style forms are the URL parser\'s job', () => {
  for (const s of ['127.1', '0x7f000001', '2130706433', '0177.0.0.1', '127.0.0.01', '[::1]', 'localhost', '', '1.2.3.4/8', '1::2::3']) {
    assert.equal(parseAddress(s), undefined, s);
    assert.throws(() => judgeAddress(s), TypeError);
  }
});

test('allowlist entries: addresses and CIDRs in plain notation, normalised; anything doubtful refused with a reason', () => {
  const ok: [string, string][] = [
    ['192.168.1.20', '192.168.1.20/32'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    [' 127.0.0.1 ', '127.0.0.1/32'],
    ['::1', '::1/128'],
    ['FD00::/8', 'fd00::/8'],
    ['::ffff:192.168.1.20', '192.168.1.20/32'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['::10.0.0.0/104', '::a00:0/104'],
    ['0.0.0.0/0', '0.0.0.0/0'],
  ];
  for (const [raw, text] of ok) {
    const e = parseAllowEntry(raw);
    assert.equal(typeof e, 'object', `${raw}: ${String(e)}`);
    assert.equal((e as { text: string }).text, text);
  }
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['10.1', /not an IP address/],
    ['0x0a.0.0.1', /not an IP address/],
    ['010.0.0.1', /not an IP address/],
    ['10.0.0.1/8', /did you mean 10\.0\.0\.0\/8/],
    ['fd00::1/8', /did you mean fd00::\/8/],
    ['::10.0.0.1/104', /did you mean ::a00:0\/104/],
    ['10.0.0.0/33', /from 0 to 32/],
    ['10.0.0.0/-1', /from 0 to 32/],
    ['10.0.0.0/08x', /from 0 to 32/],
    ['::1/129', /from 0 to 128/],
    ['fe80::1%eth0', /zone ids/],
    ['localhost', /not an IP address/],
    ["10.0.0.1'; DROP TABLE x;--", /not an IP address/],
    ['１０.0.0.1', /not an IP address/],
  ];
  for (const [raw, why] of bad) {
    const e = parseAllowEntry(raw);
    assert.equal(typeof e, 'string', raw);
    assert.match(e as string, why, raw);
  }
  assert.throws(() => new Allowlist(['10.0.0.0/8', 'nope']), (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT' && /nope/.test(e.message));
  assert.throws(() => createSafeFetch({ allowedPrivateIps: ['10.1'] }), (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT');
  assert.throws(() => createSafeFetch({ allowedPrivateIps: '10.0.0.0/8' as unknown as string[] }), (e: unknown) => e instanceof AppError);
  assert.throws(() => createSafeFetch({ dnsServers: ['not a server'] }), (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT');
  assert.throws(() => createSafeFetch({ connectTimeoutMs: 0 }), (e: unknown) => e instanceof AppError);
  assert.throws(() => createSafeFetch({ connectTimeoutMs: 2 ** 31 }), (e: unknown) => e instanceof AppError);
  for (const bad of [{ maxResponseBytes: 0 }, { maxResponseBytes: 1.5 }, { requestTimeoutMs: 0 }, { requestTimeoutMs: 2 ** 31 }, { requestTimeoutMs: '5000' as unknown as number }]) {
    assert.throws(() => createSafeFetch(bad), (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT' && /maxResponseBytes|requestTimeoutMs/.test(e.message), JSON.stringify(bad));
  }
  for (const ca of ['not a certificate', Buffer.from('x'), [{}] as unknown as string[], '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----']) {
    assert.throws(() => createSafeFetch({ ca }), (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT' && /ca\[0\]/.test(e.message));
  }
});

test('allowlist matching: CIDR edges, and an IPv4 entry also covers the IPv4-mapped form (and only that form)', () => {
  const list = new Allowlist(['10.0.0.0/8', '192.168.1.20', 'fd00::/8']);
  const m = (s: string) => list.match(parseAddress(s)!);
  assert.equal(m('10.0.0.0'), '10.0.0.0/8');
  assert.equal(m('10.255.255.255'), '10.0.0.0/8');
  assert.equal(m('11.0.0.0'), undefined);
  assert.equal(m('192.168.1.20'), '192.168.1.20/32');
  assert.equal(m('192.168.1.21'), undefined);
  assert.equal(m('::ffff:10.1.2.3'), '10.0.0.0/8');
  assert.equal(m('::10.1.2.3'), undefined, 'IPv4-compatible goes out on IPv6, not to the IPv4 host');
  assert.equal(m('64:ff9b::10.1.2.3'), undefined, 'NAT64 reaches a translator, not the IPv4 host');
  assert.equal(m('2002:a01:203::'), undefined);
  assert.equal(m('fdff::1'), 'fd00::/8');
  assert.equal(m('fe80::1'), undefined);
  // A broad IPv6 entry does not reach IPv4 hosts through the mapped form.
  const wide = new Allowlist(['::/0']);
  assert.equal(wide.match(parseAddress('::ffff:10.0.0.1')!), undefined);
  assert.equal(wide.match(parseAddress('fd00::1')!), '::/0');
});

test('security.allowed_private_ips is validated at config load, with the line and the entry named', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'blufio.toml');
  fs.writeFileSync(file, '[security]\nallowed_private_ips = ["10.0.0.0/8", "::1", "::ffff:192.168.1.20"]\n');
  const cfg = loadConfig({ configPath: file, dataDir: dir });
  assert.deepEqual(cfg.security.allowedPrivateIps, ['10.0.0.0/8', '::1/128', '192.168.1.20/32']);
  assert.deepEqual(loadConfig({ dataDir: dir, env: { XDG_CONFIG_HOME: dir } }).security.allowedPrivateIps, []);

  const cases: [string, RegExp][] = [
    ['# a comment\n[security]\nallowed_private_ips = ["10.0.0.0/8", "10.0.0.1/8"]\n', /line 3: key security\.allowed_private_ips\.1 "10\.0\.0\.1\/8" has bits set.*did you mean 10\.0\.0\.0\/8/],
    ['[security]\nallowed_private_ips = ["192.168.1"]\n', /line 2: .*"192\.168\.1" is not an IP address/],
    ['[security]\nallowed_private_ips = "10.0.0.0/8"\n', /line 2: key security\.allowed_private_ips/],
    ['[security]\nallowed_private_ips = [10]\n', /line 2: key security\.allowed_private_ips\.0/],
    ['[security]\nallowed_privat_ips = []\n', /unknown key security\.allowed_privat_ips/],
  ];
  for (const [text, why] of cases) {
    fs.writeFileSync(file, text);
    assert.throws(
      () => loadConfig({ configPath: file, dataDir: dir }),
      (e: unknown) => e instanceof AppError && e.code === 'KC_CONFIG_INVALID' && why.test(e.message),
      text,
    );
  }
});
