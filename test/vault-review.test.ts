/**
 * What a hostile review of the vault found, one test per finding; each failed on the code
 * before its fix.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio, Secret, type BlufioApp } from '../src/index.js';
import { secretForms } from '../src/redact/index.js';
import type { VaultRows } from '../src/storage/index.js';
import { Vault } from '../src/vault/index.js';
import { cleanEnv, runCli, silentLogger, sleep, tmpDir } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';

async function app(dir: string, passphrase: string, logger = silentLogger()): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger, env: {}, passphrase });
}

async function rejects(p: Promise<unknown> | (() => unknown), code: string, check?: (message: string) => void): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, code, e.message);
    check?.(e.message ?? '');
    return true;
  });
}

function raw(dir: string): InstanceType<typeof Database> {
  return new Database(path.join(dir, 'blufio.db'), { fileMustExist: true });
}

function query<T>(dir: string, sql: string, ...args: unknown[]): T {
  const db = raw(dir);
  try {
    return db.prepare(sql).get(...args) as T;
  } finally {
    db.close();
  }
}

/** Every file of the data directory (database, WAL) that holds `bytes`. */
function filesHolding(dir: string, bytes: Buffer): string[] {
  return fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile() && fs.readFileSync(path.join(dir, f)).includes(bytes));
}

function errorLines(lines: Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.filter((l) => (l.level as number) >= 50);
}

describe('the vault, as a hostile review found it', () => {
  it('01: a secret passed as a name is never echoed: the message says what is wrong with it', async () => {
    const dir = tmpDir();
    const { logger, lines } = memoryLogger();
    const a = await app(dir, 'pw-phrase', logger);
    await a.vault.set('k', 'value-0123456789abcdefghij');
    const aws = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    const plus = (m: string): void => {
      assert.ok(!m.includes(aws) && !m.includes('wJalrXUtnFEMI'), m);
      assert.match(m, /character 22 \("\+"\) is not allowed/);
    };
    await rejects(a.vault.set(aws, 'providers.aws.secret_access_key'), 'KC_INVALID_INPUT', plus);
    await rejects(a.vault.get(aws), 'KC_INVALID_INPUT', plus);
    await rejects(a.vault.delete(aws), 'KC_INVALID_INPUT', plus);
    await rejects(() => a.vault.has(aws), 'KC_INVALID_INPUT', plus);
    try {
      await a.vault.set(aws, 'x');
    } catch (err) {
      a.log.error({ err }, 'storing the key failed');
    }
    assert.ok(!JSON.stringify(lines()).includes('wJalrXUtnFEMI'), 'nothing of it in the log');
    // A bearer token: what is wrong with it, and that it looks like a secret (the format, never the value).
    await rejects(a.vault.get(`Bearer ${aws}`), 'KC_INVALID_INPUT', (m) => {
      assert.ok(!m.includes('wJalrXUtnFEMI'), m);
      assert.match(m, /character 7 \(" "\) is not allowed; it looks like a secret itself/);
    });
    await rejects(a.vault.set(`${'x'.repeat(199)}=`, 'v'), 'KC_INVALID_INPUT', (m) => assert.match(m, /200 characters long, more than 128/));
    await rejects(a.vault.set('.hidden', 'value-0123456789'), 'KC_INVALID_INPUT', (m) => assert.match(m, /character 1 \("\."\) is not allowed first/));
    await rejects(a.vault.set('caf\u00e9', 'value-0123456789'), 'KC_INVALID_INPUT', (m) => assert.match(m, /character 4 \(U\+00E9\)/));
    await rejects(a.vault.set('', 'value-0123456789'), 'KC_INVALID_INPUT', (m) => assert.match(m, /it is empty/));
    await rejects(a.vault.get(42 as unknown as string), 'KC_INVALID_INPUT', (m) => assert.match(m, /it is number, not a string/));
    // The swapped arguments with a name that passes the character check are still caught by format.
    await rejects(a.vault.set('sk-proj-abcdefghijklmnopqrstuvwxyz0123', 'providers.openai.api_key'), 'KC_INVALID_INPUT', (m) => {
      assert.ok(!m.includes('abcdefghij'), m);
      assert.match(m, /looks like a secret itself/);
    });
    await a.close();
  });

  it('01 (second review): a name that is not in the vault is not quoted either, in the library or the CLI', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'pw-phrase');
    await a.vault.set('k', 'value-0123456789abcdefghij');
    // Valid name characters, no built-in format: only not quoting it keeps it out of a log.
    const token = `ghp_${'Ab1'.repeat(12)}`;
    await assert.rejects(a.vault.get(token), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'KC_NOT_FOUND');
      assert.ok(!e.message!.includes('Ab1Ab1'), e.message);
      return true;
    });
    await a.close();
    const r = await runCli(['--data-dir', dir, 'config', 'delete-secret', token], { env: cleanEnv({ BLUFIO_VAULT_KEY: 'pw-phrase' }) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error\[KC_NOT_FOUND\]: no secret by that name \(40 characters\)/m);
    assert.ok(!r.stderr.includes('Ab1Ab1') && !r.stdout.includes('Ab1Ab1'), r.stderr);
  });

  it('02: app.vault.lock() stays locked: the refresher does not open it again, a use does', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'pw-phrase');
    await a.vault.set('k', 'value-0123456789abcdefghij');
    a.vault.lock();
    await sleep(1600); // the refresher ticks every second
    assert.equal(a.vault.unlocked, false, 'still locked with no call made');
    assert.equal(a.redactor.redact('value-0123456789abcdefghij'), 'value-0123456789abcdefghij', 'the redactor forgot the value');
    // Its values unknown to the redactor, the app says it is locked (a daemon refuses data calls).
    assert.equal(a.lockStatus().locked, true);
    assert.equal((await a.vault.get('k')).expose(), 'value-0123456789abcdefghij', 'the next use unlocks again');
    assert.equal(a.vault.unlocked, true);
    await sleep(1200);
    assert.equal(a.lockStatus().locked, false, 'open again: no longer reported locked');
    await a.close();
  });

  it('02 (second review): a lock before any vault existed does not stop the refresher from opening, or reporting, a vault made later', async () => {
    for (const how of ['vault.lock', 'app.lock+unlock'] as const) {
      const dir = tmpDir();
      const a = await app(dir, 'pw-phrase');
      try {
        if (how === 'vault.lock') a.vault.lock();
        else {
          await a.lock();
          await a.unlock({ passphrase: 'pw-phrase' }).catch(() => undefined);
        }
        // Another process creates the vault and stores a value.
        const other = await app(dir, 'pw-phrase');
        await other.vault.set('k', 'made-elsewhere-0123456789abcdef');
        await other.close();
        await sleep(1600);
        const redacted = a.redactor.redact('made-elsewhere-0123456789abcdef') !== 'made-elsewhere-0123456789abcdef';
        assert.ok(redacted || a.lockStatus().locked, `${how}: the value is redacted, or the app says it is locked (${JSON.stringify(a.lockStatus())})`);
      } finally {
        await a.close();
      }
    }
  });

  it('a vault that was there at open is not reported as made by another process while a passphrase is awaited; one made later is (QA review)', async () => {
    const made = "a vault was created by another process";
    const dir = tmpDir();
    const first = await app(dir, 'pw-phrase');
    await first.vault.set('k', 'value-0123456789abcdefghij');
    await first.close();
    // No passphrase at hand (the CLI at its prompt): locked, values unknown, but nothing new.
    const waiting = memoryLogger();
    const a = await openBlufio({ dataDir: dir, logger: waiting.logger, env: {} });
    try {
      await sleep(1600); // the refresher ticks every second
      assert.equal(a.lockStatus().locked, true, 'its values unknown to the redactor: reported locked');
      assert.deepEqual(waiting.lines().filter((l) => String(l.msg).startsWith(made)), []);
    } finally {
      await a.close();
    }
    // No vault at open, then another process makes one: that is worth a warning.
    const dir2 = tmpDir();
    const watching = memoryLogger();
    const b = await openBlufio({ dataDir: dir2, logger: watching.logger, env: {} });
    try {
      const other = await app(dir2, 'pw-phrase');
      await other.vault.set('k', 'made-elsewhere-0123456789abcdef');
      await other.close();
      await sleep(1600);
      assert.equal(watching.lines().filter((l) => String(l.msg).startsWith(made)).length, 1);
    } finally {
      await b.close();
    }
  });

  it('03: a deleted or replaced value, and an old wrap, are zeroed in the database file and gone from the WAL', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'pw-1-phrase');
    await a.vault.set('other', 'other-value-abcdefghijklmnop');
    const sealedOf = (): Buffer => query<{ sealed: Buffer }>(dir, "SELECT sealed FROM vault_entries WHERE name = 'k'").sealed;
    await a.vault.set('k', 'first-value-0123456789abcdefgh');
    const first = sealedOf();
    await a.vault.set('k', 'second-value-0123456789abcdefg');
    const second = sealedOf();
    assert.deepEqual(filesHolding(dir, first), [], 'the replaced value, at once');
    await a.vault.delete('k');
    const wrapped = query<{ wrapped_key: Buffer }>(dir, 'SELECT wrapped_key FROM vault_meta').wrapped_key;
    await a.vault.changePassphrase('pw-2-phrase');
    for (const [what, bytes] of [['replaced', first], ['deleted', second], ['old wrap', wrapped]] as const) {
      assert.deepEqual(filesHolding(dir, bytes), [], `${what} while open`);
    }
    await a.db.checkpoint();
    await a.close();
    for (const [what, bytes] of [['replaced', first], ['deleted', second], ['old wrap', wrapped]] as const) {
      assert.deepEqual(filesHolding(dir, bytes), [], `${what} after close`);
    }
    const b = await app(dir, 'pw-2-phrase');
    assert.equal((await b.vault.get('other')).expose(), 'other-value-abcdefghijklmnop');
    await b.close();
  });

  it('03 (second review): a checkpoint a reader held up is tried again until the old value is gone from the file', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'pw-1-phrase');
    try {
      const sealedOf = (): Buffer => query<{ sealed: Buffer }>(dir, "SELECT sealed FROM vault_entries WHERE name = 'k'").sealed;
      await a.vault.set('k', 'first-value-0123456789abcdefgh');
      await a.db.checkpoint();
      const first = sealedOf();
      // Another connection reading: the checkpoint after the replace cannot finish.
      const reader = raw(dir);
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM vault_entries').get();
      await a.vault.set('k', 'second-value-0123456789abcdefg');
      assert.ok(filesHolding(dir, first).length > 0, 'held up: still in the database file');
      reader.exec('COMMIT');
      reader.close();
      // No vault write, no other checkpoint: the refresh (every second) settles what is owed.
      let gone = false;
      for (let i = 0; i < 50 && !gone; i++) {
        await sleep(100);
        gone = filesHolding(dir, first).length === 0;
      }
      assert.ok(gone, 'the replaced value left the files once the reader had gone');
    } finally {
      await a.close();
    }
  });

  it('03 (third review): the owed checkpoint is retried while the vault is locked, and after a vault write by a process that has exited', async () => {
    const settled = async (dir: string): Promise<boolean> => {
      for (let i = 0; i < 50; i++) {
        if (fs.statSync(path.join(dir, 'blufio.db-wal')).size === 0) return true;
        await sleep(100);
      }
      return false;
    };
    const holdReader = (dir: string): (() => void) => {
      const reader = raw(dir);
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM sqlite_schema').get();
      return () => {
        reader.exec('COMMIT');
        reader.close();
      };
    };
    // Locked right after the write whose checkpoint a reader held up.
    const one = tmpDir();
    const a = await app(one, 'pw-1-phrase');
    try {
      await a.vault.set('k', 'first-value-0123456789abcdefgh');
      await a.db.checkpoint();
      const release = holdReader(one);
      await a.vault.set('k', 'second-value-0123456789abcdefg');
      a.vault.lock();
      release();
      assert.ok(await settled(one), 'folded in while the vault is locked');
    } finally {
      await a.close();
    }
    // Another app (a CLI) changes the passphrase while a reader holds the WAL, and closes; the
    // long-lived one (a daemon) owes nothing of its own, yet folds it in.
    const two = tmpDir();
    const daemon = await app(two, 'old passphrase 1');
    try {
      await daemon.vault.set('k', 'value-0123456789abcdefghij');
      await daemon.db.checkpoint();
      await sleep(1200); // the daemon's refresh has seen the vault as it is
      const release = holdReader(two);
      const cli = await app(two, 'old passphrase 1');
      await cli.vault.changePassphrase('new passphrase 2');
      await cli.close();
      release();
      assert.ok(await settled(two), "folded in by the daemon after the CLI's exit");
    } finally {
      await daemon.close();
    }
  });

  it('04: vault values are not copied into Node\'s shared Buffer pool', async () => {
    const value = 'ghp_POOLCANARY0123456789abcdefABCDEF';
    const slabs = (): ArrayBufferLike => Buffer.from('probe').buffer;
    const before = slabs();
    secretForms(value);
    const s = new Secret(`${value}-secret`);
    const after = slabs();
    for (const slab of [before, after]) assert.equal(Buffer.from(slab).includes(value), false, 'the pool holds the value');
    assert.equal(s.exposeBytes().buffer.byteLength, s.exposeBytes().length, 'a Secret has a buffer of its own');
    const dir = tmpDir();
    const a = await app(dir, 'pw-phrase');
    await a.vault.set('github.token', value);
    await a.vault.list();
    (await a.vault.get('github.token')).wipe();
    await a.close();
    assert.equal(Buffer.from(slabs()).includes(value), false, 'after set, list, get');
  });

  it('05: a lock() while create() opens a vault another process made first leaves it locked', async () => {
    const dir = tmpDir();
    const first = await app(dir, 'shared-pass');
    // This process looked before the other made its vault: meta() says none until init().
    const reader = await app(dir, 'shared-pass');
    const rows = (reader.vault as unknown as { rows: VaultRows }).rows;
    let initDone = false;
    let vault!: Vault;
    const late = {
      meta: () => (initDone ? rows.meta() : undefined),
      entries: () => rows.entries(),
      entry: (n: string) => rows.entry(n),
      count: () => rows.count(),
      put: (n: string, s: Uint8Array) => rows.put(n, s),
      delete: (n: string) => rows.delete(n),
      rewrap: (...a: Parameters<VaultRows['rewrap']>) => rows.rewrap(...a),
      init: async (m: Parameters<VaultRows['init']>[0]) => {
        await first.vault.set('b', 'value-of-b-abcdefghijkl'); // the other process wins the race
        const held = await rows.init(m);
        initDone = true;
        // Runs once create() awaits the derivation of the other vault's key (tens of ms on
        // libuv's pool), after it checked for a lock the last time before the fix.
        setImmediate(() => vault.lock());
        return held;
      },
    } as unknown as VaultRows;
    vault = new Vault(late, async () => 'shared-pass', silentLogger());
    await rejects(vault.set('a', 'value-of-a-abcdefghijkl'), 'KC_VAULT_LOCKED');
    assert.equal(vault.unlocked, false, 'no key kept after the lock');
    // The next use opens it again (the provider still answers): 'a' was never stored.
    assert.deepEqual((await vault.list()).map((l) => l.name), ['b']);
    await reader.close();
    await first.close();
  });

  it('06: tamper detections are logged at ERROR, by name, never the value, once per name, a few names a line', async () => {
    const base = tmpDir();
    const a = await app(base, 'pw-phrase');
    await a.vault.set('a', 'value-of-a-1234567890abcdef');
    await a.vault.set('b', 'value-of-b-1234567890abcdef');
    await a.close();
    /** A copy of the vault's database with `sql` run on it. */
    const tamperedCopy = (sql: string): string => {
      const d = tmpDir();
      fs.copyFileSync(path.join(base, 'blufio.db'), path.join(d, 'blufio.db'));
      const c = raw(d);
      c.exec(sql);
      c.close();
      return d;
    };
    const swapped = tamperedCopy(
      "CREATE TEMP TABLE t AS SELECT name, sealed FROM vault_entries; UPDATE vault_entries SET sealed = (SELECT sealed FROM t WHERE t.name = CASE vault_entries.name WHEN 'a' THEN 'b' ELSE 'a' END)",
    );
    const m = memoryLogger();
    const s = await app(swapped, 'pw-phrase', m.logger);
    await s.vault.unlock();
    assert.deepEqual(errorLines(m.lines()).map((l) => l.secrets), [['a', 'b']], 'the unlock feeding the redactor');
    await sleep(1200); // refresher ticks with nothing changed: no new line
    assert.equal(errorLines(m.lines()).length, 1);
    assert.deepEqual((await s.vault.list()).map((l) => l.tampered), [true, true]);
    assert.equal(errorLines(m.lines()).length, 1, 'the list: the same names are not logged again');
    await s.close();
    // A hostile file with thousands of bad entries: one line, a count and ten names, not a
    // line of every name on every read (second review: 22 MB a read).
    const many = tamperedCopy(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO vault_entries (name, sealed, created_at, updated_at) SELECT 'bogus' || i, randomblob(60), 0, 0 FROM n",
    );
    const hm = memoryLogger();
    const hx = await app(many, 'pw-phrase', hm.logger);
    await hx.vault.unlock();
    await hx.vault.list();
    await hx.vault.list();
    await hx.close();
    const lines = errorLines(hm.lines());
    assert.equal(lines.length, 1, JSON.stringify(lines.map((l) => l.count)));
    assert.equal(lines[0]!.count, 5000);
    assert.equal((lines[0]!.secrets as string[]).length, 10);
    assert.ok(!JSON.stringify(m.lines()).includes('1234567890abcdef'), 'no value logged');
    for (const sql of ["UPDATE vault_meta SET kdf = 'argon2i'", 'UPDATE vault_meta SET kdf_memory_kib = 1024']) {
      const d = tamperedCopy(sql);
      const k = memoryLogger();
      const x = await app(d, 'pw-phrase', k.logger);
      await rejects(x.vault.get('a'), 'KC_VAULT_TAMPERED');
      await x.close();
      assert.equal(errorLines(k.lines()).length, 1, sql);
    }
  });

  it('07: a salt of another length is KC_VAULT_TAMPERED, logged at ERROR, never KC_INTERNAL', async () => {
    const base = tmpDir();
    const a = await app(base, 'pw-phrase');
    await a.vault.set('a', 'value-of-a-1234567890abcdef');
    await a.close();
    for (const salt of ["x'0011'", "x''", 'zeroblob(15)', 'zeroblob(17)']) {
      const d = tmpDir();
      fs.copyFileSync(path.join(base, 'blufio.db'), path.join(d, 'blufio.db'));
      const c = raw(d);
      c.exec(`UPDATE vault_meta SET salt = ${salt}`);
      c.close();
      const k = memoryLogger();
      const x = await app(d, 'pw-phrase', k.logger);
      await rejects(x.vault.list(), 'KC_VAULT_TAMPERED', (m) => assert.match(m, /salt/));
      await x.close();
      assert.equal(errorLines(k.lines()).length, 1, salt);
    }
  });

  it('08: a failed open leaves neither BLUFIO_VAULT_KEY nor the database key variable in process.env', async () => {
    const dir = tmpDir();
    const bad = path.join(dir, 'bad.toml');
    fs.writeFileSync(bad, '[storage]\nno_such_key = 1\n');
    process.env.BLUFIO_VAULT_KEY = 'the-vault-passphrase';
    process.env.BLUFIO_NEW_VAULT_KEY = 'the-new-one';
    try {
      await rejects(openBlufio({ dataDir: dir, configPath: bad, logger: silentLogger() }), 'KC_CONFIG_INVALID');
      assert.equal(process.env.BLUFIO_VAULT_KEY, undefined);
      assert.equal(process.env.BLUFIO_NEW_VAULT_KEY, undefined);
      await rejects(openBlufio({ dataDir: dir, configPath: 42 as unknown as string, logger: silentLogger() }), 'KC_INVALID_INPUT');
      // The database key: vault.json names its variable; the config names another file than
      // vault.json does, which fails before the variable was taken.
      const enc = tmpDir();
      const other = path.join(enc, 'blufio.toml');
      fs.writeFileSync(other, `[storage]\ndatabase_path = ${JSON.stringify(path.join(enc, 'other.db'))}\n`);
      fs.writeFileSync(
        path.join(enc, 'vault.json'),
        JSON.stringify({
          schema_version: 3,
          vault_id: '01JD3XK8Q9ZB7Y6W5V4T3S2R1P',
          created_at_ms: 1700000000000,
          database_file: 'blufio.db',
          object_store: { enabled: true, dir: 'objects', encryption: { enabled: true, algorithm: 'aes-256-gcm' } },
          db_encryption: { enabled: true, mode: 'sqlcipher_v4', kdf: { algorithm: 'pbkdf2_hmac_sha512', iterations: 256000 }, key_reference: 'env:REVIEW_DBKEY', state: 'encrypted' },
        }),
      );
      process.env.REVIEW_DBKEY = 'the-database-passphrase';
      await rejects(openBlufio({ configPath: other, logger: silentLogger() }), 'KC_CONFIG_INVALID');
      assert.equal(process.env.REVIEW_DBKEY, undefined);
      // The vault key's file refused (or set beside the variable): the new passphrase goes too.
      for (const file of [path.join(dir, 'missing-key-file'), bad]) {
        process.env.BLUFIO_VAULT_KEY = 'the-vault-passphrase';
        process.env.BLUFIO_VAULT_KEY_FILE = file;
        process.env.BLUFIO_NEW_VAULT_KEY = 'the-new-one';
        await rejects(openBlufio({ dataDir: dir, logger: silentLogger() }), 'KC_INVALID_INPUT');
        assert.equal(process.env.BLUFIO_NEW_VAULT_KEY, undefined, file);
        assert.equal(process.env.BLUFIO_VAULT_KEY, undefined, file);
      }
    } finally {
      delete process.env.BLUFIO_VAULT_KEY_FILE;
      delete process.env.BLUFIO_VAULT_KEY;
      delete process.env.BLUFIO_NEW_VAULT_KEY;
      delete process.env.REVIEW_DBKEY;
    }
  });

  it('10: a passphrase that is not a string is KC_INVALID_INPUT, not a TypeError', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'pw-phrase');
    await a.vault.set('k', 'value-0123456789abcdefghij');
    const n = 12345678 as unknown as string;
    await rejects(a.vault.changePassphrase(n), 'KC_INVALID_INPUT');
    await rejects(a.vault.unlock(n), 'KC_INVALID_INPUT');
    await rejects(a.vault.tryUnlock(n), 'KC_INVALID_INPUT');
    await rejects(a.unlock({ passphrase: n }), 'KC_INVALID_INPUT');
    await rejects(a.unlock({ passphrase: 'pw-phrase', databasePassphrase: n }), 'KC_INVALID_INPUT');
    await rejects(a.unlock(undefined as unknown as { passphrase: string }), 'KC_INVALID_INPUT');
    assert.equal((await a.vault.get('k')).expose(), 'value-0123456789abcdefghij', 'nothing changed');
    await a.close();
    // A provider that answers with a non-string is refused the same way.
    const b = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, askPassphrase: async () => 42 as unknown as string });
    await rejects(b.vault.get('k'), 'KC_INVALID_INPUT');
    await b.close();
  });
});
