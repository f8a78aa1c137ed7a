import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio } from '../src/index.js';
import { silentLogger, sleep, startFixture, storedMessageIds, tmpDir } from './helpers/index.js';

const KILLS = Number(process.env.BLUFIO_TEST_KILLS ?? 60);

/**
 * A child appends messages and reports every acknowledged id; we SIGKILL it at a random moment
 * (sometimes while it is still opening the database), then check that the database opens,
 * passes integrity_check and holds every message whose append had been acknowledged.
 */
it(`SIGKILL at random moments ${KILLS} times never loses an acknowledged message`, async (t) => {
  const dir = path.join(tmpDir(), 'data');
  const acked = new Map<string, string>();
  let killedWhileWriting = 0;
  for (let round = 0; round < KILLS; round++) {
    const durability = round % 2 === 0 ? 'full' : 'normal';
    let onReady!: () => void;
    const ready = new Promise<void>((r) => (onReady = r));
    const { child, done } = startFixture('append-loop', [dir, durability, String(1 + (round % 8))], (line) => {
      if (line === 'R') onReady();
      else if (line.startsWith('A ')) {
        const [, session, id] = line.split(' ');
        acked.set(id!, session!);
      }
    });
    if (round % 3 === 0) {
      // A third of the kills land during start-up: open, migrations, recovery.
      await sleep(Math.random() * 200);
    } else {
      // The rest land mid-writes, at a random moment once the child is writing.
      await ready;
      await sleep(Math.random() * 250);
      killedWhileWriting++;
    }
    child.kill('SIGKILL');
    const r = await done;
    assert.equal(r.signal, 'SIGKILL', `round ${round}: child ended on its own: ${r.stderr}`);

    if (!fs.existsSync(path.join(dir, 'blufio.db'))) {
      assert.equal(acked.size, 0, 'messages were acknowledged but there is no database file');
      continue;
    }
    const raw = new Database(path.join(dir, 'blufio.db'), { fileMustExist: true });
    try {
      if (raw.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'messages'").get() === undefined) {
        assert.equal(acked.size, 0, 'messages were acknowledged but the schema is missing');
        continue;
      }
      assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok', `round ${round}`);
      const have = new Set(storedMessageIds(raw));
      for (const id of acked.keys()) assert.ok(have.has(id), `round ${round}: acknowledged message ${id} lost`);
    } finally {
      raw.close();
    }
    if (round % 10 === 9) {
      // The library itself opens what the crash left, and sees the same.
      const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
      const check = await app.db.check();
      assert.equal(check.ok, true);
      assert.ok(check.counts !== null && check.counts.messages >= acked.size);
      await app.close();
    }
  }
  assert.ok(acked.size > 1000, `only ${acked.size} messages were acknowledged across the run`);
  t.diagnostic(`${KILLS} kills (${killedWhileWriting} mid-writes), ${acked.size} acknowledged messages all present`);
});
