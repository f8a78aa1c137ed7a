import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PipelinedWriter, readBlocks } from '../src/objects/io.js';
import { tmpDir } from './helpers/index.js';

const MIB = 1024 * 1024;

/** Bytes no two pieces share: a piece written in the wrong place, or overwritten, shows. */
function pattern(total: number): Buffer {
  const b = Buffer.alloc(total);
  for (let i = 0; i + 4 <= total; i += 4) b.writeUInt32BE(i, i);
  return b;
}

/** Pieces of sizes that never line up with a batch, as a socket or a web stream gives them. */
function* piecesOf(b: Buffer): Generator<Buffer> {
  const sizes = [300 * 1024 + 7, 1, 64 * 1024, 2 * MIB + 3, 17];
  for (let off = 0, i = 0; off < b.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, b.length - off);
    // A fresh copy, refilled with zeros once handed over: the writer must not keep it.
    const piece = Buffer.from(b.subarray(off, off + n));
    yield piece;
    piece.fill(0);
    off += n;
  }
}

/**
 * A disk that takes its time and reads each buffer only when its write completes: a batch
 * refilled while its write was in flight would put the wrong bytes in the file. With `partial`,
 * each writev takes only part of what it is given, so the writer finishes with write().
 */
function slowDisk(total: number, partial: boolean) {
  const file = Buffer.alloc(total);
  const buffers = new Set<ArrayBufferLike>();
  let inFlight = 0;
  let most = 0;
  /** How far into the file the writes issued so far reach. */
  let issued = 0;
  const take = async (bufs: Buffer[], at: number, limit: number): Promise<number> => {
    issued = Math.max(issued, at + bufs.reduce((n, b) => n + b.length, 0));
    inFlight++;
    most = Math.max(most, inFlight);
    await sleep(3);
    let p = at;
    for (const b of bufs) p += b.copy(file, p, 0, Math.min(b.length, at + limit - p));
    inFlight--;
    return p - at;
  };
  const fh = {
    async writev(bufs: Buffer[], at: number) {
      for (const b of bufs) buffers.add(b.buffer);
      const total = bufs.reduce((n, b) => n + b.length, 0);
      return { bytesWritten: await take(bufs, at, partial ? Math.ceil(total / 3) : total), buffers: bufs };
    },
    async write(buf: Buffer, off: number, len: number, at: number) {
      return { bytesWritten: await take([buf.subarray(off, off + len)], at, Math.ceil(len / 2)), buffer: buf };
    },
  } as unknown as FileHandle;
  return { fh, file, buffers, most: () => most, issued: () => issued };
}

for (const partial of [false, true]) {
  it(`copyIn reuses its write batches only once their write is done: the file is right, and two batches serve any size${partial ? ' (writes taken in parts)' : ''}`, async () => {
    const total = 12 * MIB + 5;
    const want = pattern(total);
    const disk = slowDisk(total, partial);
    const w = new PipelinedWriter(disk.fh);
    for (const piece of piecesOf(want)) await w.copyIn(piece);
    await w.flush();
    assert.equal(w.written, total);
    assert.ok(disk.file.equals(want), 'the file holds what was copied in, in order');
    assert.equal(disk.most(), 2, 'two writes ran at once');
    assert.equal(disk.buffers.size, 2, `${disk.buffers.size} batches were allocated for ${Math.ceil(total / MIB)} MiB; one filling while one is written is all it takes`);
  });
}

it('copyIn into a real file: the bytes on disk are the bytes given, across many reused batches', async () => {
  const dir = tmpDir();
  const f = path.join(dir, 'out.bin');
  const want = pattern(9 * MIB + 123);
  const fh = await fs.promises.open(f, 'wx', 0o600);
  try {
    const w = new PipelinedWriter(fh);
    for (const piece of piecesOf(want)) await w.copyIn(piece);
    await w.flush();
  } finally {
    await fh.close();
  }
  assert.ok(fs.readFileSync(f).equals(want));
});

it('readBlocks with reuse: every block holds its own bytes when the consumer looks, and two buffers serve the file', async () => {
  const dir = tmpDir();
  const f = path.join(dir, 'in.bin');
  // Four blocks of an odd size exactly, after 100 bytes skipped; 700 KiB blocks leave a short last one.
  const ODD = 1_310_945;
  const want = pattern(100 + 4 * ODD);
  fs.writeFileSync(f, want);
  const fh = await fs.promises.open(f, 'r');
  try {
    for (const [reuse, block] of [[true, 700 * 1024], [false, 700 * 1024], [true, ODD]] as const) {
      const buffers = new Set<ArrayBufferLike>();
      const got: Buffer[] = [];
      let at = 100;
      for await (const b of readBlocks(fh, 100, want.length - 100, block, reuse)) {
        // Checked now, while it is the consumer's: the read ahead must be going into another buffer.
        assert.ok(b.equals(want.subarray(at, at + b.length)), `the block at ${at} holds its own bytes`);
        await sleep(2);
        assert.ok(b.equals(want.subarray(at, at + b.length)), `the block at ${at} is not read into while the consumer holds it`);
        at += b.length;
        buffers.add(b.buffer);
        got.push(Buffer.from(b));
      }
      assert.ok(Buffer.concat(got).equals(want.subarray(100)));
      assert.equal(got.length, Math.ceil((want.length - 100) / block), 'one block per block of the file, no empty last one');
      if (reuse) assert.equal(buffers.size, 2, `two buffers, one read ahead and one being consumed (block of ${block})`);
      else assert.ok(buffers.size > 2, 'without reuse each block has a buffer of its own');
    }
  } finally {
    await fh.close();
  }
});

it('readBlocks with reuse: the block a consumer stops at stays its own after the read ahead lands', async () => {
  const dir = tmpDir();
  const f = path.join(dir, 'in.bin');
  const BLOCK = 256 * 1024;
  const want = pattern(4 * MIB);
  fs.writeFileSync(f, want);
  const fh = await fs.promises.open(f, 'r');
  try {
    let last: Buffer | undefined;
    let n = 0;
    for await (const b of readBlocks(fh, 0, want.length, BLOCK, true)) {
      last = b; // not copied: still the reader's buffer
      if (++n === 5) break; // the read ahead of the sixth is in flight
    }
    await sleep(20);
    assert.ok(last!.equals(want.subarray(4 * BLOCK, 5 * BLOCK)), 'the read ahead went into the other buffer, not the one held');
  } finally {
    await fh.close();
  }
});

for (const partial of [false, true]) {
  it(`reserve: room filled in place goes to the disk in order, from two reused batches (the first grown from a small one) when the pieces fit them${partial ? ' (writes taken in parts)' : ''}`, async () => {
    // A header, then sealed 256 KiB chunks with their tags, as an encrypted put reserves them.
    const sizes = [44, ...Array.from({ length: 47 }, () => 256 * 1024 + 16), 1000, 48];
    const total = sizes.reduce((a, b) => a + b, 0);
    const want = pattern(total);
    const disk = slowDisk(total, partial);
    const w = new PipelinedWriter(disk.fh);
    let at = 0;
    for (const [i, n] of sizes.entries()) {
      const room = w.reserve(n);
      assert.equal(room.length, n);
      want.copy(room, 0, at, at + n);
      at += n;
      // As writeBlob does: a commit after each slice (four chunks), not after each chunk.
      if (i % 4 === 0) await w.commitReserved();
    }
    await w.flush();
    assert.equal(w.written, total);
    assert.ok(disk.file.equals(want), 'the file holds the reserved bytes, in order');
    assert.equal(disk.most(), 2, 'two writes ran at once');
    // The header went into a small first batch (most encrypted objects are small), which grew
    // into a big one before anything was written; then two big batches, reused.
    assert.equal(disk.buffers.size, 2, `${disk.buffers.size} batches for ${sizes.length} reservations`);
    assert.ok([...disk.buffers].every((b) => b.byteLength > MIB), 'both are big');
  });
}

/** Reserves each size in turn, fills it from a pattern and commits, as an encrypted put does. */
async function reserveAll(sizes: number[], partial: boolean) {
  const total = sizes.reduce((a, b) => a + b, 0);
  const want = pattern(total);
  const disk = slowDisk(total, partial);
  const w = new PipelinedWriter(disk.fh);
  let at = 0;
  for (const n of sizes) {
    want.copy(w.reserve(n), 0, at, at + n);
    at += n;
    await w.commitReserved();
  }
  const issuedBeforeFlush = disk.issued();
  await w.flush();
  return { disk, want, issuedBeforeFlush };
}

it('reserve: a piece larger than a batch gets a batch of its size, and the file is still right', async () => {
  const { disk, want } = await reserveAll([44, 2 * MIB + 16, 300, 2 * MIB + 16, 3 * MIB, 48], true);
  assert.ok(disk.file.equals(want));
  assert.ok([...disk.buffers].some((b) => b.byteLength >= 3 * MIB), 'the 3 MiB piece had a batch of its own size');
});

it('reserve: a small object is one small batch and one write; commitReserved leaves what add() holds for a write\'s worth', async () => {
  // A 16 KiB image: header, one chunk with its tag, trailer.
  const { disk, want, issuedBeforeFlush } = await reserveAll([44, 16 * 1024 + 16, 48], false);
  assert.equal(issuedBeforeFlush, 0, 'nothing written before the end');
  assert.ok(disk.file.equals(want));
  assert.deepEqual([...disk.buffers].map((b) => b.byteLength), [64 * 1024], 'one batch of 64 KiB');

  // node:crypto's path: sealed chunks handed over with add(), and commitReserved between.
  const disk2 = slowDisk(3 * 256 * 1024, false);
  const w2 = new PipelinedWriter(disk2.fh);
  for (let i = 0; i < 3; i++) {
    await w2.add([Buffer.alloc(256 * 1024, i)]);
    await w2.commitReserved();
  }
  assert.equal(disk2.issued(), 0, 'three quarters of a write\'s worth waits');
  await w2.flush();
  assert.equal(disk2.issued(), 3 * 256 * 1024);
});

it('reserve: sealed chunks from pieces that never line up with them are written as they come, from at most three big batches', async () => {
  // What an encrypted put reserves from a source of such pieces: the header, then the chunks
  // each piece completes (three or four of 256 KiB with their tags, or none), then the trailer.
  const CHUNK = 256 * 1024;
  for (const pieceBytes of [1_048_575, 1_000_000, 300_001]) {
    const size = 24 * MIB + 5;
    const reservations: number[][] = [[44]];
    for (let at = 0; at < size; at += pieceBytes) {
      const end = Math.min(size, at + pieceBytes);
      const n = Math.floor(end / CHUNK) - Math.floor(at / CHUNK);
      reservations.push(Array.from({ length: n }, () => CHUNK + 16));
    }
    reservations.push([(size % CHUNK) + 16, 48]);
    const total = reservations.flat().reduce((a, b) => a + b, 0);
    const want = pattern(total);
    const disk = slowDisk(total, false);
    const w = new PipelinedWriter(disk.fh);
    let at = 0;
    let mostUnwritten = 0;
    for (const group of reservations) {
      for (const n of group) {
        want.copy(w.reserve(n), 0, at, at + n);
        at += n;
      }
      await w.commitReserved();
      mostUnwritten = Math.max(mostUnwritten, w.written - disk.issued());
    }
    await w.flush();
    assert.ok(disk.file.equals(want), `the file is right (pieces of ${pieceBytes})`);
    // At most the batch being filled and a reservation that did not fit in it.
    assert.ok(mostUnwritten <= 1_114_112 + CHUNK + 16, `${mostUnwritten} bytes waited unwritten (pieces of ${pieceBytes})`);
    const big = [...disk.buffers].filter((b) => b.byteLength > 64 * 1024).length;
    assert.ok(big <= 3, `${big} big batches (pieces of ${pieceBytes})`);
  }
});
