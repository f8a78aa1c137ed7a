import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { spawnSync } from 'node:child_process';
import { cleanEnv, NOBODY, run, runCli, silentLogger, tmpDir, unprivilegedCli } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';

const PASS = 'objects edges passphrase';

async function open(dir: string): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, passphrase: PASS });
}

async function expectCode(p: Promise<unknown>, code: string, hint?: RegExp): Promise<void> {
  await assert.rejects(p, (err: { code?: string; hint?: string }) => {
    assert.equal(err.code, code);
    if (hint !== undefined) assert.match(err.hint ?? '', hint);
    return true;
  });
}

it('a web stream already locked to a reader is refused with KC_INVALID_INPUT and a hint, and nothing is stored', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    const rs = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array([1, 2, 3]));
        c.close();
      },
    });
    rs.getReader();
    await expectCode(app.objects.put(rs), 'KC_INVALID_INPUT', /releaseLock/);
    assert.equal((await app.objects.stats()).objects, 0);
    assert.equal((await app.objects.stats()).tempFiles, 0);
  } finally {
    await app.close();
  }
});

it('a malformed async iterable, or a source that throws (a non-Error too), is KC_INVALID_INPUT with the cause kept, and nothing is left behind', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    const iterable = (next: () => unknown): AsyncIterable<Uint8Array> => ({ [Symbol.asyncIterator]: () => ({ next }) as unknown as AsyncIterator<Uint8Array> });
    for (const encrypted of [false, true]) {
      await app.objects.setEncryption(encrypted);
      await expectCode(app.objects.put(iterable(() => 5)), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put(iterable(async () => null)), 'KC_INVALID_INPUT');
      await expectCode(app.objects.put({ [Symbol.asyncIterator]: () => 7 } as unknown as AsyncIterable<Uint8Array>), 'KC_INVALID_INPUT');
      const thrown = [42, Symbol('s'), new RangeError('disk went away')];
      for (const value of thrown) {
        const source = (async function* () {
          yield Buffer.from('abc');
          throw value;
        })();
        await assert.rejects(app.objects.put(source), (err: { code?: string; message?: string; cause?: unknown }) => {
          assert.equal(err.code, 'KC_INVALID_INPUT');
          assert.match(err.message ?? '', /^the source failed: (42|symbol|disk went away)/);
          assert.equal(err.cause, value);
          return true;
        });
      }
    }
    const stats = await app.objects.stats();
    assert.equal(stats.objects, 0);
    assert.equal(stats.tempFiles, 0);
  } finally {
    await app.close();
  }
});

it('gc with .tmp or .trash a symlink (or a file): that one is left alone, logged at ERROR, and gc collects what it can', async () => {
  const dir = tmpDir();
  const elsewhere = tmpDir();
  const mem = memoryLogger('error');
  const app = await openBlufio({ dataDir: dir, logger: mem.logger, env: {}, passphrase: PASS });
  const objects = path.join(dir, 'objects');
  // A file named the way a put names a temporary file of a process long gone, outside the store.
  const foreign = path.join(elsewhere, '1_1_aaaaaaaaaaaa_bbbbbbbbbbbb.part');
  fs.writeFileSync(foreign, 'precious');
  try {
    await app.objects.put(Buffer.from('garbage nobody references'));
    await app.objects.delete((await app.objects.put(Buffer.from('made .trash'))).ref);
    fs.rmSync(path.join(objects, '.tmp'), { recursive: true });
    fs.symlinkSync(elsewhere, path.join(objects, '.tmp'));
    await new Promise((r) => setTimeout(r, 5)); // older than a grace time of 0 ms
    const gc = await app.objects.gc({ graceMs: 0 });
    assert.equal(gc.objectsRemoved, 1, 'the unreferenced object is collected');
    assert.equal(gc.tempFilesRemoved, 0);
    assert.ok(fs.existsSync(foreign), 'nothing behind the link was touched');
    assert.ok(mem.lines().some((l) => l.level === 50 && /gc left \.tmp alone/.test(String(l.msg))));
    fs.rmSync(path.join(objects, '.tmp'));
    // .trash linked elsewhere: objects and stored files are removed only through the trash, so
    // none is; an abandoned temporary file still goes.
    const left = await app.objects.put(Buffer.from('stays while .trash is foreign'));
    fs.writeFileSync(path.join(objects, '.tmp', '1_1_aaaaaaaaaaaa_cccccccccccc.part'), 'dead put');
    fs.rmSync(path.join(objects, '.trash'), { recursive: true });
    fs.symlinkSync(elsewhere, path.join(objects, '.trash'));
    await new Promise((r) => setTimeout(r, 5));
    const gc2 = await app.objects.gc({ graceMs: 0 });
    assert.deepEqual({ ...gc2 }, { objectsRemoved: 0, filesRemoved: 0, bytesFreed: 0, tempFilesRemoved: 1 });
    assert.equal((await app.objects.stat(left.ref)).ref, left.ref);
    assert.deepEqual(fs.readdirSync(elsewhere), [path.basename(foreign)]);
    assert.ok(mem.lines().some((l) => l.level === 50 && /gc left \.trash alone/.test(String(l.msg))));
    // A file in .trash's place: the same.
    fs.rmSync(path.join(objects, '.trash'));
    fs.writeFileSync(path.join(objects, '.trash'), 'x');
    assert.equal((await app.objects.gc({ graceMs: 0 })).objectsRemoved, 0);
    fs.rmSync(path.join(objects, '.trash'));
    assert.equal((await app.objects.gc({ graceMs: 0 })).objectsRemoved, 1, 'with its own .trash back, gc collects it');
  } finally {
    await app.close();
  }
});

it('get() with objects/ a regular file fails KC_DB_IO naming the object; the CLI does not blame its output file and leaves none', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  let ref: string;
  try {
    ref = (await app.objects.put(Buffer.from('hello'))).ref;
    const objects = path.join(dir, 'objects');
    fs.renameSync(objects, `${objects}.moved`);
    fs.writeFileSync(objects, 'not a directory');
    await assert.rejects(app.objects.get(ref), (err: { code?: string; message?: string }) => {
      assert.equal(err.code, 'KC_DB_IO');
      assert.match(err.message ?? '', new RegExp(`reading object ${ref}`));
      return true;
    });
  } finally {
    await app.close();
  }
  const out = path.join(tmpDir(), 'out.bin');
  const cli = await runCli(['objects', 'get', ref, '--out', out], { env: cleanEnv({ BLUFIO_DATA_DIR: dir, BLUFIO_VAULT_KEY: PASS }) });
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /KC_DB_IO/);
  assert.match(cli.stderr, /reading object/);
  assert.doesNotMatch(cli.stderr, /writing/);
  assert.equal(fs.existsSync(out), false);
});

/** Waits a turn of the event loop at a time (the work watched runs on it) until `done`. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setImmediate(r));
}

/** Whether this process has `file` open (a descriptor in /proc/self/fd points at it). */
function isOpenHere(file: string): boolean {
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === file) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

it('a vault lock while verify decrypts a big file stops it in that file with KC_VAULT_LOCKED', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    await app.objects.setEncryption(true);
    const piece = Buffer.alloc(1 << 20, 7);
    await app.objects.put(
      (async function* () {
        for (let i = 0; i < 64; i++) yield piece;
      })(),
    );
    const fan = fs.readdirSync(path.join(dir, 'objects')).find((n) => /^[0-9a-f]{2}$/.test(n))!;
    const file = path.join(dir, 'objects', fan, fs.readdirSync(path.join(dir, 'objects', fan))[0]!);
    let settled = false;
    const verify = app.objects.verify().finally(() => (settled = true));
    // Locked once verify has the file open: the check before each file has passed.
    await until(() => settled || isOpenHere(file));
    app.vault.lock();
    await expectCode(verify, 'KC_VAULT_LOCKED');
  } finally {
    await app.close();
  }
});

it('a vault lock stops an encrypted put of one big Buffer where it is, not after the whole Buffer is sealed', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    await app.objects.setEncryption(true);
    const big = Buffer.alloc(128 << 20, 5);
    let settled = false;
    const put = app.objects.put(big).finally(() => (settled = true));
    // The put's temporary file, held open here so that its size can be read after the put removes it.
    const tmp = path.join(dir, 'objects', '.tmp');
    let fd: number | undefined;
    await until(() => {
      const part = fs.existsSync(tmp) ? fs.readdirSync(tmp).find((n) => n.endsWith('.part')) : undefined;
      if (part !== undefined) fd = fs.openSync(path.join(tmp, part), 'r');
      return settled || fd !== undefined;
    });
    assert.ok(fd !== undefined, 'the put wrote a temporary file');
    try {
      await until(() => settled || fs.fstatSync(fd!).size > 0);
      app.vault.lock();
      await expectCode(put, 'KC_VAULT_LOCKED');
      const written = fs.fstatSync(fd).size;
      assert.ok(written < big.length / 2, `stopped where it was: ${written} of ${big.length} bytes written`);
    } finally {
      fs.closeSync(fd);
    }
    assert.deepEqual(fs.readdirSync(tmp), []);
    assert.equal((await app.objects.stats()).objects, 0);
  } finally {
    await app.close();
  }
});

it('verify without the vault key still finds encrypted files missing or cut short (exit 1), and says whose content it did not check', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  const sizes = [5000, 7000, 9000];
  try {
    await app.objects.put(Buffer.from('a plain one'));
    await app.objects.setEncryption(true);
    for (const n of sizes) await app.objects.put(Buffer.alloc(n, n & 0xff));
  } finally {
    await app.close();
  }
  // Encrypted files by their stored size (44 header + 16 tag + 48 trailer around one chunk).
  const files = new Map<number, string>();
  for (const fan of fs.readdirSync(path.join(dir, 'objects')).filter((n) => /^[0-9a-f]{2}$/.test(n))) {
    for (const f of fs.readdirSync(path.join(dir, 'objects', fan))) {
      const file = path.join(dir, 'objects', fan, f);
      files.set(fs.statSync(file).size - 108, file);
    }
  }
  const verify = (json: boolean) => runCli(['objects', 'verify', ...(json ? ['--json'] : [])], { env: cleanEnv({ BLUFIO_DATA_DIR: dir }) });
  // All there: ok, but it says the content of three encrypted files was not checked.
  let cli = await verify(false);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /status +ok \(incomplete: the content of 3 encrypted file\(s\) was not checked, no vault key\)/);
  assert.match(cli.stdout, /not checked the content of 3 encrypted file\(s\)/);
  fs.rmSync(files.get(5000)!);
  fs.truncateSync(files.get(7000)!, 100);
  cli = await verify(true);
  assert.equal(cli.code, 1, cli.stderr);
  const r = JSON.parse(cli.stdout) as { ok: boolean; complete: boolean; filesOk: number; notChecked: number; problems: { problem: string }[] };
  assert.equal(r.ok, false);
  assert.equal(r.complete, false);
  assert.equal(r.filesOk, 1, 'the plain file is read back');
  assert.equal(r.notChecked, 1, 'only the intact encrypted file is left unchecked');
  assert.deepEqual(r.problems.map((p) => p.problem.replace(/^file [0-9a-f]+ /, '')).sort(), ['fails its check: the file has 100 bytes where 7108 were stored', 'the file is missing']);
  // The library says the same with the vault locked.
  const locked = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
  try {
    const v = await locked.objects.verify();
    assert.deepEqual([v.ok, v.complete, v.notChecked, v.problems.length], [false, false, 1, 2]);
  } finally {
    await locked.close();
  }
});

it('a vault lock in the first microtasks of a verify stops it, or leaves it keyless: no encrypted file is decrypted after the lock (QA r11)', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    await app.objects.setEncryption(true);
    for (let i = 0; i < 3; i++) await app.objects.put(Buffer.alloc(1 << 20, i + 1));
    // The key is derived after verify starts; a lock during that derivation went unseen, and
    // the whole store was read with the key (at offsets 1 and 2 here, before the fix).
    for (let offset = 0; offset < 12; offset++) {
      await app.unlock({ passphrase: PASS });
      await app.objects.stats();
      const verify = app.objects.verify().then(
        (r) => r,
        (err: { code?: string }) => String(err.code),
      );
      for (let j = 0; j < offset; j++) await Promise.resolve();
      await app.lock();
      const r = await verify;
      if (typeof r === 'string') assert.equal(r, 'KC_VAULT_LOCKED', `offset ${offset}`);
      else assert.deepEqual({ filesOk: r.filesOk, notChecked: r.notChecked }, { filesOk: 0, notChecked: 3 }, `offset ${offset}: decrypted after the lock`);
    }
  } finally {
    await app.close();
  }
});

/** An app in `dir`/data whose object store may hold 1,000,000 bytes ([objects] max_total_bytes). */
async function openWithRoom(dir: string): Promise<BlufioApp> {
  const configPath = path.join(dir, 'blufio.toml');
  fs.writeFileSync(configPath, '[objects]\nmax_total_bytes = 1000000\n');
  return openBlufio({ dataDir: path.join(dir, 'data'), configPath, logger: silentLogger(), env: {}, passphrase: PASS });
}

it('[objects] max_total_bytes stops a put at the room left, not after the whole upload; a duplicate still needs no room (QA r11)', async () => {
  const dir = tmpDir();
  const app = await openWithRoom(dir);
  const tmp = path.join(dir, 'data', 'objects', '.tmp');
  try {
    for (const encrypted of [false, true]) {
      await app.objects.setEncryption(encrypted);
      const first = Buffer.alloc(400_000, encrypted ? 2 : 1);
      await app.objects.put(first);
      // 200 MiB offered into less than 1 MB of room: before, the temporary file took all of it.
      let biggest = 0;
      let pieces = 0;
      const big = async function* (): AsyncGenerator<Buffer> {
        for (; pieces < 200; pieces++) {
          yield Buffer.alloc(1 << 20, pieces);
          for (const f of fs.existsSync(tmp) ? fs.readdirSync(tmp) : []) {
            try {
              biggest = Math.max(biggest, fs.statSync(path.join(tmp, f)).size);
            } catch {
              // removed meanwhile
            }
          }
        }
      };
      await expectCode(app.objects.put(big()), 'KC_OBJECT_STORE_FULL', /max_total_bytes/);
      assert.ok(biggest <= 3 << 20, `the temporary file reached ${biggest} bytes with under 1 MB of room`);
      assert.deepEqual(fs.readdirSync(tmp), []);
      // Content already stored is an object again without a byte of room, read back whole.
      const again = await app.objects.put(first);
      assert.equal(again.deduplicated, true);
      const back: Buffer[] = [];
      for await (const piece of await app.objects.get(again.ref)) back.push(piece as Buffer);
      assert.ok(Buffer.concat(back).equals(first));
    }
    const stats = await app.objects.stats();
    assert.equal(stats.objects, 4);
    assert.equal(stats.tempFiles, 0);
  } finally {
    await app.close();
  }
});

it('past max_total_bytes, a put of one big Buffer still lets a vault lock and a close in, and stops writing at the room (review of address scheme 2)', async () => {
  const dir = tmpDir();
  const app = await openWithRoom(dir);
  const tmp = path.join(dir, 'data', 'objects', '.tmp');
  /**
   * Starts a put of one 256 MiB Buffer and resolves once it has passed its room (its temporary
   * file came and went) and the event loop has turned 20 times more, the put still going;
   * `biggest` is the largest the temporary file was seen. Before, past the room nothing waited
   * for a write: the put held the event loop until it had hashed all it was given.
   */
  const pastTheRoom = async (): Promise<{ put: Promise<unknown>; biggest: number }> => {
    let settled = false;
    const put = app.objects.put(Buffer.alloc(256 << 20, 9)).finally(() => (settled = true));
    put.catch(() => {});
    let seen = false;
    let biggest = 0;
    let after = 0;
    await until(() => {
      const part = fs.existsSync(tmp) ? fs.readdirSync(tmp).find((n) => n.endsWith('.part')) : undefined;
      try {
        if (part !== undefined) biggest = Math.max(biggest, fs.statSync(path.join(tmp, part)).size);
      } catch {
        // removed meanwhile
      }
      seen ||= part !== undefined;
      if (seen && part === undefined) after++;
      return settled || after > 20;
    });
    // A check of the test itself: the put must still be running when the lock or close comes.
    // (On the code before, the commit's round trip outlasted the 20 turns; what failed there is
    // the code below: KC_OBJECT_STORE_FULL, the put having hashed its whole Buffer meanwhile.)
    assert.equal(settled, false, 'the put ended before the test could stop it');
    return { put, biggest };
  };
  try {
    await app.objects.setEncryption(true);
    const sealed = await pastTheRoom();
    app.vault.lock();
    await expectCode(sealed.put, 'KC_VAULT_LOCKED');
    // Plain: before, a whole piece (16 MiB of the Buffer) was written before the room was checked.
    await app.vault.unlock(PASS);
    await app.objects.setEncryption(false);
    const plain = await pastTheRoom();
    assert.ok(plain.biggest <= 3 << 20, `the temporary file reached ${plain.biggest} bytes with under 1 MB of room`);
    const closing = app.close();
    await expectCode(plain.put, 'KC_DB_CLOSED');
    await closing;
  } finally {
    await app.close();
  }
  assert.deepEqual(fs.readdirSync(tmp), []);
});

it('max_total_bytes, from the review: room freed during a put counts; a duplicate past the room cannot repair a damaged copy and says so', async () => {
  const dir = tmpDir();
  const app = await openWithRoom(dir);
  try {
    // 100 KB of room; the 900 KB object is deleted while a 500 KB put streams.
    const big = await app.objects.put(Buffer.alloc(900_000, 1));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const source = async function* (): AsyncGenerator<Buffer> {
      yield Buffer.alloc(100_000, 2);
      await gate;
      yield Buffer.alloc(400_000, 3);
    };
    const put = app.objects.put(source());
    await new Promise((r) => setTimeout(r, 100));
    await app.objects.delete(big.ref);
    release();
    assert.equal((await put).size, 500_000);
    // 600 KB stored, 400 KB of room: its copy damaged, the same 600 KB again cannot repair it.
    await app.objects.delete((await put).ref);
    const content = Buffer.alloc(600_000, 4);
    const first = await app.objects.put(content);
    const objects = path.join(dir, 'data', 'objects');
    const files = fs
      .readdirSync(objects)
      .filter((n) => /^[0-9a-f]{2}$/.test(n))
      .flatMap((fan) => fs.readdirSync(path.join(objects, fan)).map((n) => path.join(objects, fan, n)));
    assert.equal(files.length, 1);
    fs.truncateSync(files[0]!, 1000);
    await assert.rejects(app.objects.put(content), (err: { code?: string; message?: string }) => err.code === 'KC_OBJECT_STORE_FULL' && /its file is damaged or missing/.test(err.message ?? ''));
    assert.equal((await app.objects.stats()).objects, 1);
    // With room again (the limit is what counts, not what is there), the put repairs it.
    await app.objects.delete(first.ref, { force: true });
    const again = await app.objects.put(content);
    const back: Buffer[] = [];
    for await (const piece of await app.objects.get(again.ref)) back.push(piece as Buffer);
    assert.ok(Buffer.concat(back).equals(content));
  } finally {
    await app.close();
  }
});

it('an object name with a tab or a newline is refused like other control characters (QA r11)', async () => {
  const app = await open(tmpDir());
  try {
    for (const name of ['a\nb.txt', 'a\tb.txt', 'a\rb.txt']) await expectCode(app.objects.put(Buffer.from('x'), { name }), 'KC_INVALID_INPUT');
    assert.equal((await app.objects.stats()).objects, 0);
    assert.equal((await app.objects.put(Buffer.from('x'), { name: 'a b.txt' })).name, 'a b.txt');
  } finally {
    await app.close();
  }
});

it('verify: a FIFO, a link or a directory named like an address is unknown, not a stray gc would remove (QA r11)', async () => {
  const dir = tmpDir();
  const app = await open(dir);
  try {
    await app.objects.put(Buffer.from('hello'));
    const fan = fs.readdirSync(path.join(dir, 'objects')).find((n) => /^[0-9a-f]{2}$/.test(n))!;
    const at = (c: string): string => path.join(dir, 'objects', fan, fan + c.repeat(62));
    spawnSync('mkfifo', [at('a')]);
    fs.symlinkSync('/etc/passwd', at('c'));
    fs.mkdirSync(at('e'));
    assert.equal((await app.objects.gc()).filesRemoved, 0);
    const r = await app.objects.verify();
    assert.equal(r.strayFiles, 0);
    assert.deepEqual([...r.unknownFiles].sort(), ['a', 'c', 'e'].map((c) => `${fan}/${fan}${c.repeat(62)}`));
    assert.equal(r.ok, true);
  } finally {
    await app.close();
  }
});

it('a fan-out directory this user cannot read: verify names it and goes on, gc logs it and goes on, errors name the file (QA r11)', { skip: process.getuid?.() !== 0 ? 'needs root to make a directory nobody cannot read' : false }, async () => {
  const { cli, opts: asNobody } = unprivilegedCli();
  const dir = tmpDir();
  const data = path.join(dir, 'data');
  const home = path.join(dir, 'home');
  fs.mkdirSync(data, { mode: 0o700 });
  fs.mkdirSync(home);
  fs.chownSync(data, NOBODY, NOBODY);
  fs.chownSync(home, NOBODY, NOBODY);
  fs.chmodSync(dir, 0o755);
  const file = path.join(dir, 'hi.txt');
  fs.writeFileSync(file, 'hi', { mode: 0o644 });
  const env = cleanEnv({ HOME: home, BLUFIO_VAULT_KEY: PASS, BLUFIO_DATA_DIR: data });
  const cmd = (...args: string[]) => run(cli, ['objects', ...args], { env, ...asNobody });
  const put = await cmd('put', file);
  assert.equal(put.code, 0, put.stderr);
  const ref = put.stdout.split(/\s/)[0]!;
  // Its fan-out directory made root's and closed: as if restored by root.
  const fan = fs.readdirSync(path.join(data, 'objects')).find((n) => /^[0-9a-f]{2}$/.test(n))!;
  fs.chownSync(path.join(data, 'objects', fan), 0, 0);
  fs.chmodSync(path.join(data, 'objects', fan), 0o700);
  const verify = await cmd('verify');
  assert.equal(verify.code, 1, verify.stderr);
  assert.match(verify.stdout, new RegExp(`unreadable  ${fan} \\(EACCES: permission denied, scandir '[^']*objects/${fan}'\\)`));
  assert.match(verify.stdout, /damaged .*EACCES: permission denied, open '[^']*objects\//);
  const gc = await cmd('gc');
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stderr, /gc cannot list this directory of the object store/);
  const get = await cmd('get', ref, '-o', path.join(home, 'out'));
  assert.equal(get.code, 1);
  assert.match(get.stderr, new RegExp(`error\\[KC_DB_READONLY\\]: reading object ${ref}: EACCES: permission denied, open '[^']*objects/${fan}/`));
});

it('objects/ a plain file: put and gc say so and how to fix it; a FIFO or directory in .tmp is no temporary file (QA r11)', async () => {
  const dir = tmpDir();
  let app = await open(dir);
  try {
    await app.sessions.create({});
  } finally {
    await app.close();
  }
  fs.writeFileSync(path.join(dir, 'objects'), 'x');
  const { logger, lines } = memoryLogger('warn');
  app = await openBlufio({ dataDir: dir, logger, env: {}, passphrase: PASS });
  try {
    // The hint was for the data directory (point BLUFIO_DATA_DIR elsewhere), or a marker inside a file.
    for (const p of [app.objects.put(Buffer.from('x')), app.objects.gc()]) {
      await assert.rejects(p, (err: { code?: string; message?: string; hint?: string }) => {
        assert.equal(err.code, 'KC_DB_OPEN_FAILED');
        assert.match(err.message ?? '', /is a file, not a directory/);
        assert.match(err.hint ?? '', /^move \S+objects away/);
        return true;
      });
    }
    assert.equal(lines().filter((l) => /not this vault's own/.test(String(l.msg))).length, 0, 'a file is no other vault\'s store');
    assert.equal(fs.readFileSync(path.join(dir, 'objects'), 'utf8'), 'x');
  } finally {
    await app.close();
  }
  fs.rmSync(path.join(dir, 'objects'));
  app = await open(dir);
  try {
    await app.objects.put(Buffer.from('x'));
    spawnSync('mkfifo', [path.join(dir, 'objects', '.tmp', 'fifo')]);
    fs.mkdirSync(path.join(dir, 'objects', '.tmp', 'sub'));
    assert.equal((await app.objects.stats()).tempFiles, 0);
    const r = await app.objects.verify();
    assert.equal(r.tempFiles, 0);
    assert.deepEqual([...r.unknownFiles].sort(), ['.tmp/fifo', '.tmp/sub']);
  } finally {
    await app.close();
  }
});
