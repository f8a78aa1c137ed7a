import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { holdSource, piecesOf } from '../src/objects/source.js';

/** As put() reads its source (listening for its error meanwhile). */
function handedOver(s: fs.ReadStream, signal?: AbortSignal): AsyncIterator<Uint8Array> {
  holdSource(s);
  return piecesOf(s, signal)[Symbol.asyncIterator]();
}
import { silentLogger, tmpDir } from './helpers/index.js';

/**
 * A put given fs.createReadStream(path) reads the file itself, into buffers it reuses
 * (src/objects/file-source.ts). What must hold: the bytes stored are exactly those the stream
 * would have given, whatever its options; a stream blufio cannot read in its place is read as
 * a stream; the stream ends as if read; nothing is left open, and a stop at any point stops.
 */

const PASS = 'file source test passphrase';
const MIB = 1024 * 1024;

async function open(dir: string, configPath?: string): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger: silentLogger(), env: {}, passphrase: PASS, ...(configPath === undefined ? {} : { configPath }) });
}

async function readAll(s: Readable | AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of s) parts.push(Buffer.from(p as Uint8Array));
  return Buffer.concat(parts);
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Stores what `make()` gives, plain and encrypted, and checks it against what the same stream reads alone. */
async function storesAsRead(app: BlufioApp, make: () => fs.ReadStream, expectTaken: boolean, label: string): Promise<void> {
  const expected = await readAll(make());
  for (const encrypted of [false, true]) {
    await app.objects.setEncryption(encrypted);
    const s = make();
    const closed = once(s, 'close');
    const { ref, size } = await app.objects.put(s);
    assert.equal(size, expected.length, `${label}, encrypted ${encrypted}: size`);
    assert.ok((await readAll(await app.objects.get(ref))).equals(expected), `${label}, encrypted ${encrypted}: content`);
    // The stream's own counter moves only when the stream reads.
    assert.equal(s.bytesRead === 0, expectTaken, `${label}: read by blufio (${expectTaken}), bytesRead ${s.bytesRead}`);
    await closed;
  }
}

describe('a put from fs.createReadStream', () => {
  it('stores exactly the bytes the stream would give, for every start and end', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    // Not a multiple of any buffer size, and larger than one.
    const data = randomBytes(3 * MIB + 17);
    fs.writeFileSync(file, data);
    fs.writeFileSync(path.join(dir, 'empty.bin'), '');
    const app = await open(path.join(dir, 'data'));
    try {
      const ranges: Parameters<typeof fs.createReadStream>[1][] = [
        {},
        { highWaterMark: MIB },
        { start: 7 },
        { end: 999_999 },
        { start: MIB - 1, end: 2 * MIB },
        { start: 5, end: 5 },
        { start: 0, end: 0 },
        { start: data.length - 1 },
        { start: data.length + 10 },
        { end: data.length * 2 },
      ];
      for (const opts of ranges) await storesAsRead(app, () => fs.createReadStream(file, opts), true, JSON.stringify(opts));
      await storesAsRead(app, () => fs.createReadStream(path.join(dir, 'empty.bin')), true, 'empty file');
      fs.writeFileSync(path.join(dir, 'mib.bin'), data.subarray(0, MIB));
      await storesAsRead(app, () => fs.createReadStream(path.join(dir, 'mib.bin')), true, 'exactly a MiB');
      // Opened before it was handed over.
      const early = fs.createReadStream(file, { start: 3 });
      await once(early, 'ready');
      await app.objects.setEncryption(true);
      const { ref } = await app.objects.put(early);
      assert.ok((await readAll(await app.objects.get(ref))).equals(data.subarray(3)), 'opened before');
      assert.equal(early.bytesRead, 0);
    } finally {
      await app.close();
    }
  });

  it('reads as a stream whatever it cannot read in the stream\'s place, and stores the same bytes', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    const data = randomBytes(2 * MIB + 5);
    fs.writeFileSync(file, data);
    const app = await open(path.join(dir, 'data'));
    try {
      // Given a descriptor (already moved on): there is no path to open, and only the stream
      // knows where it reads from.
      await storesAsRead(
        app,
        () => {
          const fd = fs.openSync(file, 'r');
          fs.readSync(fd, Buffer.alloc(1000), 0, 1000, null);
          return fs.createReadStream(file, { fd });
        },
        false,
        'a descriptor read from',
      );
      await storesAsRead(app, () => fs.createReadStream(file, { fd: fs.openSync(file, 'r'), start: 100 }), false, 'a descriptor with a start');
      // Reading through another fs.
      const viaOther = { open: fs.open, read: fs.read, close: fs.close };
      await storesAsRead(app, () => fs.createReadStream(file, { fs: viaOther } as Parameters<typeof fs.createReadStream>[1]), false, 'an fs option');
      // Paused by its owner, a subclass, an instance's own _read.
      await storesAsRead(app, () => fs.createReadStream(file).pause(), false, 'paused');
      class Mine extends fs.ReadStream {}
      await storesAsRead(app, () => new (Mine as unknown as new (p: string) => fs.ReadStream)(file), false, 'a subclass');
      await storesAsRead(
        app,
        () => {
          const s = fs.createReadStream(file);
          const own = s._read.bind(s);
          s._read = (n: number) => own(n);
          return s;
        },
        false,
        'an own _read',
      );
      await storesAsRead(
        app,
        () => {
          const s = fs.createReadStream(file);
          const push = s.push.bind(s);
          s.push = (chunk: unknown) => push(chunk);
          return s;
        },
        false,
        'an own push',
      );
      // Flags that do not read: the stream fails (EBADF), and so does the put, rather than store the file.
      await assert.rejects(app.objects.put(fs.createReadStream(file, { flags: 'a' })), (err: { code?: string; cause?: { code?: string } }) => {
        assert.equal(err.code, 'KC_INVALID_INPUT');
        assert.equal(err.cause?.code, 'EBADF');
        return true;
      });
      // A FileHandle's stream.
      const fh = await fs.promises.open(file);
      try {
        await app.objects.setEncryption(false);
        const { ref } = await app.objects.put(fh.createReadStream({ autoClose: false, start: 0 }));
        assert.ok((await readAll(await app.objects.get(ref))).equals(data), 'a FileHandle stream');
      } finally {
        await fh.close();
      }
    } finally {
      await app.close();
    }
  });

  it('stores the file the stream opened, not one renamed over its path since', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    const first = randomBytes(300_000);
    const second = randomBytes(300_000);
    fs.writeFileSync(file, first);
    fs.writeFileSync(path.join(dir, 'other.bin'), second);
    const app = await open(path.join(dir, 'data'));
    try {
      const s = fs.createReadStream(file);
      await once(s, 'ready');
      fs.renameSync(path.join(dir, 'other.bin'), file);
      const { ref } = await app.objects.put(s);
      assert.ok((await readAll(await app.objects.get(ref))).equals(first));
      assert.ok(s.bytesRead > 0, 'read as a stream');
    } finally {
      await app.close();
    }
  });

  it('reads a FIFO as a stream, opening it once', async () => {
    const dir = tmpDir();
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const data = randomBytes(500_000);
    const app = await open(path.join(dir, 'data'));
    try {
      // The writer opens the FIFO once and writes everything: a second reader of it would take
      // some of the bytes, and an open that waited for a writer would never return.
      const from = path.join(dir, 'data.bin');
      fs.writeFileSync(from, data);
      const writer = spawn(process.execPath, ['-e', 'const fs = require("fs"); fs.writeFileSync(process.argv[2], fs.readFileSync(process.argv[1]))', from, fifo], { stdio: 'ignore' });
      const exited = once(writer, 'exit');
      const { ref } = await app.objects.put(fs.createReadStream(fifo));
      assert.equal((await exited)[0], 0);
      assert.ok((await readAll(await app.objects.get(ref))).equals(data));
    } finally {
      await app.close();
    }
  });

  it('ends the stream as if read: end and close come, and its descriptor is closed unless autoClose is off', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    fs.writeFileSync(file, randomBytes(1_500_000));
    const app = await open(path.join(dir, 'data'));
    try {
      const before = openFds();
      const s = fs.createReadStream(file);
      const ended = once(s, 'end');
      const closed = once(s, 'close');
      await app.objects.put(s);
      await ended;
      await closed;
      assert.equal(s.bytesRead, 0, 'read by blufio');
      assert.equal(openFds(), before, 'no descriptor left open');

      const kept = fs.createReadStream(file, { autoClose: false });
      const keptEnded = once(kept, 'end');
      await app.objects.put(kept);
      await keptEnded;
      const fd = (kept as unknown as { fd: number }).fd;
      assert.ok(fs.fstatSync(fd).isFile(), 'autoClose off: the descriptor stays the caller\'s');
      fs.closeSync(fd);
    } finally {
      await app.close();
    }
  });

  it('a file that cannot be opened is the caller\'s error, and a put past the size limit leaves nothing open', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, randomBytes(3 * MIB));
    const cfg = path.join(dir, 'blufio.toml');
    fs.writeFileSync(cfg, '[objects]\nmax_object_bytes = 1000000\n');
    const app = await open(path.join(dir, 'data'), cfg);
    try {
      const before = openFds();
      for (const encrypted of [false, true]) {
        await app.objects.setEncryption(encrypted);
        const s = fs.createReadStream(file);
        await assert.rejects(app.objects.put(s), (err: { code?: string }) => err.code === 'KC_OBJECT_TOO_LARGE');
        await new Promise((r) => setImmediate(r));
        assert.equal(s.destroyed, true);
        await assert.rejects(app.objects.put(fs.createReadStream(path.join(dir, 'missing'))), (err: { code?: string; cause?: { code?: string } }) => {
          assert.equal(err.code, 'KC_INVALID_INPUT');
          assert.equal(err.cause?.code, 'ENOENT');
          return true;
        });
      }
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(openFds(), before, 'no descriptor left open');
    } finally {
      await app.close();
    }
  });

  it('stops at once when the stream is destroyed or the signal aborts mid-file, and closes its file when let go', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    fs.writeFileSync(file, randomBytes(4 * MIB));
    const before = openFds();
    // The caller destroys the stream it handed over: what it was destroyed with is the error.
    const s1 = fs.createReadStream(file);
    const it1 = handedOver(s1);
    assert.equal(((await it1.next()).value as Uint8Array).length, MIB);
    s1.destroy(new Error('caller cancelled'));
    await assert.rejects(it1.next(), (err: Error & { cause?: Error }) => {
      assert.equal(err.cause?.message, 'caller cancelled');
      return true;
    });
    // The put's signal.
    const ac = new AbortController();
    const s2 = fs.createReadStream(file);
    const it2 = handedOver(s2, ac.signal);
    await it2.next();
    ac.abort(new Error('put aborted'));
    await assert.rejects(it2.next(), /put aborted/);
    s2.destroy();
    // The caller stops asking (as a put past its limit does): the file is closed.
    const s3 = fs.createReadStream(file);
    const it3 = handedOver(s3);
    await it3.next();
    await it3.return?.(undefined);
    s3.destroy();
    assert.equal(s3.bytesRead, 0, 'these were read by blufio');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(openFds(), before, 'no descriptor left open');
  });

  it('hands each buffer out again only after the next piece is asked for', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    const data = randomBytes(5 * MIB + 3);
    fs.writeFileSync(file, data);
    // Keeping views of every piece: each is right when handed out, and the two buffers take turns.
    const seen: Uint8Array[] = [];
    let off = 0;
    const it = handedOver(fs.createReadStream(file));
    for (let r = await it.next(); r.done !== true; r = await it.next()) {
      const p = r.value;
      assert.ok(Buffer.from(p).equals(data.subarray(off, off + p.length)), `piece at ${off}`);
      off += p.length;
      seen.push(p);
    }
    assert.equal(off, data.length);
    assert.equal(new Set(seen.map((p) => p.buffer)).size, 2, 'two buffers, reused');
  });
  it('leaves to the stream one that fs.ReadStream was replaced for (graceful-fs), and one with a read in flight', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    const data = randomBytes(1_200_000);
    fs.writeFileSync(file, data);
    const app = await open(path.join(dir, 'data'));
    const hung = (p: Promise<unknown>): Promise<unknown> =>
      Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error('the put never finished')), 20_000).unref())]);
    try {
      // What gracefulify() does: a constructor in fs.ReadStream's place, whose prototype has an
      // open() of its own. Node then opens through it, and no 'ready' ever comes.
      const Original = fs.ReadStream;
      function Legacy(this: fs.ReadStream, p: string): void {
        (Original as unknown as (this: fs.ReadStream, p: string) => void).call(this, p);
      }
      Legacy.prototype = Object.create(Original.prototype) as object;
      (Legacy.prototype as { open: () => void }).open = function (this: fs.ReadStream & { flags: string; fd: number | null }): void {
        // Slowed, so that the put is given the stream while it is still opening.
        const later = (cb: (err: NodeJS.ErrnoException | null, fd: number) => void): void =>
          void setTimeout(() => fs.open(this.path, this.flags, cb), 200);
        later((err, fd) => {
          if (err) {
            this.destroy();
            this.emit('error', err);
          } else {
            this.fd = fd;
            this.emit('open', fd);
            this.read();
          }
        });
      };
      (fs as { ReadStream: unknown }).ReadStream = Legacy;
      try {
        // fs.createReadStream builds the replacement's streams too.
        await storesAsRead(app, () => fs.createReadStream(file), false, 'fs.createReadStream under gracefulify');
        const legacy = new (fs.ReadStream as unknown as new (p: string) => fs.ReadStream)(file);
        const { ref } = (await hung(app.objects.put(legacy))) as { ref: string };
        assert.ok((await readAll(await app.objects.get(ref))).equals(data), 'graceful-fs style');
        assert.ok(legacy.bytesRead > 0, 'read as a stream');
      } finally {
        (fs as { ReadStream: unknown }).ReadStream = Original;
      }

      // A read of the stream's own already running (slowed here), when the put is given it: had
      // the put read the file itself, that read would push after the end.
      const slowRead = fs.read;
      const slowOpen = fs.open;
      let slowed = 0;
      (fs as { read: unknown }).read = (...args: unknown[]) =>
        setTimeout(() => (slowRead as (...a: unknown[]) => void)(...args), slowed++ === 0 ? 300 : 0);
      // The stream's open slowed too, so that the put sees it still opening.
      (fs as { open: unknown }).open = (...args: unknown[]) => setTimeout(() => (slowOpen as (...a: unknown[]) => void)(...args), 200);
      try {
        // Asked to read once open (a read running when the put is given it), before it opened
        // (a read due once it opens), and as it opens (after the put first looked at it: only the
        // second look sees it). autoClose off, so the stream is not destroyed at its end, where a
        // late read would be dropped.
        for (const when of ['open', 'opening', 'on its open event']) {
          slowed = 0;
          const s = fs.createReadStream(file, { autoClose: false });
          if (when === 'open') await once(s, 'ready');
          if (when === 'on its open event') s.once('open', () => s.read(0));
          else s.read(0);
          const { ref: ref2 } = (await hung(app.objects.put(s))) as { ref: string };
          assert.ok((await readAll(await app.objects.get(ref2))).equals(data), `a read asked for while ${when}`);
          assert.equal(s.bytesRead, data.length, `read as a stream (${when})`);
          await new Promise((r) => setTimeout(r, 400));
          assert.equal(s.errored, null, 'nothing pushed after the end');
          fs.closeSync((s as unknown as { fd: number }).fd);
        }
      } finally {
        (fs as { read: unknown }).read = slowRead;
        (fs as { open: unknown }).open = slowOpen;
      }
    } finally {
      await app.close();
    }
  });

  it('a stalled file does not hold up a vault lock or close(), and its descriptor is closed once the read returns', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    fs.writeFileSync(file, randomBytes(4 * MIB));
    const before = openFds();
    const app = await open(path.join(dir, 'data'));
    const probe = await fs.promises.open(file);
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const realRead = proto.read;
    // From the second read of this file on, reads wait until released (a disk gone quiet).
    let stalled = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let reads = 0;
    // Held the way a read in the kernel holds it: FileHandle.close() waits for the handle's
    // operations in flight (its kRef/kUnref count) before it closes the descriptor.
    const sym = (name: string): symbol => {
      const k = Object.getOwnPropertySymbols(proto).find((x) => x.description === name);
      assert.ok(k !== undefined, `FileHandle has ${name}`);
      return k;
    };
    const kRef = sym('kRef');
    const kUnref = sym('kUnref');
    proto.read = function (this: Record<symbol, () => void>, ...args: unknown[]) {
      if (++reads >= 2) {
        stalled++;
        this[kRef]!();
        return released.then(() => realRead.apply(this, args)).finally(() => this[kUnref]!());
      }
      return realRead.apply(this, args);
    };
    const guard = (p: Promise<unknown>): Promise<unknown> =>
      Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error('held up by the stalled read')), 20_000).unref())]);
    try {
      await app.objects.setEncryption(true);
      const locked = app.objects.put(fs.createReadStream(file));
      while (stalled === 0) await new Promise((r) => setTimeout(r, 5));
      app.vault.lock();
      await guard(assert.rejects(locked, (err: { code?: string }) => err.code === 'KC_VAULT_LOCKED'));
      await app.vault.unlock(PASS);
      reads = 0;
      stalled = 0;
      const closing = app.objects.put(fs.createReadStream(file));
      while (stalled === 0) await new Promise((r) => setTimeout(r, 5));
      await guard(app.close());
      await assert.rejects(closing, (err: { code?: string }) => err.code === 'KC_DB_CLOSED');
    } finally {
      proto.read = realRead;
      release();
    }
    // The descriptors close in the background once the reads return.
    for (let i = 0; i < 200 && openFds() !== before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(openFds(), before, 'no descriptor left open once the reads returned');
  });

  it('a file whose first positioned read fails is read as a stream; a later failure fails the put', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'attachment.bin');
    const data = randomBytes(3 * MIB);
    fs.writeFileSync(file, data);
    const app = await open(path.join(dir, 'data'));
    const probe = await fs.promises.open(file);
    const proto = Object.getPrototypeOf(probe) as { read: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const realRead = proto.read;
    // A file that refuses positioned reads (a tracefs pipe, some FUSE files): ESPIPE.
    let failAt = 1;
    let reads = 0;
    proto.read = function (this: unknown, ...args: unknown[]) {
      if (++reads === failAt) return Promise.reject(Object.assign(new Error('ESPIPE: invalid seek, read'), { code: 'ESPIPE' }));
      return realRead.apply(this, args);
    };
    try {
      const s = fs.createReadStream(file);
      const { ref } = await app.objects.put(s);
      assert.ok((await readAll(await app.objects.get(ref))).equals(data));
      assert.equal(s.bytesRead, data.length, 'read as a stream');
      reads = 0;
      failAt = 2;
      await assert.rejects(app.objects.put(fs.createReadStream(file)), (err: { code?: string; cause?: { code?: string } }) => {
        assert.equal(err.code, 'KC_INVALID_INPUT');
        assert.equal(err.cause?.code, 'ESPIPE');
        return true;
      });
    } finally {
      proto.read = realRead;
      await app.close();
    }
  });
});
