import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio } from '../src/index.js';
import { backupDatabase } from '../src/storage/maintenance/backup.js';
import { CLI, runCli, runProgram, silentLogger, startFixture, storedMessageIds, tmpDir } from './helpers/index.js';

type App = Awaited<ReturnType<typeof openBlufio>>;

/** A backup to each name, in each directory, with and without --force: refused as invalid input. */
async function assertRefused(app: App, dirs: string[], names: string[]): Promise<void> {
  for (const name of names) {
    for (const where of dirs) {
      for (const force of [false, true]) {
        const dest = path.join(where, name);
        await assert.rejects(app.db.backup(dest, { force }), { code: 'KC_INVALID_INPUT' }, `${dest} force=${force}`);
      }
    }
  }
}

describe('db backup', () => {
  it('makes a consistent, checked, 0600 copy while another process keeps writing', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const acked = new Set<string>();
    let ready!: () => void;
    const isReady = new Promise<void>((r) => (ready = r));
    const writer = startFixture('append-loop', [data, 'full', '20', '4'], (line) => {
      if (line.startsWith('A ')) {
        acked.add(line.split(' ')[2]!);
        if (acked.size === 2000) ready();
      }
    });
    await isReady;
    const before = new Set(acked);
    process.umask(0o022);
    const dest = path.join(dir, 'backups', 'b1.db');
    fs.mkdirSync(path.dirname(dest));
    const r = await runCli(['db', 'backup', dest, '--json', '--data-dir', data]);
    const after = new Set(acked);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { dest: string; bytes: number; integrity: string };
    assert.equal(report.dest, dest);
    assert.equal(report.integrity, 'ok');
    assert.equal(fs.statSync(dest).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(path.dirname(dest)), ['b1.db'], 'no temporary file is left behind');

    const copy = new Database(dest, { readonly: true });
    assert.equal(copy.pragma('integrity_check', { simple: true }), 'ok');
    assert.equal(copy.pragma('journal_mode', { simple: true }), 'delete');
    assert.deepEqual(copy.pragma('foreign_key_check'), []);
    const ids = new Set(storedMessageIds(copy));
    copy.close();
    for (const id of before) assert.ok(ids.has(id), 'everything acknowledged before the backup started is in it');
    const w = await writer.done;
    assert.equal(w.code, 0, w.stderr);
    assert.ok(acked.size > after.size, 'writes went on during and after the backup');
  });

  it('never clobbers without --force, replaces atomically with it, and refuses a directory', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
    try {
      const s = await app.sessions.create({});
      await app.messages.append(s.id, { role: 'user', content: 'first' });
      const dest = path.join(dir, 'b.db');
      fs.writeFileSync(dest, 'precious');
      await assert.rejects(app.db.backup(dest), { code: 'KC_BACKUP_EXISTS' });
      assert.equal(fs.readFileSync(dest, 'utf8'), 'precious');
      await app.db.backup(dest, { force: true });
      const copy = new Database(dest, { readonly: true });
      assert.equal(copy.prepare('SELECT content FROM messages').pluck().get(), 'first');
      copy.close();
      await assert.rejects(app.db.backup(dir), { code: 'KC_INVALID_INPUT' });
      await assert.rejects(app.db.backup(path.join(dir, 'missing', 'b.db')), { code: 'KC_BACKUP_FAILED' });
      await assert.rejects(app.db.backup(app.config.databasePath, { force: true }), { code: 'KC_INVALID_INPUT' });
      assert.deepEqual(fs.readdirSync(dir).sort(), ['b.db', 'data']);
    } finally {
      await app.close();
    }
  });

  it('with --force replaces only a regular file or a symbolic link: a FIFO, a device node and a socket are refused and left as they are', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
    const server = net.createServer();
    try {
      const fifo = path.join(dir, 'fifo');
      assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
      const sock = path.join(dir, 'sock');
      await new Promise<void>((resolve) => server.listen(sock, resolve));
      const kinds: [string, RegExp][] = [[fifo, /is a FIFO \(named pipe\)/], [sock, /is a socket/]];
      // A device node of our own (root only): a copy of /dev/null's numbers, inside the temp dir.
      const dev = path.join(dir, 'null');
      if (spawnSync('mknod', [dev, 'c', '1', '3']).status === 0) kinds.push([dev, /is a character device/]);
      for (const [dest, what] of kinds) {
        const before = fs.lstatSync(dest);
        for (const force of [true, false]) {
          await assert.rejects(app.db.backup(dest, { force }), (err: { code?: string; message?: string }) => {
            assert.equal(err.code, 'KC_INVALID_INPUT', err.message);
            assert.match(err.message ?? '', what);
            return true;
          });
        }
        const after = fs.lstatSync(dest);
        assert.deepEqual([after.ino, after.mode, after.rdev], [before.ino, before.mode, before.rdev], `${dest} left as it was`);
      }
      // A symbolic link is replaced itself, as before; what it pointed to is not touched.
      const target = path.join(dir, 'target');
      fs.writeFileSync(target, 'kept');
      const link = path.join(dir, 'link.db');
      fs.symlinkSync(target, link);
      await app.db.backup(link, { force: true });
      assert.ok(fs.lstatSync(link).isFile());
      assert.equal(fs.readFileSync(target, 'utf8'), 'kept');
    } finally {
      server.close();
      await app.close();
    }
  });

  it('refuses the live database, its -wal and -shm, under their own names or others (symlinked directory, hard link), --force or not', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    try {
      const s = await app.sessions.create({});
      await app.messages.append(s.id, { role: 'user', content: 'before' });
      fs.symlinkSync(data, path.join(dir, 'alias'));
      // Each exists: without --force they were answered KC_BACKUP_EXISTS, whose hint to pass
      // --force only led to this refusal.
      await assertRefused(app, [data, path.join(dir, 'alias')], ['blufio.db', 'blufio.db-wal', 'blufio.db-shm']);
      fs.linkSync(app.config.databasePath, path.join(dir, 'hardlink.db'));
      await assertRefused(app, [dir], ['hardlink.db']);
      const cli = await runCli(['db', 'backup', app.config.databasePath, '--data-dir', data]);
      assert.equal(cli.code, 1, cli.stderr);
      assert.match(cli.stderr, /^error\[KC_INVALID_INPUT\]: .* is the live database/);
      assert.doesNotMatch(cli.stderr, /--force/);
      await app.messages.append(s.id, { role: 'user', content: 'after' });
      assert.deepEqual((await app.messages.list(s.id)).map((m) => m.content), ['before', 'after']);
    } finally {
      await app.close();
    }
  });

  it('refuses the side files beside the real database when the configured one is a symlink, or its directory is reached through one (QA r9)', async () => {
    // SQLite follows the link and keeps -wal, -shm and -journal beside the real file: before,
    // `db backup real/blufio.db-wal --force` replaced the WAL of the running writer, and
    // acknowledged writes were lost; a backup at the -journal through a linked directory was
    // reported written, then deleted by the next open as a hot journal.
    const dir = tmpDir();
    const real = path.join(dir, 'real');
    const data = path.join(dir, 'data');
    fs.mkdirSync(real, { mode: 0o700 });
    fs.mkdirSync(data, { mode: 0o700 });
    const first = await openBlufio({ dataDir: real, logger: silentLogger(), env: {} });
    await first.close();
    fs.symlinkSync(path.join(real, 'blufio.db'), path.join(data, 'blufio.db'));
    const cfg = path.join(dir, 'blufio.toml');
    fs.writeFileSync(cfg, `[storage]\ndatabase_path = ${JSON.stringify(path.join(data, 'blufio.db'))}\n`, { mode: 0o600 });
    const app = await openBlufio({ configPath: cfg, logger: silentLogger(), env: {} });
    try {
      const s = await app.sessions.create({});
      await app.messages.append(s.id, { role: 'user', content: 'before' });
      assert.ok(fs.existsSync(path.join(real, 'blufio.db-wal')), 'the WAL is beside the real file');
      await assertRefused(app, [real], ['blufio.db-wal', 'blufio.db-shm', 'blufio.db-journal']);
      await app.messages.append(s.id, { role: 'user', content: 'after' });
      assert.deepEqual((await app.messages.list(s.id)).map((m) => m.content), ['before', 'after']);
    } finally {
      await app.close();
    }
    fs.symlinkSync(real, path.join(dir, 'alias'));
    const viaLink = await openBlufio({ dataDir: path.join(dir, 'alias'), logger: silentLogger(), env: {} });
    try {
      await assertRefused(viaLink, [real, path.join(dir, 'alias')], ['blufio.db-journal', 'blufio.db-wal']);
      // The same names in another case: one file on a case-insensitive file system (refused
      // here too, where they would be other files: a backup has no business under them).
      await assertRefused(viaLink, [real], ['BLUFIO.DB-WAL', 'Blufio.db-journal']);
    } finally {
      await viaLink.close();
    }
    // The data directory at another path no symlink explains: a bind mount, in a mount
    // namespace of the test's own (review r9: the -journal was written there, then deleted by
    // the next open as a hot journal). Skipped where one cannot be made.
    const view = path.join(dir, 'view');
    fs.mkdirSync(view);
    const script = `mount --bind "$1" "$2" && exec "$3" "$4" --data-dir "$1" db backup "$2/blufio.db-journal" --force`;
    const r = await runProgram('unshare', ['-m', 'sh', '-c', script, 'sh', real, view, process.execPath, CLI]);
    if (/mount: .*(permission|denied|not permitted)|unshare: /i.test(r.stderr)) return;
    assert.match(r.stderr, /^error\[KC_INVALID_INPUT\]: .* is the live database/, r.stderr);
    assert.equal(fs.existsSync(path.join(real, 'blufio.db-journal')), false);
  });

  it("refuses SQLite's <db>-journal and the names blufio keeps beside the database, --force or not", async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    try {
      const s = await app.sessions.create({});
      await app.messages.append(s.id, { role: 'user', content: 'kept' });
      fs.symlinkSync(data, path.join(dir, 'alias'));
      fs.mkdirSync(path.join(data, 'objects', 'ab'), { recursive: true });
      const vault = fs.readFileSync(path.join(data, 'vault.json'));
      const names = ['blufio.db-journal', 'vault.json', 'vault.lock', 'daemon.json', 'daemon.lock', 'rpc.token', 'objects/ab/cd', 'blufio.db.owners/x.lock'];
      await assertRefused(app, [data, path.join(dir, 'alias')], names);
      assert.equal(fs.existsSync(path.join(data, 'blufio.db-journal')), false);
      assert.equal(fs.existsSync(path.join(data, 'daemon.json')), false);
      assert.deepEqual(fs.readdirSync(path.join(data, 'objects', 'ab')), []);
      assert.equal(fs.existsSync(path.join(data, 'blufio.db.owners', 'x.lock')), false);
      assert.ok(fs.readFileSync(path.join(data, 'vault.json')).equals(vault), 'vault.json unchanged');
      await app.db.backup(path.join(data, 'backup.db'));
      assert.deepEqual((await app.messages.list(s.id)).map((m) => m.content), ['kept']);
    } finally {
      await app.close();
    }
  });

  it('refuses the object store vault.json names when it is not objects/ (and its directory before it exists)', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const first = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    await first.close();
    const manifest = JSON.parse(fs.readFileSync(path.join(data, 'vault.json'), 'utf8'));
    manifest.object_store.dir = 'attachments';
    fs.writeFileSync(path.join(data, 'vault.json'), JSON.stringify(manifest));
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    try {
      fs.symlinkSync(data, path.join(dir, 'alias'));
      await assertRefused(app, [data, path.join(dir, 'alias')], ['attachments']);
      assert.equal(fs.existsSync(path.join(data, 'attachments')), false);
      const put = await app.objects.put(Buffer.from('an attachment'));
      const stored = fs.readdirSync(path.join(data, 'attachments')).filter((n) => /^[0-9a-f]{2}$/.test(n));
      assert.equal(stored.length, 1);
      const file = path.join('attachments', stored[0]!, fs.readdirSync(path.join(data, 'attachments', stored[0]!))[0]!);
      await assertRefused(app, [data, path.join(dir, 'alias')], [file]);
      const got = Buffer.concat(await (await app.objects.get(put.ref)).toArray());
      assert.equal(got.toString(), 'an attachment');
    } finally {
      await app.close();
    }
  });

  it('refuses the names blufio deletes as leftovers: a migration copy and its side files, a temporary manifest', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    try {
      fs.symlinkSync(data, path.join(dir, 'alias'));
      const names = ['blufio.db.encrypting', 'blufio.db.encrypting-journal', 'blufio.db.encrypting-wal', 'blufio.db.encrypting-shm', '.vault.json.99999999.abc.tmp'];
      await assertRefused(app, [data, path.join(dir, 'alias')], names);
      for (const name of names) assert.equal(fs.existsSync(path.join(data, name)), false, name);
    } finally {
      await app.close();
    }
  });

  it("refuses the object store's and the owners' directories themselves, before they exist too", async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    try {
      fs.symlinkSync(data, path.join(dir, 'alias'));
      assert.equal(fs.existsSync(path.join(data, 'objects')), false, 'no object stored yet');
      await assertRefused(app, [data, path.join(dir, 'alias')], ['objects', 'blufio.db.owners']);
      assert.equal(fs.existsSync(path.join(data, 'objects')), false);
      await app.objects.put(Buffer.from('hello'));
      assert.equal(fs.statSync(path.join(data, 'objects')).isDirectory(), true);
    } finally {
      await app.close();
    }
    // The owners' directory is made by every open: without one (blufio closed, the directory
    // gone), the backup itself, called directly, must not take its place.
    const db = path.join(data, 'blufio.db');
    fs.rmSync(`${db}.owners`, { recursive: true, force: true });
    for (const force of [false, true]) {
      assert.throws(() => backupDatabase({ databasePath: db, dest: `${db}.owners`, force, durability: 'normal', lockTimeoutMs: 1000 }), { code: 'KC_INVALID_INPUT' });
    }
    assert.equal(fs.existsSync(`${db}.owners`), false);
  });

  it('removes the temporary directory of a backup whose process died', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
    try {
      // A pid that cannot be alive (above the kernel's pid_max of 2^22).
      const stale = path.join(dir, '.blufio-backup-99999999-abcdef');
      fs.mkdirSync(stale);
      fs.writeFileSync(path.join(stale, 'copy.db'), 'half a copy');
      const live = path.join(dir, `.blufio-backup-${process.pid}-keepme`);
      fs.mkdirSync(live);
      // A backup written under a name of that shape is a file, not a backup's directory: kept (QA r9).
      await app.db.backup(path.join(dir, '.blufio-backup-99999999-nightly.db'));
      await app.db.backup(path.join(dir, 'b.db'));
      assert.deepEqual(fs.readdirSync(dir).sort(), [`.blufio-backup-${process.pid}-keepme`, '.blufio-backup-99999999-nightly.db', 'b.db', 'data']);
    } finally {
      await app.close();
    }
  });

  it("a backup onto a full disk names the destination's disk, not the database's (QA r9)", async (t) => {
    // A 64 KiB tmpfs in a mount namespace of the test's own; skipped where one cannot be made.
    if (spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'], { stdio: 'ignore' }).status !== 0) {
      t.skip('unshare -m with mount is not available here');
      return;
    }
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: {} });
    const s = await app.sessions.create({});
    for (let i = 0; i < 30; i++) await app.messages.append(s.id, { role: 'user', content: `${i} ${'x'.repeat(10_000)}` });
    await app.close();
    const small = path.join(dir, 'small');
    fs.mkdirSync(small);
    const script = `mount -t tmpfs -o size=64k tmpfs "$1" && exec "$2" "$3" --data-dir "$4" db backup "$1/b.db"`;
    const r = await runProgram('unshare', ['-m', 'sh', '-c', script, 'sh', small, process.execPath, CLI, data]);
    // Before: KC_DB_FULL "the disk holding <data>/blufio.db is full", whose hint said a write was rolled back.
    assert.match(r.stderr, new RegExp(`^error\\[KC_BACKUP_FAILED\\]: the disk holding ${small.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is full`), r.stderr);
    assert.match(r.stderr, /hint: free space there, or write the backup elsewhere/);
    assert.equal(r.code, 1);
  });

  it('a backup that cannot be written leaves nothing at the destination', async () => {
    if (process.getuid?.() === 0) {
      // Root ignores directory modes; use a destination on a path that cannot hold files.
      const dir = tmpDir();
      const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
      try {
        await assert.rejects(app.db.backup('/proc/blufio-backup.db'), { code: 'KC_BACKUP_FAILED' });
        assert.equal(fs.existsSync('/proc/blufio-backup.db'), false);
      } finally {
        await app.close();
      }
      return;
    }
    const dir = tmpDir();
    const ro = path.join(dir, 'ro');
    fs.mkdirSync(ro, { mode: 0o500 });
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
    try {
      await assert.rejects(app.db.backup(path.join(ro, 'b.db')), { code: 'KC_BACKUP_FAILED' });
      assert.deepEqual(fs.readdirSync(ro), []);
    } finally {
      await app.close();
    }
  });

  it('a destination that is not a path, or options that are not { force: boolean }, are KC_INVALID_INPUT before anything is written', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
    const dest = path.join(dir, 'b.db');
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 20_000; i++) deep = { a: deep };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const cases: [string, unknown[]][] = [
      ['no destination', [undefined]],
      ['a number', [42]],
      ['an object', [{}]],
      ['a symbol', [Symbol('x')]],
      ['a deep object', [deep]],
      ['an empty string', ['']],
      ['a NUL', [`${dest}\0x`]],
      ['null options', [dest, null]],
      ['a function as force', [dest, { force: () => 1 }]],
      ['revoked options', [dest, revoked.proxy]],
    ];
    try {
      for (const [what, args] of cases) {
        await assert.rejects((app.db.backup as (...a: unknown[]) => Promise<unknown>)(...args), (e: { code?: string; message?: string }) => {
          assert.equal(e.code, 'KC_INVALID_INPUT', `${what}: ${e.message}`);
          assert.match(e.message!, /backup|force/, what);
          return true;
        });
      }
      assert.deepEqual(fs.readdirSync(dir), ['data'], 'nothing was written');
      await app.db.backup(dest, undefined);
      assert.ok(fs.existsSync(dest), 'undefined options are the defaults');
    } finally {
      await app.close();
    }
  });
});
