import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { openBlufio, type BlufioApp, type PutOptions } from '../src/index.js';
import { memoryLogger } from './helpers/logger.js';
import { cleanEnv, runCli, silentLogger, tmpDir } from './helpers/index.js';

const PASS = 'objects test passphrase';

async function open(dir: string, opts: { config?: string; passphrase?: string | null; logger?: ReturnType<typeof silentLogger> } = {}): Promise<BlufioApp> {
  return openBlufio({
    dataDir: dir,
    logger: opts.logger ?? silentLogger(),
    env: {},
    ...(opts.passphrase === null ? {} : { passphrase: opts.passphrase ?? PASS }),
    ...(opts.config === undefined ? {} : { configPath: opts.config }),
  });
}

function config(dir: string, toml: string): string {
  const file = path.join(dir, 'blufio.toml');
  fs.writeFileSync(file, toml);
  return file;
}

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of s) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Every file under objects/ except the temporary and trash directories. */
function storedFiles(dir: string): string[] {
  const root = path.join(dir, 'objects');
  const out: string[] = [];
  for (const fan of fs.existsSync(root) ? fs.readdirSync(root) : []) {
    if (fan.startsWith('.')) continue;
    for (const f of fs.readdirSync(path.join(root, fan))) out.push(path.join(root, fan, f));
  }
  return out;
}

function tempFiles(dir: string): string[] {
  const t = path.join(dir, 'objects', '.tmp');
  return fs.existsSync(t) ? fs.readdirSync(t) : [];
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: { code?: string }) => {
    assert.equal(err.code, code);
    return true;
  });
}

describe('object store', () => {
  it('round-trips empty, small and chunk-boundary objects from every kind of source, plain and encrypted', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      const CHUNK = 256 * 1024;
      const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 1_000_003];
      for (const encrypted of [false, true]) {
        await app.objects.setEncryption(encrypted);
        for (const size of sizes) {
          // Fresh content for each source: the same content again would be deduplicated onto
          // the first file, and a later put's mistakes would go unseen.
          let data = randomBytes(size);
          const sources: [string, () => unknown][] = [
            ['buffer', () => data],
            ['uint8array', () => new Uint8Array(data)],
            ['node stream', () => Readable.from([data.subarray(0, size >> 1), data.subarray(size >> 1)])],
            ['web stream', () => Readable.toWeb(Readable.from([data]))],
            [
              'async iterable of odd pieces',
              () =>
                (async function* () {
                  for (let i = 0; i < size; i += 7777) yield data.subarray(i, i + 7777);
                })(),
            ],
          ];
          for (const [kind, source] of sources) {
            data = randomBytes(size);
            const put = await app.objects.put(source() as Buffer, { contentType: 'application/pdf', name: `${kind}.pdf` });
            assert.equal(put.size, size, kind);
            assert.equal(put.encrypted, encrypted);
            assert.match(put.ref, /^obj_[0-9A-Z]{26}$/);
            const back = await readAll(await app.objects.get(put.ref));
            assert.ok(back.equals(data), `${kind}, ${size} bytes, encrypted ${encrypted}`);
            const st = await app.objects.stat(put.ref);
            assert.deepEqual(
              { size: st.size, contentType: st.contentType, name: st.name, encrypted: st.encrypted, references: st.references },
              { size, contentType: 'application/pdf', name: `${kind}.pdf`, encrypted, references: 0 },
            );
          }
        }
      }
      assert.deepEqual(tempFiles(dir), []);
      const v = await app.objects.verify();
      assert.equal(v.ok, true, JSON.stringify(v.problems));
      assert.equal(v.strayFiles, 0);
    } finally {
      await app.close();
    }
  });

  it('stores the same content once per mode, hands out a reference per put, and lists them in order', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      const data = randomBytes(200_000);
      const a = await app.objects.put(data, { name: 'a.bin' });
      const b = await app.objects.put(Readable.from([data]), { name: 'b.bin' });
      assert.notEqual(a.ref, b.ref);
      assert.equal(a.deduplicated, false);
      assert.equal(b.deduplicated, true);
      assert.equal(storedFiles(dir).length, 1);
      assert.equal(path.basename(storedFiles(dir)[0]!), sha256(data), 'a plain object is named by its SHA-256');
      await app.objects.setEncryption(true);
      const c = await app.objects.put(data);
      const d = await app.objects.put(data);
      assert.equal(c.deduplicated, false);
      assert.equal(d.deduplicated, true);
      assert.equal(storedFiles(dir).length, 2);
      const stats = await app.objects.stats();
      assert.equal(stats.objects, 4);
      assert.equal(stats.files, 2);
      assert.equal(stats.encryptedFiles, 1);
      assert.equal(stats.logicalBytes, 4 * data.length);
      const page1 = await app.objects.list({ limit: 3 });
      const page2 = await app.objects.list({ limit: 3, after: page1.at(-1)!.ref });
      assert.deepEqual([...page1, ...page2].map((o) => o.ref), [a.ref, b.ref, c.ref, d.ref]);
      await app.objects.delete(a.ref);
      assert.equal(storedFiles(dir).length, 2, 'the file stays while another object has the same content');
      await app.objects.delete(b.ref);
      assert.equal(storedFiles(dir).length, 1, 'and goes with the last one');
      await expectCode(app.objects.get(a.ref), 'KC_NOT_FOUND');
      await expectCode(app.objects.stat(b.ref), 'KC_NOT_FOUND');
    } finally {
      await app.close();
    }
  });

  it('encrypted files are private, reveal neither content nor its hash, and old objects open after encryption is turned off', async () => {
    const dir = tmpDir();
    let app = await open(dir);
    const text = Buffer.from('the quick brown fox '.repeat(5000));
    let plainRef: string;
    let sealedRef: string;
    try {
      plainRef = (await app.objects.put(text)).ref;
      const on = await app.objects.setEncryption(true);
      assert.deepEqual(on, { enabled: true, changed: true });
      sealedRef = (await app.objects.put(Buffer.concat([text, Buffer.from('!')]))).ref;
    } finally {
      await app.close();
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'vault.json'), 'utf8'));
    assert.deepEqual(manifest.object_store, { dir: 'objects', enabled: true, encryption: { algorithm: 'aes-256-gcm', enabled: true } });
    const sealedFile = storedFiles(dir).find((f) => path.basename(f) !== sha256(text))!;
    const bytes = fs.readFileSync(sealedFile);
    assert.equal(path.basename(sealedFile) === sha256(Buffer.concat([text, Buffer.from('!')])), false, 'the name is not the plaintext hash');
    assert.equal(bytes.includes(Buffer.from('quick brown')), false, 'no plaintext in the file');
    assert.equal(bytes.subarray(0, 7).toString('latin1'), 'BLUFOBJ');
    for (const f of storedFiles(dir)) assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);
    for (const d of [path.join(dir, 'objects'), path.dirname(sealedFile)]) assert.equal(fs.statSync(d).mode & 0o777, 0o700, d);

    // A new process: encryption is still on (vault.json), and both objects read back.
    app = await open(dir);
    try {
      assert.equal(app.objects.encryption(), true);
      assert.equal((await app.objects.setEncryption(false)).changed, true);
      const again = await app.objects.put(Buffer.from('after'));
      assert.equal(again.encrypted, false);
      assert.ok((await readAll(await app.objects.get(plainRef))).equals(text));
      assert.equal((await readAll(await app.objects.get(sealedRef))).length, text.length + 1);
    } finally {
      await app.close();
    }

    // Without the vault passphrase: plain objects open, encrypted ones say the vault is locked.
    app = await open(dir, { passphrase: null });
    try {
      assert.ok((await readAll(await app.objects.get(plainRef))).equals(text));
      await expectCode(app.objects.get(sealedRef), 'KC_VAULT_LOCKED');
      await expectCode(app.objects.setEncryption(true), 'KC_VAULT_LOCKED');
    } finally {
      await app.close();
    }
    // The wrong passphrase opens nothing.
    app = await open(dir, { passphrase: 'not the passphrase' });
    try {
      await expectCode(app.objects.get(sealedRef), 'KC_VAULT_KEY_INVALID');
    } finally {
      await app.close();
    }
  });

  it('references in message metadata are checked, linked and protect the object from delete', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      const s = await app.sessions.create({ channel: 'test' });
      const o = await app.objects.put(Buffer.from('voice note'), { contentType: 'audio/ogg', name: 'note.ogg' });
      const m = await app.messages.append(s.id, { role: 'user', content: 'listen', metadata: { attachments: [{ ref: o.ref, kind: 'voice' }] } });
      assert.equal((await app.objects.stat(o.ref)).references, 1);
      await expectCode(app.objects.delete(o.ref), 'KC_OBJECT_REFERENCED');
      // A reference to an object that does not exist stores nothing.
      const before = (await app.messages.list(s.id)).length;
      await expectCode(app.messages.append(s.id, { role: 'user', content: 'x', metadata: { file: 'obj_01ARZ3NDEKTSV4RRFFQ69G5FAV' } }), 'KC_NOT_FOUND');
      assert.equal((await app.messages.list(s.id)).length, before);
      // Text that merely mentions a reference inside a longer string is not one.
      const mention = { note: `see obj_01ARZ3NDEKTSV4RRFFQ69G5FAV and ${o.ref} later` };
      await app.messages.append(s.id, { role: 'user', content: 'x', metadata: mention });
      const list = await app.messages.list(s.id);
      assert.deepEqual(list.at(-1)!.metadata, mention);
      assert.deepEqual(list[0]!.metadata, m.metadata);
      assert.equal((await app.objects.stat(o.ref)).references, 1, 'a mention is not a reference');
      const forced = await app.objects.delete(o.ref, { force: true });
      assert.equal(forced.freedBytes, 'voice note'.length);
      await expectCode(app.objects.get(o.ref), 'KC_NOT_FOUND');
    } finally {
      await app.close();
    }
  });

  it('refuses bad input with a clear code and leaves nothing behind', async () => {
    const dir = tmpDir();
    const cfg = config(dir, '[objects]\nmax_object_bytes = 100000\nmax_total_bytes = 250000\n');
    const app = await open(path.join(dir, 'data'), { config: cfg });
    const data = path.join(dir, 'data');
    try {
      await expectCode(app.objects.put(randomBytes(100_001)), 'KC_OBJECT_TOO_LARGE');
      await expectCode(
        app.objects.put(
          (async function* () {
            for (;;) yield randomBytes(30_000);
          })(),
        ),
        'KC_OBJECT_TOO_LARGE',
      );
      await expectCode(app.objects.put(randomBytes(5000), { maxBytes: 4999 }), 'KC_OBJECT_TOO_LARGE');
      await expectCode(app.objects.put('text' as unknown as Buffer), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Readable.from(['a', 'b'])), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), { contentType: 'not a type' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), { contentType: 'text/plain\r\nX-Evil: 1' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), { name: 'a\u0000b' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), { name: '\ud800' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.get('obj_nope'), 'KC_INVALID_INPUT');
      await expectCode(app.objects.get("obj_01ARZ3NDEKTSV4RRFFQ69G5FAV' OR 1=1 --"), 'KC_INVALID_INPUT');
      await expectCode(app.objects.stat('obj_01ARZ3NDEKTSV4RRFFQ69G5FAV'), 'KC_NOT_FOUND');
      await expectCode(app.objects.list({ limit: 0 }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.gc({ graceMs: -1 }), 'KC_INVALID_INPUT');
      // A source that fails midway: refused input, its own error kept as the cause.
      await assert.rejects(
        app.objects.put(
          (async function* () {
            yield randomBytes(10);
            throw Object.assign(new Error('network gone'), { code: 'ECONNRESET' });
          })(),
        ),
        (err: { code?: string; message?: string; cause?: { code?: string } }) =>
          err.code === 'KC_INVALID_INPUT' && err.message === 'the source failed: network gone' && err.cause?.code === 'ECONNRESET',
      );
      // The total limit counts stored bytes, each content once.
      const a = randomBytes(100_000);
      await app.objects.put(a);
      await app.objects.put(a);
      await app.objects.put(randomBytes(100_000));
      await expectCode(app.objects.put(randomBytes(60_000)), 'KC_OBJECT_STORE_FULL');
      assert.deepEqual(tempFiles(data), []);
      assert.equal(storedFiles(data).length, 2);
      assert.equal((await app.objects.stats()).objects, 3);
      const weird = await app.objects.put(Buffer.from('y'), { name: "Robert'); DROP TABLE objects;-- 🦀 ﷽", contentType: 'text/plain; charset=utf-8' });
      assert.equal((await app.objects.stat(weird.ref)).name, "Robert'); DROP TABLE objects;-- 🦀 ﷽");
    } finally {
      await app.close();
    }
  });

  it('a hostile objects/ directory: symlinks, FIFOs, foreign files and a manifest pointing at the database are refused, never followed or waited on', async () => {
    const dir = tmpDir();
    const elsewhere = tmpDir();
    const app = await open(dir);
    try {
      const o = await app.objects.put(randomBytes(5000));
      const file = storedFiles(dir)[0]!;
      // The file replaced by a FIFO (a read would wait forever), then by a symlink to /dev/zero.
      fs.rmSync(file);
      execFileSync('mkfifo', [file]);
      await expectCode(app.objects.get(o.ref), 'KC_OBJECT_CORRUPT');
      fs.rmSync(file);
      fs.symlinkSync('/dev/zero', file);
      await expectCode(app.objects.get(o.ref), 'KC_OBJECT_CORRUPT');
      const v = await app.objects.verify();
      assert.equal(v.problems.length, 1);
      fs.rmSync(file);
      // .tmp as a symlink to another directory: puts refuse it, gc deletes nothing there (and
      // goes on with the rest).
      const tmp = path.join(dir, 'objects', '.tmp');
      fs.rmSync(tmp, { recursive: true });
      fs.writeFileSync(path.join(elsewhere, `${process.pid}_1_aaaaaaaaaaaa_bbbbbbbbbbbb.part`), 'precious');
      fs.writeFileSync(path.join(elsewhere, 'notes.txt'), 'precious');
      fs.symlinkSync(elsewhere, tmp);
      await expectCode(app.objects.put(Buffer.from('x')), 'KC_DB_IO');
      assert.equal((await app.objects.gc({ graceMs: 0 })).tempFilesRemoved, 0);
      assert.equal(fs.readdirSync(elsewhere).length, 2, 'nothing outside the store was touched');
      fs.rmSync(tmp);
      // Files a person left in .tmp that a put would never name so are left alone.
      fs.mkdirSync(tmp, { mode: 0o700 });
      fs.writeFileSync(path.join(tmp, 'mine.txt'), 'keep');
      fs.mkdirSync(path.join(tmp, 'somedir'));
      await app.objects.gc({ graceMs: 0 });
      assert.deepEqual(fs.readdirSync(tmp).sort(), ['mine.txt', 'somedir']);
      // Names and types that would mislead a person or an HTTP header, and options that are not objects.
      await expectCode(app.objects.put(Buffer.from('x'), { name: 'invoice\u202Efdp.exe' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), { name: 'a\u2028b' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), { contentType: 'text/plain\r\n; x=1' }), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(Buffer.from('x'), null as unknown as PutOptions), 'KC_INVALID_INPUT');
      await expectCode(app.objects.list(null as unknown as undefined), 'KC_INVALID_INPUT');
      await expectCode(app.objects.get(10n as unknown as string), 'KC_INVALID_INPUT');
    } finally {
      await app.close();
    }
    // vault.json naming the database file as the object store's directory.
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'vault.json'), 'utf8'));
    manifest.object_store.dir = 'blufio.db';
    fs.writeFileSync(path.join(dir, 'vault.json'), JSON.stringify(manifest));
    const again = await open(dir);
    try {
      await expectCode(again.objects.put(Buffer.from('x')), 'KC_MANIFEST_INVALID');
      await expectCode(again.objects.stats(), 'KC_MANIFEST_INVALID');
    } finally {
      await again.close();
    }
  });

  it('a fan-out directory, .tmp or .trash that is a file or a symlink: reads and deletes refuse to go through it, verify reports it', async () => {
    const dir = tmpDir();
    const elsewhere = tmpDir();
    const app = await open(dir);
    try {
      const o = await app.objects.put(randomBytes(5000));
      const file = storedFiles(dir)[0]!;
      const fan = path.dirname(file);
      // The fan-out directory moved out of the store, a symlink left in its place.
      fs.renameSync(fan, path.join(elsewhere, 'fan'));
      fs.symlinkSync(path.join(elsewhere, 'fan'), fan);
      await expectCode(app.objects.get(o.ref), 'KC_DB_IO');
      await expectCode(app.objects.delete(o.ref), 'KC_DB_IO');
      assert.ok(fs.existsSync(path.join(elsewhere, 'fan', path.basename(file))), 'the file outside the store is still there');
      let v = await app.objects.verify();
      assert.equal(v.problems.length, 1);
      assert.match(v.problems[0]!.problem, /symbolic link/);
      assert.ok(v.unknownFiles.includes(path.basename(fan)));
      assert.equal((await app.objects.stat(o.ref)).ref, o.ref, 'the refused delete changed nothing');
      // gc collects the rest and leaves the objects behind the link alone (no file moved to the
      // trash and back on every run), logging it at ERROR.
      // Content whose address (SHA-256, plain) is not in the symlinked fan-out directory: a put
      // there is refused, one time in 256 with random content.
      let looseBytes: Buffer;
      do looseBytes = randomBytes(100);
      while (createHash('sha256').update(looseBytes).digest('hex').startsWith(path.basename(fan)));
      const loose = await app.objects.put(looseBytes);
      await new Promise((r) => setTimeout(r, 5)); // older than the grace time of 0 ms
      const gc = await app.objects.gc({ graceMs: 0 });
      assert.equal(gc.objectsRemoved, 1);
      await expectCode(app.objects.stat(loose.ref), 'KC_NOT_FOUND');
      assert.equal((await app.objects.stat(o.ref)).ref, o.ref);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'objects', '.trash')), []);
      assert.ok(fs.existsSync(path.join(elsewhere, 'fan', path.basename(file))));
      fs.rmSync(fan);
      fs.renameSync(path.join(elsewhere, 'fan'), fan);
      // .tmp as a symlink: stats counts nothing there.
      fs.rmSync(path.join(dir, 'objects', '.tmp'), { recursive: true, force: true });
      fs.mkdirSync(path.join(elsewhere, 'tmp'));
      for (const n of ['a', 'b', 'c']) fs.writeFileSync(path.join(elsewhere, 'tmp', n), n);
      fs.symlinkSync(path.join(elsewhere, 'tmp'), path.join(dir, 'objects', '.tmp'));
      assert.equal((await app.objects.stats()).tempFiles, 0);
      fs.rmSync(path.join(dir, 'objects', '.tmp'));
      // Names the store expects to be directories, as files: reported, the store still reads.
      const objects = path.join(dir, 'objects');
      fs.writeFileSync(path.join(objects, 'ab'), 'x');
      fs.rmSync(path.join(objects, '.tmp'), { recursive: true, force: true });
      fs.writeFileSync(path.join(objects, '.tmp'), 'x');
      fs.rmSync(path.join(objects, '.trash'), { recursive: true, force: true });
      fs.writeFileSync(path.join(objects, '.trash'), 'x');
      v = await app.objects.verify();
      assert.equal(v.ok, true);
      assert.deepEqual([...v.unknownFiles].sort(), ['.tmp', '.trash', 'ab']);
      assert.equal((await readAll(await app.objects.get(o.ref))).length, 5000);
      // With its file gone too, a get says the object is damaged (not a bare ENOTDIR).
      fs.renameSync(file, path.join(elsewhere, 'saved'));
      await expectCode(app.objects.get(o.ref), 'KC_OBJECT_CORRUPT');
      const cli = await runCli(['objects', 'verify', '--json'], { env: cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS }) });
      assert.equal(JSON.parse(cli.stdout).problems.length, 1, cli.stderr);
    } finally {
      await app.close();
    }
  });

  it('bytes in a SharedArrayBuffer are copied once and stored as they were, plain and encrypted', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      const data = randomBytes(700_000);
      const shared = new Uint8Array(new SharedArrayBuffer(data.length));
      shared.set(data);
      for (const enc of [false, true]) {
        await app.objects.setEncryption(enc);
        for (const source of [shared, Readable.from([shared.subarray(0, 300_000), shared.subarray(300_000)])]) {
          const o = await app.objects.put(source);
          assert.ok((await readAll(await app.objects.get(o.ref))).equals(data));
        }
      }
    } finally {
      await app.close();
    }
  });

  it('scrubs secrets from the names it stores', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      await app.vault.set('anthropic', 'sk-ant-api03-' + 'x'.repeat(90));
      const o = await app.objects.put(Buffer.from('z'), { name: `dump-sk-ant-api03-${'x'.repeat(90)}.txt` });
      const stored = (await app.objects.stat(o.ref)).name!;
      assert.equal(stored.includes('x'.repeat(90)), false);
      assert.match(stored, /REDACTED/);
    } finally {
      await app.close();
    }
  });

  it('close() stops a put whose source has gone quiet, and open reads', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    const kept = await app.objects.put(randomBytes(3_000_000));
    const reading = await app.objects.get(kept.ref);
    reading.on('error', () => {});
    let started!: () => void;
    const quiet = new Promise<void>((r) => (started = r));
    // A socket that sends a little and then nothing, ever.
    const source = new PassThrough();
    source.write(randomBytes(1000));
    setImmediate(started);
    const put = app.objects.put(source);
    await quiet;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(tempFiles(dir).length, 1);
    await app.close();
    await expectCode(put, 'KC_DB_CLOSED');
    assert.equal(source.destroyed, true, 'the source is let go');
    assert.equal(reading.destroyed, true);
    assert.deepEqual(tempFiles(dir), []);
    assert.equal(storedFiles(dir).length, 1);
    // After close, nothing starts, and a source handed over is not left open.
    const late = fs.createReadStream(storedFiles(dir)[0]!);
    await expectCode(app.objects.put(late), 'KC_DB_CLOSED');
    await new Promise((r) => setImmediate(r));
    assert.equal(late.destroyed, true);
  });

  it('a source that refills one buffer for every piece is stored as it was, plain and encrypted', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      for (const encrypted of [false, true]) {
        await app.objects.setEncryption(encrypted);
        const data = randomBytes(5 * 1024 * 1024 + 123);
        const reused = Buffer.alloc(100_000);
        const put = await app.objects.put(
          (async function* () {
            for (let off = 0; off < data.length; off += reused.length) {
              const n = data.copy(reused, 0, off, off + reused.length);
              yield reused.subarray(0, n);
            }
          })(),
        );
        assert.ok((await readAll(await app.objects.get(put.ref))).equals(data), `encrypted ${encrypted}`);
      }
    } finally {
      await app.close();
    }
  });

  it('a source that fails before it is read, or a file that does not exist, is an error for the caller, not a crash', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      for (const encrypted of [false, true]) {
        await app.objects.setEncryption(encrypted);
        // The source's own error is refused input, kept as the cause.
        const failed = (errno: string) => (err: { code?: string; message?: string; cause?: { code?: string } }) => {
          assert.equal(err.code, 'KC_INVALID_INPUT');
          assert.match(err.message ?? '', /^the source failed: /);
          assert.equal(err.cause?.code, errno);
          return true;
        };
        await assert.rejects(app.objects.put(fs.createReadStream(path.join(dir, 'no-such-file'))), failed('ENOENT'));
        const reset = new PassThrough();
        const p = app.objects.put(reset);
        reset.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
        await assert.rejects(p, failed('ECONNRESET'));
        // Refused before reading: the stream is closed, not left holding its descriptor.
        const refused = fs.createReadStream(path.join(dir, 'vault.json'));
        await expectCode(app.objects.put(refused, { contentType: 'no type' }), 'KC_INVALID_INPUT');
        await new Promise((r) => setImmediate(r));
        assert.equal(refused.destroyed, true);
      }
      assert.deepEqual(tempFiles(dir), []);
    } finally {
      await app.close();
    }
  });

  it('locking the vault stops encrypted reads and writes in progress; plain ones go on', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      const plain = await app.objects.put(randomBytes(4_000_000));
      await app.objects.setEncryption(true);
      const sealed = await app.objects.put(randomBytes(4_000_000));
      const encReader = await app.objects.get(sealed.ref);
      const plainReader = await app.objects.get(plain.ref);
      const source = new PassThrough();
      source.write(randomBytes(1000));
      const put = app.objects.put(source);
      await new Promise((r) => setTimeout(r, 50));
      app.vault.lock();
      await expectCode(readAll(encReader), 'KC_VAULT_LOCKED');
      await expectCode(put, 'KC_VAULT_LOCKED');
      assert.equal((await readAll(plainReader)).length, 4_000_000);
      assert.deepEqual(tempFiles(dir), []);
      await app.vault.unlock(PASS);
      assert.equal((await readAll(await app.objects.get(sealed.ref))).length, 4_000_000);
      // A lock that lands while a get or a put is still fetching its key or opening its file:
      // nothing is read or written with a key from before it (or a zeroed one).
      for (let i = 0; i < 10; i++) {
        await app.vault.unlock(PASS);
        const get = app.objects.get(sealed.ref).then(readAll);
        const put = app.objects.put(randomBytes(300_000));
        await new Promise((r) => (i % 2 === 0 ? setImmediate(r) : queueMicrotask(() => r(undefined))));
        app.vault.lock();
        const [g, p] = await Promise.allSettled([get, put]);
        if (g.status === 'rejected') assert.equal((g.reason as { code?: string }).code, 'KC_VAULT_LOCKED');
        else assert.equal(g.value.length, 4_000_000);
        if (p.status === 'rejected') assert.equal((p.reason as { code?: string }).code, 'KC_VAULT_LOCKED');
        else {
          await app.vault.unlock(PASS);
          assert.equal((await readAll(await app.objects.get(p.value.ref))).length, 300_000, 'a put that completed is readable');
        }
      }
      // A stream nobody listens to for errors (held, or .pipe()d) just ends: no uncaught error.
      await app.vault.unlock(PASS);
      const held = await app.objects.get(sealed.ref);
      held.pipe(new Writable({ write: (_c, _e, cb) => setTimeout(cb, 5) }));
      await new Promise((r) => setTimeout(r, 20));
      app.vault.lock();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(held.destroyed, true);
    } finally {
      await app.close();
    }
  });

  it('a file left in the trash by a delete that never committed still reads, verifies and is put back by gc; verify beside deletes finds no damage', async () => {
    const dir = tmpDir();
    const app = await open(dir);
    try {
      const o = await app.objects.put(randomBytes(10_000));
      const file = storedFiles(dir)[0]!;
      const trash = path.join(dir, 'objects', '.trash');
      fs.mkdirSync(trash, { mode: 0o700 });
      fs.renameSync(file, path.join(trash, `${path.basename(file)}.0123456789ab`));
      assert.equal((await readAll(await app.objects.get(o.ref))).length, 10_000);
      assert.equal((await app.objects.verify()).ok, true);
      await app.objects.gc();
      assert.ok(fs.existsSync(file), 'moved back');
      assert.deepEqual(fs.readdirSync(trash), []);

      // A delete moves its file between verify's look at its place and at the trash: not damage.
      for (let round = 0; round < 10; round++) {
        const many = await Promise.all(Array.from({ length: 60 }, () => app.objects.put(randomBytes(20_000))));
        const [v] = await Promise.all([app.objects.verify(), ...many.map((m) => app.objects.delete(m.ref))]);
        assert.deepEqual(v.problems, [], `round ${round}`);
      }
    } finally {
      await app.close();
    }
  });

  it('a damaged object fails its read with KC_OBJECT_CORRUPT, logged at error, and verify names it', async () => {
    const dir = tmpDir();
    const mem = memoryLogger('error');
    const app = await open(dir, { logger: mem.logger });
    try {
      const plain = await app.objects.put(randomBytes(300_000));
      await app.objects.setEncryption(true);
      const sealed = await app.objects.put(randomBytes(300_000));
      const files = storedFiles(dir);
      for (const f of files) {
        const b = fs.readFileSync(f);
        b[150_000]! ^= 0x01;
        fs.writeFileSync(f, b);
      }
      for (const ref of [plain.ref, sealed.ref]) {
        const s = await app.objects.get(ref);
        await expectCode(readAll(s), 'KC_OBJECT_CORRUPT');
      }
      assert.ok(mem.lines().some((l) => l.level === 50 && /failed its check/.test(String(l.msg))));
      const v = await app.objects.verify();
      assert.equal(v.ok, false);
      assert.deepEqual(v.problems.map((p) => p.refs).sort(), [[plain.ref], [sealed.ref]].sort());
      // Truncated: refused before the first byte.
      for (const f of files) fs.truncateSync(f, 1000);
      await expectCode(app.objects.get(sealed.ref), 'KC_OBJECT_CORRUPT');
      await expectCode(app.objects.get(plain.ref), 'KC_OBJECT_CORRUPT');
      for (const f of files) fs.rmSync(f);
      await expectCode(app.objects.get(plain.ref), 'KC_OBJECT_CORRUPT');
      assert.match((await app.objects.verify()).problems[0]!.problem, /missing/);
      // Their files are gone already: deleting them frees nothing on disk and says so (QA r9).
      assert.deepEqual(await app.objects.delete(plain.ref), { freedBytes: 0 });
      assert.deepEqual(await app.objects.delete(sealed.ref), { freedBytes: 0 });
      assert.equal((await app.objects.verify()).ok, true);
    } finally {
      await app.close();
    }
  });

  it('the CLI puts, gets, shows stats, switches encryption, verifies and collects', async () => {
    const dir = tmpDir();
    const env = cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS });
    const src = path.join(tmpDir(), 'photo.jpg');
    fs.writeFileSync(src, randomBytes(123_456));
    const on = await runCli(['objects', 'encryption', 'on', '--json'], { env });
    assert.equal(on.code, 0, on.stderr);
    assert.deepEqual(JSON.parse(on.stdout), { enabled: true, changed: true });
    const put = await runCli(['objects', 'put', src, '--content-type', 'image/jpeg', '--json'], { env });
    assert.equal(put.code, 0, put.stderr);
    const ref = JSON.parse(put.stdout).ref as string;
    assert.equal(JSON.parse(put.stdout).name, 'photo.jpg');
    const out = path.join(tmpDir(), 'back.jpg');
    const get = await runCli(['objects', 'get', ref, '--out', out], { env });
    assert.equal(get.code, 0, get.stderr);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)));
    assert.equal(fs.statSync(out).mode & 0o777, 0o600);
    // An existing file is never overwritten, nor removed.
    const again = await runCli(['objects', 'get', ref, '--out', out], { env });
    assert.notEqual(again.code, 0);
    assert.ok(fs.existsSync(out));
    const stats = await runCli(['objects', 'stats', '--json'], { env });
    assert.equal(JSON.parse(stats.stdout).encryptedFiles, 1);
    const human = await runCli(['objects', 'stats'], { env });
    assert.match(human.stdout, /encryption {2}on/);
    const verify = await runCli(['objects', 'verify'], { env });
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /status {6}ok/);
    const gc = await runCli(['objects', 'gc', '--grace-ms', '0', '--json'], { env });
    assert.equal(gc.code, 0, gc.stderr);
    assert.equal(JSON.parse(gc.stdout).objectsRemoved, 1);
    const gone = await runCli(['objects', 'get', ref, '--out', path.join(tmpDir(), 'x')], { env });
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /KC_NOT_FOUND/);
    const bad = await runCli(['objects', 'encryption', 'maybe'], { env });
    assert.notEqual(bad.code, 0);
    // Ordinary mistakes are errors with a code (exit 1), not "a bug in blufio" (exit 70).
    for (const args of [
      ['objects', 'put', path.join(tmpDir(), 'missing.bin')],
      ['objects', 'put', tmpDir()],
      ['objects', 'get', ref, '--out', out],
      ['objects', 'get', ref, '--out', path.join(tmpDir(), 'no', 'such', 'dir', 'x')],
    ]) {
      const r = await runCli(args, { env });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /error\[KC_[A-Z_]+\]/);
    }
    // Damage shows in verify's exit status.
    const p2 = JSON.parse((await runCli(['objects', 'put', src, '--json'], { env })).stdout);
    const file = storedFiles(dir)[0]!;
    fs.appendFileSync(file, 'x');
    const damaged = await runCli(['objects', 'verify', '--json'], { env });
    assert.notEqual(damaged.code, 0);
    assert.deepEqual(JSON.parse(damaged.stdout).problems[0].refs, [p2.ref]);
  });

  it('the CLI deletes objects, a referenced one only with --force, and the hints for a damaged one name that command (QA r8)', async () => {
    const dir = tmpDir();
    const env = cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS });
    const src = path.join(tmpDir(), 'scan.pdf');
    fs.writeFileSync(src, randomBytes(5000));
    const put = async (): Promise<string> => JSON.parse((await runCli(['objects', 'put', src, '--json'], { env })).stdout).ref as string;
    // Two objects of one content (one file), one of them attached to a message.
    const [attached, spare] = [await put(), await put()];
    const app = await open(dir);
    try {
      const s = await app.sessions.create({ channel: 'test' });
      await app.messages.append(s.id, { role: 'user', content: 'the scan', metadata: { attachments: [attached] } });
    } finally {
      await app.close();
    }
    const file = storedFiles(dir)[0]!;
    const b = fs.readFileSync(file);
    b[100]! ^= 0x01;
    fs.writeFileSync(file, b);

    // Both hints for the damage send the user to a command that exists (before: "delete the
    // object", and blufio had no such command).
    const get = await runCli(['objects', 'get', attached, '--out', path.join(tmpDir(), 'x')], { env });
    assert.equal(get.code, 1, get.stderr);
    assert.match(get.stderr, /^error\[KC_OBJECT_CORRUPT\]/m);
    assert.match(get.stderr, /^hint: .*blufio objects delete <ref> \(with --force/m);
    const verify = await runCli(['objects', 'verify'], { env });
    assert.equal(verify.code, 1, verify.stderr);
    assert.match(verify.stderr, /^hint: .*blufio objects delete <ref> \(with --force/m);

    const refused = await runCli(['objects', 'delete', attached], { env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /^error\[KC_OBJECT_REFERENCED\]: object \S+ is referenced by 1 message\(s\)/);
    assert.match(refused.stderr, new RegExp(`^hint: .*blufio objects delete ${attached} --force`, 'm'));
    const kept = await runCli(['objects', 'delete', spare], { env });
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal(kept.stdout, `deleted ${spare} (0 B freed)\n`, 'the file stays: the attached object holds it');
    const forced = await runCli(['objects', 'delete', attached, '--force', '--json'], { env });
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(JSON.parse(forced.stdout), { ref: attached, freedBytes: 5000 });
    assert.deepEqual(storedFiles(dir), []);
    const clean = await runCli(['objects', 'verify'], { env });
    assert.equal(clean.code, 0, clean.stderr);

    const gone = await runCli(['objects', 'delete', attached], { env });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^error\[KC_NOT_FOUND\]: no object /);
    const notRef = await runCli(['objects', 'delete', 'photo.jpg'], { env });
    assert.equal(notRef.code, 1);
    assert.match(notRef.stderr, /^error\[KC_INVALID_INPUT\]/);
    const bare = await runCli(['objects', 'delete'], { env });
    assert.equal(bare.code, 2);
  });
});
