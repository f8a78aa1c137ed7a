import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio, type BlufioApp } from '../src/index.js';
import {
  canonicalJson,
  dbEncryptEnable,
  dbEncryptMigrate,
  dbEncryptStatus,
  EXPORT_SCHEMA,
  exportVault,
  MIGRATION_STEPS,
  readManifest,
  validate,
  verifyVault,
} from '../src/dbcrypt/index.js';
import { CLI, cleanEnv, run, fixture, runCli, runShell, silentLogger, sleep, startFixture, tmpDir } from './helpers/index.js';

const PASS = "correct horse 'battery' staple ✓";
const MARK = 'PLAINTEXT-MARKER-7f3a91';
const env = { DBKEY: PASS };

const V1 = { schema_version: 1, vault_id: '01JD3XK8Q9ZB7Y6W5V4T3S2R1P', created_at_ms: 1700000000000, database_file: 'blufio.db' };
const V2 = { ...V1, schema_version: 2, object_store: { enabled: true, dir: 'objects', encryption: { enabled: true, algorithm: 'aes-256-gcm' } } };
const V3 = {
  ...V2,
  schema_version: 3,
  db_encryption: {
    enabled: true,
    mode: 'sqlcipher_v4',
    kdf: { algorithm: 'pbkdf2_hmac_sha512', iterations: 256000 },
    key_reference: 'env:DBKEY',
    state: 'encrypted',
  },
};

function vaultWith(doc: unknown): string {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'vault.json'), typeof doc === 'string' ? doc : JSON.stringify(doc));
  return dir;
}

async function open(dir: string, e: Record<string, string> = env): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger: silentLogger(), env: e });
}

/** A plaintext vault with sessions and messages that carry MARK. */
async function plaintextVault(messages = 50): Promise<{ dir: string; sessionId: string }> {
  const dir = path.join(tmpDir(), 'data');
  const app = await open(dir, {});
  const s = await app.sessions.create({ channel: 'test', metadata: { note: MARK } });
  for (let i = 0; i < messages; i++) await app.messages.append(s.id, { role: 'user', content: `${MARK} message ${i} ✓ 🙂` });
  await app.close();
  return { dir, sessionId: s.id };
}

/**
 * The directory's files, sorted, without the lock file every vault directory gets (vault.lock)
 * and the directory of owners' lock files that a killed process leaves (blufio.db.owners).
 */
function files(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n !== 'vault.lock' && n !== 'blufio.db.owners').sort();
}

/** No file in the directory holds the marker (the database, its WAL, leftovers, the manifest). */
function assertNoPlaintext(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const f = path.join(dir, name);
    if (!fs.statSync(f).isFile()) continue;
    const bytes = fs.readFileSync(f);
    assert.equal(bytes.includes(MARK), false, `${name} holds plaintext`);
    if (name.startsWith('blufio.db')) assert.equal(bytes.subarray(0, 16).toString('latin1') === 'SQLite format 3\0', false, `${name} is a plaintext SQLite file`);
  }
}

async function messagesIn(dir: string, sessionId: string): Promise<string[]> {
  const app = await open(dir);
  try {
    return (await app.messages.list(sessionId, { limit: 1000 })).map((m) => m.content);
  } finally {
    await app.close();
  }
}

describe('vault.json schema registry', () => {
  it('opens v1, v2 and v3 manifests and normalises them to the v3 model', () => {
    const m1 = readManifest(vaultWith(V1))!;
    assert.equal(m1.sourceVersion, 1);
    assert.equal(m1.manifest.schema_version, 3);
    assert.equal(m1.manifest.vault_id, V1.vault_id);
    assert.deepEqual(m1.manifest.object_store, { enabled: false, dir: 'objects', encryption: { enabled: false, algorithm: 'aes-256-gcm' } });
    assert.equal(m1.manifest.db_encryption.state, 'plaintext');
    assert.equal(m1.manifest.db_encryption.enabled, false);
    const m2 = readManifest(vaultWith(V2))!;
    assert.equal(m2.sourceVersion, 2);
    assert.deepEqual(m2.manifest.object_store, V2.object_store);
    assert.equal(m2.manifest.db_encryption.enabled, false);
    const m3 = readManifest(vaultWith(V3))!;
    assert.equal(m3.sourceVersion, 3);
    assert.deepEqual(m3.manifest.db_encryption, V3.db_encryption);
  });

  it('refuses a manifest from a future version, and every malformed one, whole and without changing it', async () => {
    const cases: [unknown, string][] = [
      [{ ...V3, schema_version: 4 }, 'KC_MANIFEST_TOO_NEW'],
      [{ ...V3, schema_version: 99 }, 'KC_MANIFEST_TOO_NEW'],
      ['{"schema_version": 3,', 'KC_MANIFEST_INVALID'],
      ['[]', 'KC_MANIFEST_INVALID'],
      ['null', 'KC_MANIFEST_INVALID'],
      [{ ...V3, schema_version: '3' }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, schema_version: 0 }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, schema_version: 2.5 }, 'KC_MANIFEST_INVALID'],
      [{ ...V1, extra: true }, 'KC_MANIFEST_INVALID'],
      [{ ...V1, vault_id: "x'; DROP TABLE sessions; --" }, 'KC_MANIFEST_INVALID'],
      [{ ...V1, database_file: '../etc/passwd' }, 'KC_MANIFEST_INVALID'],
      [{ ...V1, database_file: '..' }, 'KC_MANIFEST_INVALID'],
      [{ ...V2, schema_version: 1 }, 'KC_MANIFEST_INVALID'], // v1 has no object_store
      [{ ...V3, schema_version: 2 }, 'KC_MANIFEST_INVALID'], // v2 has no db_encryption
      [{ ...V3, db_encryption: { ...V3.db_encryption, mode: 'sqlcipher_v3' } }, 'KC_DB_ENCRYPTION_UNSUPPORTED'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, mode: 'aes256gcm' } }, 'KC_DB_ENCRYPTION_UNSUPPORTED'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, mode: 4 } }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, kdf: { algorithm: 'pbkdf2_hmac_sha1', iterations: 64000 } } }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, key_reference: 'env:A B' } }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, key_reference: 'file:/etc/key' } }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, enabled: false } }, 'KC_MANIFEST_INVALID'], // disabled yet encrypted
      [{ ...V3, db_encryption: { ...V3.db_encryption, state: 'plaintext' } }, 'KC_MANIFEST_INVALID'], // enabled yet plaintext
      [{ ...V3, db_encryption: { ...V3.db_encryption, pending: { salt_hex: '00'.repeat(16), now_ms: 1 } } }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, db_encryption: { ...V3.db_encryption, state: 'unknown' } }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, created_at_ms: -1 }, 'KC_MANIFEST_INVALID'],
      [{ ...V3, created_at_ms: 1e300 }, 'KC_MANIFEST_INVALID'],
      // Past 2^53 JSON.parse rounds: refused, not rewritten as another number.
      ...[{ bytes_before: 7777 }, { bytes_after: 7777 }, { tables: { messages: 7777 } }].map((over): [string, string] => {
        const event = { event: 'db_encryption_migrated', at_ms: 5, mode: 'sqlcipher_v4', database_file: 'blufio.db', tables: { messages: 3 }, bytes_before: 4096, bytes_after: 8192, ...over };
        const doc = JSON.stringify({ ...V3, db_encryption: { ...V3.db_encryption, last_migration: event } });
        return [doc.replace('7777', '123456789012345678901'), 'KC_MANIFEST_INVALID'];
      }),
    ];
    for (const [doc, code] of cases) {
      const dir = vaultWith(doc);
      const before = fs.readFileSync(path.join(dir, 'vault.json'));
      assert.throws(
        () => readManifest(dir),
        // The hint names a command that reads such a file (vault export refuses it too).
        (e: { code?: string; hint?: string }) => e.code === code && (code !== 'KC_MANIFEST_INVALID' || e.hint!.includes(`blufio vault verify ${dir} lists`)),
        JSON.stringify(doc).slice(0, 120),
      );
      // Every command that reads the vault refuses the same way, and nothing is rewritten.
      await assert.rejects(dbEncryptStatus(dir), (e: { code?: string }) => e.code === code);
      assert.deepEqual(fs.readFileSync(path.join(dir, 'vault.json')), before);
      assert.deepEqual(files(dir), ['vault.json']);
    }
    const notUtf8 = vaultWith('');
    fs.writeFileSync(path.join(notUtf8, 'vault.json'), Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    assert.throws(() => readManifest(notUtf8), /not UTF-8/);
    const huge = vaultWith(`{"schema_version":1,"pad":"${'x'.repeat(2 * 1024 * 1024)}"}`);
    assert.throws(() => readManifest(huge), (e: { code?: string }) => e.code === 'KC_MANIFEST_INVALID');
  });

  it('the schema files are themselves valid and the export report schema refers to v3', () => {
    assert.deepEqual(validate(EXPORT_SCHEMA, { report: 'x' }).length > 0, true);
    const report = exportVault(vaultWith(V3));
    assert.deepEqual(validate(EXPORT_SCHEMA, JSON.parse(JSON.stringify(report))), []);
    const broken = { ...report, manifest: { ...report.manifest, schema_version: 2 } };
    assert.ok(validate(EXPORT_SCHEMA, broken).some((p) => p.path.startsWith('/manifest')));
  });

  it('serialises deterministically: sorted keys, same bytes for the same state; writing makes v3', async () => {
    const a = canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } });
    assert.equal(a, '{\n  "a": {\n    "c": null,\n    "d": [\n      3,\n      {\n        "y": 2,\n        "z": 1\n      }\n    ]\n  },\n  "b": 1\n}\n');
    const dir = vaultWith(V1);
    await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    const written = fs.readFileSync(path.join(dir, 'vault.json'), 'utf8');
    const doc = JSON.parse(written) as Record<string, unknown>;
    assert.equal(doc.schema_version, 3);
    assert.equal(doc.vault_id, V1.vault_id, 'the vault keeps its identity across versions');
    assert.equal(written, canonicalJson(doc));
    assert.deepEqual(Object.keys(doc), [...Object.keys(doc)].sort());
    const r1 = await runCli(['vault', 'export', dir]);
    const r2 = await runCli(['vault', 'export', dir]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r1.stdout, r2.stdout);
    const s1 = await runCli(['vault', 'db-encrypt', 'status', dir, '--json']);
    const s2 = await runCli(['vault', 'db-encrypt', 'status', dir, '--json']);
    assert.equal(s1.stdout, s2.stdout);
    assert.equal(s1.stdout, canonicalJson(JSON.parse(s1.stdout)));
  });
});

describe('encrypted database', () => {
  it('is encrypted from birth when enabled before the database exists; right key opens, wrong key and no key do not', async () => {
    const dir = path.join(tmpDir(), 'data');
    fs.mkdirSync(dir);
    const en = await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    assert.equal(en.db_encryption.state, 'encrypted');
    assert.equal(en.db_encryption.key_reference, 'env:DBKEY');
    let app = await open(dir);
    const s = await app.sessions.create({ channel: 'c', metadata: { note: MARK } });
    await app.messages.append(s.id, { role: 'user', content: MARK });
    await app.vault.set('api', `${MARK}-secret`).catch(() => undefined);
    const backup = path.join(tmpDir(), 'b.db');
    await app.db.backup(backup);
    await app.close();
    assertNoPlaintext(dir);
    assert.equal(fs.readFileSync(backup).includes(MARK), false, 'a backup of an encrypted database is encrypted');
    const b = new Database(backup, { readonly: true });
    b.pragma("cipher = 'sqlcipher'");
    b.pragma('legacy = 4');
    b.pragma(`key = '${PASS.replaceAll("'", "''")}'`);
    assert.equal(b.prepare('SELECT count(*) FROM messages').pluck().get(), 1, 'the backup opens with the passphrase alone');
    b.close();

    assert.deepEqual(await messagesIn(dir, s.id), [MARK]);
    await assert.rejects(open(dir, { DBKEY: 'wrong passphrase' }), (e: { code?: string }) => e.code === 'KC_DB_KEY_INVALID');
    await assert.rejects(open(dir, {}), (e: { code?: string }) => e.code === 'KC_DB_LOCKED');
    const r = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ DBKEY: 'nope' }) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /KC_DB_KEY_INVALID/);
    const ok = await runCli(['--data-dir', dir, 'sessions', 'list', '--json'], { env: cleanEnv({ DBKEY: PASS }) });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(s.id));
    for (const name of fs.readdirSync(dir)) assert.equal(fs.statSync(path.join(dir, name)).mode & 0o077, 0, `${name} is private`);
  });

  it('one passphrase for both: a key recorded as env:BLUFIO_VAULT_KEY (or its _FILE) opens the database and the vault headless', async () => {
    const dir = path.join(tmpDir(), 'data');
    const one = cleanEnv({ BLUFIO_VAULT_KEY: PASS });
    const set = await runCli(['--data-dir', dir, 'config', 'set-secret', 'api'], { env: one, input: `${MARK}-secret\n` });
    assert.equal(set.code, 0, set.stderr);
    const mig = await runCli(['vault', 'db-encrypt', 'migrate', dir, '--passphrase-env', 'BLUFIO_VAULT_KEY', '--now-ms', '1'], { env: one });
    assert.equal(mig.code, 0, mig.stderr);
    assertNoPlaintext(dir);
    for (const e of [one, cleanEnv({ BLUFIO_VAULT_KEY_FILE: keyFile(PASS) })]) {
      const r = await runCli(['--data-dir', dir, 'config', 'list-secrets', '--json'], { env: e });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /"api"/);
    }
    const none = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv() });
    assert.match(none.stderr, /^error\[KC_DB_LOCKED\]/m);
  });

  it('one passphrase for both: a vault passphrase change is refused until the database has a variable of its own, then works (QA review)', async () => {
    // The change went through and left no value of BLUFIO_VAULT_KEY that opened both: the
    // database kept the old passphrase, and a service started headless could open neither.
    const dir = path.join(tmpDir(), 'data');
    fs.mkdirSync(dir, { mode: 0o700 });
    const one = cleanEnv({ BLUFIO_VAULT_KEY: PASS });
    assert.equal((await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'BLUFIO_VAULT_KEY'], { env: one })).code, 0);
    assert.equal((await runCli(['--data-dir', dir, 'config', 'set-secret', 'api'], { env: one, input: `${MARK}-secret\n` })).code, 0);
    const refused = await runCli(['--data-dir', dir, 'vault', 'change-passphrase'], { env: { ...one, BLUFIO_NEW_VAULT_KEY: `${PASS} 2` } });
    assert.match(refused.stderr, /^error\[KC_INVALID_INPUT\]: the encrypted database's key comes from BLUFIO_VAULT_KEY too/m);
    assert.match(refused.stderr, /--passphrase-env BLUFIO_DB_KEY/);
    assert.notEqual(refused.code, 0);
    const still = await runCli(['--data-dir', dir, 'config', 'list-secrets', '--json'], { env: one });
    assert.equal(still.code, 0, still.stderr);
    // What the hint says: the database gets its own variable (its key checked), then the change.
    const own = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'BLUFIO_DB_KEY'], { env: cleanEnv({ BLUFIO_DB_KEY: PASS }) });
    assert.equal(own.code, 0, own.stderr);
    const changed = await runCli(['--data-dir', dir, 'vault', 'change-passphrase'], { env: { ...one, BLUFIO_DB_KEY: PASS, BLUFIO_NEW_VAULT_KEY: `${PASS} 2` } });
    assert.equal(changed.code, 0, changed.stderr);
    const after = await runCli(['--data-dir', dir, 'config', 'list-secrets', '--json'], { env: cleanEnv({ BLUFIO_VAULT_KEY: `${PASS} 2`, BLUFIO_DB_KEY: PASS }) });
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /"api"/);
  });

  it('refuses a database that does not match vault.json, in both directions', async () => {
    const { dir } = await plaintextVault(1);
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'vault.json'), 'utf8')) as typeof V3;
    fs.writeFileSync(path.join(dir, 'vault.json'), JSON.stringify({ ...m, db_encryption: { ...V3.db_encryption } }));
    await assert.rejects(open(dir), (e: { code?: string }) => e.code === 'KC_DB_STATE_MISMATCH');
    const enc = path.join(tmpDir(), 'data');
    fs.mkdirSync(enc);
    await dbEncryptEnable(enc, { passphraseEnv: 'DBKEY', env });
    await (await open(enc)).close();
    fs.rmSync(path.join(enc, 'vault.json'));
    await assert.rejects(
      open(enc),
      (e: { code?: string; message?: string }) => e.code === 'KC_DB_CORRUPT' && /vault\.json is missing/.test(e.message ?? ''),
      'an encrypted file without its manifest is not taken for plaintext',
    );
    assert.deepEqual(files(enc), ['blufio.db'], 'and no manifest is written for it');
  });
});

describe('db-encrypt migrate', () => {
  it('--passphrase-env naming a _FILE variable is refused: its path would have become the passphrase (QA r10)', async () => {
    const { dir } = await plaintextVault();
    const keyFile = path.join(tmpDir(), 'dbkey');
    fs.writeFileSync(keyFile, PASS, { mode: 0o600 });
    const manifest = fs.readFileSync(path.join(dir, 'vault.json'));
    const env = cleanEnv({ DBKEY_FILE: keyFile });
    for (const args of [['enable'], ['migrate', '--now-ms', '1']]) {
      const r = await runCli(['vault', 'db-encrypt', args[0]!, dir, '--passphrase-env', 'DBKEY_FILE', ...args.slice(1)], { env });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /^error\[KC_INVALID_INPUT\]: --passphrase-env names a variable ending in _FILE/);
      assert.match(r.stderr, /hint: give the name without _FILE/);
      assert.ok(fs.readFileSync(path.join(dir, 'vault.json')).equals(manifest), 'nothing was recorded');
    }
    // The name without it reads the file.
    const en = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY', '--json'], { env });
    assert.equal(en.code, 0, en.stderr);
    assert.equal((JSON.parse(en.stdout) as { db_encryption: { key_reference: string } }).db_encryption.key_reference, 'env:DBKEY');
  });

  it('enable records the intent, opens refuse until migrate, and migrate leaves one verified encrypted database', async () => {
    const { dir, sessionId } = await plaintextVault();
    const before = await messagesIn(dir, sessionId);
    const en = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY', '--json'], { env: cleanEnv({ DBKEY: PASS }) });
    assert.equal(en.code, 0, en.stderr);
    assert.equal((JSON.parse(en.stdout) as { db_encryption: { state: string } }).db_encryption.state, 'pending_migration');
    await assert.rejects(open(dir), (e: { code?: string; message?: string }) => e.code === 'KC_DB_ENCRYPTION_PENDING');
    const cli = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ DBKEY: PASS }) });
    assert.match(cli.stderr, /KC_DB_ENCRYPTION_PENDING[\s\S]*db-encrypt migrate/);

    const r = await runCli(['vault', 'db-encrypt', 'migrate', dir, '--passphrase-env', 'DBKEY', '--now-ms', '1700000000123', '--json'], {
      env: cleanEnv({ DBKEY: PASS }),
    });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { migrated: boolean; event: Record<string, unknown>; db_encryption: { state: string } };
    assert.equal(out.migrated, true);
    assert.equal(out.db_encryption.state, 'encrypted');
    assert.equal(out.event.at_ms, 1700000000123);
    assert.deepEqual(Object.keys(out.event), ['at_ms', 'bytes_after', 'bytes_before', 'database_file', 'event', 'mode', 'tables']);
    assert.equal((out.event.tables as Record<string, number>).messages, 50);
    assert.equal(r.stdout, canonicalJson(out));
    assert.deepEqual(files(dir), ['blufio.db', 'vault.json'], 'no plaintext database, WAL, copy or .pre-encrypt file is left');
    assertNoPlaintext(dir);
    assert.deepEqual(await messagesIn(dir, sessionId), before);

    const v = await runCli(['vault', 'verify', dir, '--json'], { env: cleanEnv({ DBKEY: PASS }) });
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const vr = JSON.parse(v.stdout) as { ok: boolean; integrity: string[]; cipher_check: { pages: number; bad_pages: number[] } };
    assert.deepEqual(vr.integrity, ['ok']);
    assert.ok(vr.cipher_check.pages > 10);
    assert.deepEqual(vr.cipher_check.bad_pages, []);
    const x = await runCli(['vault', 'export', dir]);
    const xr = JSON.parse(x.stdout) as { manifest: { db_encryption: { state: string; last_migration: { at_ms: number } } } };
    assert.equal(xr.manifest.db_encryption.state, 'encrypted');
    assert.equal(xr.manifest.db_encryption.last_migration.at_ms, 1700000000123);
    assert.deepEqual(validate(EXPORT_SCHEMA, xr), []);

    // Again: nothing to do, and a wrong passphrase is told apart.
    const again = await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env });
    assert.equal(again.migrated, false);
    await assert.rejects(dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env: { DBKEY: 'wrong' } }), (e: { code?: string }) => e.code === 'KC_DB_KEY_INVALID');
  });

  it("the hints' commands paste into a shell as they are, for a data directory whose name a shell would split or run (QA r9)", async () => {
    // Before, the path went into the command bare: this one would have run `touch` and split.
    const parent = tmpDir();
    const dir = path.join(parent, `it's my "data" $(touch pwned); x`);
    const app = await open(dir, {});
    await app.close();
    await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    const hint = await open(dir).then(
      () => assert.fail('opened a database waiting for its migration'),
      (e: { code?: string; hint?: string }) => {
        assert.equal(e.code, 'KC_DB_ENCRYPTION_PENDING');
        return e.hint ?? '';
      },
    );
    const command = hint.replace(/^run: /, '');
    assert.ok(command.startsWith('blufio vault db-encrypt migrate '), hint);
    // The command exactly as a user would paste it, `blufio` being this build's CLI.
    const sh = await runShell(command, { env: cleanEnv({ DBKEY: PASS }), cwd: parent });
    assert.equal(sh.code, 0, sh.stdout + sh.stderr);
    assert.deepEqual(fs.readdirSync(parent), [path.basename(dir)], 'nothing but the data directory: no "pwned", no "x"');
    assert.equal((await dbEncryptStatus(dir)).db_encryption.state, 'encrypted');

    // vault.json refused: the hint names `vault verify <dir>`, which runs on that directory.
    fs.writeFileSync(path.join(dir, 'vault.json'), '{"schema_version": 3');
    const bad = await open(dir).then(
      () => assert.fail('opened with a broken vault.json'),
      (e: { code?: string; hint?: string }) => e.hint ?? '',
    );
    const verify = /blufio vault verify (.*) lists its problems/.exec(bad)?.[1];
    assert.ok(verify !== undefined, bad);
    const v = await runShell(`blufio vault verify ${verify} --json`, { env: cleanEnv(), cwd: parent });
    assert.equal((JSON.parse(v.stdout) as { vault_path: string }).vault_path, dir);
    assert.deepEqual(fs.readdirSync(parent), [path.basename(dir)]);
  });

  it('the database passphrase is redacted while the database is open, and forgotten by lock() (QA r9)', async () => {
    const { dir } = await plaintextVault(1);
    await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env });
    const app = await open(dir);
    try {
      const s = await app.sessions.create({ channel: 'c' });
      const m = await app.messages.append(s.id, { role: 'user', content: `the database key is ${PASS}` });
      assert.equal(m.content, 'the database key is [REDACTED:vault]');
      await app.lock();
      assert.equal(app.redactor.redact(PASS), PASS, 'locked: no passphrase kept');
      await app.unlock({ databasePassphrase: PASS });
      assert.equal(app.redactor.redact(`x ${PASS}`), 'x [REDACTED:vault]');
    } finally {
      await app.close();
    }
    assert.equal(app.redactor.redact(PASS), PASS, 'closed: forgotten (review r9)');
    for (const f of files(dir)) assert.equal(fs.readFileSync(path.join(dir, f)).indexOf(Buffer.from('staple')), -1, f);
  });

  it('verify finds tampering with one page, and a wrong key', async () => {
    const { dir } = await plaintextVault(5);
    await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 5, env });
    const f = path.join(dir, 'blufio.db');
    const bytes = fs.readFileSync(f);
    bytes[4096 * 2 + 100] = bytes[4096 * 2 + 100]! ^ 0x01;
    fs.writeFileSync(f, bytes);
    const r = await verifyVault(dir, { env });
    assert.equal(r.ok, false);
    assert.deepEqual(r.cipher_check?.bad_pages, [3]);
    const w = await verifyVault(dir, { env: { DBKEY: 'wrong' } });
    assert.equal(w.ok, false);
    assert.equal(w.cipher_check?.bad_pages.length, w.cipher_check?.pages);
  });

  it('refuses while another process holds the database, leaving the plaintext database untouched', async () => {
    const { dir } = await plaintextVault(3);
    let ready!: () => void;
    const up = new Promise<void>((r) => (ready = r));
    const holder = startFixture('hold-sessions', [dir], () => ready());
    await up;
    try {
      await assert.rejects(dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env }), (e: { code?: string; message?: string }) =>
        e.code === 'KC_DB_ENCRYPTION_MIGRATION_FAILED' && /another process/.test(e.message ?? ''),
      );
    } finally {
      holder.child.kill('SIGKILL');
      await holder.done;
    }
    assert.equal(fs.readFileSync(path.join(dir, 'blufio.db')).subarray(0, 15).toString(), 'SQLite format 3');
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('encrypting')), []);
    const r = await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env });
    assert.equal(r.migrated, true, 'once the holder is gone it goes through');
  });

  for (const mode of ['throw', 'throw-full', 'kill'] as const) {
    it(`a ${{ kill: 'SIGKILL', throw: 'failure', 'throw-full': 'full disk (KC_DB_FULL)' }[mode]} at every step leaves a state the next command completes or rolls back`, async () => {
      for (const step of MIGRATION_STEPS) {
        const { dir, sessionId } = await plaintextVault(20);
        const before = await messagesIn(dir, sessionId).catch(() => []);
        await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
        const r = await run(fixture('migrate-fault'), [dir, step, mode], { env: cleanEnv({ DBKEY: PASS }) });
        const swapped = MIGRATION_STEPS.indexOf(step) >= MIGRATION_STEPS.indexOf('swapped');
        if (mode === 'kill') assert.equal(r.signal, 'SIGKILL', `${step}: ${r.stdout}${r.stderr}`);
        else if (!swapped) assert.match(r.stdout, /^ERR KC_DB_ENCRYPTION_MIGRATION_FAILED/, step);
        // The next command: status recovers, and says where things stand.
        const s = await dbEncryptStatus(dir);
        assert.equal(s.consistent, true, step);
        assert.deepEqual(fs.readdirSync(dir).filter((n) => n.includes('encrypting') || n.endsWith('.tmp')), [], `${step}: no leftovers`);
        if (swapped) {
          assert.equal(s.db_encryption.state, 'encrypted', step);
          assert.equal(s.db_encryption.last_migration?.at_ms, 1700000000000, step);
          assertNoPlaintext(dir);
        } else {
          assert.equal(s.db_encryption.state, 'pending_migration', step);
          assert.equal(s.database.kind, 'plaintext', step);
          await assert.rejects(open(dir), (e: { code?: string }) => e.code === 'KC_DB_ENCRYPTION_PENDING');
          const again = await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1700000000000, env });
          assert.equal(again.migrated, true, step);
        }
        assert.deepEqual(files(dir), ['blufio.db', 'vault.json'], step);
        assert.deepEqual(await messagesIn(dir, sessionId), before, `${step}: nothing lost`);
      }
    });
  }

  it('a failure recording the migration after the swap says the encrypted database is live, and the next command records it', async () => {
    const { dir, sessionId } = await plaintextVault(20);
    const before = await messagesIn(dir, sessionId);
    await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    const r = await run(fixture('migrate-fault'), [dir, 'swapped', 'manifest-dir'], { env: cleanEnv({ DBKEY: PASS }) });
    assert.match(r.stdout, /^ERR KC_DB_ENCRYPTION_MIGRATION_FAILED the encrypted database is in place, but recording the migration failed/, r.stdout + r.stderr);
    assertNoPlaintext(dir);
    fs.rmdirSync(path.join(dir, 'vault.json'));
    fs.renameSync(path.join(dir, 'vault.json.saved'), path.join(dir, 'vault.json'));
    const s = await dbEncryptStatus(dir);
    assert.equal(s.consistent, true);
    assert.equal(s.db_encryption.state, 'encrypted');
    assert.equal(s.db_encryption.last_migration?.at_ms, 1700000000000);
    assert.deepEqual(files(dir), ['blufio.db', 'vault.json']);
    assert.deepEqual(await messagesIn(dir, sessionId), before);
  });

  it('two migrations at once, and two first opens of a database encrypted from birth, do not trip over each other', async () => {
    const { dir, sessionId } = await plaintextVault(30);
    const before = await messagesIn(dir, sessionId);
    const results = await Promise.allSettled([1, 2, 3].map(() => dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 7, env })));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled'], JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : ''))));
    assert.equal(results.filter((r) => r.status === 'fulfilled' && r.value.migrated).length, 1);
    assert.equal((await dbEncryptStatus(dir)).db_encryption.state, 'encrypted');
    assert.deepEqual(files(dir), ['blufio.db', 'vault.json']);
    assert.deepEqual(await messagesIn(dir, sessionId), before);

    const born = path.join(tmpDir(), 'born');
    fs.mkdirSync(born);
    await dbEncryptEnable(born, { passphraseEnv: 'DBKEY', env });
    const apps = await Promise.all([open(born), open(born), open(born)]);
    for (const a of apps) await a.sessions.create({ channel: 'x' });
    for (const a of apps) await a.close();
    const again = await open(born);
    assert.equal((await again.sessions.list({ limit: 10 })).length, 3);
    await again.close();
  });

  it('SIGKILL at random moments: never two live databases, never plaintext after success, nothing lost', async () => {
    for (let i = 0; i < 6; i++) {
      const { dir, sessionId } = await plaintextVault(400);
      const before = await messagesIn(dir, sessionId);
      const child = startFixture('migrate-fault', [dir, '', 'none'], () => undefined, cleanEnv({ DBKEY: PASS }));
      await sleep(20 + Math.floor(Math.random() * 400));
      child.child.kill('SIGKILL');
      await child.done;
      const s = await dbEncryptStatus(dir);
      assert.equal(s.consistent, true);
      if (s.db_encryption.state !== 'encrypted') {
        assert.equal(s.database.kind, 'plaintext');
        await dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env });
      }
      assert.deepEqual(files(dir), ['blufio.db', 'vault.json']);
      assertNoPlaintext(dir);
      assert.deepEqual(await messagesIn(dir, sessionId), before);
    }
  });
});

describe('db-encrypt: dead ends and a SQLite without SQLCipher', () => {
  it('enable, migrate and verify on a SQLite build without SQLCipher: KC_DB_ENCRYPTION_UNSUPPORTED, nothing recorded', async () => {
    const { dir } = await plaintextVault(3);
    const manifest = fs.readFileSync(path.join(dir, 'vault.json'));
    const noCipher = (args: string[]) => run('--import', [fixture('no-cipher'), CLI, ...args], { env: cleanEnv(env) });
    for (const args of [['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY'], ['vault', 'db-encrypt', 'migrate', dir, '--passphrase-env', 'DBKEY', '--now-ms', '1']]) {
      const r = await noCipher(args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error\[KC_DB_ENCRYPTION_UNSUPPORTED\]/m, args[2]);
      assert.deepEqual(fs.readFileSync(path.join(dir, 'vault.json')), manifest, 'nothing recorded');
    }
    // An encrypted database is not called damaged by a build that cannot read it.
    const mig = await runCli(['vault', 'db-encrypt', 'migrate', dir, '--passphrase-env', 'DBKEY', '--now-ms', '1'], { env: cleanEnv(env) });
    assert.equal(mig.code, 0, mig.stderr);
    const v = await noCipher(['vault', 'verify', dir, '--json']);
    assert.equal(v.code, 1);
    const report = JSON.parse(v.stdout) as { code: string; problems: string[] };
    assert.equal(report.code, 'KC_DB_ENCRYPTION_UNSUPPORTED', v.stdout);
    assert.ok(!report.problems.some((p) => p.startsWith('KC_DB_CORRUPT')), v.stdout);
  });

  it('enabled over a plaintext database that is then gone: enable again starts a new one encrypted from birth', async () => {
    const { dir } = await plaintextVault(3);
    assert.equal((await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env })).db_encryption.state, 'pending_migration');
    for (const f of ['blufio.db', 'blufio.db-wal', 'blufio.db-shm']) fs.rmSync(path.join(dir, f), { force: true });
    await assert.rejects(open(dir), { code: 'KC_DB_ENCRYPTION_PENDING' });
    await assert.rejects(dbEncryptMigrate(dir, { passphraseEnv: 'DBKEY', nowMs: 1, env }), (e: { code?: string; hint?: string }) => {
      assert.equal(e.code, 'KC_DB_ENCRYPTION_MIGRATION_FAILED');
      assert.match(e.hint!, /run db-encrypt enable again to start a new database, encrypted from birth/);
      return true;
    });
    const again = await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    assert.equal(again.changed, true);
    assert.equal(again.db_encryption.state, 'encrypted');
    assert.ok(again.recovered.some((a) => /encrypted from birth/.test(a)), JSON.stringify(again.recovered));
    const app = await open(dir);
    const s = await app.sessions.create({ channel: 'c' });
    await app.messages.append(s.id, { role: 'user', content: MARK });
    await app.close();
    assertNoPlaintext(dir);
    assert.equal((await verifyVault(dir, { env })).ok, true);
  });
});

describe('lock and unlock', () => {
  it('lock closes an encrypted database and drops both keys; every call fails KC_DB_LOCKED until unlock', async () => {
    const dir = path.join(tmpDir(), 'data');
    fs.mkdirSync(dir);
    await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    const e = { DBKEY: PASS, BLUFIO_VAULT_KEY: 'the vault passphrase' };
    const app = await open(dir, e);
    await app.vault.set('api_key', 'sk-test-value-1234567890');
    const s = await app.sessions.create({ channel: 'c' });
    assert.deepEqual({ ...app.lockStatus(), lockedSinceMs: null }, { locked: false, lockedSinceMs: null, databaseEncrypted: true, databaseLocked: false, vaultUnlocked: true });
    await app.lock();
    const st = app.lockStatus();
    assert.equal(st.locked, true);
    assert.equal(st.databaseLocked, true);
    assert.equal(st.vaultUnlocked, false);
    assert.equal(typeof st.lockedSinceMs, 'number');
    const locked = (err: { code?: string }): boolean => err.code === 'KC_DB_LOCKED';
    await assert.rejects(app.sessions.get(s.id), locked);
    await assert.rejects(app.messages.append(s.id, { role: 'user', content: 'x' }), locked);
    await assert.rejects(app.queue.enqueue('q', { a: 1 }), locked);
    await assert.rejects(app.db.check(), locked);
    await assert.rejects(app.vault.get('api_key'), (err: { code?: string }) => err.code === 'KC_DB_LOCKED' || err.code === 'KC_VAULT_LOCKED');
    // The file is really closed: another process can take it exclusively.
    const other = new Database(path.join(dir, 'blufio.db'), { timeout: 0 });
    other.pragma("cipher = 'sqlcipher'");
    other.pragma('legacy = 4');
    other.pragma(`key = '${PASS.replaceAll("'", "''")}'`);
    other.pragma('locking_mode = EXCLUSIVE');
    assert.doesNotThrow(() => other.exec('BEGIN EXCLUSIVE; COMMIT'));
    other.close();

    await assert.rejects(app.unlock({}), (err: { code?: string }) => err.code === 'KC_INVALID_INPUT');
    const held = app.sessions.get; // a method taken while unlocked is refused too
    await assert.rejects(held(s.id), locked);
    await assert.rejects(app.unlock({ passphrase: 'wrong' }), (err: { code?: string }) => err.code === 'KC_DB_KEY_INVALID');
    assert.equal(app.lockStatus().locked, true);
    await assert.rejects(app.unlock({ databasePassphrase: PASS, passphrase: 'wrong vault passphrase' }), (err: { code?: string }) => err.code === 'KC_VAULT_KEY_INVALID');
    assert.equal(app.lockStatus().databaseLocked, true, 'a failed unlock leaves everything locked');
    await app.unlock({ databasePassphrase: PASS, passphrase: 'the vault passphrase' });
    assert.deepEqual({ ...app.lockStatus() }, { locked: false, lockedSinceMs: null, databaseEncrypted: true, databaseLocked: false, vaultUnlocked: true });
    assert.equal((await app.sessions.get(s.id)).id, s.id);
    assert.equal((await app.vault.get('api_key')).expose(), 'sk-test-value-1234567890');
    // The database alone: the vault stays locked, and so does the app.
    await app.lock();
    await app.unlock({ databasePassphrase: PASS });
    assert.equal(app.lockStatus().databaseLocked, false);
    assert.equal(app.lockStatus().locked, true);
    await assert.rejects(app.vault.get('api_key'), (err: { code?: string }) => err.code === 'KC_VAULT_LOCKED');
    await app.close();
    await assert.rejects(app.unlock({ passphrase: PASS }), (err: { code?: string }) => err.code === 'KC_DB_CLOSED');
  });

  /** An app on a new encrypted database (key from DBKEY) with a vault of its own passphrase and one secret. */
  async function encryptedWithVault(): Promise<BlufioApp> {
    const dir = path.join(tmpDir(), 'data');
    fs.mkdirSync(dir);
    await dbEncryptEnable(dir, { passphraseEnv: 'DBKEY', env });
    const app = await open(dir, { DBKEY: PASS, BLUFIO_VAULT_KEY: 'the vault passphrase' });
    await app.vault.set('api_key', 'sk-test-value-1234567890');
    return app;
  }

  it('calls racing a lock fail KC_DB_LOCKED (or KC_VAULT_LOCKED), never KC_DB_CLOSED (review srv, finding 6)', async () => {
    const app = await encryptedWithVault();
    const s = await app.sessions.create({ channel: 'c' });
    for (let round = 0; round < 5; round++) {
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 50; i++) {
        calls.push(
          app.messages.append(s.id, { role: 'user', content: `m${i}` }),
          app.messages.list(s.id, { limit: 5 }),
          app.sessions.list({ maxBytes: 1_000_000 }),
          app.queue.enqueue('q', { i }),
          app.queue.claim('q'),
          app.vault.list(),
          app.db.checkpoint(),
        );
        // Locks between the calls of a round, so that some began on the open database.
        if (i === 25) void app.lock();
      }
      const codes = new Set<string>();
      for (const r of await Promise.allSettled(calls)) if (r.status === 'rejected') codes.add((r.reason as { code?: string }).code ?? String(r.reason));
      assert.ok(codes.has('KC_DB_LOCKED'));
      assert.deepEqual([...codes].filter((c) => c !== 'KC_DB_LOCKED' && c !== 'KC_VAULT_LOCKED'), [], [...codes].join(', '));
      await app.unlock({ passphrase: 'the vault passphrase', databasePassphrase: PASS });
    }
    await app.close();
  });

  it('unlock without databasePassphrase on a database with its own says to send it (review srv, finding 3)', async () => {
    const app = await encryptedWithVault();
    await app.lock();
    await assert.rejects(app.unlock({ passphrase: 'the vault passphrase' }), (err: { code?: string; message: string; hint?: string }) => {
      assert.equal(err.code, 'KC_DB_KEY_INVALID');
      assert.match(err.message, /has a passphrase of its own/);
      assert.match(err.hint ?? '', /databasePassphrase/);
      assert.doesNotMatch(err.hint ?? '', /check the variable/);
      return true;
    });
    await assert.rejects(app.unlock({ passphrase: 'the vault passphrase', databasePassphrase: 'wrong' }), (err: { code?: string; hint?: string }) => {
      assert.equal(err.code, 'KC_DB_KEY_INVALID');
      assert.match(err.hint ?? '', /databasePassphrase/);
      return true;
    });
    await app.unlock({ passphrase: 'the vault passphrase', databasePassphrase: PASS });
    assert.equal(app.lockStatus().locked, false);
    await app.close();
  });

  it('on a plaintext database lock locks the vault only, and the environment no longer unlocks it', async () => {
    const { dir, sessionId } = await plaintextVault(1);
    const app = await open(dir, { BLUFIO_VAULT_KEY: 'vp-phrase' });
    await app.vault.set('k', 'value-abc-123');
    await app.lock();
    assert.equal(app.lockStatus().databaseLocked, false);
    assert.equal((await app.messages.list(sessionId)).length, 1, 'the plaintext database stays open');
    await assert.rejects(app.vault.get('k'), (err: { code?: string }) => err.code === 'KC_VAULT_LOCKED');
    await assert.rejects(app.unlock({}), (err: { code?: string }) => err.code === 'KC_INVALID_INPUT');
    await assert.rejects(app.vault.get('k'), (err: { code?: string }) => err.code === 'KC_VAULT_LOCKED', 'the environment does not undo a lock');
    await app.unlock({ passphrase: 'vp-phrase' });
    assert.equal((await app.vault.get('k')).expose(), 'value-abc-123');
    await app.close();
  });
});

/** A passphrase file as a systemd credential would be: 0600 in a private directory. */
function keyFile(passphrase: string): string {
  const file = path.join(tmpDir(), 'key');
  fs.writeFileSync(file, `${passphrase}\n`, { mode: 0o600 });
  return file;
}
