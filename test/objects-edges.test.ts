import assert from 'node:assert/strict';
import { it } from 'node:test';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { silentLogger, tmpDir } from './helpers/index.js';

const PASS = 'objects edges passphrase';

async function open(dir: string): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, passphrase: PASS });
}

async function expectCode(p: Promise<unknown>, code: string, hint?: RegExp): Promise<void> {
  await assert.rejects(p, (err: { code?: string; hint?: string }) => {
    assert.equal(err.code, code);
    if (hint !== undefined) assert.match(err.hint ?? '', hint);
    return true;
  });
}

it('a web stream already locked to a reader is refused with KC_INVALID_INPUT and a hint, and nothing is stored', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    const rs = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array([1, 2, 3]));
        c.close();
      },
    });
    rs.getReader();
    await expectCode(app.objects.put(rs), 'KC_INVALID_INPUT', /releaseLock/);
    assert.equal((await app.objects.stats()).objects, 0);
    assert.equal((await app.objects.stats()).tempFiles, 0);
  } finally {
    await app.close();
  }
});
