import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { ChunkSealer, newHeader, storeKeys, type SealTarget } from '../src/objects/chunks.js';
import { checkedSealer, nativeSealer, nativeSealerStatus, type NativeSealer } from '../src/objects/native.js';
import { openBlob } from '../src/objects/read.js';
import { writeBlob } from '../src/objects/write.js';
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

it('a module is used only when it seals as node:crypto does: a wrong byte, a throw or no sealInto is refused', () => {
  const good = {
    sealInto(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, src: Uint8Array, dst: Uint8Array, tag: Uint8Array) {
      const r = nodeSeal(key, iv, aad, src);
      dst.set(r.ct);
      tag.set(r.tag);
    },
  };
  assert.ok('sealer' in checkedSealer(good), 'a sealer that gives node:crypto\'s bytes is used');
  const refused = { reason: 'failing its self-test' };
  const flip = (where: 'dst' | 'tag', at: number) => ({
    sealInto(...a: Uint8Array[]) {
      good.sealInto(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
      const b = where === 'dst' ? a[4]! : a[5]!;
      const i = at < 0 ? b.length + at : at;
      b[i] = b[i]! ^ 1;
    },
  });
  for (const [what, mod] of [
    ['a flipped first ciphertext byte', flip('dst', 0)],
    ['a flipped last ciphertext byte', flip('dst', -1)],
    ['a flipped tag byte', flip('tag', 15)],
    ['one that ignores the associated data', { sealInto: (k: Uint8Array, iv: Uint8Array, _a: Uint8Array, s: Uint8Array, d: Uint8Array, t: Uint8Array) => good.sealInto(k, iv, new Uint8Array(0), s, d, t) }],
    ['one that throws', { sealInto: () => { throw new Error('no'); } }],
    ['one that writes nothing', { sealInto: () => {} }],
    ['no sealInto', { seal: good.sealInto }],
    ['null', null],
    ['a function', () => good],
  ] as const) {
    assert.deepEqual(checkedSealer(mod), refused, what);
  }
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
  // An output on an input or on the other output: each pair alone (every other argument in a
  // buffer of its own), by a single byte at either end, and wholly.
  const names = ['key', 'iv', 'aad', 'src', 'dst', 'tag'] as const;
  const lengths = { key: 32, iv: 12, aad: 44, src: 100, dst: 100, tag: 16 };
  const pairs = [['dst', 'src'], ['dst', 'key'], ['dst', 'iv'], ['dst', 'aad'], ['tag', 'src'], ['tag', 'key'], ['tag', 'iv'], ['tag', 'aad'], ['tag', 'dst']] as const;
  for (const [out, input] of pairs) {
    for (const how of ['the output\'s last byte on the input\'s first', 'the input\'s last byte on the output\'s first', 'wholly']) {
      const args: Record<string, Buffer> = Object.fromEntries(names.map((n) => [n, randomBytes(lengths[n])]));
      const lo = lengths[out];
      const li = lengths[input];
      const arena = randomBytes(lo + li);
      if (how === 'wholly') {
        // The shorter inside the longer, not at its start.
        args[out] = lo <= li ? arena.subarray(li - lo, li) : arena.subarray(0, lo);
        args[input] = lo <= li ? arena.subarray(0, li) : arena.subarray(lo - li, lo);
      } else if (how.startsWith('the output')) {
        args[out] = arena.subarray(0, lo);
        args[input] = arena.subarray(lo - 1, lo - 1 + li);
      } else {
        args[input] = arena.subarray(0, li);
        args[out] = arena.subarray(li - 1, li - 1 + lo);
      }
      const other = out === 'dst' ? 'tag' : 'dst';
      check(`${out} over ${input}, ${how}`, names.map((n) => args[n]), /overlaps/, [arena, ...(other === input ? [] : [args[other]!])]);
    }
  }
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

it('an encrypted put whose first piece completes chunks writes the header first, and reads back (native sealer into the writer)', async () => {
  const keys = storeKeys(randomBytes(32));
  // One Buffer: the first slice is a whole MiB, four chunks sealed before anything is written.
  const data = randomBytes(2 * 1024 * 1024 + 777);
  const tmp = path.join(tmpDir(), 'obj');
  const w = await writeBlob(data, tmp, { keys: { address: Buffer.from(keys.address), file: Buffer.from(keys.file) }, maxBytes: 1e9 });
  const file = fs.readFileSync(tmp);
  assert.equal(file.subarray(0, 7).toString('latin1'), 'BLUFOBJ', 'the header is first');
  assert.equal(file.length, w.storedSize);
  const opened = await openBlob(tmp, { address: w.address, encrypted: true, size: w.size, storedSize: w.storedSize }, 'test object', Buffer.from(keys.file));
  const parts: Buffer[] = [];
  for await (const p of opened.content) parts.push(p);
  assert.ok(Buffer.concat(parts).equals(data));
});

it('either sealer reads what the other wrote: puts with the native sealer and with it turned off (another process), each the first of its content', async () => {
  const dir = tmpDir();
  const PASS = 'native sealer test passphrase';
  const env = cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS });
  const off = cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS, BLUFIO_SKIP_NATIVE: '1' });
  // Several chunks and a partial last one; two contents, so that each sealer writes one file
  // (the first put of a content writes it; the second finds it).
  const files = ['voice.ogg', 'photo.jpg'].map((name, i) => {
    const f = path.join(tmpDir(), name);
    fs.writeFileSync(f, randomBytes(3 * 256 * 1024 + 12_345 + i));
    return f;
  });
  assert.equal((await runCli(['objects', 'encryption', 'on'], { env })).code, 0);
  const refs: { ref: string; file: string }[] = [];
  for (const [file, e] of [[files[0]!, env], [files[1]!, off], [files[0]!, off], [files[1]!, env]] as const) {
    const put = await runCli(['objects', 'put', file, '--json'], { env: e });
    assert.equal(put.code, 0, put.stderr);
    refs.push({ ref: JSON.parse(put.stdout).ref as string, file });
    // The file each first put wrote must be right before anything else reads it.
    if (refs.length <= 2) assert.equal((await runCli(['objects', 'verify'], { env })).code, 0, `the file the ${e === env ? 'native' : 'node:crypto'} put wrote verifies`);
  }
  const stats = JSON.parse((await runCli(['objects', 'stats', '--json'], { env })).stdout) as { objects: number; files: number; encryptedFiles: number; sealer: unknown };
  assert.deepEqual([stats.objects, stats.files, stats.encryptedFiles], [4, 2, 2], 'each second put found its content under the address the other sealer gave it');
  for (const [i, { ref, file }] of refs.entries()) {
    for (const e of [off, env]) {
      const out = path.join(tmpDir(), `back-${i}`);
      const get = await runCli(['objects', 'get', ref, '--out', out], { env: e });
      assert.equal(get.code, 0, get.stderr);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(file)));
    }
  }
  const offStats = await runCli(['objects', 'stats'], { env: off });
  assert.match(offStats.stdout, /^sealer {6}node:crypto, slower: the native sealer is turned off \(BLUFIO_SKIP_NATIVE=1\)$/m);
  assert.deepEqual(JSON.parse((await runCli(['objects', 'stats', '--json'], { env: off })).stdout).sealer, { native: false, reason: 'turned off (BLUFIO_SKIP_NATIVE=1)' });
  if (process.env.BLUFIO_SKIP_NATIVE !== '1') {
    assert.deepEqual(stats.sealer, { native: true });
    assert.match((await runCli(['objects', 'stats'], { env })).stdout, /^sealer {6}native \(built at install\)$/m);
  }
});
