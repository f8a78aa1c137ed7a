import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import Database from '../src/storage/driver.js';
import { selectSqlcipherV4 } from '../src/storage/sqlite.js';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { dbEncryptEnable, dbEncryptMigrate, dbEncryptStatus, exportVault, keyFor, readManifest, verifyVault } from '../src/dbcrypt/index.js';
import { forgetSecretEnv } from '../src/config/index.js';
import { cleanEnv, runCli, silentLogger, tmpDir } from './helpers/index.js';

/**
 * Whole-database encryption against a hostile or damaged vault directory: links in the
 * database's place, a database that vanished, files where directories belong and the reverse,
 * manifests that say two things, a prompt nobody answers. Each case was found by a review that
 * tried it; each test fails on the code before its fix.
 */

const PASS = 'hostile dbcrypt passphrase';
const MARK = 'PLAINTEXT-MARKER-c41d';
const env = { DBKEY: PASS };

async function open(dir: string, e: Record<string, string> = env, extra: Partial<Parameters<typeof openBlufio>[0]> = {}): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger: silentLogger(), env: e, ...extra });
}

async function plaintextDb(dir: string): Promise<void> {
  const app = await open(dir, {});
  const s = await app.sessions.create({ channel: 'test' });
  await app.messages.append(s.id, { role: 'user', content: MARK });
  await app.close();
}

const code = (c: string) => (e: { code?: string }) => e.code === c;

it('migrate refuses a database that is a symlink or has another hard link: the plaintext would survive under the other name', async () => {
  for (const link of ['symlink', 'hardlink'] as const) {
    const base = tmpDir();
    const dir = path.join(base, 'data');
    const other = path.join(base, 'otherdisk');
    fs.mkdirSync(other);
    await plaintextDb(dir);
    const real = path.join(other, 'real.db');
    fs.renameSync(path.join(dir, 'blufio.db'), real);
    if (link === 'symlink') fs.symlinkSync(real, path.join(dir, 'blufio.db'));
    else fs.linkSync(real, path.join(dir, 'blufio.db'));
    const manifest = fs.readFileSync(path.join(dir, 'vault.json'));
    await assert.rejects(dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env: { ...env } }), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'KC_DB_ENCRYPTION_MIGRATION_FAILED');
      assert.match(e.message!, link === 'symlink' ? /symbolic link/ : /hard link/);
      return true;
    });
    assert.ok(fs.readFileSync(path.join(dir, 'vault.json')).equals(manifest), `${link}: vault.json unchanged`);
    assert.equal(fs.readFileSync(real).subarray(0, 15).toString('latin1'), 'SQLite format 3', `${link}: the database is as it was`);
    assert.equal(fs.lstatSync(path.join(dir, 'blufio.db')).isSymbolicLink(), link === 'symlink');
  }
});

it('a migrated database that has gone missing is a mismatch: no open, unlock or verify makes a new one under another passphrase', async () => {
  const dir = path.join(tmpDir(), 'data');
  await plaintextDb(dir);
  await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 7, env: { ...env } });
  // Locked with the database open, then the file vanishes; unlock must not create one.
  const app = await open(dir);
  try {
    await app.lock();
    for (const f of ['blufio.db', 'blufio.db-wal', 'blufio.db-shm']) fs.rmSync(path.join(dir, f), { force: true });
    await assert.rejects(app.unlock({ passphrase: 'another passphrase' }), code('KC_DB_STATE_MISMATCH'));
    assert.equal(fs.existsSync(path.join(dir, 'blufio.db')), false);
  } finally {
    await app.close();
  }
  await assert.rejects(open(dir, { DBKEY: 'another passphrase' }), code('KC_DB_STATE_MISMATCH'));
  assert.equal(fs.existsSync(path.join(dir, 'blufio.db')), false, 'no new database was created');
  const v = await verifyVault(dir, { env: { DBKEY: 'another passphrase' } });
  assert.equal(v.ok, false);
  assert.ok(v.problems.some((p) => p.startsWith('KC_DB_STATE_MISMATCH')), JSON.stringify(v.problems));
  assert.equal((await dbEncryptStatus(dir)).consistent, false);
});

it('a prompt waiting for its answer holds no lock: another open of the directory goes ahead meanwhile', async () => {
  const dir = path.join(tmpDir(), 'data');
  fs.mkdirSync(dir, { recursive: true });
  await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } });
  await (await open(dir)).close(); // encrypted from birth
  let answer!: (p: string) => void;
  let asked!: () => void;
  const prompted = new Promise<void>((r) => (asked = r));
  const waiting = open(dir, {}, {
    askPassphrase: (purpose) => {
      if (purpose !== 'database') return Promise.resolve(undefined);
      asked();
      return new Promise<string>((r) => (answer = r));
    },
  });
  await prompted;
  // The vault directory's lock is free while the person types: this open would otherwise wait
  // for its lock timeout (here 1 s) and fail KC_DB_LOCK_TIMEOUT.
  fs.writeFileSync(path.join(dir, 'blufio.toml'), '[storage]\nlock_timeout_ms = 1000\n');
  try {
    const other = await openBlufio({ dataDir: dir, logger: silentLogger(), env: { ...env }, configPath: path.join(dir, 'blufio.toml') });
    await other.close();
  } finally {
    answer(PASS);
    await (await waiting).close();
  }
});

it('files where the vault expects others: a directory or a FIFO beside the database, the database a directory, a damaged lock file', async () => {
  // enable on a fresh directory that holds other things (objects/, lost+found, a FIFO): no EISDIR, no hang.
  const dir = path.join(tmpDir(), 'fresh');
  fs.mkdirSync(path.join(dir, 'objects'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'lost+found'));
  execFileSync('mkfifo', [path.join(dir, 'a-fifo')]);
  const r = await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } });
  assert.equal(r.db_encryption.state, 'encrypted');
  // The database's name taken by a directory: a clear code from every command, verify reports it.
  const d2 = path.join(tmpDir(), 'dbdir');
  fs.mkdirSync(path.join(d2, 'blufio.db'), { recursive: true });
  await assert.rejects(dbEncryptStatus(d2), code('KC_DB_OPEN_FAILED'));
  await assert.rejects(open(d2, {}), code('KC_DB_OPEN_FAILED'));
  const v = await verifyVault(d2);
  assert.equal(v.ok, false);
  assert.equal(v.manifest.valid, true);
  assert.match(v.problems[0]!, /^KC_DB_OPEN_FAILED: .*a directory/);
  // vault.lock overwritten with data: KC_DB_IO naming it, not KC_INTERNAL.
  const d3 = path.join(tmpDir(), 'lock');
  await plaintextDb(d3);
  fs.writeFileSync(path.join(d3, 'vault.lock'), 'not the lock file '.repeat(300));
  await assert.rejects(open(d3, {}), (e: { code?: string; message?: string }) => e.code === 'KC_DB_IO' && e.message!.includes('vault.lock'));
  await assert.rejects(dbEncryptStatus(d3), code('KC_DB_IO'));
});

it('a FIFO or a directory in place of -journal, -wal or -shm: db check and vault verify answer, name it, and call no healthy database damaged (review)', async () => {
  // A FIFO -journal hung every open (only -wal and -shm were checked) and vault verify; db
  // check's read-only look called a healthy file beside a FIFO -shm KC_DB_CORRUPT, and with a
  // refused vault.json it hung on the FIFO -journal.
  const healthy = path.join(tmpDir(), 'healthy');
  await plaintextDb(healthy);
  const cli = (args: string[]) => runCli(args, { env: cleanEnv(), timeoutMs: 30_000 });
  for (const [side, make] of [['journal', 'fifo'], ['wal', 'fifo'], ['shm', 'fifo'], ['wal', 'dir']] as const) {
    const dir = path.join(tmpDir(), `${side}-${make}`);
    fs.cpSync(healthy, dir, { recursive: true });
    const f = path.join(dir, `blufio.db-${side}`);
    if (make === 'fifo') execFileSync('mkfifo', [f]);
    else fs.mkdirSync(f);
    const check = await cli(['--data-dir', dir, 'db', 'check']);
    assert.equal(check.signal, null, `${side} ${make}: db check did not hang`);
    assert.match(check.stderr, /^error\[KC_DB_OPEN_FAILED\]: .* is not a regular file/m, `${side} ${make}`);
    assert.match(check.stdout, /status +REFUSED \(KC_DB_OPEN_FAILED\)\ninteg.*not checked: .* is not a regular file/, `${side} ${make}`);
    const verify = await cli(['vault', 'verify', dir]);
    assert.equal(verify.signal, null, `${side} ${make}: vault verify did not hang`);
    assert.equal(verify.code, 1);
    assert.match(verify.stdout, /KC_DB_OPEN_FAILED: .*blufio\.db-(journal|wal|shm) is not a regular file/, `${side} ${make}`);
    if (side === 'journal') {
      fs.writeFileSync(path.join(dir, 'vault.json'), '{"schema_version":3}', { mode: 0o600 });
      const refused = await cli(['--data-dir', dir, 'db', 'check', '--json']);
      assert.equal(refused.signal, null, 'db check of a refused vault did not hang');
      const out = JSON.parse(refused.stdout) as { error: { code: string }; integrity: string[] };
      assert.equal(out.error.code, 'KC_MANIFEST_INVALID');
      assert.match(out.integrity[0]!, /^not checked: .*-journal is not a regular file/);
    }
  }
});

it('a FIFO -journal with a migration\'s leftover copy, or a directory at a leftover\'s name: KC_DB_OPEN_FAILED naming it, never a hang or a bug (QA r10)', async () => {
  // Before: the FIFO hung migrate, status and openBlufio for ever with the vault's lock held (the
  // exclusive lock that judges a leftover copy stale opened the database unchecked); a directory
  // made every command exit 70 ("this is a bug") and openBlufio throw Node's ERR_FS_EISDIR.
  const healthy = path.join(tmpDir(), 'healthy');
  await plaintextDb(healthy);
  const cli = (args: string[]) => runCli(args, { env: cleanEnv({ DBKEY: env.DBKEY! }), timeoutMs: 30_000 });
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['fifo', (dir) => {
      execFileSync('mkfifo', [path.join(dir, 'blufio.db-journal')]);
      fs.writeFileSync(path.join(dir, 'blufio.db.encrypting'), '');
    }, /blufio\.db-journal is not a regular file/],
    ['migrate-fifo', (dir) => execFileSync('mkfifo', [path.join(dir, 'blufio.db-journal')]), /blufio\.db-journal is not a regular file/],
    ...['blufio.db.encrypting', 'blufio.db.encrypting-wal', '.vault.json.999999.abcdef.tmp'].map((name): [string, (dir: string) => void, RegExp] => [
      name,
      (dir) => fs.mkdirSync(path.join(dir, name)),
      new RegExp(`${name.replace(/\./g, '\\.')} is a directory, at a name blufio uses for a temporary file of its own`),
    ]),
  ];
  for (const [name, plant, says] of cases) {
    const dir = path.join(tmpDir(), 'v');
    fs.cpSync(healthy, dir, { recursive: true });
    plant(dir);
    const db = fs.readFileSync(path.join(dir, 'blufio.db'));
    const commands = name === 'migrate-fifo' ? [['vault', 'db-encrypt', 'migrate', dir, '--passphrase-env', 'DBKEY', '--now-ms', '1']] : [['vault', 'db-encrypt', 'status', dir], ['--data-dir', dir, 'sessions', 'list']];
    for (const args of commands) {
      const r = await cli(args);
      assert.equal(r.signal, null, `${name} ${args.join(' ')}: no hang`);
      assert.equal(r.code, 1, `${name} ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /KC_DB_OPEN_FAILED/, `${name} ${args.join(' ')}`);
      assert.match(r.stderr, says, `${name} ${args.join(' ')}`);
    }
    if (name !== 'migrate-fifo') await assert.rejects(open(dir), (e: { code?: string; message?: string }) => e.code === 'KC_DB_OPEN_FAILED' && says.test(e.message!));
    assert.ok(fs.readFileSync(path.join(dir, 'blufio.db')).equals(db), `${name}: the database is as it was`);
  }
  // Review r10: enable on an encrypted database checks the key with an open of its own, and the
  // directory's lock is itself a SQLite file: a FIFO beside either hung for ever.
  const enc = path.join(tmpDir(), 'enc');
  fs.cpSync(healthy, enc, { recursive: true });
  await dbEncryptMigrate(enc, { passphraseEnv: 'DBKEY', nowMs: 3, env: { ...env } });
  execFileSync('mkfifo', [path.join(enc, 'blufio.db-journal')]);
  const enable = await cli(['vault', 'db-encrypt', 'enable', enc, '--passphrase-env', 'DBKEY']);
  assert.equal(enable.signal, null, 'enable: no hang');
  assert.match(enable.stderr, /^error\[KC_DB_OPEN_FAILED\]: .*blufio\.db-journal is not a regular file/);
  fs.rmSync(path.join(enc, 'blufio.db-journal'));
  execFileSync('mkfifo', [path.join(enc, 'vault.lock-journal')]);
  for (const args of [['vault', 'db-encrypt', 'status', enc], ['--data-dir', enc, 'sessions', 'list']]) {
    const r = await cli(args);
    assert.equal(r.signal, null, `${args.join(' ')}: no hang`);
    assert.match(r.stderr, /^error\[KC_DB_IO\]: cannot lock .*vault\.lock: .*vault\.lock-journal is not a regular file/, r.stderr);
  }
});

it('vault.json that says two things (a key twice) or is a symlink is refused whole and left as it is', async () => {
  const dir = path.join(tmpDir(), 'data');
  await plaintextDb(dir);
  const file = path.join(dir, 'vault.json');
  const good = fs.readFileSync(file, 'utf8');
  const twice = good.replace('"state": "plaintext"', '"state": "encrypted", "st\\u0061te": "plaintext"');
  assert.notEqual(twice, good);
  fs.writeFileSync(file, twice);
  assert.throws(() => readManifest(dir), (e: { code?: string; message?: string }) => e.code === 'KC_MANIFEST_INVALID' && /"state" appears twice/.test(e.message!));
  await assert.rejects(open(dir, {}), code('KC_MANIFEST_INVALID'));
  assert.equal(fs.readFileSync(file, 'utf8'), twice);
  // A symlink to a manifest elsewhere, and a dangling one: neither is followed nor replaced.
  const elsewhere = path.join(tmpDir(), 'vault.json');
  fs.writeFileSync(elsewhere, good);
  fs.rmSync(file);
  fs.symlinkSync(elsewhere, file);
  await assert.rejects(dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } }), code('KC_MANIFEST_INVALID'));
  assert.equal(fs.lstatSync(file).isSymbolicLink(), true);
  assert.equal(fs.readFileSync(elsewhere, 'utf8'), good);
  fs.rmSync(elsewhere);
  await assert.rejects(open(dir, {}), code('KC_MANIFEST_INVALID'));
  assert.equal(fs.lstatSync(file).isSymbolicLink(), true, 'a dangling link is not "no manifest": nothing was written over it');
});

it('export and verify: a path that is not a vault is an error; export needs a manifest (no made-up vault id); verify exits with the telling code', async () => {
  await assert.rejects(async () => exportVault(path.join(tmpDir(), 'no', 'such', 'dir')), code('KC_NOT_FOUND'));
  const empty = tmpDir();
  await assert.rejects(async () => exportVault(empty), code('KC_NOT_FOUND'));
  await assert.rejects(verifyVault(path.join(empty, 'nope')), code('KC_NOT_FOUND'));
  const dir = path.join(tmpDir(), 'data');
  await plaintextDb(dir);
  await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 9, env: { ...env } });
  const a = exportVault(dir);
  assert.deepEqual(exportVault(dir), a);
  const cli = (e: Record<string, string>) => runCli(['vault', 'verify', dir], { env: cleanEnv(e) });
  assert.match((await cli({ DBKEY: 'the wrong one' })).stderr, /error\[KC_DB_KEY_INVALID\]/);
  assert.match((await cli({})).stderr, /error\[KC_DB_LOCKED\]/);
  assert.equal((await cli({ DBKEY: PASS })).code, 0);
  const f = path.join(dir, 'blufio.db');
  const bytes = fs.readFileSync(f);
  bytes[4096 + 200] = bytes[4096 + 200]! ^ 0x10;
  fs.writeFileSync(f, bytes);
  assert.match((await cli({ DBKEY: PASS })).stderr, /error\[KC_DB_CORRUPT\]/);
  const m = JSON.parse(fs.readFileSync(path.join(dir, 'vault.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'vault.json'), JSON.stringify({ ...m, schema_version: 99 }));
  assert.match((await cli({ DBKEY: PASS })).stderr, /error\[KC_MANIFEST_TOO_NEW\]/);
});

it('a table called __proto__ is migrated, counted and recorded like any other', async () => {
  const dir = path.join(tmpDir(), 'data');
  await plaintextDb(dir);
  const db = new Database(path.join(dir, 'blufio.db'));
  db.exec('CREATE TABLE "__proto__" (x); INSERT INTO "__proto__" VALUES (1), (2), (3)');
  db.close();
  const r = await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 11, env: { ...env } });
  assert.equal(Object.getOwnPropertyDescriptor(r.event!.tables, '__proto__')?.value, 3);
  const recorded = JSON.parse(fs.readFileSync(path.join(dir, 'vault.json'), 'utf8')).db_encryption.last_migration.tables;
  assert.equal(Object.getOwnPropertyDescriptor(recorded, '__proto__')?.value, 3);
});

it('verify and enable after a daemon ran: its lock file is no database; every problem verify lists carries its code', async () => {
  const dir = path.join(tmpDir(), 'data');
  fs.mkdirSync(dir, { recursive: true });
  // What a daemon leaves: daemon.lock, an empty SQLite file (it holds SQLite's lock).
  const lock = new Database(path.join(dir, 'daemon.lock'));
  lock.pragma('journal_mode = OFF');
  lock.exec('BEGIN EXCLUSIVE; COMMIT');
  lock.close();
  const r = await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } });
  assert.equal(r.db_encryption.state, 'encrypted');
  // A healthy vault with a leftover manifest write, and a database too short for its salt.
  const d2 = path.join(tmpDir(), 'data');
  await plaintextDb(d2);
  await dbEncryptMigrate(d2, { passphraseEnv: 'DBKEY', nowMs: 3, env: { ...env } });
  fs.writeFileSync(path.join(d2, '.vault.json.99999999.tmp'), '{}');
  const v = await verifyVault(d2, { env: { ...env } });
  assert.ok(v.problems.length > 0 && v.problems.every((p) => /^KC_[A-Z_]+: /.test(p)), JSON.stringify(v.problems));
  assert.match((await runCli(['vault', 'verify', d2], { env: cleanEnv(env) })).stderr, /error\[KC_DB_STATE_MISMATCH\]/);
  // A leftover beside a wrong key: the key is what a script must hear about.
  assert.match((await runCli(['vault', 'verify', d2], { env: cleanEnv({ DBKEY: 'wrong' }) })).stderr, /error\[KC_DB_KEY_INVALID\]/);
  fs.rmSync(path.join(d2, '.vault.json.99999999.tmp'));
  fs.truncateSync(path.join(d2, 'blufio.db'), 10);
  const short = await verifyVault(d2, { env: { ...env } });
  assert.deepEqual(short.problems, ['KC_DB_CORRUPT: the database file is too short to hold its salt']);
});

it('no prompt before an error that needs none: a config naming another database file than vault.json', async () => {
  const dir = path.join(tmpDir(), 'data');
  fs.mkdirSync(dir, { recursive: true });
  await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } });
  await (await open(dir)).close();
  fs.writeFileSync(path.join(dir, 'blufio.toml'), `[storage]\ndatabase_path = ${JSON.stringify(path.join(dir, 'other.db'))}\n`);
  let asked = 0;
  await assert.rejects(
    openBlufio({ logger: silentLogger(), env: {}, configPath: path.join(dir, 'blufio.toml'), askPassphrase: async () => (asked++, PASS) }),
    code('KC_CONFIG_INVALID'),
  );
  assert.equal(asked, 0);
});

it('verify fails with the code an open fails with when the file disagrees with vault.json, whatever else it finds', async () => {
  const dir = path.join(tmpDir(), 'data');
  await plaintextDb(dir);
  await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } });
  const pending = fs.readFileSync(path.join(dir, 'vault.json'));
  await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 13, env: { ...env } });
  const verifyCode = async (): Promise<string | undefined> => /error\[(KC_[A-Z_]+)\]/.exec((await runCli(['vault', 'verify', dir], { env: cleanEnv(env) })).stderr)?.[1];
  const openCode = async (): Promise<string | undefined> => /error\[(KC_[A-Z_]+)\]/.exec((await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv(env) })).stderr)?.[1];
  // An old vault.json (migration pending) restored over the encrypted database.
  const migrated = fs.readFileSync(path.join(dir, 'vault.json'));
  fs.writeFileSync(path.join(dir, 'vault.json'), pending);
  assert.equal(await openCode(), 'KC_DB_STATE_MISMATCH');
  assert.equal(await verifyCode(), 'KC_DB_STATE_MISMATCH');
  // vault.json gone: the encrypted file cannot be told from damage.
  fs.rmSync(path.join(dir, 'vault.json'));
  assert.equal(await openCode(), 'KC_DB_CORRUPT');
  assert.equal(await verifyCode(), 'KC_DB_CORRUPT');
  fs.writeFileSync(path.join(dir, 'vault.json'), migrated);
  assert.equal((await verifyVault(dir, { env: { ...env } })).code, null);
});

it('a new database passphrase holding U+FFFD (bytes that were not UTF-8) is refused wherever one is chosen; an existing key still opens', async () => {
  const mangled = { DBKEY: 'db \uFFFD\uFFFD passphrase' };
  const isFffd = (e: { code?: string; message?: string }) => e.code === 'KC_INVALID_INPUT' && /U\+FFFD/.test(e.message ?? '');
  // Over a plaintext database: enable and migrate refuse, nothing changes.
  const dir = path.join(tmpDir(), 'data');
  await plaintextDb(dir);
  const manifest = fs.readFileSync(path.join(dir, 'vault.json'));
  const db = fs.readFileSync(path.join(dir, 'blufio.db'));
  await assert.rejects(dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...mangled } }), isFffd);
  await assert.rejects(dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env: { ...mangled } }), isFffd);
  assert.ok(fs.readFileSync(path.join(dir, 'vault.json')).equals(manifest), 'vault.json unchanged');
  assert.ok(fs.readFileSync(path.join(dir, 'blufio.db')).equals(db), 'the plaintext database unchanged');
  // A migration recorded with a good variable, run with a mangled one: refused, still plaintext.
  await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env: { ...env } });
  await assert.rejects(dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env: { ...mangled } }), isFffd);
  assert.equal(fs.readFileSync(path.join(dir, 'blufio.db')).subarray(0, 15).toString('latin1'), 'SQLite format 3');
  // No database yet: enable and migrate refuse, and so does the open that would create it.
  const fresh = path.join(tmpDir(), 'fresh');
  fs.mkdirSync(fresh);
  await assert.rejects(dbEncryptEnable(fresh, { passphraseEnv: 'DBKEY', env: { ...mangled } }), isFffd);
  await assert.rejects(dbEncryptMigrate(fresh, { passphraseEnv: 'DBKEY', nowMs: 1, env: { ...mangled } }), isFffd);
  await dbEncryptEnable(fresh, { passphraseEnv: 'DBKEY', env: { ...env } });
  await assert.rejects(open(fresh, { ...mangled }), isFffd);
  assert.equal(fs.existsSync(path.join(fresh, 'blufio.db')), false, 'no database was created');
  // A lone surrogate becomes the same bytes as U+FFFD (second review): refused too, for the
  // database and for the vault.
  await assert.rejects(keyFor(path.join(fresh, 'new.db'), 'db \uD800 passphrase'), isFffd);
  const v = await openBlufio({ dataDir: path.join(tmpDir(), 'v'), logger: silentLogger(), env: {}, passphrase: 'vault \uDC00 passphrase' });
  try {
    await assert.rejects(v.vault.set('k', 'value-0123456789'), isFffd);
  } finally {
    await v.close();
  }
  // A database made before this check with such a passphrase (here: by the stock key pragma) still opens.
  const old = path.join(tmpDir(), 'old');
  fs.mkdirSync(old);
  await dbEncryptEnable(old, { passphraseEnv: 'DBKEY', env: { ...env } });
  const raw = new Database(path.join(old, 'blufio.db'));
  selectSqlcipherV4(raw);
  raw.pragma(`key = '${mangled.DBKEY}'`);
  raw.exec('CREATE TABLE t(x); DROP TABLE t');
  raw.close();
  const app = await open(old, { ...mangled });
  await app.close();
});

it('a database key taken from the environment for one directory is not used on another whose vault.json names the same variable', async () => {
  const A = path.join(tmpDir(), 'a');
  const B = path.join(tmpDir(), 'b');
  fs.mkdirSync(A);
  fs.mkdirSync(B);
  const passA = 'database a passphrase';
  const passB = 'database b passphrase';
  await dbEncryptEnable(B, { passphraseEnv: 'DBKEY', env: { DBKEY: passB } });
  await (await open(B, { DBKEY: passB })).close();
  await dbEncryptEnable(A, { passphraseEnv: 'DBKEY', env: { DBKEY: passA } });
  process.env.DBKEY = passA;
  try {
    // Through process.env, as a CLI or daemon: taken out of it.
    await (await openBlufio({ dataDir: A, logger: silentLogger() })).close();
    assert.equal(process.env.DBKEY, undefined);
    let asked = 0;
    const b = await openBlufio({
      dataDir: B,
      logger: silentLogger(),
      askPassphrase: (purpose) => {
        if (purpose !== 'database') return Promise.resolve(undefined);
        asked++;
        return Promise.resolve(passB);
      },
    });
    await b.close();
    assert.equal(asked, 1, "B's key was asked for, not A's used");
    // A again in the same process: its key is still at hand.
    await (await openBlufio({ dataDir: A, logger: silentLogger() })).close();
  } finally {
    delete process.env.DBKEY;
    forgetSecretEnv();
  }
});
