import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { openBlufio } from '../src/index.js';
import { silentLogger, tmpDir } from './helpers/index.js';

const GIB = 1024 ** 3;
/** BLUFIO_TEST_BIG_GIB: the size of the encrypted round trip (the plain one is a third of it). */
const SIZE = Math.round(Number(process.env.BLUFIO_TEST_BIG_GIB ?? 3) * GIB);

/**
 * Generated content, never held whole: 1 MiB pieces, each a random block with its index
 * written over the first bytes (so no two pieces are alike), hashed as they are handed out.
 */
function generated(size: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  const block = randomBytes(1024 * 1024);
  return (async function* () {
    for (let off = 0, i = 0; off < size; off += block.length, i++) {
      const piece = Buffer.from(block.subarray(0, Math.min(block.length, size - off)));
      piece.writeUInt32BE(i, 0);
      hash.update(piece);
      yield piece;
    }
  })();
}

it('one enormous piece (a 512 MiB Buffer) is written without a second copy of it in memory, plain and encrypted', async () => {
  const app = await openBlufio({ dataDir: tmpDir(), passphrase: 'big object test', logger: silentLogger(), env: {} });
  try {
    const big = Buffer.alloc(512 * 1024 * 1024, 1);
    for (const encrypted of [false, true]) {
      await app.objects.setEncryption(encrypted);
      big[0] = encrypted ? 2 : 3; // not the same content twice
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
      try {
        const put = await app.objects.put(big);
        assert.equal(put.size, big.length);
        await app.objects.delete(put.ref);
      } finally {
        clearInterval(sample);
      }
      const grew = (peak - baseline) / 1024 ** 2;
      assert.ok(grew < 128, `RSS grew by ${grew.toFixed(0)} MiB putting a 512 MiB Buffer (encrypted ${encrypted})`);
    }
  } finally {
    await app.close();
  }
});

for (const [encrypted, size] of [
  [true, SIZE],
  [false, Math.round(SIZE / 3)],
] as const) {
  it(`a ${(size / GIB).toFixed(1)} GiB ${encrypted ? 'encrypted' : 'plain'} object streams in and out in bounded memory`, async () => {
    const app = await openBlufio({ dataDir: tmpDir(), passphrase: 'big object test', logger: silentLogger(), env: {} });
    try {
      await app.objects.setEncryption(encrypted);
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
      try {
        const inHash = createHash('sha256');
        const put = await app.objects.put(generated(size, inHash));
        assert.equal(put.size, size);
        assert.equal(put.encrypted, encrypted);
        const outHash = createHash('sha256');
        let read = 0;
        for await (const p of await app.objects.get(put.ref)) {
          outHash.update(p as Buffer);
          read += (p as Buffer).length;
        }
        assert.equal(read, size);
        assert.equal(outHash.digest('hex'), inHash.digest('hex'));
        await app.objects.delete(put.ref);
      } finally {
        clearInterval(sample);
      }
      // The content is never in memory: a few MiB of pieces and writes in flight, not gigabytes.
      const grew = (peak - baseline) / 1024 ** 2;
      assert.ok(grew < 256, `RSS grew by ${grew.toFixed(0)} MiB while streaming ${(size / GIB).toFixed(1)} GiB`);
    } finally {
      await app.close();
    }
  });
}
