import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { argon2id } from 'hash-wasm';
import Database from '../src/storage/driver.js';
import { openBlufio, maskSecret, Secret, type BlufioApp } from '../src/index.js';
import { DEFAULT_KDF, deriveKey } from '../src/vault/kdf.js';
import { entryAad, open, seal, wrapAad } from '../src/vault/seal.js';
import { cleanEnv, runCli, silentLogger, tmpDir } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';

async function app(dir: string, passphrase?: string): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, ...(passphrase === undefined ? {} : { passphrase }) });
}

/** An app whose prompts `ask` answers, given the app itself (to lock it, say, while it is asked). */
async function asking(dir: string, ask: (app: BlufioApp, purpose: string) => Promise<string | undefined>, passphrase?: string): Promise<BlufioApp> {
  let made: BlufioApp | undefined;
  made = await openBlufio({
    dataDir: dir,
    logger: silentLogger(),
    env: {},
    ...(passphrase === undefined ? {} : { passphrase }),
    askPassphrase: (purpose) => ask(made!, purpose),
  });
  return made;
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: { code?: string; message?: string }) => {
    assert.equal(e.code, code, e.message);
    return true;
  });
}

function raw(dir: string): InstanceType<typeof Database> {
  return new Database(path.join(dir, 'blufio.db'), { fileMustExist: true });
}

describe('vault crypto', () => {
  it('Argon2id matches a known answer and an independent implementation', async () => {
    const key = await deriveKey(Buffer.from('pw'), Buffer.alloc(16, 1), DEFAULT_KDF);
    assert.equal(key.toString('hex'), 'fc907556f8bee653f4ef07c84459e6b4039beaa9844b45160a5fdad40ac2900e');
    const pass = randomBytes(20);
    const salt = randomBytes(16);
    const ours = await deriveKey(Buffer.from(pass), salt, DEFAULT_KDF);
    const theirs = await argon2id({ password: pass, salt, memorySize: 65536, iterations: 3, parallelism: 4, hashLength: 32, outputType: 'hex' });
    assert.equal(ours.toString('hex'), theirs);
  });

  it('seal/open round-trips, and every single bit flip of the sealed blob is detected', () => {
    const key = randomBytes(32);
    const aad = entryAad(randomBytes(16), 'openai_api_key');
    const blob = seal(key, Buffer.from('sk-proj-secret'), aad);
    assert.equal(open(key, blob, aad)?.toString(), 'sk-proj-secret');
    for (let bit = 0; bit < blob.length * 8; bit++) {
      const bad = Buffer.from(blob);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(open(key, bad, aad), undefined, `bit ${bit}`);
    }
    assert.equal(open(key, blob.subarray(0, blob.length - 1), aad), undefined, 'truncated');
    assert.equal(open(randomBytes(32), blob, aad), undefined, 'another key');
    assert.equal(open(key, blob, entryAad(randomBytes(16), 'openai_api_key')), undefined, 'another vault');
    assert.equal(open(key, blob, Buffer.from([])), undefined, 'another name');
    assert.notDeepEqual(seal(key, Buffer.from('x'), aad).subarray(1, 13), seal(key, Buffer.from('x'), aad).subarray(1, 13), 'fresh nonces');
  });

  it('every single bit flip of the wrapped key, and of the salt, fails to unwrap', async () => {
    const vaultId = randomBytes(16);
    const salt = randomBytes(16);
    const master = randomBytes(32);
    const kek = await deriveKey(Buffer.from('pp'), salt, DEFAULT_KDF);
    const wrapped = seal(kek, master, wrapAad(vaultId, DEFAULT_KDF, salt));
    assert.deepEqual(open(kek, wrapped, wrapAad(vaultId, DEFAULT_KDF, salt)), master);
    for (let bit = 0; bit < wrapped.length * 8; bit++) {
      const bad = Buffer.from(wrapped);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(open(kek, bad, wrapAad(vaultId, DEFAULT_KDF, salt)), undefined, `wrapped key bit ${bit}`);
    }
    for (let bit = 0; bit < salt.length * 8; bit++) {
      const bad = Buffer.from(salt);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const k = await deriveKey(Buffer.from('pp'), bad, DEFAULT_KDF);
      assert.equal(open(k, wrapped, wrapAad(vaultId, DEFAULT_KDF, bad)), undefined, `salt bit ${bit}`);
    }
    // Parameters are bound too: the same key under other stored parameters does not open.
    assert.equal(open(kek, wrapped, wrapAad(vaultId, { ...DEFAULT_KDF, iterations: 4 }, salt)), undefined);
  });

  it('Secret never shows its value except through expose()', () => {
    const s = new Secret('hunter2-very-secret');
    assert.equal(String(s), '[REDACTED]');
    assert.equal(`${s}`, '[REDACTED]');
    assert.equal(JSON.stringify({ s }), '{"s":"[REDACTED]"}');
    assert.equal(inspect(s), '[REDACTED]');
    assert.doesNotMatch(inspect({ nested: [s] }), /hunter2/);
    assert.equal(s.expose(), 'hunter2-very-secret');
    const bytes = s.exposeBytes();
    s.wipe();
    assert.ok(bytes.every((b) => b === 0));
    assert.throws(() => s.expose());
  });

  it('masked previews show a known prefix and the last four characters, nothing for short values', () => {
    assert.equal(maskSecret('sk-proj-abcdefghijklmnopqrstuvwxyz4f2b'), 'sk-proj-...4f2b');
    assert.equal(maskSecret('sk-ant-api03-' + 'x'.repeat(40) + 'wxyz'), 'sk-ant-api03-...wxyz');
    assert.equal(maskSecret('ghp_' + 'a'.repeat(32) + '9Zz0'), 'ghp_...9Zz0');
    assert.equal(maskSecret('123456789:' + 'A'.repeat(30) + 'tail'), '...tail');
    assert.equal(maskSecret('hunter2'), '****');
    assert.equal(maskSecret('sk-short'), '****');
    assert.equal(maskSecret('x'.repeat(15)), '****');
    assert.equal(maskSecret('🔑'.repeat(20) + '👍🏽👍🏽e\u0301z'), '...e\u0301z', 'whole graphemes, at most four code points');
    assert.equal(maskSecret('🔑'.repeat(20) + '👍🏽'), '...🔑🔑👍🏽', 'never half an emoji');
    assert.equal(maskSecret('x'.repeat(30) + 'a' + '\u0301'.repeat(30)), '...', 'combining marks cannot stretch the tail');
  });
});

describe('the stored format', () => {
  it('a vault written by hand from the documented format opens (known answer for KDF, wrap and entry)', async () => {
    // Built once with node:crypto and @node-rs/argon2 directly, not with this code: version 1 |
    // nonce | AES-256-GCM ciphertext | tag, the associated data length-prefixed.
    const dir = tmpDir();
    const a = await app(dir);
    await a.close();
    const db = raw(dir);
    db.prepare(
      `INSERT INTO vault_meta VALUES (1, ?, 'argon2id', 65536, 3, 4, ?, ?, 0, 0)`,
    ).run(
      Buffer.alloc(16, 0xaa),
      Buffer.alloc(16, 0x5a),
      Buffer.from('0101010101010101010101010144a66d1589be55b45df5c1b23bde4ba84bbe0c21c7d5b960d02ac0bb5ce837774885d996bbf89173201a6f70d84b9bfb', 'hex'),
    );
    db.prepare("INSERT INTO vault_entries VALUES ('known', ?, 0, 0)").run(
      Buffer.from('01020202020202020202020202e84334d0d7b64635e6e4cc8b441ca83e6a88c319f1ca536558cef3876836359c1153e9c257', 'hex'),
    );
    db.close();
    const kek = await deriveKey(Buffer.from('known passphrase'), Buffer.alloc(16, 0x5a), DEFAULT_KDF);
    assert.equal(kek.toString('hex'), 'beae1aa096f09e2d6181a05679b874f60b37e5332a64a6c2bc4ab8a0f3e98c60');
    const b = await app(dir, 'known passphrase');
    try {
      assert.equal((await b.vault.get('known')).expose(), 'sk-known-answer-value');
      // And what this build writes has the same layout: version, 12-byte nonce, body, 16-byte tag.
      await b.vault.set('fresh', 'abc');
      const sealedFresh = raw(dir).prepare("SELECT sealed FROM vault_entries WHERE name = 'fresh'").pluck().get() as Buffer;
      assert.equal(sealedFresh[0], 1);
      assert.equal(sealedFresh.length, 1 + 12 + 3 + 16);
    } finally {
      await b.close();
    }
  });
});

describe('the vault', () => {
  it('is created by the first secret and then needs the passphrase; wrong ones are refused', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'correct horse battery staple');
    assert.deepEqual((await a.vault.status()).exists, false);
    await a.vault.set('openai_api_key', 'sk-proj-abcdefghijklmnopqrstuvwxyz4f2b');
    await a.vault.set('telegram_bot_token', '123456789:AAExampleExampleExampleExample00');
    assert.equal((await a.vault.get('openai_api_key')).expose(), 'sk-proj-abcdefghijklmnopqrstuvwxyz4f2b');
    const st = await a.vault.status();
    assert.equal(st.exists, true);
    assert.equal(st.entries, 2);
    assert.deepEqual(st.kdf, { algorithm: 'argon2id', memoryKib: 65536, iterations: 3, parallelism: 4 });
    await a.close();

    const locked = await app(dir);
    await rejects(locked.vault.get('openai_api_key'), 'KC_VAULT_LOCKED');
    await rejects(locked.vault.list(), 'KC_VAULT_LOCKED');
    await locked.close();
    const wrong = await app(dir, 'wrong');
    await rejects(wrong.vault.get('openai_api_key'), 'KC_VAULT_KEY_INVALID');
    await wrong.close();
    const right = await openBlufio({ dataDir: dir, logger: silentLogger(), env: { BLUFIO_VAULT_KEY: 'correct horse battery staple' } });
    const list = await right.vault.list();
    assert.deepEqual(list.map((l) => [l.name, l.preview, l.tampered]), [
      ['openai_api_key', 'sk-proj-...4f2b', false],
      ['telegram_bot_token', '...le00', false],
    ]);
    assert.equal(await right.vault.delete('telegram_bot_token'), true);
    await rejects(right.vault.get('telegram_bot_token'), 'KC_NOT_FOUND');
    await rejects(right.vault.set('bad name', 'x'), 'KC_INVALID_INPUT');
    await rejects(right.vault.set('empty', ''), 'KC_INVALID_INPUT');
    await right.close();
  });

  it('a tampered entry fails alone; swapped or moved entries fail; a forged key record is refused', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'pw-one-pp');
    for (const n of ['a', 'b', 'c']) await a.vault.set(n, `value-of-${n}-0123456789abcdef`);
    await a.close();
    const db = raw(dir);
    const sealed = (n: string): Buffer => db.prepare('SELECT sealed FROM vault_entries WHERE name = ?').pluck().get(n) as Buffer;
    const [sa, sb] = [sealed('a'), sealed('b')];
    db.prepare('UPDATE vault_entries SET sealed = ? WHERE name = ?').run(sb, 'a');
    db.prepare('UPDATE vault_entries SET sealed = ? WHERE name = ?').run(sa, 'b');
    const sc = Buffer.from(sealed('c'));
    sc[20]! ^= 0x04;
    db.prepare('UPDATE vault_entries SET sealed = ? WHERE name = ?').run(sc, 'c');
    db.prepare("INSERT INTO vault_entries VALUES ('d', ?, 0, 0)").run(sa);
    db.close();
    const b = await app(dir, 'pw-one-pp');
    await b.vault.set('e', 'still-works-0123456789abcdef');
    for (const n of ['a', 'b', 'c', 'd']) await rejects(b.vault.get(n), 'KC_VAULT_TAMPERED');
    assert.equal((await b.vault.get('e')).expose(), 'still-works-0123456789abcdef');
    assert.deepEqual((await b.vault.list()).map((l) => [l.name, l.tampered]), [['a', true], ['b', true], ['c', true], ['d', true], ['e', false]]);
    await b.close();

    // The same entry in another vault, with the same name and passphrase, does not open there.
    const other = tmpDir();
    const o = await app(other, 'pw-one-pp');
    await o.vault.set('e', 'other');
    await o.close();
    const od = raw(other);
    od.prepare('UPDATE vault_entries SET sealed = ? WHERE name = ?').run(sealed2(dir, 'e'), 'e');
    od.close();
    const o2 = await app(other, 'pw-one-pp');
    await rejects(o2.vault.get('e'), 'KC_VAULT_TAMPERED');
    await o2.close();

    // Weakened or absurd KDF parameters in the key record are refused before any derivation.
    // QA r11: a forged 1 GiB, 64-pass, 64-lane record took two minutes to say "wrong passphrase".
    for (const [col, v] of [['kdf_memory_kib', 8], ['kdf_iterations', 1], ['kdf_memory_kib', 1 << 30], ['kdf_parallelism', 0], ['kdf_memory_kib', 1 << 20], ['kdf_iterations', 64], ['kdf_parallelism', 64]] as const) {
      const copy = tmpDir();
      fs.copyFileSync(path.join(dir, 'blufio.db'), path.join(copy, 'blufio.db'));
      const c = raw(copy);
      c.prepare(`UPDATE vault_meta SET ${col} = ?`).run(v);
      c.close();
      const x = await app(copy, 'pw-one-pp');
      await rejects(x.vault.get('e'), 'KC_VAULT_TAMPERED');
      await x.close();
    }
    // Every bit flip of the wrapped key, and of the salt, stops the unlock.
    const meta = raw(dir).prepare('SELECT wrapped_key, salt FROM vault_meta').get() as { wrapped_key: Buffer; salt: Buffer };
    for (const [col, blob] of [['wrapped_key', meta.wrapped_key], ['salt', meta.salt]] as const) {
      for (const bit of [0, 7, 8, 100, blob.length * 8 - 1].filter((b) => b < blob.length * 8)) {
        const copy = tmpDir();
        fs.copyFileSync(path.join(dir, 'blufio.db'), path.join(copy, 'blufio.db'));
        const c = raw(copy);
        const bad = Buffer.from(blob);
        bad[bit >> 3]! ^= 1 << (bit & 7);
        c.prepare(`UPDATE vault_meta SET ${col} = ?`).run(bad);
        c.close();
        const x = await app(copy, 'pw-one-pp');
        await rejects(x.vault.get('e'), 'KC_VAULT_KEY_INVALID');
        await x.close();
      }
    }
  });

  it('concurrent first uses share one creation and one unlock', async () => {
    const dir = tmpDir();
    let asked = 0;
    const ask = async (): Promise<string> => {
      asked++;
      return 'asked once';
    };
    const a = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, askPassphrase: ask });
    await Promise.all(Array.from({ length: 10 }, (_, i) => a.vault.set(`k${i}`, `value-${i}-0123456789abcdef`)));
    assert.equal(asked, 1);
    await a.close();
    const b = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, askPassphrase: ask });
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => b.vault.get(`k${i}`)));
    assert.deepEqual(got.map((g) => g.expose()), Array.from({ length: 10 }, (_, i) => `value-${i}-0123456789abcdef`));
    assert.equal(asked, 2);
    await b.close();
  });

  it('a new passphrase of fewer than 8 characters is refused, for a vault and a database; counted as typed, not in UTF-16 units (QA r10)', async () => {
    const short = (e: { code?: string; message?: string }) => e.code === 'KC_INVALID_INPUT' && /is shorter than 8 characters; nothing was changed/.test(e.message ?? '');
    const dir = tmpDir();
    const a = await app(dir, 'seven77');
    await assert.rejects(a.vault.set('k', 'value-0123456789abcdefghij'), short);
    assert.equal((await a.vault.status()).exists, false, 'no vault was made');
    await a.close();
    // Seven emoji are 14 UTF-16 units, and still seven characters.
    const b = await app(dir, '🔑🔑🔑🔑🔑🔑🔑');
    await assert.rejects(b.vault.set('k', 'value-0123456789abcdefghij'), short);
    await b.close();
    const c = await app(dir, 'eight888');
    await c.vault.set('k', 'value-0123456789abcdefghij');
    await assert.rejects(c.vault.changePassphrase('short'), short);
    await c.close();
    const d = await app(dir, 'eight888');
    assert.equal((await d.vault.get('k')).expose(), 'value-0123456789abcdefghij', 'the passphrase is unchanged');
    await d.close();
    const db = await runCli(['vault', 'db-encrypt', 'enable', tmpDir(), '--passphrase-env', 'DBKEY'], { env: cleanEnv({ DBKEY: 'db-pass' }) });
    assert.equal(db.code, 1);
    assert.match(db.stderr, /^error\[KC_INVALID_INPUT\]: the new database passphrase is shorter than 8 characters/);
  });

  it('a new passphrase with a line break or another control character is refused, for a vault, a change and a database; an existing one still opens (QA r11)', async () => {
    const control = (e: { code?: string; message?: string }) => e.code === 'KC_INVALID_INPUT' && /holds a control character/.test(e.message ?? '');
    const dir = tmpDir();
    // As a variable written with echo gives it: no prompt and no passphrase file can give it again.
    for (const p of ['correct-horse-battery\n', 'correct-horse\r\n', 'correct-horse\u001b[2K', 'correct-horse\u0085x']) {
      const a = await app(dir, p);
      await assert.rejects(a.vault.set('k', 'value-0123456789abcdefghij'), control);
      assert.equal((await a.vault.status()).exists, false, 'no vault was made');
      await a.close();
    }
    // A Tab can be typed at the prompt: taken.
    const b = await app(dir, 'correct\thorse-battery');
    await b.vault.set('k', 'value-0123456789abcdefghij');
    await assert.rejects(b.vault.changePassphrase('new-horse-battery\n'), control);
    await b.close();
    const c = await app(dir, 'correct\thorse-battery');
    assert.equal((await c.vault.get('k')).expose(), 'value-0123456789abcdefghij', 'the passphrase is unchanged');
    await c.close();
    const db = await runCli(['vault', 'db-encrypt', 'enable', tmpDir(), '--passphrase-env', 'DBKEY'], { env: cleanEnv({ DBKEY: 'db-passphrase\n' }) });
    assert.equal(db.code, 1);
    assert.match(db.stderr, /^error\[KC_INVALID_INPUT\]: the new database passphrase holds a control character/);
  });

  it('a lock() during a passphrase change cannot wrap a zeroed key; an explicit passphrase is always checked', async () => {
    const dir = tmpDir();
    let release!: (v: string) => void;
    const a = await openBlufio({
      dataDir: dir, passphrase: 'first-pp', logger: silentLogger(), env: {},
      askPassphrase: () => new Promise<string>((r) => (release = r)),
    });
    await a.vault.set('k', 'value-0123456789abcdefghij');
    const changing = a.vault.changePassphrase();
    await new Promise((r) => setImmediate(r));
    a.vault.lock();
    release('second-pp');
    await changing;
    await rejects(a.vault.unlock('wrong'), 'KC_VAULT_KEY_INVALID');
    assert.equal(await a.vault.unlock('second-pp'), true);
    await rejects(a.vault.unlock('wrong'), 'KC_VAULT_KEY_INVALID');
    assert.equal((await a.vault.get('k')).expose(), 'value-0123456789abcdefghij', 'the entries still open');
    await a.close();
  });

  it('BLUFIO_VAULT_KEY is taken out of the environment, so child processes never inherit it', async () => {
    const dir = tmpDir();
    process.env.BLUFIO_VAULT_KEY = 'from the environment';
    process.env.BLUFIO_DATA_DIR = dir;
    try {
      const a = await openBlufio({ logger: silentLogger() });
      assert.equal(process.env.BLUFIO_VAULT_KEY, undefined);
      await a.vault.set('k', 'value-0123456789abcdefghij');
      await a.close();
      const b = await openBlufio({ logger: silentLogger() });
      assert.equal((await b.vault.get('k')).expose(), 'value-0123456789abcdefghij', 'later opens in this process still have it');
      await b.close();
    } finally {
      delete process.env.BLUFIO_VAULT_KEY;
      delete process.env.BLUFIO_DATA_DIR;
    }
  });

  it('changing the passphrase re-wraps only the key: entries unchanged, old passphrase refused', async () => {
    const dir = tmpDir();
    const a = await app(dir, 'old-pass');
    await a.vault.set('k', 'value-0123456789abcdefgh');
    const before = raw(dir).prepare('SELECT sealed FROM vault_entries').pluck().all();
    await a.vault.changePassphrase('new-pass');
    // Locked, then used: the app opens it again with the new passphrase (it retried the one
    // given at open and failed KC_VAULT_KEY_INVALID).
    a.vault.lock();
    assert.equal((await a.vault.get('k')).expose(), 'value-0123456789abcdefgh');
    await a.close();
    assert.deepEqual(raw(dir).prepare('SELECT sealed FROM vault_entries').pluck().all(), before);
    const old = await app(dir, 'old-pass');
    await rejects(old.vault.get('k'), 'KC_VAULT_KEY_INVALID');
    await old.close();
    const fresh = await app(dir, 'new-pass');
    assert.equal((await fresh.vault.get('k')).expose(), 'value-0123456789abcdefgh');
    await fresh.close();
  });

  it('the passphrase is redacted like a value while the vault is open, the new one after a change, none once locked (QA r9)', async () => {
    // Before, a chat message or a log line holding the vault passphrase kept it in clear, while
    // a vault value beside it was redacted.
    const dir = tmpDir();
    const pass = 'correct horse battery staple 42';
    const log = memoryLogger();
    const a = await openBlufio({ dataDir: dir, logger: log.logger, env: {}, passphrase: pass });
    try {
      await a.vault.set('k', 'value-0123456789abcdefgh');
      const s = await a.sessions.create({ channel: 'c' });
      const m = await a.messages.append(s.id, { role: 'user', content: `my vault passphrase is ${pass}, and a key value-0123456789abcdefgh` });
      assert.equal(m.content, 'my vault passphrase is [REDACTED:vault], and a key [REDACTED:vault]');
      a.log.warn({ typed: pass, url: `https://x.test/?p=${encodeURIComponent(pass)}` }, 'a line');
      assert.ok(!JSON.stringify(log.lines()).includes('horse'), JSON.stringify(log.lines().at(-1)));
      await a.vault.changePassphrase('a new passphrase 0042');
      assert.equal(a.redactor.redact(`${pass} / a new passphrase 0042`), `${pass} / [REDACTED:vault]`);
      await a.lock();
      assert.equal(a.redactor.redact('a new passphrase 0042'), 'a new passphrase 0042', 'locked: forgotten with the values');
      await a.unlock({ passphrase: 'a new passphrase 0042' });
      assert.equal(a.redactor.redact('a new passphrase 0042'), '[REDACTED:vault]');
    } finally {
      await a.close();
    }
    assert.equal(a.redactor.redact('a new passphrase 0042'), 'a new passphrase 0042', 'closed: forgotten');
  });

  it('a lock() while a passphrase change is under way leaves no passphrase matched; a short passphrase is never matched (review r9)', async () => {
    // Asked for the new passphrase, the vault is locked meanwhile: the change goes on with its
    // own copy of the key (the new wrap is written), but nothing may stay matched.
    const a = await asking(
      tmpDir(),
      async (self, purpose) => {
        if (purpose !== 'change') return undefined;
        self.vault.lock();
        return 'the second passphrase 02';
      },
      'the first passphrase 01',
    );
    try {
      await a.vault.set('k', 'value-0123456789abcdefgh');
      await a.vault.changePassphrase();
      assert.equal(a.vault.unlocked, false);
      assert.equal(a.redactor.redact('the second passphrase 02 / the first passphrase 01'), 'the second passphrase 02 / the first passphrase 01');
    } finally {
      await a.close();
    }
    // Locked and unlocked again (with the old passphrase) while the change asks for the new one:
    // the vault is open, and only the new passphrase opens it now: that one is matched.
    const dir2 = tmpDir();
    const b = await asking(
      dir2,
      async (self, purpose) => {
        if (purpose !== 'change') return undefined;
        self.vault.lock();
        await self.vault.unlock('the first passphrase 01');
        return 'the second passphrase 02';
      },
      'the first passphrase 01',
    );
    try {
      await b.vault.set('k', 'value-0123456789abcdefgh');
      await b.vault.changePassphrase();
      assert.equal(b.vault.unlocked, true);
      assert.equal(b.redactor.redact('the second passphrase 02 / the first passphrase 01'), '[REDACTED:vault] / the first passphrase 01');
      // Another process changes it again; this one is handed the new passphrase by unlock() while
      // still open (the daemon's vault_unlock): that is the one matched from then on.
      const other = await app(dir2, 'the second passphrase 02');
      await other.vault.changePassphrase('the third passphrase 03');
      await other.close();
      await b.unlock({ passphrase: 'the third passphrase 03' });
      assert.equal(b.redactor.redact('the third passphrase 03 / the second passphrase 02'), '[REDACTED:vault] / the second passphrase 02');
    } finally {
      await b.close();
    }
    // A lock() while the passphrase for a new vault is asked for stops the creation.
    const c = await asking(tmpDir(), async (self, purpose) => {
      if (purpose !== 'create') return undefined;
      self.vault.lock();
      return 'a passphrase for a new vault 04';
    });
    try {
      await rejects(c.vault.set('k', 'value-0123456789abcdefgh'), 'KC_VAULT_LOCKED');
      assert.equal(c.vault.unlocked, false);
      assert.equal(c.redactor.redact('a passphrase for a new vault 04'), 'a passphrase for a new vault 04');
      assert.equal((await c.vault.status()).exists, false, 'no vault was created');
    } finally {
      await c.close();
    }
    // "password" as a passphrase: an ordinary word in messages and ids, never taken for a secret.
    const weak = await app(tmpDir(), 'password');
    try {
      await weak.vault.set('k', 'value-0123456789abcdefgh');
      const s = await weak.sessions.create({ channel: 'c', userId: 'password' });
      const m = await weak.messages.append(s.id, { role: 'user', content: 'how do I reset my password?' });
      assert.equal(m.content, 'how do I reset my password?');
    } finally {
      await weak.close();
    }
  });

  it('the database file and its WAL never hold a secret value or the passphrase', async () => {
    const dir = tmpDir();
    const pass = 'Pa55phrase-never-on-disk';
    const values = ['sk-proj-NEVERONDISK0123456789abcdef', 'xoxb-another-secret-NEVER-ON-DISK', 'ünïcødé-sëcrët-NEVER-🔑'];
    const a = await app(dir, pass);
    for (const [i, v] of values.entries()) await a.vault.set(`s${i}`, v);
    const scan = (): void => {
      // Every file, in directories too (the owners' lock files are in one).
      for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
        if (!fs.statSync(path.join(dir, f)).isFile()) continue;
        const bytes = fs.readFileSync(path.join(dir, f));
        for (const needle of [pass, ...values]) {
          assert.equal(bytes.indexOf(Buffer.from(needle, 'utf8')), -1, `${needle} found in ${f}`);
        }
      }
    };
    scan(); // while open: the WAL holds the new pages
    await a.close();
    scan();
  });
});

function sealed2(dir: string, name: string): Buffer {
  const db = raw(dir);
  try {
    return db.prepare('SELECT sealed FROM vault_entries WHERE name = ?').pluck().get(name) as Buffer;
  } finally {
    db.close();
  }
}
