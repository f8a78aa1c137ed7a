import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { readStateFiles } from '../src/server/index.js';
import { cleanEnv, tmpDir } from './helpers/index.js';
import { serveForFile } from './helpers/daemon.js';

const serve = serveForFile();

/**
 * Loaded into the daemon with --import: records what daemon.json and rpc.token hold when the
 * socket is bound and after each of the two is written, as a client polling them would see.
 */
const WATCH = `
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
const dir = process.env.WATCH_DIR;
const read = (f) => { try { return fs.readFileSync(path.join(dir, f), 'utf8'); } catch { return null; } };
const snap = (event) => fs.appendFileSync(process.env.WATCH_LOG, JSON.stringify({ event, daemon: read('daemon.json'), token: read('rpc.token') }) + '\\n');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) { snap('listen'); return listen.apply(this, a); };
const close = net.Server.prototype.close;
net.Server.prototype.close = function (...a) { snap('close'); return close.apply(this, a); };
const rename = fs.renameSync;
fs.renameSync = function (from, to) {
  const r = rename.call(this, from, to);
  if (path.dirname(String(to)) === dir) snap('wrote ' + path.basename(String(to)));
  return r;
};
`;

describe('blufio serve: daemon.json and rpc.token after a SIGKILL', () => {
  it('the stale pair is gone before the socket is bound, and daemon.json is written before rpc.token', async () => {
    const dir = path.join(tmpDir('blufio-stale-'), 'data');
    const first = await serve({ dir });
    await first.stop('SIGKILL');
    assert.ok(fs.existsSync(path.join(dir, 'daemon.json')) && fs.existsSync(path.join(dir, 'rpc.token')), 'a killed daemon leaves both behind');

    const work = tmpDir('blufio-watch-');
    const preload = path.join(work, 'watch.mjs');
    const log = path.join(work, 'log.jsonl');
    fs.writeFileSync(preload, WATCH);
    const second = await serve({ dir, env: cleanEnv({ WATCH_DIR: dir, WATCH_LOG: log }), execArgv: ['--import', pathToFileURL(preload).href] });
    const snaps = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; daemon: string | null; token: string | null });
    assert.deepEqual(
      snaps.map((s) => s.event),
      ['listen', 'wrote daemon.json', 'wrote rpc.token'],
    );
    // Through the whole start (passphrase, Argon2, migrations) a client finds no daemon at all...
    assert.deepEqual(snaps[0], { event: 'listen', daemon: null, token: null }, 'the dead daemon\'s files are gone before the socket is bound');
    // ...and never the new token beside the dead daemon's port.
    for (const s of snaps) {
      if (s.token === second.token) assert.equal((JSON.parse(s.daemon ?? 'null') as { port: number } | null)?.port, second.info.port, `at "${s.event}"`);
    }
    assert.equal((await second.call('health')).result.status, 'ok');

    // A graceful stop: the files go before the port is released (the grace period would
    // otherwise leave daemon.json naming a port anyone may bind).
    await second.stop('SIGTERM');
    const closing = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; daemon: string | null; token: string | null })
      .find((x) => x.event === 'close');
    assert.deepEqual(closing, { event: 'close', daemon: null, token: null });
  });

  it('readStateFiles says nothing runs when no daemon holds the lock (a SIGKILL left the files), whatever the pid in daemon.json', async () => {
    const dir = path.join(tmpDir('blufio-stale-'), 'data');
    const d = await serve({ dir });
    const file = path.join(dir, 'daemon.json');
    const withPid = (pid: number): void => fs.writeFileSync(file, JSON.stringify({ ...(JSON.parse(fs.readFileSync(file, 'utf8')) as object), pid }));
    assert.equal(readStateFiles(dir)?.info.port, d.info.port);
    // A pid that means nothing here (another pid namespace: a container sharing the directory):
    // the daemon holds its lock, so it runs.
    withPid(2 ** 22 + 17);
    assert.equal(readStateFiles(dir)?.info.port, d.info.port);
    await d.stop('SIGKILL');
    assert.ok(fs.existsSync(file), 'the files are still there');
    assert.equal(readStateFiles(dir), undefined);
    // The dead daemon's pid reused by a live process (here: this one): still nothing runs.
    withPid(process.pid);
    assert.equal(readStateFiles(dir), undefined);
    // Only where the lock file cannot be read does the pid decide.
    fs.rmSync(path.join(dir, 'daemon.lock'));
    assert.equal(readStateFiles(dir)?.info.pid, process.pid);
    withPid(2 ** 22 + 17);
    assert.equal(readStateFiles(dir), undefined);
  });
});
