import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio } from '../src/index.js';
import { silentLogger, startFixture, storedMessageIds, tmpDir } from './helpers/index.js';

const SECONDS = Number(process.env.BLUFIO_TEST_CONTENTION_SECONDS ?? 5);

/**
 * The daemon-like writer (100 concurrent sessions) beside six other processes writing the same
 * file at full speed: three long-lived ones and three that behave like CLI invocations (open,
 * write a little, close with a TRUNCATE checkpoint, again). Nobody may see SQLITE_BUSY or any
 * other error, and every acknowledged write must be in the file, with nothing extra.
 */
it(`7 processes writing one file for ${SECONDS}s: no BUSY, no lost write`, async (t) => {
  const dir = path.join(tmpDir(), 'data');
  // Create the database first so that all writers race on writes, not on creating the schema.
  await (await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} })).close();

  const acked = new Set<string>();
  const errors: string[] = [];
  const summaries: string[] = [];
  const specs: [string, string, string][] = [
    ['full', '100', '0'],
    ['full', '10', '0'],
    ['normal', '10', '0'],
    ['full', '1', '0'],
    ['full', '3', '1'],
    ['normal', '3', '1'],
    ['full', '1', '1'],
  ];
  const runs = specs.map(([durability, concurrency, reopen]) =>
    startFixture('append-loop', [dir, durability, concurrency, String(SECONDS), reopen], (line) => {
      if (line.startsWith('A ')) acked.add(line.split(' ')[2]!);
      else if (line.startsWith('E ')) errors.push(line);
      else if (line.startsWith('S ')) summaries.push(line);
    }),
  );
  const results = await Promise.all(runs.map((r) => r.done));
  results.forEach((r, i) => assert.equal(r.code, 0, `writer ${i} failed: ${r.stderr}`));
  assert.deepEqual(errors, [], 'no writer saw any error');
  assert.equal(summaries.length, specs.length);

  const raw = new Database(path.join(dir, 'blufio.db'), { fileMustExist: true });
  try {
    assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
    const ids = storedMessageIds(raw);
    const have = new Set(ids);
    for (const id of acked) assert.ok(have.has(id), `acknowledged message ${id} lost`);
    assert.equal(ids.length, acked.size, 'every stored message was acknowledged to its writer');
  } finally {
    raw.close();
  }
  t.diagnostic(`${acked.size} acknowledged writes from ${specs.length} processes`);
  assert.ok(acked.size > 1000);
});

it('a write lock held elsewhere makes writers wait; past storage.lock_timeout_ms they get KC_DB_LOCK_TIMEOUT', async () => {
  const dir = tmpDir();
  const cfg = path.join(dir, 'blufio.toml');
  fs.writeFileSync(cfg, '[storage]\nlock_timeout_ms = 400\n');
  const app = await openBlufio({ dataDir: path.join(dir, 'data'), configPath: cfg, logger: silentLogger(), env: {} });
  try {
    const s = await app.sessions.create({});
    const other = new Database(app.config.databasePath);
    // Held shorter than the timeout: the append waits its turn and succeeds.
    other.exec('BEGIN IMMEDIATE');
    const waiting = app.messages.append(s.id, { role: 'user', content: 'patient' });
    setTimeout(() => other.exec('COMMIT'), 150);
    assert.equal((await waiting).content, 'patient');
    // Held past the timeout: a clear error, not SQLITE_BUSY, and nothing half-written.
    other.exec('BEGIN IMMEDIATE');
    await assert.rejects(app.messages.append(s.id, { role: 'user', content: 'impatient' }), (err: { code?: string; message?: string }) => {
      assert.equal(err.code, 'KC_DB_LOCK_TIMEOUT');
      assert.match(err.message ?? '', /another process held/);
      return true;
    });
    other.exec('ROLLBACK');
    other.close();
    await app.messages.append(s.id, { role: 'user', content: 'after' });
    assert.deepEqual((await app.messages.list(s.id)).map((m) => m.content), ['patient', 'after']);
  } finally {
    await app.close();
  }
});

it('closing next to a long reader never holds the write lock against other writers', async () => {
  const dir = tmpDir();
  const cfg = path.join(dir, 'blufio.toml');
  fs.writeFileSync(cfg, '[storage]\nlock_timeout_ms = 1000\n');
  const opts = { dataDir: path.join(dir, 'data'), configPath: cfg, logger: silentLogger(), env: {} };
  const daemon = await openBlufio(opts);
  try {
    const s = await daemon.sessions.create({});
    for (let i = 0; i < 50; i++) await daemon.messages.append(s.id, { role: 'user', content: `warm ${i}` });
    // A long reader (a backup or db check elsewhere) holds a snapshot.
    const reader = new Database(daemon.config.databasePath, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM messages').get();
    let stop = false;
    const errors: string[] = [];
    const writing = (async () => {
      while (!stop) {
        await daemon.messages.append(s.id, { role: 'user', content: 'during' }).catch((e: { code?: string }) => errors.push(e.code ?? '?'));
      }
    })();
    const cli = await openBlufio(opts);
    const cp = await cli.db.checkpoint();
    assert.equal(cp.busy, true, 'the checkpoint could not finish past the reader, and said so');
    await cli.close();
    stop = true;
    await writing;
    reader.exec('COMMIT');
    reader.close();
    assert.deepEqual(errors, []);
  } finally {
    await daemon.close();
  }
});
