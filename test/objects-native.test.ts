import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { ChunkSealer, newHeader, storeKeys, type SealTarget } from '../src/objects/chunks.js';
import { nativeSealer, nativeSealerStatus, type NativeSealer } from '../src/objects/native.js';
import { cleanEnv, runCli, tmpDir } from './helpers/index.js';

/**
 * The native sealer (native/objseal.c) against node:crypto: the same bytes for every shape of
 * input, refusals that leave the output untouched, and files that either sealer's store reads.
 */

function sealer(): NativeSealer {
  const s = nativeSealer();
  assert.ok(s !== undefined, `the native sealer is not in use: ${nativeSealerStatus().reason ?? '?'} (npm ci builds it; it needs a C compiler and python3)`);
  return s;
}

function nodeSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, src: Uint8Array): { ct: Buffer; tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  if (aad.length > 0) c.setAAD(aad);
  const ct = Buffer.concat([c.update(src), c.final()]);
  return { ct, tag: c.getAuthTag() };
}

it('the native sealer is built here and passes its self-test (or is turned off, and says so)', () => {
  if (process.env.BLUFIO_SKIP_NATIVE === '1') {
    assert.deepEqual(nativeSealerStatus(), { native: false, reason: 'turned off (BLUFIO_SKIP_NATIVE=1)' });
    return;
  }
  sealer();
  assert.deepEqual(nativeSealerStatus(), { native: true });
});

it('sealInto writes exactly what node:crypto gives, for lengths around every block boundary, any associated data, and arrays at offsets', { skip: process.env.BLUFIO_SKIP_NATIVE === '1' }, () => {
  const s = sealer();
  const key = randomBytes(32);
  const iv = randomBytes(12);
  for (const aadLen of [0, 1, 16, 44, 45]) {
    for (const len of [0, 1, 15, 16, 17, 31, 32, 33, 95, 96, 97, 1000, 4096 + 3, 256 * 1024]) {
      const aad = randomBytes(aadLen);
      const src = randomBytes(len);
      const want = nodeSeal(key, iv, aad, src);
      // Output inside a larger buffer, between guard bytes that must stay as they were.
      const arena = Buffer.alloc(len + 16 + 64, 0xa5);
      const dst = arena.subarray(32, 32 + len);
      const tag = arena.subarray(32 + len, 32 + len + 16);
      s.sealInto(key, iv, aad, src, dst, tag);
      assert.ok(dst.equals(want.ct), `ciphertext of ${len} bytes with ${aadLen} bytes of associated data`);
      assert.ok(tag.equals(want.tag), `tag of ${len} bytes with ${aadLen} bytes of associated data`);
      assert.ok(arena.subarray(0, 32).every((b) => b === 0xa5) && arena.subarray(32 + len + 16).every((b) => b === 0xa5), 'nothing written outside dst and tag');
    }
  }
  // Plain Uint8Arrays (not Buffers), each a view at an odd offset into a larger ArrayBuffer.
  const ab = new ArrayBuffer(4096);
  const view = (at: number, n: number, fill?: Buffer): Uint8Array => {
    const v = new Uint8Array(ab, at, n);
    if (fill !== undefined) v.set(fill);
    return v;
  };
  const k = view(1, 32, key);
  const n = view(40, 12, iv);
  const a = view(57, 45, randomBytes(45));
  const src = view(111, 1001, randomBytes(1001));
  const dst = view(1200, 1001);
  const tag = view(2300, 16);
  const want = nodeSeal(Buffer.from(k), Buffer.from(n), Buffer.from(a), Buffer.from(src));
  s.sealInto(k, n, a, src, dst, tag);
  assert.ok(Buffer.from(dst).equals(want.ct) && Buffer.from(tag).equals(want.tag), 'views at offsets into one ArrayBuffer');
});

it('sealInto refuses wrong lengths, output over its inputs and anything but Uint8Arrays, and then writes nothing', { skip: process.env.BLUFIO_SKIP_NATIVE === '1' }, () => {
  const s = sealer();
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const aad = randomBytes(44);
  const src = randomBytes(100);
  const check = (what: string, args: unknown[], error: RegExp, untouched: Buffer[]): void => {
    const before = untouched.map((b) => Buffer.from(b));
    assert.throws(() => (s.sealInto as (...a: unknown[]) => void)(...args), error, what);
    untouched.forEach((b, i) => assert.ok(b.equals(before[i]!), `${what}: nothing written`));
  };
  const dst = Buffer.alloc(100, 7);
  const tag = Buffer.alloc(16, 7);
  check('a short key', [key.subarray(0, 31), iv, aad, src, dst, tag], /32 bytes/, [dst, tag]);
  check('a long iv', [key, Buffer.alloc(13), aad, src, dst, tag], /iv of 12/, [dst, tag]);
  check('dst shorter than src', [key, iv, aad, src, Buffer.alloc(99), tag], /as long as src/, [tag]);
  check('dst longer than src', [key, iv, aad, src, Buffer.alloc(101), tag], /as long as src/, [tag]);
  check('a tag of 12', [key, iv, aad, src, dst, Buffer.alloc(12)], /tag of 16/, [dst]);
  // Output on top of an input: in place, shifted by one, or the tag over the key.
  const both = Buffer.concat([src, Buffer.alloc(1)]);
  check('dst is src', [key, iv, aad, src, src, tag], /overlaps/, [src, tag]);
  check('dst overlaps src by all but one byte', [key, iv, aad, both.subarray(0, 100), both.subarray(1, 101), tag], /overlaps/, [both, tag]);
  const keyAndTag = Buffer.concat([key, Buffer.alloc(4)]);
  check('the tag over the key', [keyAndTag.subarray(0, 32), iv, aad, src, dst, keyAndTag.subarray(20, 36)], /overlaps/, [keyAndTag, dst]);
  check('dst over the associated data', [key, iv, aad, aad.subarray(0, 40), aad.subarray(4, 44), tag], /overlaps/, [aad, tag]);
  // Not Uint8Arrays, or the wrong number of arguments.
  for (const [what, v] of [
    ['a string', 'k'.repeat(32)],
    ['an ArrayBuffer', new ArrayBuffer(32)],
    ['a Uint16Array', new Uint16Array(16)],
    ['a DataView', new DataView(new ArrayBuffer(32))],
    ['undefined', undefined],
  ] as const) {
    check(`the key as ${what}`, [v, iv, aad, src, dst, tag], /Uint8Arrays/, [dst, tag]);
  }
  check('five arguments', [key, iv, aad, src, dst], /six arguments/, [dst]);
});

/** A target that hands out fresh room, and the bytes in the order it was reserved. */
function collecting(): SealTarget & { bytes: () => Buffer } {
  const parts: Buffer[] = [];
  return {
    reserve: (n) => {
      const b = Buffer.alloc(n, 0x5a);
      parts.push(b);
      return b;
    },
    bytes: () => Buffer.concat(parts),
  };
}

it('a put sealed into the writer by the native sealer is byte for byte the put node:crypto seals: same chunks, tags, trailer and address', { skip: process.env.BLUFIO_SKIP_NATIVE === '1' }, () => {
  sealer();
  const keys = storeKeys(randomBytes(32));
  for (const log2 of [4, 10, 18]) {
    const data = randomBytes(3 * 2 ** log2 + 2 ** (log2 - 1) + 5);
    // Pieces that straddle chunks, fill them exactly, and are larger than several.
    const sizes = [1, 2 ** log2 - 1, 2 ** log2, 3, 5 * 2 ** log2 + 7];
    const h = newHeader(log2);
    const viaNode = new ChunkSealer(Buffer.from(keys.file), Buffer.from(keys.address), Buffer.from(h));
    const viaNative = new ChunkSealer(Buffer.from(keys.file), Buffer.from(keys.address), Buffer.from(h));
    const out: Buffer[] = [];
    const target = collecting();
    for (let off = 0, i = 0; off < data.length; i++) {
      const piece = data.subarray(off, off + sizes[i % sizes.length]!);
      viaNode.push(piece, out);
      viaNative.push(piece, [], target);
      off += piece.length;
    }
    const a1 = viaNode.finish(out);
    const a2 = viaNative.finish([], target);
    assert.ok(a1.equals(a2), `the same address (chunks of 2^${log2})`);
    assert.ok(Buffer.concat(out).equals(target.bytes()), `the same sealed bytes (chunks of 2^${log2})`);
  }
});

it('either sealer reads what the other wrote: a put with the native sealer turned off (another process) and one with it give one stored file', async () => {
  const dir = tmpDir();
  const PASS = 'native sealer test passphrase';
  const env = cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS });
  const off = cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS, BLUFIO_SKIP_NATIVE: '1' });
  const src = path.join(tmpDir(), 'voice.ogg');
  // Several chunks and a partial last one.
  fs.writeFileSync(src, randomBytes(3 * 256 * 1024 + 12_345));
  assert.equal((await runCli(['objects', 'encryption', 'on'], { env })).code, 0);
  const refs: string[] = [];
  for (const e of [off, env]) {
    const put = await runCli(['objects', 'put', src, '--json'], { env: e });
    assert.equal(put.code, 0, put.stderr);
    refs.push(JSON.parse(put.stdout).ref as string);
  }
  const stats = JSON.parse((await runCli(['objects', 'stats', '--json'], { env })).stdout) as { objects: number; files: number; encryptedFiles: number; sealer: unknown };
  assert.deepEqual([stats.objects, stats.files, stats.encryptedFiles], [2, 1, 1], 'the second put found the first one\'s file under the same address');
  for (const [i, ref] of refs.entries()) {
    for (const e of [off, env]) {
      const out = path.join(tmpDir(), `back-${i}`);
      const get = await runCli(['objects', 'get', ref, '--out', out], { env: e });
      assert.equal(get.code, 0, get.stderr);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)));
    }
  }
  assert.equal((await runCli(['objects', 'verify'], { env })).code, 0);
  const offStats = await runCli(['objects', 'stats'], { env: off });
  assert.match(offStats.stdout, /^sealer {6}node:crypto, slower: the native sealer is turned off \(BLUFIO_SKIP_NATIVE=1\)$/m);
  assert.deepEqual(JSON.parse((await runCli(['objects', 'stats', '--json'], { env: off })).stdout).sealer, { native: false, reason: 'turned off (BLUFIO_SKIP_NATIVE=1)' });
  if (process.env.BLUFIO_SKIP_NATIVE !== '1') {
    assert.deepEqual(stats.sealer, { native: true });
    assert.match((await runCli(['objects', 'stats'], { env })).stdout, /^sealer {6}native \(built at install\)$/m);
  }
});
