import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cleanEnv, runCli, sleep, tmpDir } from './helpers/index.js';
import { authHeaders, request, rpc, serveForFile, startServe } from './helpers/daemon.js';
import { makeCert } from './helpers/tls-cert.js';

const PASS = 'correct horse battery staple';
const SECRET = 'sk-proj-Zq8vT3nW5xY7aB9cD1eF2gH4iJ6kL0mN';

const serve = serveForFile();

/** A data directory whose vault holds SECRET under `openai`. */
async function dirWithVault(): Promise<string> {
  const dir = path.join(tmpDir('blufio-serve-'), 'data');
  const set = await runCli(['--data-dir', dir, 'config', 'set-secret', 'openai'], { env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }), input: `${SECRET}\n` });
  assert.equal(set.code, 0, set.stderr);
  return dir;
}

/**
 * Writes `head`, then whatever `more` writes (it stops when told the daemon has answered), and
 * resolves with everything the daemon sent before it closed the connection. A raw socket, so
 * an answer that arrives while the body is still being written is never lost to EPIPE.
 */
function rawExchange(port: number, head: string, more: (write: (s: string) => Promise<boolean>) => Promise<void>): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(head);
      void more(async (s) => {
        if (got !== '' || sock.destroyed) return false;
        // Wait for the socket to take it: an answer that comes meanwhile stops the writing.
        if (!sock.write(s)) await new Promise((r) => sock.once('drain', r));
        return true;
      }).then(() => sock.end());
    });
    sock.setEncoding('utf8').on('data', (c: string) => (got += c));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(got));
  });
}

function lines(stderr: string): { level: number; msg: string; [k: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string });
}

describe('blufio serve: every method over HTTP', () => {
  it('answers each RPC method as the library call it fronts, and locks and unlocks', async () => {
    const dir = await dirWithVault();
    const d = await serve({ dir, env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }) });
    assert.equal(fs.statSync(path.join(dir, 'rpc.token')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, 'daemon.json')).mode & 0o777, 0o600);
    assert.equal(d.info.pid, d.child.pid);
    assert.equal(d.info.address, '127.0.0.1');

    const health = await d.call('health');
    assert.equal(health.result.status, 'ok');
    assert.equal(health.result.version, '0.1.0');

    const s = (await d.call('session_create', { channel: 'telegram', userId: 'u1', metadata: { lang: 'en' } })).result;
    assert.equal(s.channel, 'telegram');
    assert.deepEqual((await d.call('session_get', { id: s.id })).result, s);
    assert.deepEqual((await d.call('session_list', { limit: 10 })).result.map((x: { id: string }) => x.id), [s.id]);

    const m1 = (await d.call('message_append', { sessionId: s.id, role: 'user', content: 'hello', tokenCount: 1 })).result;
    // A vault value in content is stored redacted.
    const m2 = (await d.call('message_append', { sessionId: s.id, role: 'assistant', content: `the key is ${SECRET}`, metadata: { k: SECRET } })).result;
    const listed = (await d.call('message_list', { sessionId: s.id, limit: 10 })).result as { id: string; content: string; metadata: unknown }[];
    assert.deepEqual(listed.map((m) => m.id), [m1.id, m2.id]);
    assert.equal(listed[1]!.content, 'the key is [REDACTED:vault]');
    assert.deepEqual(listed[1]!.metadata, { k: '[REDACTED:vault]' });
    assert.equal((await d.call('session_set_state', { id: s.id, state: 'closed' })).result.state, 'closed');

    const id = (await d.call('queue_enqueue', { queue: 'mail', payload: { to: 'a' }, priority: 5 })).result;
    assert.equal(typeof id, 'string');
    const again = (await d.call('queue_enqueue', { queue: 'mail', payload: { to: 'b' }, idempotencyKey: 'k1' })).result;
    assert.equal((await d.call('queue_enqueue', { queue: 'mail', payload: { to: 'b' }, idempotencyKey: 'k1' })).result, again);
    const jobs = (await d.call('queue_claim', { queue: 'mail', limit: 2, leaseMs: 60_000 })).result as { id: string; leaseToken: string; payload: unknown }[];
    assert.deepEqual(jobs.map((j) => j.id), [id, again]);
    assert.equal((await d.call('queue_ack', { id: jobs[0]!.id, leaseToken: jobs[0]!.leaseToken })).result, null);
    const failed = (await d.call('queue_fail', { id: jobs[1]!.id, leaseToken: jobs[1]!.leaseToken, error: 'smtp down', retryable: false })).result;
    assert.equal(failed.state, 'dead');
    const stats = (await d.call('queue_stats', { queue: 'mail' })).result;
    assert.equal(stats.completed, 1);
    assert.equal(stats.dead, 1);
    // A lease token that does not hold the job is refused with the library's code.
    const lost = await d.call('queue_ack', { id: jobs[0]!.id, leaseToken: 'not-the-token-of-this-job' });
    assert.equal(lost.error?.data.code, 'KC_QUEUE_LEASE_LOST');

    const secrets = (await d.call('secret_list')).result as { name: string; preview: string }[];
    assert.deepEqual(secrets.map((x) => x.name), ['openai']);
    assert.ok(!JSON.stringify(secrets).includes(SECRET.slice(8, -4)), 'only a masked preview');

    const status = (await d.call('vault_lock_status')).result;
    assert.deepEqual(status, { locked: false, lockedSinceMs: null, databaseEncrypted: false, databaseLocked: false, vaultUnlocked: true });

    // Lock: every data call is refused, the lock's own calls and health still answer.
    const locked = (await d.call('vault_lock')).result;
    assert.equal(locked.locked, true);
    assert.equal(locked.vaultUnlocked, false);
    assert.equal(typeof locked.lockedSinceMs, 'number');
    for (const [method, params] of [
      ['session_list', {}],
      ['message_append', { sessionId: s.id, role: 'user', content: 'x' }],
      ['queue_enqueue', { queue: 'mail', payload: 1 }],
      ['queue_claim', { queue: 'mail' }],
      ['secret_list', {}],
    ] as const) {
      const r = await d.call(method, params);
      assert.equal(r.error?.data.code, 'KC_VAULT_LOCKED', method);
    }
    assert.equal((await d.call('health')).result.status, 'locked');

    // Wrong passphrase: refused, and the next attempt must wait.
    const wrong = await d.call('vault_unlock', { passphrase: 'not it' });
    assert.equal(wrong.error?.data.code, 'KC_VAULT_KEY_INVALID');
    const soon = await d.call('vault_unlock', { passphrase: PASS });
    assert.equal(soon.error?.data.code, 'KC_RPC_RATE_LIMITED');
    assert.ok(soon.error!.data.retryAfterMs! > 0 && soon.error!.data.retryAfterMs! <= 500);
    await sleep(soon.error!.data.retryAfterMs! + 50);
    const ok = await d.call('vault_unlock', { passphrase: PASS });
    assert.equal(ok.error, undefined, JSON.stringify(ok.error));
    assert.equal(ok.result.locked, false);
    assert.equal((await d.call('session_list', {})).error, undefined);

    // Nothing of the passphrase or the secret in the log.
    const log = d.stderr();
    assert.ok(!log.includes(PASS) && !log.includes(SECRET) && !log.includes(d.token), 'no secret in the log');
    const stopped = await d.stop();
    assert.equal(stopped.code, 0, d.stderr());
  });

  it('takes the vault passphrase from BLUFIO_VAULT_KEY_FILE, so it is not in /proc/<pid>/environ; refuses bad files', async () => {
    const dir = await dirWithVault();
    const secrets = tmpDir('blufio-cred-');
    const file = path.join(secrets, 'vault-key');
    fs.writeFileSync(file, `${PASS}\n`, { mode: 0o600 });
    const d = await serve({ dir, env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: file }) });
    const environ = fs.readFileSync(`/proc/${d.child.pid}/environ`);
    assert.equal(environ.includes(Buffer.from(PASS)), false, 'the passphrase is not in the environment block');
    assert.equal((await d.call('health')).result.status, 'ok');
    assert.deepEqual(((await d.call('secret_list')).result as { name: string }[]).map((x) => x.name), ['openai']);
    await d.stop();
    // A file others can read is used, with a warning; a wrong passphrase in it is the usual error.
    fs.chmodSync(file, 0o644);
    const open = await runCli(['--data-dir', dir, 'config', 'list-secrets'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: file }) });
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stderr, /can be read by every user/);
    fs.writeFileSync(path.join(secrets, 'wrong'), 'not it');
    const wrong = await runCli(['--data-dir', dir, 'config', 'list-secrets'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: path.join(secrets, 'wrong') }) });
    assert.match(wrong.stderr, /^error\[KC_VAULT_KEY_INVALID\]/m);
    // Files that hold no passphrase are refused before anything is opened, naming the variable.
    fs.writeFileSync(path.join(secrets, 'empty'), '\n');
    fs.writeFileSync(path.join(secrets, 'two-lines'), 'first\nsecond\n');
    fs.writeFileSync(path.join(secrets, 'latin1'), Buffer.from([0x70, 0xe4, 0x73, 0x73]));
    fs.writeFileSync(path.join(secrets, 'huge'), 'x'.repeat(70_000));
    spawnSync('mkfifo', [path.join(secrets, 'fifo')]);
    for (const [name, why] of [['empty', /is empty/], ['two-lines', /more than one line/], ['latin1', /not UTF-8/], ['huge', /larger than/], ['fifo', /not a regular file/], ['missing', /cannot be read \(ENOENT\)/], ['.', /not a regular file/]] as const) {
      const r = await runCli(['--data-dir', dir, 'config', 'list-secrets'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: path.join(secrets, name) }) });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /^error\[KC_INVALID_INPUT\]: BLUFIO_VAULT_KEY_FILE names /, name);
      assert.match(r.stderr, why, name);
    }
    // One any user could change, or replace through its directory, is refused (third review):
    // whoever writes it chooses the passphrase a new vault gets.
    fs.writeFileSync(path.join(secrets, 'anyone'), PASS, { mode: 0o606 });
    fs.chmodSync(path.join(secrets, 'anyone'), 0o606);
    const open2 = tmpDir('blufio-open-');
    fs.chmodSync(open2, 0o777);
    fs.writeFileSync(path.join(open2, 'key'), PASS, { mode: 0o600 });
    for (const [f, why] of [[path.join(secrets, 'anyone'), /can be written by any user/], [path.join(open2, 'key'), /on the way to it, can be written by any user/]] as const) {
      const r = await runCli(['--data-dir', dir, 'config', 'list-secrets'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: f }) });
      assert.match(r.stderr, /^error\[KC_INVALID_INPUT\]: BLUFIO_VAULT_KEY_FILE names .* is refused: /, f);
      assert.match(r.stderr, why, f);
    }
    // A file that says it is empty (as /proc files do) is still read only up to the limit.
    const proc = await runCli(['--data-dir', dir, 'config', 'list-secrets'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: '/proc/self/pagemap' }) });
    assert.match(proc.stderr, /^error\[KC_INVALID_INPUT\]: BLUFIO_VAULT_KEY_FILE names \/proc\/self\/pagemap, which (is larger than|cannot be read)/);
    const both = await runCli(['--data-dir', dir, 'config', 'list-secrets'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: file, BLUFIO_VAULT_KEY: PASS }) });
    assert.match(both.stderr, /^error\[KC_INVALID_INPUT\]: both BLUFIO_VAULT_KEY and BLUFIO_VAULT_KEY_FILE are set/);
  });

  it('doubles the wait after each failed unlock and runs one attempt at a time', async () => {
    const dir = await dirWithVault();
    const d = await serve({ dir, env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }) });
    await d.call('vault_lock');
    const waits: number[] = [];
    for (let i = 0; i < 3; i++) {
      let r = await d.call('vault_unlock', { passphrase: `wrong ${i}` });
      while (r.error?.data.code === 'KC_RPC_RATE_LIMITED') {
        await sleep(r.error.data.retryAfterMs! + 20);
        r = await d.call('vault_unlock', { passphrase: `wrong ${i}` });
      }
      assert.equal(r.error?.data.code, 'KC_VAULT_KEY_INVALID');
      const next = await d.call('vault_unlock', { passphrase: PASS });
      assert.equal(next.error?.data.code, 'KC_RPC_RATE_LIMITED');
      waits.push(next.error!.data.retryAfterMs!);
    }
    // 500, 1000, 2000 ms (less the moments between the calls).
    assert.ok(waits[1]! > 500 && waits[1]! <= 1000, String(waits));
    assert.ok(waits[2]! > 1000 && waits[2]! <= 2000, String(waits));
    // Parallel guesses while one runs are refused, not queued.
    await sleep(waits[2]! + 20);
    const burst = await Promise.all([1, 2, 3, 4].map((i) => d.call('vault_unlock', { passphrase: i === 1 ? PASS : `guess ${i}` })));
    assert.equal(burst.filter((r) => r.error?.data.code === 'KC_RPC_RATE_LIMITED').length, 3);
  });

  it('on an encrypted database, vault_lock closes it (KC_DB_LOCKED) and vault_unlock opens it again', async () => {
    const dir = path.join(tmpDir('blufio-serve-'), 'data');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const en = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY'], { env: cleanEnv({ DBKEY: PASS }) });
    assert.equal(en.code, 0, en.stderr);
    const env = cleanEnv({ DBKEY: PASS, BLUFIO_VAULT_KEY: PASS });
    const set = await runCli(['--data-dir', dir, 'config', 'set-secret', 'openai'], { env, input: `${SECRET}\n` });
    assert.equal(set.code, 0, set.stderr);
    const d = await serve({ dir, env });
    const s = (await d.call('session_create', { channel: 'c' })).result;
    assert.equal((await d.call('vault_lock_status')).result.databaseEncrypted, true);
    const locked = (await d.call('vault_lock')).result;
    assert.equal(locked.databaseLocked, true);
    assert.equal((await d.call('session_get', { id: s.id })).error?.data.code, 'KC_DB_LOCKED');
    assert.equal((await d.call('queue_stats', { queue: 'q' })).error?.data.code, 'KC_DB_LOCKED');
    // The database file is closed: another process can take it whole.
    const wrong = await d.call('vault_unlock', { passphrase: 'nope nope' });
    assert.equal(wrong.error?.data.code, 'KC_DB_KEY_INVALID');
    let ok = await d.call('vault_unlock', { passphrase: PASS });
    while (ok.error?.data.code === 'KC_RPC_RATE_LIMITED') {
      await sleep(ok.error.data.retryAfterMs! + 20);
      ok = await d.call('vault_unlock', { passphrase: PASS });
    }
    assert.equal(ok.error, undefined, JSON.stringify(ok.error));
    assert.equal((await d.call('session_get', { id: s.id })).result.id, s.id);
    assert.equal((await d.call('secret_list')).result[0].name, 'openai');
    assert.equal((await d.stop()).code, 0);
  });

  it('takes the database key from <NAME>_FILE (enable, migrate, the daemon), so neither passphrase is in /proc/<pid>/environ', async () => {
    const dir = path.join(tmpDir('blufio-serve-'), 'data');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const DBPASS = 'a database passphrase of its own';
    const secrets = tmpDir('blufio-cred-');
    const dbFile = path.join(secrets, 'db-key');
    const vaultFile = path.join(secrets, 'vault-key');
    fs.writeFileSync(dbFile, `${DBPASS}\n`, { mode: 0o600 });
    fs.writeFileSync(vaultFile, `${PASS}\n`, { mode: 0o600 });
    // A plaintext database with a secret in it, then encrypted with the key from the file.
    const set = await runCli(['--data-dir', dir, 'config', 'set-secret', 'openai'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: vaultFile }), input: `${SECRET}\n` });
    assert.equal(set.code, 0, set.stderr);
    const en = await runCli(['vault', 'db-encrypt', 'enable', dir, '--passphrase-env', 'DBKEY', '--json'], { env: cleanEnv({ DBKEY_FILE: dbFile }) });
    assert.equal(en.code, 0, en.stderr);
    assert.equal(JSON.parse(en.stdout).db_encryption.key_reference, 'env:DBKEY');
    const mig = await runCli(['vault', 'db-encrypt', 'migrate', dir, '--passphrase-env', 'DBKEY', '--now-ms', '1700000000000'], { env: cleanEnv({ DBKEY_FILE: dbFile }) });
    assert.equal(mig.code, 0, mig.stderr);
    const env = cleanEnv({ DBKEY_FILE: dbFile, BLUFIO_VAULT_KEY_FILE: vaultFile });
    const d = await serve({ dir, env });
    const environ = fs.readFileSync(`/proc/${d.child.pid}/environ`);
    assert.equal(environ.includes(Buffer.from(DBPASS)), false, 'the database passphrase is not in the environment block');
    assert.equal(environ.includes(Buffer.from(PASS)), false, 'the vault passphrase is not in the environment block');
    assert.equal((await d.call('vault_lock_status')).result.databaseEncrypted, true);
    assert.deepEqual(((await d.call('secret_list')).result as { name: string }[]).map((x) => x.name), ['openai']);
    assert.equal((await d.stop()).code, 0, d.stderr());
    // The key really is the file's: a wrong one in it is KC_DB_KEY_INVALID, verify reads it too.
    const verify = await runCli(['vault', 'verify', dir, '--json'], { env: cleanEnv({ DBKEY_FILE: dbFile }) });
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(JSON.parse(verify.stdout).ok, true);
    fs.writeFileSync(path.join(secrets, 'wrong'), 'not the key');
    const wrong = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ DBKEY_FILE: path.join(secrets, 'wrong'), BLUFIO_VAULT_KEY_FILE: vaultFile }) });
    assert.match(wrong.stderr, /^error\[KC_DB_KEY_INVALID\]/m);
    // Both the variable and its file: refused, whichever passphrase they hold.
    const both = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ DBKEY: DBPASS, DBKEY_FILE: dbFile, BLUFIO_VAULT_KEY_FILE: vaultFile }) });
    assert.match(both.stderr, /^error\[KC_INVALID_INPUT\]: both DBKEY and DBKEY_FILE are set/m);
    // A bad file is refused naming the variable; one every user can read is used, with a warning.
    const fifo = path.join(secrets, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const bad = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ DBKEY_FILE: fifo, BLUFIO_VAULT_KEY_FILE: vaultFile }) });
    assert.match(bad.stderr, /^error\[KC_INVALID_INPUT\]: DBKEY_FILE names .* not a regular file/m);
    fs.chmodSync(dbFile, 0o644);
    const open = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ DBKEY_FILE: dbFile, BLUFIO_VAULT_KEY_FILE: vaultFile }) });
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stderr, /passphrase file \(DBKEY_FILE\) can be read by every user/);
    const none = await runCli(['--data-dir', dir, 'sessions', 'list'], { env: cleanEnv({ BLUFIO_VAULT_KEY_FILE: vaultFile }) });
    assert.match(none.stderr, /^error\[KC_DB_LOCKED\][^]*hint: set DBKEY .* or DBKEY_FILE/m);
    for (const r of [en, mig, verify, wrong, both, bad, open, none]) assert.ok(!r.stdout.includes(DBPASS) && !r.stderr.includes(DBPASS));
  });

  it('vault_lock with no vault and a plaintext database is refused: there is nothing to lock', async () => {
    const d = await serve();
    const r = await d.call('vault_lock');
    assert.equal(r.error?.data.code, 'KC_NOT_FOUND');
    assert.equal((await d.call('vault_lock_status')).result.locked, false);
  });
});

describe('blufio serve: what is refused', () => {
  it('refuses bad requests before and after authentication, with no CORS header ever', async () => {
    const d = await serve();
    const url = d.info.url;
    const good = authHeaders(d.token);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health' });
    const answers: { name: string; status: number; code?: string; a: Awaited<ReturnType<typeof request>> }[] = [];
    const check = async (name: string, opts: Parameters<typeof request>[1], status: number, code?: string, u = url) => {
      const a = await request(u, opts);
      answers.push({ name, status, ...(code === undefined ? {} : { code }), a });
      assert.equal(a.status, status, `${name}: ${a.text}`);
      if (code !== undefined) assert.equal(a.json?.error?.data?.code, code, `${name}: ${a.text}`);
      for (const h of Object.keys(a.headers)) assert.ok(!h.startsWith('access-control-'), `${name}: CORS header ${h}`);
      return a;
    };
    await check('no token', { headers: { 'content-type': 'application/json' }, body }, 401, 'KC_RPC_UNAUTHORIZED');
    await check('wrong token', { headers: { ...good, authorization: `Bearer ${d.token.slice(0, -1)}x` }, body }, 401, 'KC_RPC_UNAUTHORIZED');
    await check('token too long', { headers: { ...good, authorization: `Bearer ${d.token}x` }, body }, 401, 'KC_RPC_UNAUTHORIZED');
    await check('Basic', { headers: { ...good, authorization: `Basic ${Buffer.from(`x:${d.token}`).toString('base64')}` }, body }, 401, 'KC_RPC_UNAUTHORIZED');
    await check('token in the body only', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: d.token }) }, 401);
    await check('wrong Host', { headers: { ...good, host: `attacker.example:${d.info.port}` }, body }, 403, 'KC_RPC_FORBIDDEN');
    await check('Host without port', { headers: { ...good, host: '127.0.0.1' }, body }, 403, 'KC_RPC_FORBIDDEN');
    await check('Host localhost', { headers: { ...good, host: `localhost:${d.info.port}` }, body }, 200);
    await check('Origin', { headers: { ...good, origin: 'http://127.0.0.1:9999' }, body }, 403, 'KC_RPC_FORBIDDEN');
    await check('Origin null', { headers: { ...good, origin: 'null' }, body }, 403, 'KC_RPC_FORBIDDEN');
    await check('cross-site', { headers: { ...good, 'sec-fetch-site': 'cross-site' }, body }, 403, 'KC_RPC_FORBIDDEN');
    await check('same-site', { headers: { ...good, 'sec-fetch-site': 'same-site' }, body }, 403, 'KC_RPC_FORBIDDEN');
    await check('user-typed (none)', { headers: { ...good, 'sec-fetch-site': 'none' }, body }, 200);
    await check('preflight', { method: 'OPTIONS', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } }, 403);
    await check('GET', { method: 'GET', headers: good }, 405);
    await check('other path', { headers: good, body }, 404, 'KC_NOT_FOUND', url.replace(/\/rpc$/, '/'));
    await check('query string', { headers: good, body }, 404, 'KC_NOT_FOUND', `${url}?x=1`);
    await check('text/plain', { headers: { ...good, 'content-type': 'text/plain' }, body }, 415, 'KC_RPC_INVALID_REQUEST');
    await check('form', { headers: { ...good, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' }, 415);
    // Refused on the declared length, before a byte of the body is read.
    await check('oversized (Content-Length)', { headers: { ...good, 'content-length': String(16 * 1024 * 1024 + 1) }, body: '{}' }, 413, 'KC_RPC_BODY_TOO_LARGE');
    // Chunked, no length declared: refused once the bytes read pass the limit.
    const chunked = await rawExchange(d.info.port, `POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, async (write) => {
      const chunk = `10000\r\n${' '.repeat(0x10000)}\r\n`;
      for (let i = 0; i < 300; i++) if (!(await write(chunk))) return;
    });
    assert.match(chunked, /^HTTP\/1\.1 413 /);
    assert.match(chunked, /KC_RPC_BODY_TOO_LARGE/);

    const rpcError = async (name: string, b: string | Buffer, code: number, kc: string) => {
      const a = await check(name, { headers: good, body: b }, 200);
      assert.equal(a.json.error.code, code, `${name}: ${a.text}`);
      assert.equal(a.json.error.data.code, kc, name);
    };
    await rpcError('malformed JSON', '{"jsonrpc":"2.0",', -32700, 'KC_RPC_INVALID_REQUEST');
    await rpcError('not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), -32700, 'KC_RPC_INVALID_REQUEST');
    await rpcError('empty body', '', -32700, 'KC_RPC_INVALID_REQUEST');
    await rpcError('no jsonrpc', JSON.stringify({ id: 1, method: 'health' }), -32600, 'KC_RPC_INVALID_REQUEST');
    await rpcError('extra member', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health', token: 'x' }), -32600, 'KC_RPC_INVALID_REQUEST');
    await rpcError('object id', JSON.stringify({ jsonrpc: '2.0', id: {}, method: 'health' }), -32600, 'KC_RPC_INVALID_REQUEST');
    await rpcError('unknown method', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'rm_rf' }), -32601, 'KC_RPC_METHOD_NOT_FOUND');
    await rpcError('prototype method', JSON.stringify({ jsonrpc: '2.0', id: 1, method: '__proto__' }), -32601, 'KC_RPC_METHOD_NOT_FOUND');
    await rpcError('positional params', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_get', params: ['x'] }), -32602, 'KC_INVALID_INPUT');
    await rpcError('unknown param', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_list', params: { limit: 1, where: '1=1' } }), -32602, 'KC_INVALID_INPUT');
    await rpcError('missing param', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_get', params: {} }), -32602, 'KC_INVALID_INPUT');
    await rpcError('bad value', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_list', params: { limit: -1 } }), -32602, 'KC_INVALID_INPUT');
    await rpcError('SQL-looking id', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_get', params: { id: "x' OR 1=1 --" } }), -32000, 'KC_NOT_FOUND');
    await rpcError('empty batch', '[]', -32600, 'KC_RPC_INVALID_REQUEST');
    await rpcError('huge batch', JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'health' }))), -32600, 'KC_RPC_INVALID_REQUEST');

    // A batch: answers in order, errors beside results; notifications run but get no answer.
    const batch = await check(
      'batch',
      {
        headers: good,
        body: JSON.stringify([
          { jsonrpc: '2.0', id: 'a', method: 'session_create', params: { channel: 'b' } },
          { jsonrpc: '2.0', method: 'session_create', params: { channel: 'notified' } },
          { jsonrpc: '2.0', id: 'c', method: 'nope' },
          5,
        ]),
      },
      200,
    );
    assert.deepEqual(batch.json.map((r: { id: unknown }) => r.id), ['a', 'c', null]);
    assert.equal(batch.json[0].result.channel, 'b');
    assert.equal(batch.json[1].error.code, -32601);
    assert.equal(batch.json[2].error.code, -32600);
    const only = await check('notifications only', { headers: good, body: JSON.stringify([{ jsonrpc: '2.0', method: 'health' }]) }, 204);
    assert.equal(only.text, '');
    const sessions = (await d.call('session_list', { limit: 10 })).result as { channel: string }[];
    assert.deepEqual(sessions.map((x) => x.channel).sort(), ['b', 'notified']);

    // WebSocket: refused, the socket closed.
    const ws = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(d.info.port, '127.0.0.1', () => {
        sock.write(
          `GET /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${d.token}\r\n\r\n`,
        );
      });
      let got = '';
      sock.setEncoding('utf8').on('data', (c: string) => (got += c));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    assert.match(ws, /^HTTP\/1\.1 403/);

    // Security refusals are logged at ERROR, never with the token tried.
    const log = lines(d.stderr());
    const security = log.filter((l) => l.level === 50 && typeof l.security === 'string').map((l) => l.security);
    for (const kind of ['auth', 'host', 'browser', 'websocket']) assert.ok(security.includes(kind), `${kind} logged: ${security}`);
    assert.ok(!d.stderr().includes(d.token.slice(0, -1)), 'the token (or the wrong one tried) is not logged');
    assert.equal((await d.stop()).code, 0);
  });

  it('a configured origin and host are let through', async () => {
    const d = await serve({ config: '[server]\nallowed_origins = ["https://ui.example"]\nallowed_hosts = ["blufio.local"]\n' });
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health' });
    const a = await request(d.info.url, { headers: { ...authHeaders(d.token), origin: 'https://ui.example', host: `blufio.local:${d.info.port}` }, body });
    assert.equal(a.status, 200, a.text);
    const b = await request(d.info.url, { headers: { ...authHeaders(d.token), origin: 'https://ui.example.evil' }, body });
    assert.equal(b.status, 403);
  });
});

describe('blufio serve: startup', () => {
  it('stops with a clear error and no daemon.json where it cannot start whole', async () => {
    const expectFail = async (opts: Parameters<typeof startServe>[0], code: string, env?: NodeJS.ProcessEnv) => {
      await assert.rejects(startServe({ ...opts, ...(env === undefined ? {} : { env }) }), (e: Error) => {
        assert.match(e.message, new RegExp(`error\\[${code}\\]`), e.message);
        return true;
      });
      if (opts?.dir !== undefined) assert.ok(!fs.existsSync(path.join(opts.dir, 'daemon.json')));
    };
    const vaultDir = await dirWithVault();
    await expectFail({ dir: vaultDir }, 'KC_VAULT_LOCKED', cleanEnv());
    await expectFail({ dir: vaultDir }, 'KC_VAULT_KEY_INVALID', cleanEnv({ BLUFIO_VAULT_KEY: 'wrong one' }));
    await expectFail({ config: '[security]\nbind_address = "0.0.0.0"\n' }, 'KC_TLS_REQUIRED');
    await expectFail({ config: '[security]\nbind_address = "localhost"\n' }, 'KC_CONFIG_INVALID');
    await expectFail({ config: '[server]\nport = 70000\n' }, 'KC_CONFIG_INVALID');
    await expectFail({ config: '[server]\ntls_cert = "/nonexistent.pem"\n' }, 'KC_CONFIG_INVALID');
    await expectFail({ config: '[server]\ntls_cert = "/nonexistent.pem"\ntls_key = "/nonexistent.key"\n' }, 'KC_CONFIG_INVALID');
    await expectFail({ config: '[providers.openai]\napi_key = "sk-proj-plaintextplaintextplaintext"\n' }, 'KC_VAULT_LOCKED');
    // A taken port.
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as net.AddressInfo).port;
    await expectFail({ config: `[server]\nport = ${port}\n` }, 'KC_SERVER_BIND_FAILED');
    blocker.close();
  });

  it('a second serve on the same data directory is refused while the first runs, and may start after it', async () => {
    const d = await serve();
    await assert.rejects(startServe({ dir: d.dir }), /error\[KC_SERVER_RUNNING\].*pid/s);
    // The first is untouched.
    assert.equal((await d.call('health')).result.status, 'ok');
    assert.ok(fs.existsSync(path.join(d.dir, 'daemon.json')));
    assert.equal((await d.stop()).code, 0);
    const next = await serve({ dir: d.dir });
    assert.equal((await next.call('health')).result.status, 'ok');
    assert.notEqual(next.token, d.token, 'a new token each start');
  });

  it('moves plaintext config secrets into the vault before it listens', async () => {
    const cfg = '[providers.openai]\napi_key = "sk-proj-movedmovedmovedmovedmoved1234"\n';
    const d = await serve({ config: cfg, env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }) });
    const names = ((await d.call('secret_list')).result as { name: string }[]).map((s) => s.name);
    assert.deepEqual(names, ['providers.openai.api_key']);
  });

  it('serves HTTPS on loopback with [server] tls_cert and tls_key; plain HTTP to it gets nothing', async () => {
    const cert = makeCert(['127.0.0.1']);
    const dir = tmpDir('blufio-tlsconf-');
    fs.writeFileSync(path.join(dir, 'c.pem'), cert.cert);
    fs.writeFileSync(path.join(dir, 'k.pem'), cert.key);
    const d = await serve({ config: `[server]\ntls_cert = "${dir}/c.pem"\ntls_key = "${dir}/k.pem"\n` });
    assert.match(d.info.url, /^https:\/\/127\.0\.0\.1:\d+\/rpc$/);
    const r = await rpc(d.info.url, d.token, 'health', undefined, { ca: cert.ca });
    assert.equal(r.result.status, 'ok');
    await assert.rejects(request(d.info.url.replace('https:', 'http:'), { headers: authHeaders(d.token), body: '{}' }));
  });
});

describe('blufio serve: review findings', () => {
  it('a vault created by the CLI after the start is opened with BLUFIO_VAULT_KEY, or locks the daemon until vault_unlock', async () => {
    const VALUE = 'sk-proj-createdafterstartcreatedafter99';
    // With the passphrase in the environment: opened, and its values redacted.
    const withKey = await serve({ env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }) });
    const set = await runCli(['--data-dir', withKey.dir, 'config', 'set-secret', 'late'], { env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }), input: `${VALUE}\n` });
    assert.equal(set.code, 0, set.stderr);
    const s1 = (await withKey.call('session_create', {})).result.id;
    for (let i = 0; ; i++) {
      const m = (await withKey.call('message_append', { sessionId: s1, role: 'user', content: `k ${VALUE}` })).result;
      if (m.content === 'k [REDACTED:vault]') break;
      assert.ok(i < 500, 'the new vault is opened and its values redacted');
      await sleep(20);
    }
    // Without it (started on no terminal, no vault yet): locked until vault_unlock.
    const noKey = await serve();
    const s2 = (await noKey.call('session_create', {})).result.id;
    const set2 = await runCli(['--data-dir', noKey.dir, 'config', 'set-secret', 'late'], { env: cleanEnv({ BLUFIO_VAULT_KEY: PASS }), input: `${VALUE}\n` });
    assert.equal(set2.code, 0, set2.stderr);
    for (let i = 0; !(await noKey.call('vault_lock_status')).result.locked; i++) {
      assert.ok(i < 500, 'the daemon locks itself');
      await sleep(20);
    }
    const refused = await noKey.call('message_append', { sessionId: s2, role: 'user', content: `k ${VALUE}` });
    assert.equal(refused.error?.data.code, 'KC_VAULT_LOCKED');
    assert.equal((await noKey.call('vault_unlock', { passphrase: PASS })).error, undefined);
    const m = (await noKey.call('message_append', { sessionId: s2, role: 'user', content: `k ${VALUE}` })).result;
    assert.equal(m.content, 'k [REDACTED:vault]');
    assert.ok(!noKey.stderr().includes(VALUE) && !withKey.stderr().includes(VALUE));
  });

  it('an answer past max_response_bytes is refused and the daemon goes on', async () => {
    const d = await serve({ config: '[server]\nmax_response_bytes = 1048576\n[queue]\nmax_payload_bytes = 900000\n' });
    const sid = (await d.call('session_create', {})).result.id;
    for (let i = 0; i < 5; i++) assert.equal((await d.call('message_append', { sessionId: sid, role: 'user', content: 'x'.repeat(300_000) })).error, undefined);
    const big = await d.call('message_list', { sessionId: sid, limit: 5 });
    assert.equal(big.error?.data.code, 'KC_RESULT_TOO_LARGE');
    assert.equal((await d.call('message_list', { sessionId: sid, limit: 3 })).result.length, 3);
    // A batch whose answers together pass the bound: the first is answered, the second refused by its own id.
    const batch = await request(d.info.url, {
      headers: authHeaders(d.token),
      body: JSON.stringify([1, 2].map((id) => ({ jsonrpc: '2.0', id, method: 'message_list', params: { sessionId: sid, limit: 3 } }))),
    });
    assert.equal(batch.json[0].result.length, 3);
    assert.deepEqual([batch.json[1].id, batch.json[1].error.data.code], [2, 'KC_RESULT_TOO_LARGE']);
    assert.equal((await d.call('health')).result.status, 'ok');
  });

  it('repeated Host or Authorization headers are refused; a data directory others can write is refused', async () => {
    const d = await serve();
    const raw = await new Promise<string>((resolve) => {
      const sock = net.connect(d.info.port, '127.0.0.1', () =>
        sock.end(`POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nHost: evil.example\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`),
      );
      let got = '';
      sock.setEncoding('utf8').on('data', (c: string) => (got += c));
      sock.on('close', () => resolve(got));
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    const open = path.join(tmpDir('blufio-open-'), 'data');
    fs.mkdirSync(open, { mode: 0o700 });
    fs.chmodSync(open, 0o777);
    await assert.rejects(startServe({ dir: open }), /error\[KC_SERVER_DIR_UNSAFE\]/);
  });

  it('a second SIGTERM cuts the grace period short while a call is held open', async () => {
    const d = await serve({ config: '[server]\nshutdown_grace_ms = 600000\n' });
    // A call whose body never finishes: in flight until the daemon gives up on it.
    const sock = net.connect(d.info.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"`);
    sock.on('error', () => undefined);
    await sleep(200);
    d.child.kill('SIGTERM');
    await sleep(300);
    assert.equal(d.child.exitCode, null, 'still waiting for the call in flight');
    // ...with its files already gone: the port it is about to release is no longer advertised.
    assert.ok(!fs.existsSync(path.join(d.dir, 'daemon.json')) && !fs.existsSync(path.join(d.dir, 'rpc.token')));
    d.child.kill('SIGTERM');
    // Would wait ten minutes (and the test time out) without the second signal taking effect.
    const exit = await d.exited;
    assert.equal(exit.code, 0, d.stderr());
    assert.ok(!fs.existsSync(path.join(d.dir, 'daemon.json')));
    sock.destroy();
  });

  it('a wildcard bind with TLS advertises a loopback URL that works', async () => {
    const cert = makeCert(['127.0.0.1']);
    const dir = tmpDir('blufio-tlsconf-');
    fs.writeFileSync(path.join(dir, 'c.pem'), cert.cert);
    fs.writeFileSync(path.join(dir, 'k.pem'), cert.key);
    const d = await serve({ config: `[security]\nbind_address = "0.0.0.0"\n[server]\ntls_cert = "${dir}/c.pem"\ntls_key = "${dir}/k.pem"\n` });
    assert.equal(d.info.address, '0.0.0.0');
    assert.match(d.info.url, /^https:\/\/127\.0\.0\.1:\d+\/rpc$/);
    assert.equal((await rpc(d.info.url, d.token, 'health', undefined, { ca: cert.ca })).result.status, 'ok');
  });
});
