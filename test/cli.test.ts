import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio } from '../src/index.js';
import { printable } from '../src/log/index.js';
import { CLI, cleanEnv, fixture, run, runCli, silentLogger, tmpDir } from './helpers/index.js';

describe('blufio CLI', () => {
  it('the built blufio command is executable (npm test rebuilds it; npx blufio must still run)', () => {
    assert.equal(fs.statSync(CLI).mode & 0o111, 0o111);
  });

  it('db check on a fresh machine creates the data directory and reports it', async () => {
    const home = tmpDir();
    const env = cleanEnv({ HOME: home });
    const r = await runCli(['db', 'check'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /status\s+ok/);
    assert.match(r.stdout, /schema\s+version 4/);
    assert.match(r.stdout, /jobs\s+0 \(waiting 0, pending 0/);
    const data = path.join(home, '.local', 'share', 'blufio');
    assert.equal(fs.statSync(data).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(data, 'blufio.db')).mode & 0o777, 0o600);
    const j = await runCli(['db', 'check', '--json'], { env });
    const report = JSON.parse(j.stdout) as Record<string, unknown>;
    assert.equal(report.ok, true);
    assert.equal(report.databasePath, path.join(data, 'blufio.db'));
    assert.deepEqual(report.counts, {
      sessions: { active: 0, paused: 0, closed: 0, interrupted: 0, total: 0 },
      messages: 0,
      jobs: { waiting: 0, pending: 0, running: 0, completed: 0, dead: 0, total: 0 },
    });
    assert.equal(j.stderr, '', 'nothing on stderr for a clean run');
    assert.equal(report.created, undefined, 'the second check created nothing');
    assert.match(r.stdout, /created\s+there was no database file: this check created a new, empty database/);
    // A database truncated to nothing came back "ok" and empty, its data gone without a word (QA r9).
    fs.truncateSync(path.join(data, 'blufio.db'), 0);
    for (const f of ['blufio.db-wal', 'blufio.db-shm']) fs.rmSync(path.join(data, f), { force: true });
    const t = await runCli(['db', 'check', '--json'], { env });
    assert.equal((JSON.parse(t.stdout) as { created?: string }).created, 'the database file was empty');
  });

  it('BLUFIO_CONFIG and BLUFIO_DATA_DIR are honoured; --data-dir wins', async () => {
    const dir = tmpDir();
    const cfg = path.join(dir, 'c.toml');
    fs.writeFileSync(cfg, `[storage]\ndatabase_path = "${path.join(dir, 'fromconfig', 'x.db')}"\n`);
    const viaConfig = await runCli(['db', 'check', '--json'], { env: cleanEnv({ BLUFIO_CONFIG: cfg }) });
    assert.equal(JSON.parse(viaConfig.stdout).databasePath, path.join(dir, 'fromconfig', 'x.db'));
    const viaEnv = await runCli(['db', 'check', '--json'], { env: cleanEnv({ BLUFIO_CONFIG: cfg, BLUFIO_DATA_DIR: path.join(dir, 'env') }) });
    assert.equal(JSON.parse(viaEnv.stdout).databasePath, path.join(dir, 'env', 'blufio.db'));
    const viaFlag = await runCli(['--data-dir', path.join(dir, 'flag'), 'db', 'check', '--json'], {
      env: cleanEnv({ BLUFIO_DATA_DIR: path.join(dir, 'env') }),
    });
    assert.equal(JSON.parse(viaFlag.stdout).databasePath, path.join(dir, 'flag', 'blufio.db'));
  });

  it('prints error[CODE]: message with a hint and no stack trace; exit 1', async () => {
    const dir = tmpDir();
    const cfg = path.join(dir, 'c.toml');
    fs.writeFileSync(cfg, '[storage]\n\ndurabilty = "full"\n');
    const r = await runCli(['--config', cfg, 'db', 'check']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr.split('\n')[0],
      `error[KC_CONFIG_INVALID]: invalid config ${cfg} line 3: unknown key storage.durabilty`,
    );
    assert.match(r.stderr, /^hint: known keys in \[storage\]/m);
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/);
    // A key pasted where an address goes is quoted by the refusal: known formats are redacted.
    const key = 'sk-proj-0123456789abcdefABCDEFdeadbeefdeadbeef';
    fs.writeFileSync(cfg, `[security]\nallowed_private_ips = ["${key}"]\n`);
    const pasted = await runCli(['--config', cfg, 'db', 'check']);
    assert.match(pasted.stderr, /^error\[KC_CONFIG_INVALID\]: .*line 2: .*\[REDACTED:openai-key\]/);
    assert.ok(!pasted.stderr.includes(key));
    // The same in usage errors (commander quotes an unknown option whole).
    const option = await runCli([`--api-key=${key}`, 'sessions', 'list']);
    assert.equal(option.code, 2);
    assert.match(option.stderr, /^error\[KC_CLI_USAGE\]: unknown option '--api-key=\[REDACTED:openai-key\]'/);
    assert.ok(!option.stderr.includes(key));
  });

  it("a log line shows an error as KC_CODE: message, its stack only under BLUFIO_DEBUG=1, redacted either way (QA r3)", async () => {
    // An expected error logged on its way out (a store of another vault refusing a put) was
    // written as pino's serialisation, stack and all, in front of its own error[CODE] line.
    const key = 'sk-proj-0123456789abcdefABCDEFdeadbeefdeadbeef';
    const root = path.join(tmpDir(), key); // the refusal names the store's path
    const [a, b, file] = [path.join(root, 'a'), path.join(root, 'b'), path.join(root, 'f.bin')];
    fs.mkdirSync(b, { recursive: true, mode: 0o700 });
    fs.writeFileSync(file, 'an attachment');
    const env = cleanEnv({ BLUFIO_VAULT_KEY: 'log line passphrase' });
    const put = (dir: string, extra: NodeJS.ProcessEnv = {}) => runCli(['--data-dir', dir, 'objects', 'put', file], { env: { ...env, ...extra } });
    assert.equal((await put(a)).code, 0);
    fs.symlinkSync(path.join(a, 'objects'), path.join(b, 'objects'));
    const r = await put(b);
    assert.equal(r.code, 1);
    const line = /^error: refusing to write to an object store that is not this vault's own \(err=KC_DB_STATE_MISMATCH: the object store \S+ belongs to another vault [^\n]*, dir=\S+\)$/m;
    assert.match(r.stderr, line);
    assert.match(r.stderr, /^error\[KC_DB_STATE_MISMATCH\]: /m);
    assert.doesNotMatch(r.stderr, /stack|\bat .*\.js:\d+/);
    const debug = await put(b, { BLUFIO_DEBUG: '1' });
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /"stack":"AppError: the object store .*\\n {4}at .*\.js:\d+/);
    for (const x of [r, debug]) {
      assert.ok(!x.stderr.includes(key), x.stderr);
      assert.match(x.stderr, /^error: refusing .*\[REDACTED:openai-key\]/m);
    }
  });

  it('usage errors exit 2 with KC_CLI_USAGE; --help exits 0 for every command', async () => {
    const r = await runCli(['sessions', 'lst']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error\[KC_CLI_USAGE\]: unknown command 'lst'/);
    const bad = await runCli(['sessions', 'list', '--limit', 'lots']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error\[KC_CLI_USAGE\]: .*--limit/);
    for (const args of [[], ['db'], ['sessions']]) {
      const bare = await runCli(args);
      assert.equal(bare.code, 2, `blufio ${args.join(' ')} without a command is a usage error`);
      assert.match(bare.stderr, /^Usage: blufio/);
    }
    for (const args of [[], ['db'], ['db', 'check'], ['db', 'backup'], ['sessions'], ['sessions', 'list'], ['sessions', 'show']]) {
      const h = await runCli([...args, '--help']);
      assert.equal(h.code, 0, `${args.join(' ')} --help: ${h.stderr}`);
      assert.match(h.stdout, /^Usage: blufio/);
    }
  });

  it('help and help <command> print what --help prints and exit 0; help of a command that does not exist is a usage error (QA r9)', async () => {
    // commander's own help command ended like a group run without its command: exit 2.
    for (const args of [[], ['serve'], ['db'], ['db', 'check'], ['vault', 'db-encrypt', 'status']]) {
      const asked = await runCli(['help', ...args]);
      const flag = await runCli([...args, '--help']);
      assert.equal(asked.code, 0, `help ${args.join(' ')}: ${asked.stderr}`);
      assert.equal(asked.stdout, flag.stdout);
      assert.equal(asked.stderr, '');
    }
    const inGroup = await runCli(['db', 'help', 'check']);
    assert.equal(inGroup.code, 0);
    assert.match(inGroup.stdout, /^Usage: blufio db check/);
    for (const [args, name] of [[['help', 'nosuch'], 'nosuch'], [['help', 'db', 'nosuch'], 'db nosuch'], [['db', 'help', 'nosuch'], 'nosuch']] as const) {
      const r = await runCli([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^error\\[KC_CLI_USAGE\\]: unknown command '${name}'\nhint: run blufio --help`));
    }
  });

  it('db check runs integrity_check first read-only, then in the app, on a WAL database and on a rollback-journal one (a backup)', async () => {
    const dir = tmpDir();
    const copyDir = tmpDir();
    const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    const s = await app.sessions.create({});
    await app.messages.append(s.id, { role: 'user', content: 'checked' });
    await app.db.backup(path.join(copyDir, 'blufio.db'));
    await app.close();
    const passes = async (data: string): Promise<string[]> => {
      // On the command line, not in NODE_OPTIONS: only then does the writer's worker thread load it too.
      const r = await run('--import', [fixture('count-integrity'), CLI, 'db', 'check', '--data-dir', data]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /status\s+ok/);
      return r.stderr.split('\n').filter((l) => l.startsWith('INTEGRITY_CHECK '));
    };
    assert.deepEqual([...fs.readFileSync(path.join(dir, 'blufio.db')).subarray(18, 20)], [2, 2], 'the live database is in WAL mode');
    // The open writes even to a WAL file (dead owners' jobs and sessions, its close's
    // checkpoint): damage must be found before it (third review).
    assert.deepEqual(await passes(dir), ['INTEGRITY_CHECK readonly', 'INTEGRITY_CHECK rw']);
    assert.deepEqual([...fs.readFileSync(path.join(copyDir, 'blufio.db')).subarray(18, 20)], [1, 1], 'a backup is in rollback-journal mode');
    assert.deepEqual(await passes(copyDir), ['INTEGRITY_CHECK readonly', 'INTEGRITY_CHECK rw']);
  });

  it('db check still diagnoses a file that blufio refuses to open, without changing it', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    const s = await app.sessions.create({});
    await Promise.all(Array.from({ length: 500 }, (_, i) => app.messages.append(s.id, { role: 'user', content: `${i} `.repeat(50) })));
    await app.close();
    const db = path.join(dir, 'blufio.db');
    const buf = fs.readFileSync(db);
    buf.fill(0x55, 4096 * 3, 4096 * 4); // one page of the message table overwritten
    fs.writeFileSync(db, buf);
    const r = await runCli(['db', 'check', '--data-dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /status\s+DAMAGED/);
    assert.match(r.stdout, /^integrity  /m);
    assert.match(r.stderr, /^error\[KC_DB_CORRUPT\]: /m);
    assert.deepEqual(fs.readFileSync(db), buf, 'the file is left as it was');
    const j = await runCli(['db', 'check', '--json', '--data-dir', dir]);
    const report = JSON.parse(j.stdout) as { ok: boolean; integrity: string[]; error: { code: string } };
    assert.equal(report.ok, false);
    assert.ok(report.integrity.length > 0 && report.integrity[0] !== 'ok');
    assert.equal(report.error.code, 'KC_DB_CORRUPT');
  });

  it('db check diagnoses every file the open refuses, changing none: a newer schema and a pending encryption read-only, an encrypted one without its key said to be unchecked', async () => {
    const made = async (): Promise<string> => {
      const dir = tmpDir();
      const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
      await app.sessions.create({});
      await app.close();
      return dir;
    };
    const newer = await made();
    const raw = new Database(path.join(newer, 'blufio.db'));
    raw.prepare('INSERT INTO _migrations (version, name, checksum, applied_at) VALUES (999, ?, ?, 0)').run('future', 'x');
    raw.close();
    const keyEnv = cleanEnv({ DBKEY: 'a database passphrase' });
    const pending = await made();
    const encrypted = tmpDir();
    for (const dir of [pending, encrypted]) {
      const enable = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY'], { env: keyEnv });
      assert.equal(enable.code, 0, enable.stderr);
    }
    const born = await runCli(['db', 'check', '--data-dir', encrypted], { env: keyEnv }); // encrypted from its first byte
    assert.equal(born.code, 0, born.stderr);
    const cases = [
      { dir: newer, code: 'KC_SCHEMA_TOO_NEW', integrity: /^ok$/ },
      { dir: pending, code: 'KC_DB_ENCRYPTION_PENDING', integrity: /^ok$/ },
      // No key here (no variable, no terminal): its pages cannot be read, so nothing is guessed.
      { dir: encrypted, code: 'KC_DB_LOCKED', integrity: /^not checked: .*encrypted \(only its key can check it: blufio vault verify / },
    ];
    for (const { dir, code, integrity } of cases) {
      const db = path.join(dir, 'blufio.db');
      const before = fs.readFileSync(db);
      const j = await runCli(['db', 'check', '--json', '--data-dir', dir]);
      assert.equal(j.code, 1, j.stderr);
      assert.match(j.stderr, new RegExp(`^error\\[${code}\\]: `, 'm'));
      const report = JSON.parse(j.stdout) as { ok: boolean; databasePath: string; integrity: string[]; error: { code: string } };
      assert.equal(report.ok, false);
      assert.equal(report.databasePath, db);
      assert.equal(report.integrity.length, 1, report.integrity.join('; '));
      assert.match(report.integrity[0]!, integrity);
      assert.equal(report.error.code, code);
      const t = await runCli(['db', 'check', '--data-dir', dir]);
      assert.equal(t.code, 1, t.stderr);
      assert.match(t.stdout, new RegExp(`^status {5}REFUSED \\(${code}\\)$`, 'm'));
      assert.match(t.stdout, /^integrity  \S/m);
      assert.deepEqual(fs.readFileSync(db), before, `${code}: the file is left as it was`);
    }
  });

  it('every bidirectional control and line separator is escaped for the terminal, U+061C too; objects get --out and a long job id say what is wrong', async () => {
    for (const c of ['\u061c', '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u2028', '\u2029']) {
      assert.equal(printable(`a${c}b`), `a\\u{${c.codePointAt(0)!.toString(16)}}b`);
    }
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    await app.sessions.create({ channel: 'a\u061cb' });
    const ref = (await app.objects.put(Buffer.from('hi'))).ref;
    await app.close();
    const list = await runCli(['sessions', 'list', '--data-dir', dir]);
    assert.doesNotMatch(list.stdout, /\u061c/);
    assert.match(list.stdout, /a\\u\{61c\}b/);
    const missing = await runCli(['objects', 'get', ref, '--out', path.join(dir, 'no', 'such', 'file'), '--data-dir', dir]);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /^error\[KC_INVALID_INPUT\]: cannot create --out .*missing/);
    const isDir = await runCli(['objects', 'get', ref, '--out', dir, '--data-dir', dir]);
    assert.match(isDir.stderr, /^error\[KC_INVALID_INPUT\]: --out .* is a directory/);
    assert.doesNotMatch(isDir.stderr, /never overwrites/);
    const longId = await runCli(['queue', 'requeue', 'x'.repeat(300), '--data-dir', dir]);
    assert.match(longId.stderr, /^error\[KC_INVALID_INPUT\]: .*at most 256 characters \(got 300 characters\)/);
  });

  it('sessions list and show, with hostile text escaped for the terminal', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    const s = await app.sessions.create({ channel: 'tele\u001b]0;pwned\u0007gram', userId: 'u\u202Eevil' });
    await app.messages.append(s.id, { role: 'user', content: 'line one\nline two \u001b[31mred\u001b[0m' });
    await app.messages.append(s.id, { role: 'assistant', content: 'reply', tokenCount: 7, metadata: { model: 'm' } });
    const other = await app.sessions.create({ channel: 'cli' });
    await app.sessions.setState(other.id, 'paused');
    await app.close();

    const list = await runCli(['sessions', 'list', '--data-dir', dir]);
    assert.equal(list.code, 0, list.stderr);
    assert.doesNotMatch(list.stdout, /[\u001b\u0007\u202e]/);
    assert.match(list.stdout, /tele\\u\{1b\}\]0;pwned\\u\{7\}gram/);
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID\s+STATE\s+CHANNEL/);
    assert.equal(lines.length, 3);
    const paused = await runCli(['sessions', 'list', '--state', 'paused', '--json', '--data-dir', dir]);
    assert.deepEqual((JSON.parse(paused.stdout) as { id: string }[]).map((x) => x.id), [other.id]);

    const show = await runCli(['sessions', 'show', s.id, '--data-dir', dir]);
    assert.equal(show.code, 0, show.stderr);
    assert.doesNotMatch(show.stdout, /[\u001b\u0007\u202e]/);
    assert.match(show.stdout, /line one\nline two \\u\{1b\}\[31mred/);
    assert.match(show.stdout, /assistant \(7 tokens\)/);
    const json = await runCli(['sessions', 'show', s.id, '--json', '--messages', '1', '--data-dir', dir]);
    const parsed = JSON.parse(json.stdout) as { messageCount: number; messages: { content: string }[]; channel: string };
    assert.equal(parsed.messageCount, 2);
    assert.deepEqual(parsed.messages.map((m) => m.content), ['reply']);
    assert.equal(parsed.channel, 'tele\u001b]0;pwned\u0007gram', 'JSON keeps the exact text');

    const missing = await runCli(['sessions', 'show', 'nope', '--data-dir', dir]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error\[KC_NOT_FOUND\]: no session with id "nope"/);
  });

  it('queue stats, dead and requeue', async () => {
    const dir = tmpDir();
    const empty = await runCli(['queue', 'stats', '--data-dir', dir]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(empty.stdout, 'no queues yet\n');
    const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    await app.queue.enqueueMany('inbound', [{ payload: 1 }, { payload: 2, delayMs: 3_600_000 }]);
    const deadId = await app.queue.enqueue('outbound', 'x', { maxAttempts: 1 });
    const [job] = await app.queue.claim('outbound');
    // A hostile error text must reach the terminal defused.
    await app.queue.fail(deadId, job!.leaseToken, { error: 'HTTP 500 \u001b[2J\u001b]0;pwned\u0007\nsecond line' });
    await app.close();

    const all = await runCli(['queue', 'stats', '--data-dir', dir]);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^QUEUE\s+PENDING\s+DELAYED\s+RUNNING\s+DEAD\s+COMPLETED\s+OLDEST WAITING$/);
    assert.match(lines[1]!, /^inbound\s+1\s+1\s+0\s+0\s+0\s+\d+s$/);
    assert.match(lines[2]!, /^outbound\s+0\s+0\s+0\s+1\s+0\s+-$/);
    const one = JSON.parse((await runCli(['queue', 'stats', 'inbound', '--json', '--data-dir', dir])).stdout) as Record<string, unknown>;
    assert.deepEqual({ ...one, oldestPendingAgeMs: 0 }, {
      queue: 'inbound', pending: 1, delayed: 1, running: 0, completed: 0, dead: 0, oldestPendingAgeMs: 0,
    });
    const every = JSON.parse((await runCli(['queue', 'stats', '--json', '--data-dir', dir])).stdout) as { queue: string }[];
    assert.deepEqual(every.map((s) => s.queue), ['inbound', 'outbound']);

    const dead = await runCli(['queue', 'dead', 'outbound', '--data-dir', dir]);
    assert.equal(dead.code, 0, dead.stderr);
    assert.match(dead.stdout, new RegExp(`^${deadId}\\s+1/1\\s+\\S+\\s+HTTP 500 `, 'm'));
    assert.doesNotMatch(dead.stdout, /[\u001b\u0007]/);
    assert.doesNotMatch(dead.stdout, /second line/, 'only the first line of the error');
    const deadJson = JSON.parse((await runCli(['queue', 'dead', 'outbound', '--json', '--data-dir', dir])).stdout) as { lastError: string }[];
    assert.match(deadJson[0]!.lastError, /\nsecond line$/);

    const requeued = await runCli(['queue', 'requeue', deadId, '--data-dir', dir]);
    assert.equal(requeued.code, 0, requeued.stderr);
    assert.equal(requeued.stdout, `re-queued ${deadId}\n`);
    const again = await runCli(['queue', 'requeue', deadId, '--data-dir', dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error\[KC_QUEUE_NOT_DEAD\]: job \S+ is pending/);
    const badName = await runCli(['queue', 'stats', 'no spaces', '--data-dir', dir]);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /^error\[KC_INVALID_INPUT\]: queue name/);
    const bare = await runCli(['queue', '--data-dir', dir]);
    assert.equal(bare.code, 2);
  });

  it('queue requeue of several ids tries every one, says which were refused and exits 1 (QA r4)', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    const dead: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await app.queue.enqueue('mail', { i }, { maxAttempts: 1 });
      const [job] = await app.queue.claim('mail');
      await app.queue.fail(id, job!.leaseToken, { error: 'smtp down', retryable: false });
      dead.push(id);
    }
    const pending = await app.queue.enqueue('mail', { p: 1 });
    await app.close();
    const [d1, d2, d3] = dead as [string, string, string];

    // The refused id in the middle: before, d2 was never tried and nothing said so.
    const r = await runCli(['queue', 'requeue', d1, pending, d2, '--data-dir', dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, `re-queued ${d1}\nre-queued ${d2}\n`);
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      `error[KC_QUEUE_NOT_DEAD]: job ${pending} is pending; only dead jobs can be re-queued`,
      `error[KC_QUEUE_NOT_DEAD]: 1 of 3 job(s) not re-queued: ${pending}`,
      'hint: the other 2 were re-queued; blufio queue dead <queue> lists the jobs that can be',
    ]);
    const after = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
    try {
      assert.deepEqual((await after.queue.listDead('mail')).map((j) => j.id), [d3]);
    } finally {
      await after.close();
    }

    // --json: one outcome per id in the order given, the refusals as RPC sends errors; stderr
    // has only the summary.
    const j = await runCli(['queue', 'requeue', '--json', d3, d1, 'nope', '--data-dir', dir]);
    assert.equal(j.code, 1, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), [
      { id: d3, requeued: true },
      {
        id: d1,
        requeued: false,
        error: { code: 'KC_QUEUE_NOT_DEAD', message: `job ${d1} is pending; only dead jobs can be re-queued`, details: { id: d1, state: 'pending' } },
      },
      {
        id: 'nope',
        requeued: false,
        error: { code: 'KC_NOT_FOUND', message: 'no job with id "nope"', hint: 'job ids are the 26-character ids returned by enqueue and claim' },
      },
    ]);
    assert.match(j.stderr, new RegExp(`^error\\[KC_QUEUE_NOT_DEAD\\]: 2 of 3 job\\(s\\) not re-queued: ${d1}, nope\nhint: the other one was re-queued`));
    const single = await runCli(['queue', 'requeue', '--json', 'nope', '--data-dir', dir]);
    assert.equal(single.code, 1);
    assert.match(single.stderr, /^error\[KC_NOT_FOUND\]: no job with id "nope"\n/, 'one id: its own error, as before');

    // A token pasted where an id belongs (a custom format the built-in rules do not know) is
    // named by its length, not echoed whole or by its start (QA r9: the summary cut it to 63
    // characters, `sessions show` and a message list's session echoed it whole).
    const token = 'myServiceToken_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV';
    const pasted = [
      await runCli(['queue', 'requeue', d1, token, '--data-dir', dir]),
      await runCli(['sessions', 'show', token, '--data-dir', dir]),
      await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', `my$ecret Pass ${token}`]),
      // Review r9: a passphrase of letters, digits and _ passes for a variable's name, and its
      // "is not set" error named it three times; a 40-character token is no id either.
      await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'myServiceToken_CORRECT_HORSE_BATTERY_42']),
      await runCli(['sessions', 'show', token.slice(0, 40), '--data-dir', dir]),
    ];
    for (const p of pasted) {
      assert.equal(p.code, 1, p.stderr);
      assert.ok(!p.stderr.includes('myServiceToken') && !p.stdout.includes('myServiceToken'), p.stderr);
    }
    assert.match(pasted[0]!.stderr, /not re-queued: [0-9A-Z]{26}, \(73 characters\)/);
    assert.match(pasted[1]!.stderr, /^error\[KC_NOT_FOUND\]: no session with id \(a string of 73 characters\)/);
    assert.match(pasted[2]!.stderr, /the 87 characters given are not a name\nhint: give the name of the variable/);
    assert.match(pasted[3]!.stderr, /the environment variable that --passphrase-env names \(39 characters\) is not set/);
    assert.match(pasted[4]!.stderr, /no session with id \(a string of 40 characters\)/);
    // And where a ref or a --json outcome would have carried it (second review r9).
    const more = [
      await runCli(['objects', 'get', token.slice(0, 40), '--data-dir', dir]),
      await runCli(['queue', 'requeue', '--json', d1, token, '--data-dir', dir]),
    ];
    for (const p of more) assert.ok(!p.stderr.includes('myServiceToken') && !p.stdout.includes('myServiceToken'), p.stdout + p.stderr);
    assert.match(more[0]!.stderr, /\(a string of 40 characters\) is not an object reference/);
    assert.equal((JSON.parse(more[1]!.stdout) as { id: string }[])[1]!.id, '(73 characters)');
  });

  it('config set-secret checks the name before it reads the value, with a hint for the command line (review srv, finding 7)', async () => {
    const env = { ...cleanEnv({ BLUFIO_DATA_DIR: tmpDir() }), BLUFIO_VAULT_KEY: 'cli passphrase' };
    // stdin stays open and empty: a command that waited for the value would never end (the
    // test's hang guard kills it, and the exit code is then not 1).
    const setWithOpenStdin = async (name: string): Promise<{ code: number | null; stderr: string }> => {
      const child = spawn(process.execPath, [CLI, 'config', 'set-secret', name], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.stdout.resume();
      const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      clearTimeout(guard);
      child.stdin.destroy();
      return { code, stderr };
    };
    const { code, stderr } = await setWithOpenStdin('my key');
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^error\[KC_INVALID_INPUT\]: that secret name is not valid: character 3 \(" "\) is not allowed/);
    assert.match(stderr, /hint: .*e\.g\. blufio config set-secret providers\.openai\.api_key/);
    assert.doesNotMatch(stderr, /call set\(name, value\)/);
    const del = await runCli(['config', 'delete-secret', 'my key'], { env });
    assert.equal(del.code, 1);
    assert.match(del.stderr, /hint: .*blufio config list-secrets/);
    // A name shaped like a token is refused before the value is read too (QA r11: it was read first).
    const late = await setWithOpenStdin(`ghp_${'a1B2'.repeat(9)}`);
    assert.equal(late.code, 1, late.stderr);
    assert.match(late.stderr, /^error\[KC_INVALID_INPUT\]: that secret name looks like a secret itself \(github-token\)/);
  });

  it('a vault row written by other means: its name is shown escaped, it can be deleted, a time out of range is shown as such (QA r11)', async () => {
    const dir = tmpDir();
    const env = { ...cleanEnv({ BLUFIO_DATA_DIR: dir }), BLUFIO_VAULT_KEY: 'cli passphrase' };
    assert.equal((await runCli(['config', 'set-secret', 'a.one'], { env, input: 'sk-proj-abcdefghijklmnopqrstuvwxyz4f2b\n' })).code, 0);
    const forged = '\u001b[2K\rfake.row  sk-...ok\nx';
    const db = new Database(path.join(dir, 'blufio.db'));
    db.prepare('INSERT INTO vault_entries (name, sealed, created_at, updated_at) VALUES (?, ?, 0, 0)').run(forged, Buffer.from([0]));
    db.prepare("UPDATE vault_entries SET updated_at = 9000000000000000000 WHERE name = 'a.one'").run();
    db.close();
    const list = await runCli(['config', 'list-secrets'], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.doesNotMatch(list.stdout, /[\u001b\r]/, 'a forged name painted the terminal');
    assert.match(list.stdout, /invalid time \(9000000000000000000\)/);
    const del = await runCli(['config', 'delete-secret', forged], { env });
    assert.equal(del.code, 0, del.stderr);
    assert.doesNotMatch(del.stdout, /[\u001b\r]/);
    const after = await runCli(['config', 'list-secrets', '--json'], { env });
    assert.deepEqual((JSON.parse(after.stdout) as { name: string }[]).map((e) => e.name), ['a.one']);
  });

  it('config set-secret, list-secrets, delete-secret and vault status / change-passphrase without a terminal', async () => {
    const dir = tmpDir();
    const env = cleanEnv({ BLUFIO_DATA_DIR: dir });
    const withKey = { ...env, BLUFIO_VAULT_KEY: 'cli passphrase' };
    const none = await runCli(['vault', 'status'], { env });
    assert.match(none.stdout, /none yet/);
    const locked = await runCli(['config', 'set-secret', 'openai'], { env, input: 'sk-proj-abcdefghijklmnopqrstuvwxyz4f2b\n' });
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, /^error\[KC_VAULT_LOCKED\]: creating the vault needs a passphrase\nhint: set BLUFIO_VAULT_KEY/);
    const set = await runCli(['config', 'set-secret', 'openai'], { env: withKey, input: 'sk-proj-abcdefghijklmnopqrstuvwxyz4f2b\n' });
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'stored openai\n');
    const empty = await runCli(['config', 'set-secret', 'x'], { env: withKey, input: '\n' });
    assert.match(empty.stderr, /^error\[KC_INVALID_INPUT\]: no value for x/);
    // stdin is read up to the vault's limit and no further, and must be UTF-8 (not silently replaced).
    const huge = await runCli(['config', 'set-secret', 'x'], { env: withKey, input: Buffer.alloc(8 << 20, 'a') });
    assert.equal(huge.code, 1);
    assert.match(huge.stderr, /^error\[KC_INVALID_INPUT\]: the value for x on stdin is larger than the limit of 65536 bytes/);
    const binary = await runCli(['config', 'set-secret', 'x'], { env: withKey, input: Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]) });
    assert.equal(binary.code, 1);
    assert.match(binary.stderr, /^error\[KC_INVALID_INPUT\]: the value for x on stdin is not UTF-8 text/);
    const list = await runCli(['config', 'list-secrets'], { env: withKey });
    assert.match(list.stdout, /^openai\s+sk-proj-\.\.\.4f2b\s+\S+$/m);
    assert.doesNotMatch(list.stdout, /^x\s/m, 'neither was stored');
    assert.doesNotMatch(list.stdout + list.stderr, /abcdefghij/);
    const listLocked = await runCli(['config', 'list-secrets'], { env });
    assert.match(listLocked.stderr, /^error\[KC_VAULT_LOCKED\]/);
    const wrong = await runCli(['config', 'list-secrets'], { env: { ...env, BLUFIO_VAULT_KEY: 'nope' } });
    assert.match(wrong.stderr, /error\[KC_VAULT_KEY_INVALID\]/);
    assert.doesNotMatch(wrong.stderr, /nope/);
    const status = JSON.parse((await runCli(['vault', 'status', '--json'], { env })).stdout) as { exists: boolean; entries: number };
    assert.deepEqual([status.exists, status.entries], [true, 1]);
    // U+FFFD is what bytes that were not UTF-8 became: such a new passphrase is refused.
    const mangled = await runCli(['vault', 'change-passphrase'], { env: { ...withKey, BLUFIO_NEW_VAULT_KEY: 'second \uFFFD\uFFFD passphrase' } });
    assert.equal(mangled.code, 1);
    assert.match(mangled.stderr, /^error\[KC_INVALID_INPUT\]: the new passphrase holds U\+FFFD/);
    const fresh = await runCli(['config', 'set-secret', 'x'], { env: { ...cleanEnv({ BLUFIO_DATA_DIR: tmpDir() }), BLUFIO_VAULT_KEY: '\uFFFD\uFFFD\uFFFD' }, input: 'value-0123456789' });
    assert.match(fresh.stderr, /^error\[KC_INVALID_INPUT\]: the new passphrase holds U\+FFFD/);
    const changed = await runCli(['vault', 'change-passphrase'], { env: { ...withKey, BLUFIO_NEW_VAULT_KEY: 'second passphrase' } });
    assert.equal(changed.code, 0, changed.stderr);
    const json = JSON.parse((await runCli(['config', 'list-secrets', '--json'], { env: { ...env, BLUFIO_VAULT_KEY: 'second passphrase' } })).stdout) as { name: string; preview: string }[];
    assert.deepEqual(json.map((s) => [s.name, s.preview]), [['openai', 'sk-proj-...4f2b']]);
    const del = await runCli(['config', 'delete-secret', 'openai'], { env: { ...env, BLUFIO_VAULT_KEY: 'second passphrase' } });
    assert.equal(del.stdout, 'deleted openai\n');
    const again = await runCli(['config', 'delete-secret', 'openai'], { env: { ...env, BLUFIO_VAULT_KEY: 'second passphrase' } });
    assert.match(again.stderr, /^error\[KC_NOT_FOUND\]/);
  });
});
