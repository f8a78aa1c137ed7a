import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import type { Worker } from 'node:worker_threads';
import { loadConfig } from '../src/config/index.js';
import { isAppError } from '../src/errors/index.js';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { Storage } from '../src/storage/index.js';
import { cleanEnv, fixture, run, runCli, silentLogger, tmpDir } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';

async function open(dataDir: string, durability: 'full' | 'normal' = 'full'): Promise<BlufioApp> {
  return openBlufio({ dataDir, durability, logger: silentLogger(), env: {} });
}

function mode(f: string): number {
  return fs.statSync(f).mode & 0o777;
}

describe('persistence across processes', () => {
  it('everything written by one process and closed is there for a new process', async () => {
    const dir = tmpDir();
    const r = await run(fixture('persist'), [path.join(dir, 'data')]);
    assert.equal(r.code, 0, r.stderr);
    const written = JSON.parse(r.stdout) as { a: string; b: string; ids: string[] };

    const app = await open(path.join(dir, 'data'));
    try {
      const a = await app.sessions.get(written.a);
      assert.equal(a.channel, 'telegram');
      assert.equal(a.userId, 'user-1');
      assert.deepEqual(a.metadata, { lang: 'en', n: 1 });
      // Closed cleanly: the session stays active (not interrupted) and can be resumed.
      assert.equal(a.state, 'active');
      assert.equal((await app.sessions.get(written.b)).state, 'paused');
      assert.equal(await app.messages.count(written.a), 120);

      const page1 = await app.messages.list(written.a, { limit: 50 });
      assert.deepEqual(page1.map((m) => m.id), written.ids.slice(70));
      const page2 = await app.messages.list(written.a, { limit: 50, before: page1[0]!.id });
      assert.deepEqual(page2.map((m) => m.id), written.ids.slice(20, 70));
      const page3 = await app.messages.list(written.a, { limit: 50, before: page2[0]!.id });
      assert.deepEqual(page3.map((m) => m.id), written.ids.slice(0, 20));
      assert.equal(page1.at(-1)!.content, 'turn 119');
      assert.equal(page1.at(-1)!.tokenCount, 119);
      assert.equal(page1.at(-1)!.role, 'assistant');
      assert.deepEqual(page3[10]!.metadata, { tool: 'search', i: 10 });
      assert.equal(page3[11]!.metadata, null);
      const resumed = await app.sessions.resume(written.b);
      assert.equal(resumed.state, 'active');
    } finally {
      await app.close();
    }
    // A clean close folded the WAL into the file: the file alone is the database.
    assert.equal(fs.existsSync(path.join(dir, 'data', 'blufio.db-wal')), false);
    const copy = path.join(dir, 'copy.db');
    fs.copyFileSync(path.join(dir, 'data', 'blufio.db'), copy);
    const raw = new Database(copy, { readonly: true });
    assert.equal(raw.prepare('SELECT count(*) FROM messages').pluck().get(), 120);
    raw.close();
  });

  it('creates directories 0700 and database, -wal and -shm 0600 even under umask 000', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'deep', 'er', 'data');
    const r = await run(fixture('persist'), [data, '000']);
    assert.equal(r.code, 0, r.stderr);
    for (const d of [path.join(dir, 'deep'), path.join(dir, 'deep', 'er'), data]) assert.equal(mode(d), 0o700, d);
    assert.equal(mode(path.join(data, 'blufio.db')), 0o600);
    // While open, the -wal and -shm exist: check them too.
    const app = await open(data);
    try {
      await app.sessions.create({});
      for (const f of ['blufio.db', 'blufio.db-wal', 'blufio.db-shm']) assert.equal(mode(path.join(data, f)), 0o600, f);
    } finally {
      await app.close();
    }
  });

  it('takes group and other bits off an existing database file, and leaves shared directories alone', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    await app.close();
    fs.chmodSync(path.join(dir, 'blufio.db'), 0o664);
    fs.chmodSync(dir, 0o1777);
    const { logger, lines } = memoryLogger();
    const again = await openBlufio({ dataDir: dir, logger, env: {} });
    await again.close();
    assert.equal(mode(path.join(dir, 'blufio.db')), 0o600);
    assert.equal(fs.statSync(dir).mode & 0o7777, 0o1777, 'an existing directory is not chmodded');
    assert.ok(lines().some((l) => l.level === 40 && String(l.msg).includes('can be listed by other users')));
  });

  it('keeps a read-only database read-only', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    await app.close();
    fs.chmodSync(path.join(dir, 'blufio.db'), 0o444);
    if (process.getuid?.() !== 0) await assert.rejects(open(dir), { code: 'KC_DB_READONLY' });
    else await (await open(dir)).close(); // root writes regardless of modes
    assert.equal(mode(path.join(dir, 'blufio.db')), 0o400);
  });
});

describe('sessions', () => {
  it('create, get, list with cursor and state filter, change state', async () => {
    const app = await open(tmpDir());
    try {
      const made = [];
      for (let i = 0; i < 7; i++) made.push(await app.sessions.create({ channel: `c${i}`, userId: i % 2 ? `u${i}` : null }));
      const ids = made.map((s) => s.id);
      assert.deepEqual([...ids].sort(), ids, 'ids sort by creation time');
      const newest = await app.sessions.list({ limit: 3 });
      assert.deepEqual(newest.map((s) => s.id), ids.slice(4).reverse());
      const older = await app.sessions.list({ limit: 10, before: newest.at(-1)!.id });
      assert.deepEqual(older.map((s) => s.id), ids.slice(0, 4).reverse());

      const paused = await app.sessions.setState(ids[1]!, 'paused');
      assert.equal(paused.state, 'paused');
      assert.ok(paused.updatedAt >= made[1]!.updatedAt);
      assert.deepEqual((await app.sessions.list({ state: 'paused' })).map((s) => s.id), [ids[1]]);
      await app.sessions.setState(ids[2]!, 'closed');
      await assert.rejects(app.sessions.setState(ids[2]!, 'active'), { code: 'KC_SESSION_CLOSED' });
      await assert.rejects(app.messages.append(ids[2]!, { role: 'user', content: 'x' }), { code: 'KC_SESSION_CLOSED' });
      await assert.rejects(app.sessions.get('01NOPE'), { code: 'KC_NOT_FOUND' });
      await assert.rejects(app.sessions.setState('missing', 'paused'), { code: 'KC_NOT_FOUND' });
      await assert.rejects(app.sessions.setState(ids[0]!, 'bogus' as never), { code: 'KC_INVALID_INPUT' });
      await assert.rejects(app.sessions.list({ limit: 0 }), { code: 'KC_INVALID_INPUT' });
    } finally {
      await app.close();
    }
  });
});

describe('messages', () => {
  it('maxBytes bounds a page by its JSON bytes: whatever list returns under it serialises within it (review srv, finding 1)', async () => {
    const app = await open(tmpDir());
    try {
      const texts = ['plain', '\u0001\u001f"\\\n', 'é€😀', '\u2028x', 'a'.repeat(100)];
      const s = await app.sessions.create({ channel: 'c"\u0002', userId: 'ü', metadata: { k: 'é"\u0003' } });
      for (let i = 0; i < 20; i++) await app.messages.append(s.id, { role: 'user', content: texts[i % texts.length]!.repeat(i + 1), metadata: i % 2 ? { n: 'ß'.repeat(i) } : null });
      const whole = Buffer.byteLength(JSON.stringify(await app.messages.list(s.id)));
      let refusals = 0;
      for (let maxBytes = 20; maxBytes < whole + 5000; maxBytes += 37) {
        try {
          const page = await app.messages.list(s.id, { limit: 20, maxBytes });
          assert.ok(Buffer.byteLength(JSON.stringify(page)) <= maxBytes, `${maxBytes}`);
          assert.equal(page.length, 20);
        } catch (err) {
          assert.ok(isAppError(err) && err.code === 'KC_RESULT_TOO_LARGE', String(err));
          refusals++;
        }
        try {
          const page = await app.sessions.list({ maxBytes: Math.floor(maxBytes / 20) });
          assert.ok(Buffer.byteLength(JSON.stringify(page)) <= Math.floor(maxBytes / 20));
        } catch (err) {
          assert.ok(isAppError(err) && err.code === 'KC_RESULT_TOO_LARGE', String(err));
        }
      }
      assert.ok(refusals > 0);
      // maxChars still counts characters: the escaped texts above are few characters.
      assert.equal((await app.messages.list(s.id, { limit: 20, maxChars: whole })).length, 20);
    } finally {
      await app.close();
    }
  });

  it('many concurrent appends share transactions and all commit, in call order', async () => {
    const app = await open(tmpDir());
    try {
      const s = await app.sessions.create({});
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, i) => app.messages.append(s.id, { role: 'user', content: `m${i}` })),
      );
      const ids = results.map((m) => m.id);
      assert.equal(new Set(ids).size, 500);
      assert.deepEqual([...ids].sort(), ids, 'ids increase in call order');
      const listed = await app.messages.list(s.id, { limit: 1000 });
      assert.deepEqual(listed.map((m) => m.content), results.map((m) => m.content));
    } finally {
      await app.close();
    }
  });

  it('a failing request in a shared transaction fails alone', async () => {
    const app = await open(tmpDir());
    try {
      const s = await app.sessions.create({});
      const outcomes = await Promise.allSettled([
        app.messages.append(s.id, { role: 'user', content: 'one' }),
        app.messages.append('no-such-session', { role: 'user', content: 'lost' }),
        app.messages.append(s.id, { role: 'user', content: 'two' }),
      ]);
      assert.equal(outcomes[0].status, 'fulfilled');
      assert.equal(outcomes[1].status, 'rejected');
      assert.equal((outcomes[1] as PromiseRejectedResult).reason.code, 'KC_NOT_FOUND');
      assert.equal(outcomes[2].status, 'fulfilled');
      assert.deepEqual((await app.messages.list(s.id)).map((m) => m.content), ['one', 'two']);
    } finally {
      await app.close();
    }
  });

  it('stores SQL-looking, non-BMP, NUL and RTL text exactly', async () => {
    const app = await open(tmpDir());
    try {
      const hostile = [
        "'); DROP TABLE messages; --",
        'Robert"); DELETE FROM sessions WHERE 1=1; --',
        '𝕳𝖊𝖑𝖑𝖔 🦀🧪 👩🏽‍💻 \u{10FFFF}',
        'nul\u0000inside',
        '\u202Eevil\u202C and \u200Bzero width',
        '',
      ];
      const s = await app.sessions.create({ channel: hostile[0]!, userId: hostile[2]!, metadata: { q: hostile[1]!, e: hostile[3]! } });
      for (const c of hostile) await app.messages.append(s.id, { role: 'tool', content: c, metadata: { c } });
      const back = await app.messages.list(s.id);
      assert.deepEqual(back.map((m) => m.content), hostile);
      assert.deepEqual(back.map((m) => m.metadata), hostile.map((c) => ({ c })));
      const got = await app.sessions.get(s.id);
      assert.equal(got.channel, hostile[0]);
      assert.equal(got.userId, hostile[2]);
      assert.deepEqual(got.metadata, { q: hostile[1], e: hostile[3] });
      await assert.rejects(app.sessions.get("' OR 1=1 --"), { code: 'KC_NOT_FOUND' });
      const check = await app.db.check();
      assert.equal(check.ok, true);
      assert.equal(check.counts?.messages, hostile.length);
    } finally {
      await app.close();
    }
  });

  it('refuses what cannot be stored faithfully, with KC_INVALID_INPUT, and stores nothing', async () => {
    const app = await open(tmpDir());
    try {
      const s = await app.sessions.create({});
      const bad: [string, Parameters<BlufioApp['messages']['append']>[1]][] = [
        ['lone surrogate', { role: 'user', content: 'broken \uD800 text' }],
        ['huge', { role: 'user', content: 'x'.repeat(8 * 1024 * 1024 + 1) }],
        ['role', { role: 'wizard' as never, content: 'x' }],
        ['content type', { role: 'user', content: 42 as never }],
        ['token count', { role: 'user', content: 'x', tokenCount: -1 }],
        ['token count float', { role: 'user', content: 'x', tokenCount: 1.5 }],
        ['metadata array', { role: 'user', content: 'x', metadata: [] as never }],
        ['metadata bigint', { role: 'user', content: 'x', metadata: { n: 1n } }],
        ['metadata date', { role: 'user', content: 'x', metadata: new Date() as never }],
        ['metadata toJSON', { role: 'user', content: 'x', metadata: { toJSON: () => 5 } }],
        ['metadata too deep', { role: 'user', content: 'x', metadata: JSON.parse(`${'{"a":'.repeat(1200)}1${'}'.repeat(1200)}`) }],
        // The limit counts UTF-8 bytes of content and metadata together.
        ['bytes', { role: 'user', content: 'c'.repeat(4 * 1024 * 1024), metadata: { m: 'é'.repeat(2 * 1024 * 1024) } }],
      ];
      for (const [what, input] of bad) {
        await assert.rejects(app.messages.append(s.id, input), { code: 'KC_INVALID_INPUT' }, what);
      }
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await assert.rejects(app.messages.append(s.id, { role: 'user', content: 'x', metadata: cyclic }), { code: 'KC_INVALID_INPUT' });
      await assert.rejects(app.sessions.create({ channel: 'c'.repeat(300) }), { code: 'KC_INVALID_INPUT' });
      assert.equal(await app.messages.count(s.id), 0);
      // Just under the limit is fine.
      const big = 'y'.repeat(8 * 1024 * 1024 - 10);
      await app.messages.append(s.id, { role: 'user', content: big });
      assert.equal((await app.messages.list(s.id))[0]!.content.length, big.length);
    } finally {
      await app.close();
    }
  });

  it('pages through sessions whose messages are spread over many index buckets', async () => {
    const app = await open(tmpDir(), 'normal');
    try {
      const [dense, sparse, rare] = await Promise.all([0, 1, 2].map(() => app.sessions.create({})));
      const expected = new Map<string, string[]>([[dense!.id, []], [sparse!.id, []], [rare!.id, []]]);
      const put = async (s: string, i: number): Promise<void> => {
        expected.get(s)!.push((await app.messages.append(s, { role: 'user', content: `${i}` })).id);
      };
      await put(rare!.id, -1);
      for (let i = 0; i < 10_000; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, k) => put(dense!.id, i + k)));
        await put(sparse!.id, i);
      }
      await put(rare!.id, 10_001);
      for (const [sid, ids] of expected) {
        assert.equal(await app.messages.count(sid), ids.length);
        const seen: string[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await app.messages.list(sid, { limit: 37, ...(before === undefined ? {} : { before }) });
          if (page.length === 0) break;
          seen.unshift(...page.map((m) => m.id));
          before = page[0]!.id;
        }
        assert.deepEqual(seen, ids);
      }
      const rareSession = await app.sessions.get(rare!.id);
      const last = await app.messages.list(rare!.id, { limit: 1 });
      assert.equal(rareSession.updatedAt, last[0]!.createdAt, 'last activity comes from the newest message');
    } finally {
      await app.close();
    }
  });

  it('an unknown cursor or session is KC_NOT_FOUND', async () => {
    const app = await open(tmpDir());
    try {
      const s = await app.sessions.create({});
      const t = await app.sessions.create({});
      const m = await app.messages.append(t.id, { role: 'user', content: 'x' });
      await assert.rejects(app.messages.list(s.id, { before: m.id }), { code: 'KC_NOT_FOUND' });
      await assert.rejects(app.messages.list('nope'), { code: 'KC_NOT_FOUND' });
      await assert.rejects(app.messages.list(t.id, { before: `${m.id.slice(0, 25)}Z` }), { code: 'KC_NOT_FOUND' });
      const otherTime = `${m.id.slice(0, 9)}${m.id[9] === 'Z' ? 'Y' : 'Z'}${m.id.slice(10)}`;
      await assert.rejects(app.messages.list(t.id, { before: otherTime }), { code: 'KC_NOT_FOUND' });
      await assert.rejects(app.messages.list(t.id, { before: 'not-an-id' }), { code: 'KC_NOT_FOUND' });
      assert.deepEqual(await app.messages.list(s.id), []);
    } finally {
      await app.close();
    }
  });
});

describe('options', () => {
  it('are checked: a wrong durability never silently weakens durability', async () => {
    const dir = tmpDir();
    for (const bad of [{ durability: 'FULL' }, { dataDir: 42 }, { dataDir: 'a\u0000b' }, { logger: {} }, { bogus: 1 }, { configPath: '' }]) {
      await assert.rejects(openBlufio({ dataDir: dir, env: {}, ...(bad as object) } as never), { code: 'KC_INVALID_INPUT' }, JSON.stringify(bad));
    }
  });
});

describe('after close', () => {
  it('reads and writes fail with KC_DB_CLOSED, and close is idempotent', async () => {
    const app = await open(tmpDir());
    const s = await app.sessions.create({});
    await app.close();
    await app.close();
    await assert.rejects(app.sessions.get(s.id), { code: 'KC_DB_CLOSED' });
    await assert.rejects(app.messages.list(s.id), { code: 'KC_DB_CLOSED' });
    await assert.rejects(app.messages.append(s.id, { role: 'user', content: 'late' }), { code: 'KC_DB_CLOSED' });
    await assert.rejects(app.db.check(), { code: 'KC_DB_CLOSED' });
  });

  it('writes submitted before close() are all committed', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    const s = await app.sessions.create({});
    const pending = Array.from({ length: 200 }, (_, i) => app.messages.append(s.id, { role: 'user', content: `${i}` }));
    const closing = app.close();
    await Promise.all(pending);
    await closing;
    const again = await open(dir);
    assert.equal(await again.messages.count(s.id), 200);
    await again.close();
  });
});

describe('calls that race close() (QA r11)', () => {
  it('a backup or check asked for after close() does nothing, and nothing rejects unhandled', async () => {
    const dir = tmpDir();
    const app = await open(path.join(dir, 'data'));
    await app.close();
    const dest = path.join(dir, 'copy.db');
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      // Twice: the second would have failed KC_BACKUP_EXISTS in the background.
      await assert.rejects(app.db.backup(dest), { code: 'KC_DB_CLOSED' });
      await assert.rejects(app.db.backup(dest), { code: 'KC_DB_CLOSED' });
      await assert.rejects(app.db.check(), { code: 'KC_DB_CLOSED' });
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.equal(fs.existsSync(dest), false, 'a backup refused with KC_DB_CLOSED was written');
    assert.deepEqual(unhandled, []);
  });

  it('a claim, release or requeue made just before close() resolves, and what it reports is what was committed', async () => {
    const dir = path.join(tmpDir(), 'data');
    let app = await open(dir);
    const first = await app.queue.enqueue('q', { a: 1 });
    const dead = await app.queue.enqueue('q2', { b: 1 }, { maxAttempts: 1 });
    const [d] = await app.queue.claim('q2');
    await app.queue.fail(d!.id, d!.leaseToken, { retryable: false });
    // Claim, then close at once: the claim's payloads are read after its commit.
    const claiming = app.queue.claim('q', { leaseMs: 60_000 });
    await app.close();
    const [job] = await claiming;
    assert.equal(job?.id, first);
    app = await open(dir);
    assert.equal((await app.queue.get(first)).state, 'running');
    // Release and requeue, then close at once: both read the job's queue after their commit.
    const releasing = app.queue.release(job!.id, job!.leaseToken);
    const requeueing = app.queue.requeue(dead);
    await app.close();
    await releasing;
    await requeueing;
    app = await open(dir);
    try {
      assert.equal((await app.queue.get(first)).state, 'pending');
      assert.equal((await app.queue.get(dead)).state, 'pending');
    } finally {
      await app.close();
    }
  });

  it('a data directory moved away under an open app: check and backup say so (KC_DB_OPEN_FAILED)', async () => {
    const dir = tmpDir();
    const app = await open(path.join(dir, 'data'));
    fs.renameSync(path.join(dir, 'data'), path.join(dir, 'moved'));
    try {
      await assert.rejects(app.db.check(), { code: 'KC_DB_OPEN_FAILED', message: /its directory is gone/ });
      await assert.rejects(app.db.backup(path.join(dir, 'b.db')), { code: 'KC_DB_OPEN_FAILED' });
    } finally {
      await app.close();
    }
  });
});

describe('a schema changed outside blufio (QA r11)', () => {
  const alter = async (sql: string): Promise<string> => {
    const dir = path.join(tmpDir(), 'data');
    const app = await open(dir);
    await app.close();
    const db = new Database(path.join(dir, 'blufio.db'));
    // Off the binding's defensive mode: sqlite_schema written by hand, as the sqlite3 shell can.
    db.unsafeMode(true);
    db.exec(sql);
    db.close();
    return dir;
  };
  const heldAfter = (dir: string): string[] =>
    fs.readdirSync('/proc/self/fd').flatMap((f) => {
      try {
        const target = fs.readlinkSync(`/proc/self/fd/${f}`);
        return target.startsWith(dir) ? [target] : [];
      } catch {
        return [];
      }
    });

  for (const [what, sql, message] of [
    ['a dropped table', 'DROP TABLE job_payloads', /the table job_payloads is missing/],
    ['a dropped index', 'DROP INDEX jobs_waiting', /the index jobs_waiting is missing/],
    ['a renamed column', 'ALTER TABLE sessions RENAME COLUMN channel TO chan', /the columns of sessions were changed/],
    ['a renamed column of _migrations', 'ALTER TABLE _migrations RENAME COLUMN checksum TO sum', /_migrations table .* was changed outside blufio/],
  ] as const) {
    it(`${what}: KC_DB_CORRUPT naming it, nothing left open, the CLI exits 1`, async () => {
      const dir = await alter(sql);
      const before = fs.readFileSync(path.join(dir, 'blufio.db'));
      await assert.rejects(open(dir), (err: unknown) => isAppError(err) && err.code === 'KC_DB_CORRUPT' && message.test(err.message));
      assert.deepEqual(heldAfter(dir), [], 'files of the refused database still open');
      assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.owners')), [], 'an owner lock left behind');
      assert.ok(before.equals(fs.readFileSync(path.join(dir, 'blufio.db'))), 'the refused database was changed');
      const r = await runCli(['--data-dir', dir, 'queue', 'stats'], { env: cleanEnv() });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /error\[KC_DB_CORRUPT\]/);
    });
  }

  it('an index made plain under its own name (review): KC_DB_CORRUPT, not KC_INTERNAL at the first enqueue with a key', async () => {
    const dir = await alter('DROP INDEX jobs_idempotency; CREATE INDEX jobs_idempotency ON jobs (queue_no, idempotency_key)');
    await assert.rejects(open(dir), (err: unknown) => isAppError(err) && err.code === 'KC_DB_CORRUPT' && /the index jobs_idempotency is defined otherwise/.test(err.message));
  });

  it('a change still in the -wal of a killed process (review): refused, the file and its -wal byte for byte as they were', async () => {
    const dir = path.join(tmpDir(), 'data');
    const app = await open(dir);
    await app.sessions.create({});
    await app.close();
    const db = path.join(dir, 'blufio.db');
    const driver = new URL('../src/storage/driver.js', import.meta.url).href;
    const child = `const { default: D } = await import(${JSON.stringify(driver)}); const d = new D(${JSON.stringify(db)});
      d.pragma('wal_autocheckpoint = 0'); d.exec('DROP INDEX jobs_waiting'); process.kill(process.pid, 'SIGKILL');`;
    spawnSync(process.execPath, ['--input-type=module', '-e', child]);
    const before = [fs.readFileSync(db), fs.readFileSync(`${db}-wal`)];
    assert.ok(before[1]!.length > 0, 'the change is in the -wal');
    await assert.rejects(open(dir), (err: unknown) => isAppError(err) && err.code === 'KC_DB_CORRUPT' && /jobs_waiting is missing/.test(err.message));
    assert.ok(before[0]!.equals(fs.readFileSync(db)), 'the database file was changed (the -wal folded in)');
    assert.ok(before[1]!.equals(fs.readFileSync(`${db}-wal`)), 'the -wal was changed');
  });

  it('what a person adds (a table, an index, statistics) is left alone', async () => {
    const dir = await alter('CREATE TABLE mine (x); CREATE INDEX mine_x ON mine (x); ANALYZE;');
    const app = await open(dir);
    await app.sessions.create({});
    await app.close();
  });

  it('a virtual table of a module this SQLite lacks (sqlite-vec, as a person adds it) is left alone too (second review: every command exited 70)', async () => {
    const dir = await alter(
      "PRAGMA writable_schema = ON; INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES ('table', 'my_vec', 'my_vec', 0, 'CREATE VIRTUAL TABLE my_vec USING vec0(embedding float[4])'); PRAGMA writable_schema = OFF;",
    );
    const app = await open(dir);
    await app.sessions.create({});
    await app.close();
    const r = await runCli(['--data-dir', dir, 'queue', 'stats'], { env: cleanEnv() });
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('a full disk at close', () => {
  it('a checkpoint that finds no room is logged, the file is released and close resolves; a CLI command still answers', async (t) => {
    const mnt = path.join(tmpDir(), 'small');
    fs.mkdirSync(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]).status !== 0) return t.skip('mounting needs privileges this run does not have');
    try {
      const data = path.join(mnt, 'data');
      const { logger, lines } = memoryLogger('warn');
      const app = await openBlufio({ dataDir: data, durability: 'full', logger, env: {} });
      const s = await app.sessions.create({});
      // Fill the disk with commits that all live in the WAL; then free less room than folding
      // the WAL into the database file needs.
      const ballast = path.join(mnt, 'ballast');
      fs.writeFileSync(ballast, Buffer.alloc(512 * 1024));
      let acked = 0;
      for (let round = 0; round < 40; round++) {
        const rs = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => app.messages.append(s.id, { role: 'user', content: `${round}-${i} ${'z'.repeat(4000)}` })));
        for (const r of rs) {
          if (r.status === 'fulfilled') acked++;
          else assert.equal((r.reason as { code?: string }).code, 'KC_DB_FULL');
        }
      }
      fs.rmSync(ballast);
      await app.messages.append(s.id, { role: 'user', content: 'after freeing space' });
      await app.close();
      const warned = lines().find((l) => /could not be folded/.test(String(l.msg)));
      assert.equal((warned?.err as { code?: string } | undefined)?.code, 'KC_DB_FULL', 'the failed checkpoint is logged');
      assert.ok(fs.statSync(path.join(data, 'blufio.db-wal')).size > 0, 'the commits stay in the WAL');

      const r = await runCli(['sessions', 'list', '--json', '--data-dir', data]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual((JSON.parse(r.stdout) as { id: string }[]).map((x) => x.id), [s.id]);
      assert.match(r.stderr, /^warn: the WAL could not be folded/m);

      const again = await open(data);
      assert.equal(await again.messages.count(s.id), acked + 1, 'every acknowledged write is there');
      await again.close();
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('a data directory on a read-only file system (QA r11)', () => {
  it('is KC_DB_READONLY saying so, before any lock file or warning (was "unable to open database file" and a warning about pid namespaces)', async (t) => {
    const mnt = path.join(tmpDir(), 'ro');
    fs.mkdirSync(mnt);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]).status !== 0) return t.skip('mounting needs privileges this run does not have');
    try {
      const data = path.join(mnt, 'data');
      const app = await open(data);
      await app.sessions.create({});
      await app.close();
      assert.equal(spawnSync('mount', ['-o', 'remount,ro', mnt]).status, 0);
      await assert.rejects(open(data), (err: unknown) => isAppError(err) && err.code === 'KC_DB_READONLY' && /is on a read-only file system/.test(err.message));
      const r = await runCli(['sessions', 'list', '--data-dir', data], { env: cleanEnv() });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error\[KC_DB_READONLY\]: .* is on a read-only file system/m);
      assert.doesNotMatch(r.stderr, /pid namespace/);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('durability setting', () => {
  for (const [durability, synchronous] of [['full', 2], ['normal', 1]] as const) {
    it(`"${durability}" sets synchronous=${synchronous} on the writer, with WAL and foreign keys`, async () => {
      const app = await open(tmpDir(), durability);
      try {
        const r = await app.db.check();
        assert.deepEqual(r.writer, { journalMode: 'wal', synchronous, foreignKeys: 1, busyTimeoutMs: 60000 });
        assert.equal(r.durability, durability);
      } finally {
        await app.close();
      }
    });
  }
});

describe('the config file', () => {
  it('storage.database_path and storage.durability are honoured', async () => {
    const dir = tmpDir();
    const cfg = path.join(dir, 'blufio.toml');
    fs.writeFileSync(cfg, '[storage]\ndatabase_path = "db/my.db"\ndurability = "normal"\n');
    const app = await openBlufio({ configPath: cfg, logger: silentLogger(), env: cleanEnv() });
    try {
      assert.equal(app.config.databasePath, path.join(dir, 'db', 'my.db'));
      assert.equal((await app.db.check()).writer.synchronous, 1);
    } finally {
      await app.close();
    }
    assert.ok(fs.existsSync(path.join(dir, 'db', 'my.db')));
  });
});

describe('the writer thread lost with writes in flight', () => {
  it('rejects them KC_DB_CLOSED saying they may have been committed, logs at ERROR, and nothing acknowledged is lost', async () => {
    const dataDir = tmpDir();
    const config = loadConfig({ dataDir, env: cleanEnv() });
    const mem = memoryLogger();
    const storage = await Storage.open(config, mem.logger);
    const session = await storage.sessions.create({ channel: 'c' });
    const acknowledged: string[] = [];
    const failures: unknown[] = [];
    const writes = Array.from({ length: 400 }, (_, i) =>
      storage.messages.append(session.id, { role: 'user', content: `message ${i}` }).then(
        (m) => acknowledged.push(m.id),
        (err: unknown) => failures.push(err),
      ),
    );
    // The thread dies as a thread can (an uncaught error, a resource limit): its answers are lost.
    await new Promise((r) => setImmediate(r));
    await (storage as unknown as { writer: { worker: Worker } }).writer.worker.terminate();
    await Promise.all(writes);
    assert.ok(failures.length > 0, 'some writes were in flight');
    for (const err of failures) {
      assert.ok(isAppError(err) && err.code === 'KC_DB_CLOSED', String(err));
      assert.match(err.message, /may or may not have been committed/);
      assert.match(err.hint ?? '', /read back what this call wrote before retrying/);
    }
    await assert.rejects(storage.sessions.create({ channel: 'later' }), (e: unknown) => isAppError(e) && e.code === 'KC_DB_CLOSED');
    assert.ok(mem.lines().some((l) => l.level === 50 && l.msg === 'database writer lost'));
    await storage.close();
    // Every acknowledged write is there; those refused may be too (committed before the thread died).
    const app = await open(dataDir);
    try {
      const ids = new Set((await app.messages.list(session.id, { limit: 1000 })).map((m) => m.id));
      for (const id of acknowledged) assert.ok(ids.has(id), id);
      assert.ok(ids.size >= acknowledged.length && ids.size <= 400);
    } finally {
      await app.close();
    }
  });
});
