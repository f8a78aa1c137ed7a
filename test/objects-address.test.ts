import assert from 'node:assert/strict';
import { createCipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { loadConfig } from '../src/config/index.js';
import { sealedSize, storeKeys } from '../src/objects/chunks.js';
import { openBlob } from '../src/objects/read.js';
import { writeBlob } from '../src/objects/write.js';
import type { ObjectSource } from '../src/objects/source.js';
import { Storage } from '../src/storage/index.js';
import { blobPath } from '../src/storage/objects/layout.js';
import { cleanEnv, silentLogger, tmpDir } from './helpers/index.js';

/**
 * The address of an encrypted object (address scheme 2): a keyed hash of the content alone. The
 * same content gets the same address however it is cut into pieces and whatever the chunk size;
 * any other content, another length or another store key gets another; and it is exactly what
 * the README describes, computed here again from Node's primitives.
 */

const root = Buffer.alloc(32, 0x5a);

async function addressOf(source: ObjectSource, opts: { chunkLog2?: number; root?: Buffer } = {}): Promise<string> {
  const keys = storeKeys(opts.root ?? root);
  const tmp = path.join(tmpDir(), 'obj');
  const w = await writeBlob(source, tmp, { keys, maxBytes: 1e9, chunkLog2: opts.chunkLog2 ?? 4 });
  fs.rmSync(tmp);
  return w.address;
}

async function* pieces(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(off, off + n);
    off += n;
  }
}

it('the same content has the same encrypted address whatever its pieces and chunk size', async () => {
  const data = randomBytes(70_001);
  const want = await addressOf(data);
  for (const log2 of [4, 5, 12, 16, 18]) assert.equal(await addressOf(data, { chunkLog2: log2 }), want, `chunks of 2^${log2}`);
  for (const sizes of [[1], [7, 3], [65_536], [15, 17, 4096]]) {
    assert.equal(await addressOf(pieces(data, sizes)), want, `pieces of ${sizes.join(', ')} bytes`);
  }
});

it('any other content, length or store key gives another encrypted address', async () => {
  const data = randomBytes(100);
  const seen = new Map<string, string>();
  const add = async (what: string, source: Buffer, opts?: { root?: Buffer }): Promise<void> => {
    const a = await addressOf(source, opts);
    assert.equal(seen.get(a), undefined, `${what} has the address of ${seen.get(a)}`);
    seen.set(a, what);
  };
  await add('the content', data);
  for (let i = 0; i < data.length; i++) {
    const b = Buffer.from(data);
    b[i]! ^= 0x80;
    await add(`byte ${i} changed`, b);
  }
  await add('one byte less', data.subarray(0, 99));
  await add('a zero byte more', Buffer.concat([data, Buffer.of(0)]));
  await add('sixteen zero bytes more', Buffer.concat([data, Buffer.alloc(16)]));
  await add('nothing', Buffer.alloc(0));
  await add('one zero byte', Buffer.of(0));
  await add('sixteen zero bytes', Buffer.alloc(16));
  await add('another store key', data, { root: Buffer.alloc(32, 0x5b) });
  // Not a hash anyone can compute from the content alone.
  const a = await addressOf(data);
  assert.notEqual(a, createHash('sha256').update(data).digest('hex'));
});

it('the encrypted address is scheme 2 as the README describes it', async () => {
  const data = randomBytes(1000);
  const { address } = storeKeys(root);
  const contentKey = Buffer.from(hkdfSync('sha256', address, Buffer.alloc(0), 'blufio/objects/v2/content', 32));
  const gcm = createCipheriv('aes-256-gcm', contentKey, Buffer.alloc(12));
  gcm.setAAD(data);
  gcm.final();
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(data.length));
  const want = createHmac('sha256', address).update(Buffer.of(2)).update(gcm.getAuthTag()).update(len).digest('hex');
  assert.equal(await addressOf(data), want);
});

it('an object stored under address scheme 1 still opens, and its content put again is stored anew', async () => {
  // Written by the code before scheme 2 (commit 1408f7c), with the store root above and chunks of 16 bytes.
  const content = Buffer.from('an attachment stored by address scheme 1', 'utf8');
  const v1 = {
    address: '64ad2eca035f4531a52b72c6c8393d356462b105ab2785609f7c60414c30e64f',
    file:
      'QkxVRk9CSgEEAAAAjGtJ1JOUX4WahhLsdFirF7zkEUfpD1rhtsQpeRYs7KhAnMwp1LlHm2CzVSE84/vZ+hUbXbgpvWkZ8HW7Nb7n1Gg4BlvyhAjtMheLbYqiMMIFj0WF+YYb804y3HzpGN/PkJ3E5/4bCDr8gcxbB1RiwRHbDISqYaHn6QjZL+Zp4gX/N81q8jtdRlkGuuKsspv6mjXj65hNGke1XWJIOVKbW8W77vpewi1X',
  };
  const f = path.join(tmpDir(), 'v1');
  fs.writeFileSync(f, Buffer.from(v1.file, 'base64'));
  const opened = await openBlob(f, { address: v1.address, encrypted: true, size: content.length, storedSize: fs.statSync(f).size }, 'v1 object', storeKeys(root).file);
  const parts: Buffer[] = [];
  for await (const p of opened.content) parts.push(p);
  assert.ok(Buffer.concat(parts).equals(content));
  assert.notEqual(await addressOf(content), v1.address, 'scheme 2 names the same content differently');
});

it('content whose file was lost, put again in another chunk size, is stored with the new file\'s size (review of address scheme 2)', async () => {
  // The chunk size is fixed in a release, but a later one may change it, and encrypted addresses
  // no longer depend on it: a lost file can come back in another size.
  const dataDir = tmpDir();
  const storage = await Storage.open(loadConfig({ dataDir, env: cleanEnv() }), silentLogger());
  try {
    const dir = path.join(dataDir, 'objects');
    fs.mkdirSync(dir);
    const content = randomBytes(5000);
    const keys = storeKeys(root);
    let puts = 0;
    const commit = async (log2: number, data = content, maxTotalBytes = 0): Promise<{ deduplicated: boolean; storedSize: number; address: string }> => {
      const tmp = path.join(dataDir, `put-${puts++}`);
      const w = await writeBlob(data, tmp, { keys: { address: Buffer.from(keys.address), file: Buffer.from(keys.file) }, maxBytes: 1e9, chunkLog2: log2 });
      const r = await storage.objectRows.commit({ dir, tmp, address: w.address, encrypted: true, size: w.size, storedSize: w.storedSize, contentType: 'application/octet-stream', name: null, maxTotalBytes });
      fs.rmSync(tmp, { force: true });
      return { deduplicated: r.deduplicated, storedSize: w.storedSize, address: w.address };
    };
    const first = await commit(4);
    const file = blobPath(dir, first.address);
    assert.equal(storage.objectRows.storedBytes(), first.storedSize);
    // The same content in another chunk size while the file is there: the stored one serves.
    const again = await commit(8);
    assert.equal(again.deduplicated, true);
    assert.notEqual(again.storedSize, first.storedSize);
    assert.equal(fs.statSync(file).size, first.storedSize);
    assert.equal(storage.objectRows.storedBytes(), first.storedSize);
    // The file lost, then the content put again in another size: the row follows the new file.
    fs.rmSync(file);
    const back = await commit(8);
    assert.equal(back.deduplicated, true);
    assert.equal(fs.statSync(file).size, back.storedSize);
    assert.equal(storage.objectRows.storedBytes(), back.storedSize, 'before, the row kept the lost file\'s size, and every get failed');
    const opened = await openBlob(file, { address: back.address, encrypted: true, size: content.length, storedSize: storage.objectRows.storedBytes() }, 'x', Buffer.from(keys.file));
    const parts: Buffer[] = [];
    for await (const p of opened.content) parts.push(p);
    assert.ok(Buffer.concat(parts).equals(content));
    // The writer's own count of what is stored, which the room check uses, follows too: new
    // content that fits exactly is taken (the count kept the lost file's size, and refused it),
    // and more one byte past the room is refused.
    const other = randomBytes(1000);
    const otherSize = sealedSize(other.length, 4);
    assert.equal((await commit(4, other, back.storedSize + otherSize)).storedSize, otherSize);
    await assert.rejects(commit(4, randomBytes(10), back.storedSize + otherSize + sealedSize(10, 4) - 1), { code: 'KC_OBJECT_STORE_FULL' });
    // A file of the wrong size is replaced the same way (it was kept: sizes differed and it existed).
    fs.truncateSync(file, 100);
    const repaired = await commit(4);
    assert.equal(fs.statSync(file).size, repaired.storedSize);
    assert.equal(storage.objectRows.storedBytes(), repaired.storedSize + otherSize);
  } finally {
    await storage.close();
  }
});
