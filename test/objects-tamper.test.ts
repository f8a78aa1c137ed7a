import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { HEADER_BYTES, layoutOf, storeKeys, TAG_BYTES, TRAILER_BYTES } from '../src/objects/chunks.js';
import { openBlob, type BlobInfo } from '../src/objects/read.js';
import { writeBlob } from '../src/objects/write.js';
import { tmpDir } from './helpers/index.js';

/**
 * The encrypted format against every change an attacker with write access to objects/ can make:
 * each single bit flipped, each truncation, bytes appended, chunks swapped, dropped or repeated,
 * a header or a whole file taken from another object. Small chunks (16 bytes) keep the object
 * small enough to try every bit. Where the change alters the length, the reader is also given
 * the altered length (as if the database row had been edited to match), so the cipher's own
 * checks are what must catch it, not only the size comparison.
 */

const LOG2 = 4;
const CHUNK = 2 ** LOG2;
const SEALED = CHUNK + TAG_BYTES;
const root = randomBytes(32);
const keys = storeKeys(root);

async function seal(data: Buffer): Promise<{ file: Buffer; blob: BlobInfo }> {
  const tmp = path.join(tmpDir(), 'obj');
  // A fresh copy of the keys each time: writeBlob's caller owns them, and the sealer zeroes only its own.
  const w = await writeBlob(data, tmp, { keys: { address: Buffer.from(keys.address), file: Buffer.from(keys.file) }, maxBytes: 1e9, chunkLog2: LOG2 });
  return { file: fs.readFileSync(tmp), blob: { address: w.address, encrypted: true, size: w.size, storedSize: w.storedSize } };
}

/** What reading `bytes` as `blob` gives: the plaintext, or the error code. */
async function read(bytes: Buffer, blob: BlobInfo): Promise<Buffer | string> {
  const f = path.join(tmpDir(), 'read');
  fs.writeFileSync(f, bytes);
  try {
    const opened = await openBlob(f, blob, 'test object', Buffer.from(keys.file));
    const parts: Buffer[] = [];
    for await (const p of opened.content) parts.push(p);
    return Buffer.concat(parts);
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

/** The blob info for a file of this length, as an attacker who also edits the row would give it. */
function matching(blob: BlobInfo, length: number): BlobInfo {
  const l = layoutOf(length, LOG2);
  return { ...blob, storedSize: length, size: l?.size ?? blob.size };
}

function chunksOf(file: Buffer): { header: Buffer; chunks: Buffer[]; trailer: Buffer } {
  const data = file.subarray(HEADER_BYTES, file.length - TRAILER_BYTES);
  const chunks: Buffer[] = [];
  for (let off = 0; off < data.length; off += SEALED) chunks.push(data.subarray(off, off + SEALED));
  return { header: file.subarray(0, HEADER_BYTES), chunks, trailer: file.subarray(file.length - TRAILER_BYTES) };
}

it('every single bit flip of an encrypted object is detected', async () => {
  const data = randomBytes(3 * CHUNK + 5);
  const { file, blob } = await seal(data);
  assert.ok((await read(file, blob) as Buffer).equals(data), 'the untouched file reads back');
  let detected = 0;
  for (let bit = 0; bit < file.length * 8; bit++) {
    const b = Buffer.from(file);
    b[bit >> 3]! ^= 1 << (bit & 7);
    assert.equal(await read(b, blob), 'KC_OBJECT_CORRUPT', `bit ${bit} flipped went unnoticed`);
    detected++;
  }
  assert.equal(detected, file.length * 8);
});

it('every truncation, and bytes appended, are detected even when the row is edited to match', async () => {
  const data = randomBytes(4 * CHUNK);
  const { file, blob } = await seal(data);
  for (let len = 0; len < file.length; len++) {
    const cut = file.subarray(0, len);
    assert.equal(await read(cut, blob), 'KC_OBJECT_CORRUPT', `truncated to ${len} with the row's length`);
    const r = await read(cut, matching(blob, len));
    assert.equal(r, 'KC_OBJECT_CORRUPT', `truncated to ${len} with a matching row`);
  }
  for (const extra of [Buffer.of(0), randomBytes(TAG_BYTES + 1), randomBytes(SEALED), file.subarray(HEADER_BYTES, HEADER_BYTES + SEALED)]) {
    const longer = Buffer.concat([file, extra]);
    assert.equal(await read(longer, matching(blob, longer.length)), 'KC_OBJECT_CORRUPT', `${extra.length} bytes appended`);
  }
});

it('chunks swapped, dropped or repeated, and headers or files from other objects, are detected', async () => {
  const data = randomBytes(5 * CHUNK + 3);
  const { file, blob } = await seal(data);
  const { header, chunks, trailer } = chunksOf(file);
  assert.equal(chunks.length, 6);
  const build = (parts: Buffer[]): Buffer => Buffer.concat([header, ...parts, trailer]);
  // Swapped: every pair (the last chunk is shorter; swapping it changes the layout, which must fail too).
  for (let i = 0; i < chunks.length; i++) {
    for (let j = i + 1; j < chunks.length; j++) {
      const c = [...chunks];
      [c[i], c[j]] = [c[j]!, c[i]!];
      const b = build(c);
      assert.equal(await read(b, matching(blob, b.length)), 'KC_OBJECT_CORRUPT', `chunks ${i} and ${j} swapped`);
    }
  }
  // Dropped, and repeated.
  for (let i = 0; i < chunks.length; i++) {
    const dropped = build(chunks.filter((_, k) => k !== i));
    assert.equal(await read(dropped, matching(blob, dropped.length)), 'KC_OBJECT_CORRUPT', `chunk ${i} dropped`);
    if (i < chunks.length - 1) {
      const repeated = build([...chunks.slice(0, i + 1), chunks[i]!, ...chunks.slice(i + 1)]);
      assert.equal(await read(repeated, matching(blob, repeated.length)), 'KC_OBJECT_CORRUPT', `chunk ${i} repeated`);
    }
  }
  // The trailer dropped (the data chunks alone), or moved before the last chunk.
  const noTrailer = Buffer.concat([header, ...chunks]);
  assert.equal(await read(noTrailer, matching(blob, noTrailer.length)), 'KC_OBJECT_CORRUPT');
  // Another object of the same length under the same key: its header, its chunks, or all of it.
  const other = await seal(randomBytes(data.length));
  const o = chunksOf(other.file);
  assert.equal(await read(Buffer.concat([o.header, ...chunks, trailer]), blob), 'KC_OBJECT_CORRUPT', 'header from another object');
  assert.equal(await read(Buffer.concat([header, o.chunks[0]!, ...chunks.slice(1), trailer]), blob), 'KC_OBJECT_CORRUPT', 'a chunk from another object');
  assert.equal(await read(other.file, blob), 'KC_OBJECT_CORRUPT', 'a whole file moved to this address');
  // The same content sealed again (a fresh salt) reads back: a file is tied to its address, not its bytes.
  const same = await seal(data);
  assert.ok((await read(same.file, blob) as Buffer).equals(data));
});

it('a different store key opens nothing', async () => {
  const data = randomBytes(40);
  const { file, blob } = await seal(data);
  const f = path.join(tmpDir(), 'k');
  fs.writeFileSync(f, file);
  await assert.rejects(openBlob(f, blob, 'x', storeKeys(randomBytes(32)).file), { code: 'KC_OBJECT_CORRUPT' });
});
