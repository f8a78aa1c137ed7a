import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { createSafeFetch, openBlufio } from '../src/index.js';
import { fileSystemError } from '../src/storage/sqlite-errors.js';
import { latestVersion, MIGRATIONS, type Migration } from '../src/storage/index.js';
import { runMigrations } from '../src/storage/migrations/index.js';
import { cleanEnv, NOBODY, run, runCli, silentLogger, tmpDir, unprivilegedCli } from './helpers/index.js';

const open = (dataDir: string) => openBlufio({ dataDir, logger: silentLogger(), env: {} });

function digest(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** A real database with some content, closed cleanly (no WAL left). */
async function populated(): Promise<string> {
  const dir = tmpDir();
  const app = await open(dir);
  const s = await app.sessions.create({ channel: 'x' });
  await Promise.all(Array.from({ length: 2000 }, (_, i) => app.messages.append(s.id, { role: 'user', content: `message ${i} `.repeat(20) })));
  await app.close();
  return dir;
}

/** Runs `sql` and leaves its commit only in the -wal, as a writer killed before a checkpoint does. */
function leaveInWal(db: string, sql: string): void {
  const raw = new Database(db);
  raw.pragma('wal_autocheckpoint = 0');
  raw.exec(sql);
  const file = fs.readFileSync(db);
  const wal = fs.readFileSync(`${db}-wal`);
  raw.close(); // checkpoints and removes the -wal: put both back as they were before it
  fs.writeFileSync(db, file);
  fs.writeFileSync(`${db}-wal`, wal, { mode: 0o600 });
}

async function assertRefusedUntouched(dir: string, code: string): Promise<void> {
  const db = path.join(dir, 'blufio.db');
  const before = digest(db);
  await assert.rejects(open(dir), (err: { code?: string; message?: string; hint?: string }) => {
    assert.equal(err.code, code, err.message);
    assert.ok((err.hint ?? '').length > 0, 'the error says what to do');
    return true;
  });
  assert.equal(digest(db), before, 'the file was not modified');
  // The CLI says the same, as error[CODE] and without a stack trace.
  const r = await runCli(['db', 'check', '--data-dir', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^error\\[${code}\\]: `));
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.equal(digest(db), before);
}

describe('damaged files are refused and left as they are', () => {
  it('a truncated database', async () => {
    const dir = await populated();
    const db = path.join(dir, 'blufio.db');
    fs.truncateSync(db, Math.floor(fs.statSync(db).size / 2));
    await assertRefusedUntouched(dir, 'KC_DB_CORRUPT');
  });

  it('random bytes where the database should be', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'blufio.db'), randomBytes(64 * 1024), { mode: 0o600 });
    await assertRefusedUntouched(dir, 'KC_DB_CORRUPT');
  });

  it('a valid header followed by garbage', async () => {
    const dir = await populated();
    const db = path.join(dir, 'blufio.db');
    const buf = fs.readFileSync(db);
    randomBytes(buf.length - 100).copy(buf, 100);
    fs.writeFileSync(db, buf);
    await assertRefusedUntouched(dir, 'KC_DB_CORRUPT');
  });

  it('bit flips inside the b-tree pages', async () => {
    const dir = await populated();
    const db = path.join(dir, 'blufio.db');
    const buf = fs.readFileSync(db);
    // Page 2 onwards: flip one byte in each of many pages' headers.
    for (let p = 1; p * 4096 < buf.length; p += 3) buf[p * 4096] = (buf[p * 4096] ?? 0) ^ 0xff;
    fs.writeFileSync(db, buf);
    await assertRefusedUntouched(dir, 'KC_DB_CORRUPT');
  });

  it('a damaged backup (rollback-journal mode): db check reports it from a read-only look and leaves it byte for byte', async () => {
    const dir = await populated();
    const copyDir = tmpDir();
    const copy = path.join(copyDir, 'blufio.db');
    const app = await open(dir);
    await app.db.backup(copy);
    await app.close();
    const buf = fs.readFileSync(copy);
    assert.equal(buf[18], 1, 'a backup is in rollback-journal mode');
    buf.fill(0, 2 * 4096, 3 * 4096); // page 3
    fs.writeFileSync(copy, buf);
    const before = digest(copy);
    for (const json of [[], ['--json']]) {
      const r = await runCli(['db', 'check', ...json, '--data-dir', copyDir]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error\[KC_DB_CORRUPT\]: /);
      if (json.length > 0) assert.equal((JSON.parse(r.stdout) as { ok: boolean }).ok, false);
      else assert.match(r.stdout, /status {5}DAMAGED/);
      assert.equal(digest(copy), before, 'the damaged file was not modified');
    }
  });

  it('a write-ahead log without its database', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'blufio.db-wal'), randomBytes(8192));
    await assert.rejects(open(dir), { code: 'KC_DB_CORRUPT' });
    assert.equal(fs.existsSync(path.join(dir, 'blufio.db')), false);
  });

  /**
   * A -wal holding committed pages, as a killed process leaves it (close checkpoints it away),
   * beside a database file that is then truncated to nothing or gone.
   */
  const walWithoutItsFile = async (how: 'missing' | 'empty'): Promise<{ dir: string; wal: Buffer }> => {
    const dir = tmpDir();
    const app = await open(dir);
    const s = await app.sessions.create({});
    await app.messages.append(s.id, { role: 'user', content: 'kept in the WAL' });
    const wal = fs.readFileSync(path.join(dir, 'blufio.db-wal'));
    await app.close();
    fs.writeFileSync(path.join(dir, 'blufio.db-wal'), wal);
    if (how === 'missing') fs.rmSync(path.join(dir, 'blufio.db'));
    else fs.truncateSync(path.join(dir, 'blufio.db'), 0);
    return { dir, wal };
  };

  it('an empty database file beside a -wal that holds its pages: refused, the -wal kept (review r9)', async () => {
    // Before, the open took the file for a new database and SQLite deleted the -wal, with every
    // committed page in it; db check then said "status ok".
    const { dir, wal } = await walWithoutItsFile('empty');
    await assert.rejects(open(dir), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'KC_DB_CORRUPT');
      assert.match(e.message ?? '', /is empty, but its -wal holds \d+ bytes of committed pages/);
      return true;
    });
    const check = await runCli(['db', 'check', '--data-dir', dir]);
    assert.equal(check.code, 1);
    assert.match(check.stdout, /status\s+DAMAGED/);
    assert.ok(fs.readFileSync(path.join(dir, 'blufio.db-wal')).equals(wal), 'the -wal is as it was');
    assert.equal(fs.statSync(path.join(dir, 'blufio.db')).size, 0);
  });

  it('a database missing or empty beside a -wal that holds its pages: vault verify says so, db-encrypt enable refuses (QA r10)', async () => {
    // Before, verify said "ok" (exit 0), status "consistent", and enable recorded the database as
    // encrypted from birth, with its pages in clear in the -wal, while every open refused.
    for (const how of ['missing', 'empty'] as const) {
      const { dir, wal } = await walWithoutItsFile(how);
      const manifest = fs.readFileSync(path.join(dir, 'vault.json'));
      const verify = await runCli(['vault', 'verify', dir, '--json']);
      assert.equal(verify.code, 1, verify.stdout);
      const report = JSON.parse(verify.stdout) as { ok: boolean; code: string; problems: string[] };
      assert.equal(report.ok, false);
      assert.equal(report.code, 'KC_DB_CORRUPT');
      assert.match(report.problems.join('\n'), how === 'missing' ? /is missing but its write-ahead log/ : /is empty, but its -wal holds/);
      const status = await runCli(['vault', 'db-encrypt', 'status', dir, '--json']);
      assert.equal((JSON.parse(status.stdout) as { consistent: boolean }).consistent, false, how);
      const enable = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY'], { env: cleanEnv({ DBKEY: 'correct horse battery staple' }) });
      assert.equal(enable.code, 1, enable.stdout);
      assert.match(enable.stderr, /^error\[KC_DB_CORRUPT\]/);
      assert.ok(fs.readFileSync(path.join(dir, 'vault.json')).equals(manifest), `${how}: vault.json is as it was`);
      assert.ok(fs.readFileSync(path.join(dir, 'blufio.db-wal')).equals(wal), `${how}: the -wal is as it was`);
    }
  });

  it("another program's SQLite database", async () => {
    const dir = tmpDir();
    const other = new Database(path.join(dir, 'blufio.db'));
    other.exec('CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES (\'alice\')');
    other.close();
    await assertRefusedUntouched(dir, 'KC_DB_OPEN_FAILED');
  });
});

describe('schema versions', () => {
  it('a database from a newer blufio is refused with KC_SCHEMA_TOO_NEW', async () => {
    const dir = await populated();
    const raw = new Database(path.join(dir, 'blufio.db'));
    raw.prepare('INSERT INTO _migrations (version, name, checksum, applied_at) VALUES (999, ?, ?, 0)').run('future', 'x');
    raw.close();
    await assertRefusedUntouched(dir, 'KC_SCHEMA_TOO_NEW');
  });

  it('a newer schema in a DELETE-journal file (as a backup is) is refused without switching it to WAL', async () => {
    const dir = await populated();
    const copy = path.join(tmpDir(), 'blufio.db');
    const app = await open(dir);
    await app.db.backup(copy);
    await app.close();
    const raw = new Database(copy);
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'delete');
    raw.prepare('INSERT INTO _migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, 0)').run(latestVersion() + 1, 'future', 'x');
    raw.close();
    await assertRefusedUntouched(path.dirname(copy), 'KC_SCHEMA_TOO_NEW');
  });

  it('a refused file whose last commits are still in the -wal (its writer was killed) is left as it was, -wal included', async () => {
    const cases = [
      ['KC_SCHEMA_TOO_NEW', "INSERT INTO _migrations (version, name, checksum, applied_at) VALUES (999, 'future', 'x', 0)"],
      ['KC_DB_MIGRATION_MODIFIED', "UPDATE _migrations SET checksum = 'tampered' WHERE version = 1"],
      ['KC_DB_OPEN_FAILED', 'DROP TABLE _migrations'],
    ] as const;
    for (const [code, sql] of cases) {
      const dir = tmpDir();
      const app = await open(dir);
      await app.sessions.create({});
      await app.close();
      const db = path.join(dir, 'blufio.db');
      const wal = `${db}-wal`;
      leaveInWal(db, sql);
      const before = [digest(db), digest(wal)];
      await assert.rejects(open(dir), { code });
      const r = await runCli(['sessions', 'list', '--data-dir', dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`^error\\[${code}\\]: `));
      assert.deepEqual([digest(db), digest(wal)], before, `${code}: the database and its -wal were not modified`);
    }
  });

  it('an applied migration whose text changed fails loudly', async () => {
    const dir = await populated();
    const raw = new Database(path.join(dir, 'blufio.db'));
    raw.prepare("UPDATE _migrations SET checksum = 'tampered' WHERE version = 1").run();
    raw.close();
    await assertRefusedUntouched(dir, 'KC_DB_MIGRATION_MODIFIED');
  });

  it('a failed migration rolls back to the previous schema exactly', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'm.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    const v = latestVersion();
    const good: Migration = { version: v + 1, name: 'good', sql: 'CREATE TABLE extra (a INTEGER);' };
    const bad: Migration = { version: v + 2, name: 'bad', sql: 'CREATE TABLE half (a); INSERT INTO no_such_table VALUES (1);' };
    const tablesOf = (): unknown[] => db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
    runMigrations(db, MIGRATIONS, file, Date.now);
    const before = tablesOf();
    assert.throws(() => runMigrations(db, [...MIGRATIONS, good, bad], file, Date.now), (err: { code?: string; message?: string }) => {
      assert.equal(err.code, 'KC_DB_MIGRATION_FAILED');
      assert.match(err.message ?? '', new RegExp(`migration ${v + 2} \\(bad\\)`));
      return true;
    });
    assert.deepEqual(tablesOf(), [...before, 'extra'].sort());
    assert.deepEqual(db.prepare('SELECT max(version) FROM _migrations').pluck().get(), v + 1);
    // Fixed and run again, it finishes the job.
    const fixed = { ...bad, sql: 'CREATE TABLE half (a);' };
    assert.deepEqual(runMigrations(db, [...MIGRATIONS, good, fixed], file, Date.now).applied, [v + 2]);
    db.close();
  });
});

describe('permissions', () => {
  const { cli, opts: asNobody } = unprivilegedCli();
  const env = (): NodeJS.ProcessEnv => cleanEnv({ HOME: '/tmp' });

  it('a data directory that cannot be created gives KC_DB_READONLY', async () => {
    const dir = tmpDir();
    fs.chmodSync(dir, 0o555);
    const r = await run(cli, ['db', 'check', '--data-dir', path.join(dir, 'data')], { ...asNobody, env: env() });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error\[KC_DB_READONLY\]: /);
    assert.match(r.stderr, /hint: /);
  });

  it('a database in a read-only directory is refused clearly and left intact', async () => {
    const dir = await populated();
    fs.chmodSync(dir, 0o755);
    const db = path.join(dir, 'blufio.db');
    if (process.getuid?.() === 0) {
      // The user owns their files (the database and its manifest), not the directory.
      fs.chownSync(db, NOBODY, NOBODY);
      fs.chownSync(path.join(dir, 'vault.json'), NOBODY, NOBODY);
      fs.chownSync(path.join(dir, 'vault.lock'), NOBODY, NOBODY);
    } else fs.chmodSync(dir, 0o555);
    const before = digest(db);
    const r = await run(cli, ['sessions', 'list', '--data-dir', dir], { ...asNobody, env: env() });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error\[KC_DB_(READONLY|OPEN_FAILED)\]: /m);
    assert.match(r.stderr, /-wal/);
    assert.equal(digest(db), before);
    fs.chmodSync(dir, 0o700);
  });
});

describe('a data directory that cannot be made', () => {
  it('an errno that is not about the path gets a hint that fits it (second review: every one was told to move the data directory)', () => {
    const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: x`), { code });
    const hint = (code: string): string => fileSystemError('cannot use /x/blufio.db', err(code))?.hint ?? '';
    assert.match(hint('EMFILE'), /open-file limit/);
    assert.match(hint('ENFILE'), /open-file limit/);
    assert.match(hint('EIO'), /dmesg/);
    for (const code of ['EBUSY', 'EAGAIN', 'EXDEV']) assert.match(hint(code), /^try again/, code);
    for (const code of ['ENOTDIR', 'ELOOP', 'ENAMETOOLONG']) assert.match(hint(code), /--data-dir/, code);
    assert.equal(fileSystemError('x', err('EMFILE'))?.code, 'KC_DB_IO');
  });

  it('a path through a file, a symbolic link loop or a name too long is KC_DB_IO naming the path, with a hint (not KC_INTERNAL)', async () => {
    const base = tmpDir();
    const file = path.join(base, 'file');
    fs.writeFileSync(file, 'x');
    const loop = path.join(base, 'loop');
    fs.symlinkSync(loop, loop);
    const cases = { ENOTDIR: path.join(file, 'sub'), ELOOP: loop, ENAMETOOLONG: path.join(base, 'a'.repeat(300)) };
    for (const [errno, dir] of Object.entries(cases)) {
      await assert.rejects(open(dir), (e: { code?: string; message?: string; hint?: string }) => {
        assert.equal(e.code, 'KC_DB_IO', `${errno}: ${e.message}`);
        assert.ok(e.message!.includes(dir) && e.message!.includes(errno), e.message);
        assert.match(e.hint ?? '', /data-dir/);
        return true;
      });
      const r = await runCli(['sessions', 'list', '--data-dir', dir]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error\[KC_DB_IO\]: /);
      assert.match(r.stderr, /hint: /);
    }
    assert.equal(fs.readFileSync(file, 'utf8'), 'x');
  });
});

describe('arguments that are not objects', () => {
  it('null (or nothing, where an input is required) and revoked Proxies as options, inputs or metadata are KC_INVALID_INPUT; undefined options are the defaults', async () => {
    await assert.rejects(openBlufio(null as never), { code: 'KC_INVALID_INPUT' });
    const revoked = (): never => {
      const r = Proxy.revocable({}, {});
      r.revoke();
      return r.proxy as never;
    };
    await assert.rejects(openBlufio(revoked()), { code: 'KC_INVALID_INPUT' });
    const app = await open(tmpDir());
    try {
      const s = await app.sessions.create(undefined);
      await app.messages.append(s.id, { role: 'user', content: 'kept' });
      await app.queue.enqueue('q', 1);
      const [job] = await app.queue.claim('q');
      const refused: [string, () => Promise<unknown>][] = [
        ['sessions.create(null)', () => app.sessions.create(null as never)],
        ['sessions.list(null)', () => app.sessions.list(null as never)],
        ['messages.append(id, undefined)', () => app.messages.append(s.id, undefined as never)],
        ['messages.append(id, null)', () => app.messages.append(s.id, null as never)],
        ['messages.list(id, null)', () => app.messages.list(s.id, null as never)],
        ['queue.handBack(undefined)', () => app.queue.handBack(undefined as never)],
        ['queue.handBack([null])', () => app.queue.handBack([null] as never)],
        ['queue.handBack([revoked])', () => app.queue.handBack([revoked()])],
        ['queue.ackMany(revoked)', () => app.queue.ackMany(revoked())],
        ['queue.enqueueMany(q, revoked)', () => app.queue.enqueueMany('q', revoked())],
        ['sessions.create(revoked)', () => app.sessions.create(revoked())],
        ['sessions.list(revoked)', () => app.sessions.list(revoked())],
        ['metadata revoked', () => app.messages.append(s.id, { role: 'user', content: 'x', metadata: revoked() })],
        ['objects.list(revoked)', () => app.objects.list(revoked())],
        // Second review: the source itself, and the safe fetch's options.
        ['objects.put(revoked)', () => app.objects.put(revoked())],
        ['objects.put(throwing asyncIterator getter)', () => app.objects.put(Object.defineProperty({}, Symbol.asyncIterator, { get: () => { throw new Error('boom'); } }) as never)],
        ['createSafeFetch(revoked)', async () => createSafeFetch(revoked())],
      ];
      for (const [what, call] of refused) {
        await assert.rejects(call(), (e: { code?: string; message?: string }) => {
          assert.equal(e.code, 'KC_INVALID_INPUT', `${what}: ${e.message}`);
          return true;
        });
      }
      assert.equal((await app.sessions.list(undefined)).length, 1);
      assert.deepEqual((await app.messages.list(s.id, undefined)).map((m) => m.content), ['kept'], 'nothing refused was stored');
      assert.equal(await app.queue.handBack([job!]), 1, 'the held job is still held after the refused calls');
    } finally {
      await app.close();
    }
  });
});

describe('what a refusal says', () => {
  it('names the real limit: a long channel is not a message, deep metadata is past the depth limit, a bogus lease token is not a stale one', async () => {
    const app = await open(tmpDir());
    try {
      await assert.rejects(app.sessions.create({ channel: 'c'.repeat(300) }), (e: { code?: string; message?: string; hint?: string }) => {
        assert.equal(e.code, 'KC_INVALID_INPUT');
        assert.match(e.message!, /channel is 300 bytes; the limit is 256/);
        assert.match(e.hint!, /channel is at most 256 bytes/);
        assert.doesNotMatch(e.hint!, /max_message_bytes/);
        return true;
      });
      const s = await app.sessions.create({ channel: 'c' });
      await assert.rejects(app.messages.append(s.id, { role: 'user', content: 'x'.repeat(9 * 1024 * 1024) }), { code: 'KC_INVALID_INPUT', hint: /raise storage\.max_message_bytes/ });
      // Nested far enough that serialising it exhausts the stack.
      let deep: Record<string, unknown> = {};
      for (let i = 0; i < 200_000; i++) deep = { d: deep };
      await assert.rejects(app.messages.append(s.id, { role: 'user', content: 'x', metadata: deep }), (e: { code?: string; message?: string }) => {
        assert.equal(e.code, 'KC_INVALID_INPUT');
        assert.match(e.message!, /metadata is nested more than 1000 levels deep/);
        assert.doesNotMatch(e.message!, /call stack/);
        return true;
      });
      // The same for a payload; and a getter that throws something other than an Error is described.
      await assert.rejects(app.queue.enqueue('q', deep), (e: { code?: string; message?: string }) => {
        assert.equal(e.code, 'KC_INVALID_INPUT');
        assert.match(e.message!, /the payload is nested more than 1000 levels deep/);
        return true;
      });
      await assert.rejects(app.sessions.create({ metadata: { get a(): never { throw 42; } } }), (e: { code?: string; message?: string }) => {
        assert.equal(e.code, 'KC_INVALID_INPUT');
        assert.match(e.message!, /metadata cannot be serialised as JSON: 42 \(thrown, not an Error\)/);
        return true;
      });
      assert.equal((await app.queue.stats('q')).pending, 0, 'the refused payload was not stored');
      await app.queue.enqueue('q', 1);
      const [job] = await app.queue.claim('q');
      await assert.rejects(app.queue.ack(job!.id, 'never-a-token'), (e: { code?: string; message?: string }) => {
        assert.equal(e.code, 'KC_QUEUE_LEASE_LOST');
        assert.match(e.message!, /or this token was never its lease/);
        return true;
      });
      await app.queue.ack(job!.id, job!.leaseToken);
      assert.equal(await app.messages.count(s.id), 0, 'nothing refused was stored');
    } finally {
      await app.close();
    }
  });
});

describe('a misspelt option is refused, never ignored (QA r9)', () => {
  it('every options object of the library names what it does not know and what it takes, and does nothing', async () => {
    // Before, { delay: 5000 } ran the job at once, { lease } leased for the default, and so on.
    const app = await openBlufio({ dataDir: tmpDir(), logger: silentLogger(), env: {} });
    try {
      const s = await app.sessions.create({});
      const refused = async (p: Promise<unknown>, name: string, options: RegExp): Promise<void> => {
        await assert.rejects(p, (e: { code?: string; message?: string; hint?: string }) => {
          assert.equal(e.code, 'KC_INVALID_INPUT', e.message);
          assert.match(e.message ?? '', new RegExp(`no option "${name}"`));
          assert.match(e.hint ?? '', options);
          return true;
        });
      };
      await refused(app.queue.enqueue('q', { n: 1 }, { delay: 5000 } as never), 'delay', /delayMs, priority, maxAttempts, idempotencyKey/);
      // A batch item's payload is no option of enqueue() (review r9: it was taken as one).
      await refused(app.queue.enqueue('q', { n: 1 }, { payload: 2 } as never), 'payload', /^the options are delayMs, priority, maxAttempts, idempotencyKey$/);
      assert.equal((await app.queue.stats('q')).pending, 0, 'nothing was enqueued');
      await refused(app.queue.enqueueMany('q', [{ payload: 1, priorty: 2 } as never]), 'priorty', /priority/);
      await app.queue.enqueue('q', { n: 2 });
      await refused(app.queue.claim('q', { lease: 10 } as never), 'lease', /leaseMs, limit, maxBytes, detached/);
      const [job] = await app.queue.claim('q');
      await refused(app.queue.fail(job!.id, job!.leaseToken, { retryAfter: 10 } as never), 'retryAfter', /retryAfterMs/);
      await refused(app.sessions.create({ user: 'u1' } as never), 'user', /channel, userId, metadata/);
      await refused(app.sessions.list({ limt: 5 } as never), 'limt', /limit, state, before/);
      await refused(app.messages.append(s.id, { role: 'user', content: 'x', tokens: 3 } as never), 'tokens', /tokenCount/);
      assert.equal((await app.messages.list(s.id)).length, 0, 'nothing was appended');
      await refused(app.messages.list(s.id, { befor: 'x' } as never), 'befor', /before/);
      await refused(app.objects.put(Buffer.from('x'), { type: 'text/plain' } as never), 'type', /contentType, name, maxBytes/);
      assert.equal((await app.objects.stats()).objects, 0, 'nothing was stored');
      await refused(app.objects.gc({ grace: 0 } as never), 'grace', /graceMs/);
      await refused(app.db.backup(path.join(tmpDir(), 'b.db'), { forced: true } as never), 'forced', /force/);
    } finally {
      await app.close();
    }
  });

  it('the fetch\'s close() and the vault\'s subkey() refuse options and labels they do not take', async () => {
    // Before, close({ grace: 0 }) waited the default second and subkey(l, { creat: true }) did
    // not create; a label that was no string threw a TypeError from Buffer.from.
    const app = await openBlufio({ dataDir: tmpDir(), logger: silentLogger(), env: { BLUFIO_VAULT_KEY: 'correct horse battery staple' } });
    try {
      const invalid = (name: RegExp) => (e: { code?: string; message?: string }) => {
        assert.equal(e.code, 'KC_INVALID_INPUT', e.message);
        assert.match(e.message ?? '', name);
        return true;
      };
      await assert.rejects(app.vault.subkey('blufio/test/v1', { creat: true } as never), invalid(/no option "creat"/));
      await assert.rejects(app.vault.subkey('blufio/test/v1', { create: 'yes' } as never), invalid(/create must be true or false/));
      assert.equal((await app.vault.status()).exists, false, 'no vault was created by a refused call');
      await assert.rejects(app.vault.subkey(42 as never), invalid(/label must be a string/));
      await assert.rejects(app.vault.subkey(''), invalid(/label must be a string/));
      await assert.rejects(app.vault.subkey('x'.repeat(201)), invalid(/\(a string of 201 characters\)/));
      const key = await app.vault.subkey('blufio/test/v1', { create: true });
      assert.equal(key.length, 32);
      key.fill(0);
      const f = createSafeFetch({ logger: silentLogger() });
      // Rejected, not thrown: close() is a promise to its callers.
      const p = f.close({ grace: 0 } as never);
      assert.ok(p instanceof Promise);
      await assert.rejects(p, invalid(/no option "grace"/));
      await assert.rejects(f.close({ graceMs: 0 }), invalid(/graceMs must be an integer from 1/));
      await f.close({ graceMs: 5 });
      await f.close();
    } finally {
      await app.close();
    }
  });
});
