import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { it } from 'node:test';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { cleanEnv, runCli, silentLogger, tmpDir } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';

// Two data directories whose objects/ is one directory (a symlink to another disk, copied with
// the data directory by cp -a): each one's gc would take the other's files for garbage.

const PASS = 'objects claim passphrase';

function open(dir: string, logger = silentLogger()): Promise<BlufioApp> {
  return openBlufio({ dataDir: dir, logger, env: {}, passphrase: PASS });
}

async function readAll(s: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const p of s) parts.push(p as Buffer);
  return Buffer.concat(parts).toString();
}

function marker(dataDir: string): { vault_id: string; vault_dir: string } {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'objects', '.vault'), 'utf8'));
}

function vaultId(dataDir: string): string {
  return (JSON.parse(fs.readFileSync(path.join(dataDir, 'vault.json'), 'utf8')) as { vault_id: string }).vault_id;
}

async function refused(p: Promise<unknown>, other: string): Promise<void> {
  await assert.rejects(p, (err: { code?: string; message?: string; hint?: string }) => {
    assert.equal(err.code, 'KC_DB_STATE_MISMATCH');
    assert.ok(err.message?.includes(fs.realpathSync(other)), err.message);
    assert.match(err.hint ?? '', /of its own/);
    return true;
  });
}

it('two vaults sharing one objects/ directory: the second refuses to put, delete or gc (logged at ERROR), reads go on, and the first loses nothing', async () => {
  const shared = tmpDir();
  const a = tmpDir();
  const b = tmpDir();
  for (const d of [a, b]) fs.symlinkSync(shared, path.join(d, 'objects'));
  const mem = memoryLogger('error');
  const appA = await open(a);
  const appB = await open(b, mem.logger);
  try {
    const precious = await appA.objects.put(Buffer.from('precious attachment of A'));
    await refused(appB.objects.put(Buffer.from('something in B')), a);
    await refused(appB.objects.gc({ graceMs: 0 }), a);
    await refused(appB.objects.delete(precious.ref), a); // not B's row anyway: refused before it is looked up
    assert.equal(fs.lstatSync(path.join(shared, '.vault')).mode & 0o777, 0o600);
    assert.deepEqual(marker(a), { vault_id: vaultId(a), vault_dir: fs.realpathSync(a) });
    assert.ok(mem.lines().some((l) => l.level === 50 && l.msg === "refusing to write to an object store that is not this vault's own"));
    // Reads of B's own (empty) index still answer.
    assert.equal((await appB.objects.stats()).objects, 0);
    assert.deepEqual(await appB.objects.list(), []);
    assert.equal((await appB.objects.verify()).ok, true);
    // A is untouched, and its own verify does not take the marker for an unknown file.
    assert.equal(await readAll(await appA.objects.get(precious.ref)), 'precious attachment of A');
    const v = await appA.objects.verify();
    assert.deepEqual([v.ok, v.filesOk, v.strayFiles, v.unknownFiles], [true, 1, 0, []]);
    await appA.objects.gc({ graceMs: 0 });
    assert.equal((await appA.objects.stats()).objects, 0, 'A collects its own');
  } finally {
    await appA.close();
    await appB.close();
  }
});

it('a copy of a data directory (cp -a) whose objects/ is a symlink shares the store: the copy refuses writes and gc, the original goes on', async () => {
  const shared = tmpDir();
  const root = tmpDir();
  const a = path.join(root, 'a');
  fs.mkdirSync(a);
  fs.symlinkSync(shared, path.join(a, 'objects'));
  let ref: string;
  let appA = await open(a);
  try {
    ref = (await appA.objects.put(Buffer.from('attachment of A'))).ref;
  } finally {
    await appA.close();
  }
  const copy = path.join(root, 'copy');
  execFileSync('cp', ['-a', a, copy]);
  const appC = await open(copy);
  try {
    await refused(appC.objects.put(Buffer.from('new in the copy')), a);
    await refused(appC.objects.gc({ graceMs: 0 }), a);
    assert.equal(await readAll(await appC.objects.get(ref)), 'attachment of A', 'the copy still reads');
  } finally {
    await appC.close();
  }
  // The CLI says the same, with the code and the hint.
  const cli = await runCli(['objects', 'gc'], { env: cleanEnv({ BLUFIO_DATA_DIR: copy, BLUFIO_VAULT_KEY: PASS }) });
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /KC_DB_STATE_MISMATCH/);
  assert.match(cli.stderr, /cp -a --dereference/);
  appA = await open(a);
  try {
    assert.equal((await appA.objects.put(Buffer.from('more of A'))).encrypted, false);
    assert.equal(await readAll(await appA.objects.get(ref)), 'attachment of A');
  } finally {
    await appA.close();
  }
  // Given a store of its own (what the hint says), the copy writes again.
  fs.rmSync(path.join(copy, 'objects'));
  execFileSync('cp', ['-a', '--dereference', shared, path.join(copy, 'objects')]);
  const again = await open(copy);
  try {
    await again.objects.put(Buffer.from('the copy has its own now'));
    assert.equal(marker(copy).vault_dir, fs.realpathSync(copy));
    assert.equal(marker(a).vault_dir, fs.realpathSync(a), "the original's marker is its own");
  } finally {
    await again.close();
  }
});

it('a data directory moved, or copied with objects/ a directory of its own, takes its store over (logged at info); a store from before markers gets one, and a half-written one is removed by gc', async () => {
  const root = tmpDir();
  const a = path.join(root, 'a');
  let appA = await open(a);
  let ref: string;
  try {
    ref = (await appA.objects.put(Buffer.from('moves along'))).ref;
  } finally {
    await appA.close();
  }
  const moved = path.join(root, 'moved');
  fs.renameSync(a, moved);
  const mem = memoryLogger('info');
  let app = await open(moved, mem.logger);
  try {
    await app.objects.gc();
    assert.equal(marker(moved).vault_dir, fs.realpathSync(moved));
    assert.ok(mem.lines().some((l) => l.level === 30 && /moved with its data directory/.test(String(l.msg))));
    assert.equal(await readAll(await app.objects.get(ref)), 'moves along');
  } finally {
    await app.close();
  }
  // A full copy (objects/ copied too): both write, each into its own.
  const copy = path.join(root, 'copy');
  execFileSync('cp', ['-a', moved, copy]);
  for (const d of [copy, moved]) {
    app = await open(d);
    try {
      await app.objects.put(Buffer.from(`written in ${d}`));
      assert.equal(marker(d).vault_dir, fs.realpathSync(d));
    } finally {
      await app.close();
    }
  }
  // No marker (a store from before them): the next write puts it back.
  fs.rmSync(path.join(moved, 'objects', '.vault'));
  // And one half written by a process killed two minutes ago: a temporary file, which gc removes.
  const half = path.join(moved, 'objects', '..vault.999999.abcd1234.tmp');
  fs.writeFileSync(half, '{"vault_id":');
  fs.utimesSync(half, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
  app = await open(moved);
  try {
    const v = await app.objects.verify();
    assert.deepEqual([v.tempFiles, v.unknownFiles], [1, []]);
    await app.objects.delete(ref);
    assert.equal(marker(moved).vault_id, vaultId(moved));
    assert.equal((await app.objects.gc()).tempFilesRemoved, 1);
    assert.equal(fs.existsSync(half), false);
  } finally {
    await app.close();
  }
});

it('a store from before markers (or whose marker was removed) shared with a copy: the copy\'s first gc claims it but deletes none of the files written before its claim', async () => {
  const root = tmpDir();
  const shared = path.join(root, 'disk-objects');
  fs.mkdirSync(shared, { mode: 0o700 });
  const a = path.join(root, 'a');
  fs.mkdirSync(a, { mode: 0o700 });
  fs.symlinkSync(shared, path.join(a, 'objects'));
  let app = await open(a);
  const s = await app.sessions.create({});
  const old = await app.objects.put(Buffer.from('an old attachment'));
  await app.messages.append(s.id, { role: 'user', content: 'old', metadata: { attachments: [old.ref] } });
  await app.close();
  const copy = path.join(root, 'copy');
  execFileSync('cp', ['-a', a, copy]);
  app = await open(a);
  const precious = await app.objects.put(Buffer.from('a new attachment of A, which the copy does not record'));
  await app.messages.append(s.id, { role: 'user', content: 'new', metadata: { attachments: [precious.ref] } });
  await app.close();
  fs.rmSync(path.join(shared, '.vault')); // the state of every store made before markers
  app = await open(copy);
  try {
    const r = await app.objects.gc({ graceMs: 0 });
    assert.equal(r.filesRemoved, 0, JSON.stringify(r));
    assert.equal((await app.objects.verify()).strayFiles, 1, 'A\'s file is a stray to the copy, reported, kept');
  } finally {
    await app.close();
  }
  app = await open(a);
  try {
    assert.equal(await readAll(await app.objects.get(precious.ref)), 'a new attachment of A, which the copy does not record');
    await refused(app.objects.put(Buffer.from('x')), copy); // the copy claimed it: A now learns it is shared
  } finally {
    await app.close();
  }
  // A stray written after the claim (a put killed between its rename and its commit) is swept.
  app = await open(copy);
  try {
    const fan = path.join(shared, 'ee');
    fs.mkdirSync(fan, { recursive: true, mode: 0o700 });
    const stray = path.join(fan, `ee${'0'.repeat(62)}`);
    fs.writeFileSync(stray, 'left by a killed put');
    const later = new Date(Date.now() + 5_000);
    fs.utimesSync(stray, later, later);
    assert.equal((await app.objects.gc({ graceMs: 0 })).filesRemoved, 1);
    assert.equal(fs.existsSync(stray), false);
  } finally {
    await app.close();
  }
});

it('a data directory moved with a symlink left at its old path is the same vault, not a copy: writes go on through either path', async () => {
  const root = tmpDir();
  const old = path.join(root, 'home-blufio');
  fs.mkdirSync(old, { mode: 0o700 });
  let app = await open(old);
  const first = await app.objects.put(Buffer.from('before the move'));
  const s = await app.sessions.create({});
  await app.messages.append(s.id, { role: 'user', content: 'kept', metadata: { attachments: [first.ref] } });
  await app.close();
  const moved = path.join(root, 'data-blufio');
  fs.renameSync(old, moved);
  fs.symlinkSync(moved, old);
  for (const via of [old, moved]) {
    app = await open(via);
    try {
      const put = await app.objects.put(Buffer.from(`after the move, via ${via}`));
      assert.equal(await readAll(await app.objects.get(put.ref)), `after the move, via ${via}`);
      assert.equal(await readAll(await app.objects.get(first.ref)), 'before the move');
      await app.objects.gc({ graceMs: 0 });
    } finally {
      await app.close();
    }
    assert.equal(marker(moved).vault_dir, fs.realpathSync(moved));
  }
});
