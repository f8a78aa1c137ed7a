import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import Database from '../src/storage/driver.js';
import { openBlufio, type BlufioApp } from '../src/index.js';
import { acquireFileLock } from '../src/dbcrypt/dirlock.js';
import { createLockFile, fileLockHeld, tryFileLock } from '../src/storage/file-lock.js';
import { isOwnerAlive } from '../src/storage/liveness.js';
import { daemonLockHeld } from '../src/server/state-files.js';
import { cleanEnv, fixture, silentLogger, sleep, tmpDir } from './helpers/index.js';

/**
 * Whether the owner of a session, a lease or a temporary file lives is its lock file's to say
 * (blufio.db.owners/<instance>.lock): a pid can name another process (reused) or nothing at all
 * (another pid namespace: a daemon in a container, a CLI on the host).
 */

async function open(dataDir: string): Promise<BlufioApp> {
  return openBlufio({ dataDir, logger: silentLogger() });
}

function unshareWorks(): boolean {
  const r = spawnSync('unshare', ['-p', '-f', '--mount-proc', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (ok()) return;
  throw new Error(`timed out waiting for ${what}`);
}

it('an owner in another pid namespace is alive while it runs (its session stays active, its lease its own), and dead once killed', async (t) => {
  if (!unshareWorks()) {
    t.skip('unshare -p is not permitted here (it needs CAP_SYS_ADMIN)');
    return;
  }
  const dataDir = path.join(tmpDir(), 'data');
  // --kill-child: should the test fail, the namespace's process does not outlive it.
  const child = spawn('unshare', ['-p', '-f', '--mount-proc', '--kill-child=SIGKILL', process.execPath, fixture('hold-owner'), dataDir], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.on('close', r));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
      });
      child.on('close', (code) => reject(new Error(`the fixture exited (${code})`)));
    });
    const held = JSON.parse(line) as { sessionId: string; jobId: string; pid: number };
    assert.ok(held.pid < 10, `pid ${held.pid} inside its namespace`);
    // From this namespace the token's pid is some other process, or none.
    const app = await open(dataDir);
    try {
      assert.equal((await app.sessions.get(held.sessionId)).state, 'active');
      assert.equal((await app.queue.get(held.jobId)).state, 'running');
      assert.deepEqual(await app.queue.claim('held'), [], 'nobody else gets a job its owner still runs');
      await app.queue.sweep();
      assert.equal((await app.queue.get(held.jobId)).state, 'running');
    } finally {
      await app.close();
    }
    // The namespace's first process, by its pid here (a child of unshare), as a container dies.
    const inner = Number(fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0]);
    process.kill(inner, 'SIGKILL');
    await exited;
    const locks = path.join(`${dataDir}/blufio.db.owners`);
    await until('the killed owner to let go of its lock', () => fs.readdirSync(locks).every((n) => fileLockHeld(path.join(locks, n)) === false));
    const again = await open(dataDir);
    try {
      assert.equal((await again.sessions.get(held.sessionId)).state, 'interrupted');
      assert.equal((await again.queue.get(held.jobId)).state, 'pending', 'returned at once, not at its deadline');
    } finally {
      await again.close();
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});

it('a dead owner whose pid now names a live process (reused) is seen dead: its lock file is free', async () => {
  const dataDir = path.join(tmpDir(), 'data');
  const first = await open(dataDir);
  const s = await first.sessions.create({ channel: 'reused' });
  await first.queue.enqueue('reused', 1);
  await first.close();
  // An owner that died: the token names this very process (alive, same start time), but its
  // lock file is there and nobody holds it.
  const stat = fs.readFileSync('/proc/self/stat', 'latin1');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  const token = `${process.pid}:${start}:0123456789ab`;
  const db = new Database(path.join(dataDir, 'blufio.db'));
  db.prepare("UPDATE sessions SET state = 'active', owner = ? WHERE id = ?").run(token, s.id);
  db.prepare("UPDATE jobs SET state = 'running', attempts = 1, lease_token = 'tok', lease_until = ?, lease_owner = ?").run(Date.now() + 600_000, token);
  db.close();
  const locks = path.join(dataDir, 'blufio.db.owners');
  fs.mkdirSync(locks, { recursive: true });
  createLockFile(path.join(locks, '0123456789ab.lock'));
  tryFileLock(path.join(locks, '0123456789ab.lock'))!();
  const app = await open(dataDir);
  try {
    assert.equal((await app.sessions.get(s.id)).state, 'interrupted');
    assert.equal((await app.queue.stats('reused')).running, 0, 'the lease was returned at once');
  } finally {
    await app.close();
  }
});

it('lock files of dead owners are removed after a minute; held and fresh ones stay; a clean close leaves nothing', async () => {
  const dataDir = path.join(tmpDir(), 'data');
  await (await open(dataDir)).close();
  const locks = path.join(dataDir, 'blufio.db.owners');
  assert.equal(fs.existsSync(locks), false, 'the last owner out removes the directory');
  fs.mkdirSync(locks);
  const file = (n: string): string => path.join(locks, `${n}.lock`);
  for (const n of ['aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc']) createLockFile(file(n));
  tryFileLock(file('aaaaaaaaaaaa'))!(); // dead, old
  const holding = tryFileLock(file('bbbbbbbbbbbb'))!; // alive, old
  tryFileLock(file('cccccccccccc'))!(); // dead, fresh: its owner may be about to lock it
  const old = new Date(Date.now() - 120_000);
  fs.utimesSync(file('aaaaaaaaaaaa'), old, old);
  fs.utimesSync(file('bbbbbbbbbbbb'), old, old);
  try {
    const app = await open(dataDir);
    const during = fs.readdirSync(locks).sort();
    await app.close();
    // Its own two (the storage's, the object store's) beside the held and the fresh one.
    assert.equal(during.length, 4, during.join(', '));
    assert.ok(during.includes('bbbbbbbbbbbb.lock') && during.includes('cccccccccccc.lock') && !during.includes('aaaaaaaaaaaa.lock'), during.join(', '));
    assert.deepEqual(fs.readdirSync(locks).sort(), ['bbbbbbbbbbbb.lock', 'cccccccccccc.lock']);
  } finally {
    holding();
  }
});

it('a second attempt on a lock file this process holds is refused and leaves the lock held for every other process', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'daemon.lock');
  const busy = (): Error => Object.assign(new Error('busy'), { code: 'BUSY' });
  const release = await acquireFileLock(file, 0, busy as never);
  try {
    await assert.rejects(acquireFileLock(file, 0, busy as never), { message: 'busy' });
    // Another process: the lock must still be seen held (closing a descriptor of the file in
    // this process would have dropped it).
    const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `import { fileLockHeld } from ${JSON.stringify(new URL('../src/storage/file-lock.js', import.meta.url).href)}; console.log(fileLockHeld(${JSON.stringify(file)}))`], { encoding: 'utf8' });
    assert.equal(probe.stdout.trim(), 'true', probe.stderr);
  } finally {
    release();
  }
});

it("a second open in a process that has the database open keeps the first one's locks on the file (its header is read through a kept descriptor)", async (t) => {
  if (!fs.existsSync('/proc/locks')) {
    t.skip('no /proc/locks here');
    return;
  }
  const dataDir = path.join(tmpDir(), 'data');
  const a = await open(dataDir);
  const locks = (): string[] => {
    const ino = fs.statSync(path.join(dataDir, 'blufio.db')).ino;
    return fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.includes(`:${ino} `) && l.includes(` ${process.pid} `));
  };
  try {
    await a.queue.enqueue('q', 1);
    assert.ok(locks().length > 0, 'SQLite holds a lock on the database file');
    for (let i = 0; i < 3; i++) {
      const b = await open(dataDir);
      assert.ok(locks().length > 0, `still held after open ${i + 2} (closing a descriptor of the file would have dropped it)`);
      await b.close();
      assert.ok(locks().length > 0, `still held after close ${i + 2}`);
    }
  } finally {
    await a.close();
  }
});

it('an open still in progress keeps its locks when another open in the process reads the header meanwhile', async (t) => {
  if (!fs.existsSync('/proc/locks')) {
    t.skip('no /proc/locks here');
    return;
  }
  const dataDir = path.join(tmpDir(), 'data');
  await (await open(dataDir)).close();
  const db = path.join(dataDir, 'blufio.db');
  const locks = (): number => {
    const ino = fs.statSync(db).ino;
    return fs.readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.includes(`:${ino} `) && l.includes(` ${process.pid} `)).length;
  };
  // Catch A between its writer taking SQLite's lock and the end of its open, then start B,
  // whose first step reads the header (third review: that read's close dropped A's lock).
  for (let attempt = 0; attempt < 20; attempt++) {
    let resolved = false;
    const pa = open(dataDir).then((a) => {
      resolved = true;
      return a;
    });
    let pb: Promise<BlufioApp> | undefined;
    while (!resolved && pb === undefined) {
      if (locks() > 0) pb = open(dataDir);
      else await new Promise((r) => setImmediate(r));
    }
    const a = await pa;
    if (pb === undefined) {
      await a.close();
      continue;
    }
    await (await pb).close();
    try {
      assert.ok(locks() > 0, "A's lock on the database file survived B's header read");
    } finally {
      await a.close();
    }
    return;
  }
  t.skip('the window between the writer and the end of the open was never caught');
});

it('a lock file with a FIFO beside it is never opened; its owner counts as alive, a daemon as not running (review r10)', async () => {
  // The FIFO made every probe hang; the first fix then fell back to the pid, which judges an
  // owner in another pid namespace dead (its sessions, leases and temporary files taken over).
  const dir = tmpDir();
  const token = '999999999:0:abcdef012345';
  const file = path.join(dir, 'abcdef012345.lock');
  createLockFile(file);
  spawnSync('mkfifo', [`${file}-journal`]);
  assert.equal(fileLockHeld(file), undefined, 'cannot be probed');
  assert.equal(isOwnerAlive(token, dir), true, 'not judged by its (dead) pid');
  assert.throws(() => tryFileLock(file), (e: { code?: string; message?: string }) => e.code === 'KC_DB_IO' && /-journal is not a regular file/.test(e.message!));
  const data = tmpDir();
  createLockFile(path.join(data, 'daemon.lock'));
  spawnSync('mkfifo', [path.join(data, 'daemon.lock-journal')]);
  assert.equal(daemonLockHeld(data), false);
});
