import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { openBlufio } from '../src/index.js';
import { cleanEnv, silentLogger, sleep, startFixture, tmpDir } from './helpers/index.js';

const KILLS = Number(process.env.BLUFIO_TEST_OBJECT_KILLS ?? 16);
const PASS = 'crash test passphrase';

function listTree(root: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...listTree(p));
    else out.push(path.relative(root, p));
  }
  return out;
}

/**
 * A child puts objects of random sizes in random pieces; we SIGKILL it at a random moment,
 * KILLS times, alternating plain and encrypted puts. Afterwards: every acknowledged put reads
 * back intact; every object that is visible at all is complete (verify reads each in full);
 * and after one gc nothing is left but the files of recorded objects: no temporary files, no
 * stray files, no trash.
 */
it(`SIGKILL during puts ${KILLS} times leaves no half object and, after gc, no garbage`, async () => {
  const dir = path.join(tmpDir(), 'data');
  const env = cleanEnv({ BLUFIO_VAULT_KEY: PASS });
  const acked = new Map<string, string>();
  for (let round = 0; round < KILLS; round++) {
    let onReady!: () => void;
    const ready = new Promise<void>((r) => (onReady = r));
    const { child, done } = startFixture(
      'object-churn',
      [dir, 'put', String(round % 2)],
      (line) => {
        if (line === 'R') onReady();
        else if (line.startsWith('P ')) {
          const [, ref, hash] = line.split(' ');
          acked.set(ref!, hash!);
        }
      },
      env,
    );
    await Promise.race([ready, done]);
    await sleep(50 + Math.random() * 400);
    child.kill('SIGKILL');
    const r = await done;
    assert.equal(r.signal, 'SIGKILL', `round ${round} ended on its own: ${r.stderr}`);
  }
  assert.ok(acked.size > 0, 'some puts were acknowledged before the kills');

  const app = await openBlufio({ dataDir: dir, passphrase: PASS, logger: silentLogger(), env: {} });
  try {
    for (const [ref, hash] of acked) {
      const h = createHash('sha256');
      for await (const p of await app.objects.get(ref)) h.update(p as Buffer);
      assert.equal(h.digest('hex'), hash, `acknowledged object ${ref}`);
    }
    // Visible but not acknowledged (killed between commit and the line): complete all the same,
    // which verify (every file read back in full) shows.
    const listed = await app.objects.list({ limit: 1000 });
    const before = await app.objects.verify();
    assert.equal(before.ok, true, JSON.stringify(before.problems));

    // A file moved into place by a put whose transaction never committed looks like this one.
    const stray = path.join(dir, 'objects', 'ab', 'ab' + randomBytes(31).toString('hex'));
    fs.mkdirSync(path.dirname(stray), { recursive: true });
    fs.writeFileSync(stray, 'left behind');

    const gc = await app.objects.gc();
    assert.equal(gc.objectsRemoved, 0, 'nothing recorded is young enough to go');
    // .vault: which vault the store belongs to (a marker half written by a killed child is a
    // temporary, named `..vault.<pid>.<hex>.tmp`, and must be gone like the others).
    const files = listTree(path.join(dir, 'objects')).filter((f) => f !== '.vault');
    const expected = new Set((await app.objects.list({ limit: 1000 })).map((o) => o.ref));
    assert.equal(expected.size, listed.length);
    assert.deepEqual(files.filter((f) => f.startsWith('.')), [], 'no temporary or trash files');
    const after = await app.objects.verify();
    assert.equal(after.ok, true);
    assert.equal(after.strayFiles, 0);
    assert.equal(after.tempFiles, 0);
    assert.equal(files.length, (await app.objects.stats()).files, 'one file per recorded content, nothing else');
  } finally {
    await app.close();
  }
});
