import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { sleep } from './helpers/index.js';
import { authHeaders, request, serveForFile, type DaemonProcess } from './helpers/daemon.js';

const serve = serveForFile();

/** A raw TCP connection to the daemon, open once connected; `closed` resolves when the daemon drops it. */
async function rawSocket(d: DaemonProcess, first?: string): Promise<{ sock: net.Socket; closed: Promise<void>; isClosed(): boolean }> {
  const sock = net.connect(d.info.port, '127.0.0.1');
  let gone = false;
  const closed = new Promise<void>((resolve) => sock.on('close', () => ((gone = true), resolve())));
  sock.on('error', () => undefined);
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  if (first !== undefined) sock.write(first);
  return { sock, closed, isClosed: () => gone };
}

/** One authenticated RPC call as raw HTTP/1.1 text (for pipelining); `extra` adds header lines. */
function rpcRequest(d: DaemonProcess, body: string, opts: { token?: string; extra?: string } = {}): string {
  return `POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nAuthorization: Bearer ${opts.token ?? d.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${opts.extra ?? ''}\r\n${body}`;
}

/** An authenticated health call on a connection of its own; its HTTP status, or the network error. */
async function health(d: DaemonProcess): Promise<string> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health' });
  return request(d.info.url, { headers: authHeaders(d.token), body }).then(
    (a) => `HTTP ${a.status}`,
    (err: NodeJS.ErrnoException) => `failed: ${err.code ?? err.message}`,
  );
}

describe('blufio serve: what a review of the server found', () => {
  it('max_connections: idle sockets with no token cannot keep an authenticated client out; the oldest idle one is closed (finding 2)', async () => {
    const d = await serve({ config: '[server]\nmax_connections = 4\n' });
    try {
      // Silent sockets and one that sent half a request head: none has a request in progress.
      const idle = [await rawSocket(d), await rawSocket(d), await rawSocket(d, 'POST /rpc HTTP/1.1\r\nHost: x\r\n'), await rawSocket(d)];
      // The daemon has taken all four (a fifth before this point would race their accept).
      await sleep(200);
      assert.equal(await health(d), 'HTTP 200');
      await idle[0]!.closed; // the oldest gave its place
      assert.deepEqual(idle.slice(1).map((s) => s.isClosed()), [false, false, false]);
      // Full again (the call's own connection closed after its answer): the next oldest goes.
      idle.push(await rawSocket(d));
      await sleep(200);
      assert.equal(await health(d), 'HTTP 200');
      await idle[1]!.closed;
      for (const s of idle) s.sock.destroy();

      // Four authenticated requests in progress (bodies not yet sent) hold their connections:
      // a fifth connection is the one closed, and they are answered once their bodies come.
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'health' });
      const head = `POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      await sleep(200);
      const busy = await Promise.all([0, 1, 2, 3].map(() => rawSocket(d, head)));
      const answers = busy.map((b) => {
        let text = '';
        b.sock.on('data', (c: Buffer) => (text += c.toString()));
        return b.closed.then(() => text);
      });
      await sleep(200);
      assert.match(await health(d), /^failed: /);
      for (const b of busy) b.sock.write(body);
      for (const text of await Promise.all(answers)) assert.match(text, /^HTTP\/1\.1 200 /);
      assert.equal(await health(d), 'HTTP 200');
    } finally {
      await d.stop();
    }
  });

  it('max_connections stays below the open-file limit: sockets past ulimit -n cannot shut clients out either (fuzz H1)', async () => {
    // At the limit the kernel refuses the accept itself, before any idle connection can be
    // closed to make room: with the default max_connections (1,024) under ulimit -n 1,024,
    // 1,100 silent sockets reset every new connection.
    const d = await serve({ openFileLimit: 200 });
    const idle: Awaited<ReturnType<typeof rawSocket>>[] = [];
    try {
      const warned = /"effective":(\d+)/.exec(d.stderr());
      assert.ok(warned !== null && Number(warned[1]) < 200 - 10, d.stderr());
      for (let i = 0; i < 260; i++) idle.push(await rawSocket(d, i % 2 === 0 ? 'POST /rpc HTTP/1.1\r\nHost: x\r\n' : undefined));
      await sleep(300);
      for (let i = 0; i < 3; i++) assert.equal(await health(d), 'HTTP 200');
      assert.ok(idle.some((s) => s.isClosed()), 'the oldest idle ones made room');
    } finally {
      for (const s of idle) s.sock.destroy();
      await d.stop();
    }
  });

  it('answers held for clients that never read them are bounded: past four max_response_bytes, bulk reads are refused until they are read (fuzz H2)', async () => {
    // Each answer was kept whole until its client read it: eight clients asking for 56 MiB
    // pages and never reading held over a GB of the daemon's memory, with no bound but
    // max_connections times max_response_bytes.
    const d = await serve({ config: '[server]\nmax_response_bytes = 16777216\n' });
    const readers: net.Socket[] = [];
    try {
      const s = (await d.call('session_create', {})).result as { id: string };
      for (let i = 0; i < 2; i++) await d.call('message_append', { sessionId: s.id, role: 'user', content: 'x'.repeat(7 * 1024 * 1024) });
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'message_list', params: { sessionId: s.id } });
      for (let i = 0; i < 8; i++) {
        const r = await rawSocket(d, rpcRequest(d, body));
        r.sock.pause(); // never reads
        readers.push(r.sock);
        await sleep(150);
      }
      const refused = await d.call('message_list', { sessionId: s.id });
      assert.equal(refused.error?.data?.code, 'KC_RESULT_TOO_LARGE', JSON.stringify(refused).slice(0, 300));
      assert.match(String(refused.error?.message), /have not read them yet/);
      // Writes are still answered.
      assert.ok((await d.call('message_append', { sessionId: s.id, role: 'user', content: 'still written' })).result);
      for (const r of readers) r.destroy();
      let again = await d.call('message_list', { sessionId: s.id, limit: 2 });
      for (let i = 0; i < 50 && again.error !== undefined; i++) {
        await sleep(100);
        again = await d.call('message_list', { sessionId: s.id, limit: 2 });
      }
      assert.equal((again.result as unknown[] | undefined)?.length, 2, JSON.stringify(again.error));
    } finally {
      for (const r of readers) r.destroy();
      await d.stop();
    }
  });

  it('pipelined requests whose answers are not read are refused past sixteen per connection (second review)', async () => {
    // 300 session_get calls of a session with 1 MB of metadata, pipelined in one write and
    // never read, held 250 MB per connection: only bulk reads were refused past the bound.
    const d = await serve();
    try {
      const s = (await d.call('session_create', { metadata: { blob: 'y'.repeat(1_000_000) } })).result as { id: string };
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_get', params: { id: s.id } });
      const one = rpcRequest(d, body);
      const r = await rawSocket(d);
      r.sock.pause();
      r.sock.write(one.repeat(40));
      await sleep(1000);
      // Another client that reads its answers is served meanwhile, writes included.
      assert.ok((await d.call('message_append', { sessionId: s.id, role: 'user', content: 'hi' })).result);
      let text = '';
      r.sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
      r.sock.resume();
      await r.closed;
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
      // Sixteen wait at most (the kernel's buffers take a few answers off the daemon's hands):
      // the first refusal comes long before the fortieth, and ends the connection.
      const first = statuses.indexOf('503');
      assert.ok(first >= 16 && first < 30 && statuses.length === first + 1, statuses.join(','));
      const refusal = text.slice(text.lastIndexOf('HTTP/1.1 503'));
      assert.match(refusal, /KC_RPC_RATE_LIMITED/);
      assert.match(refusal, /waiting for their answers to be read/);
    } finally {
      await d.stop();
    }
  });

  it('requests pipelined on one connection run one after another, each once the answer before it has been sent: one unread answer per connection (fourth review)', async () => {
    // session_set_state answers with the whole session: 16 pipelined on each of 30 connections
    // for a session with 1 MB of metadata held 1.5 GB against a bound of 8 MiB (writes' results
    // are sent whatever is left of it), and every other client's large read was refused.
    const d = await serve({ config: '[server]\nmax_response_bytes = 2097152\n' });
    const held: Awaited<ReturnType<typeof rawSocket>>[] = [];
    try {
      const s = (await d.call('session_create', { metadata: { blob: 'y'.repeat(1_000_000) } })).result as { id: string };
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_set_state', params: { id: s.id, state: 'active' } });
      const one = rpcRequest(d, body);
      for (let i = 0; i < 5; i++) {
        const r = await rawSocket(d);
        r.sock.pause();
        r.sock.write(one.repeat(16));
        held.push(r);
      }
      await sleep(1000);
      // Five connections hold one answer each (5 MB of the 8 MiB bound): another client's
      // large read still fits (with sixteen each, 80 MB, it was refused).
      const read = await d.call('session_get', { id: s.id });
      assert.ok(read.result, JSON.stringify(read.error));
      // Read at last, a connection gets all sixteen answers, in order.
      const last = held[held.length - 1]!;
      let text = '';
      last.sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
      last.sock.resume();
      for (let i = 0; i < 100 && (text.match(/HTTP\/1\.1 200/g) ?? []).length < 16; i++) await sleep(100);
      assert.equal((text.match(/HTTP\/1\.1 200/g) ?? []).length, 16);
    } finally {
      for (const h of held) h.sock.destroy();
      await d.stop();
    }
  });

  it('a request queued behind a refusal that ends the connection, or on a connection gone before its turn, is not run (fifth review)', async () => {
    const d = await serve();
    try {
      const raw = (payload: unknown, token = d.token): string => {
        const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'queue_enqueue', params: { queue: 'q', payload } });
        return rpcRequest(d, body, { token });
      };
      const pending = async (): Promise<number> => ((await d.call('queue_stats', { queue: 'q' })).result as { pending: number }).pending;
      // enqueue, a call with a wrong token (401, Connection: close), enqueue: the client reads
      // everything and gets two answers; the third call ran before, its answer never sent.
      const r = await rawSocket(d, raw(1) + raw('bad', 'x'.repeat(d.token.length)) + raw(2));
      let text = '';
      r.sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
      await r.closed;
      assert.deepEqual(text.match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 401']);
      await sleep(300);
      assert.equal(await pending(), 1);
      // A large unread answer, an enqueue queued behind it, then the client leaves.
      const s = (await d.call('session_create', { metadata: { blob: 'y'.repeat(1_000_000) } })).result as { id: string };
      const big = JSON.stringify(Array.from({ length: 12 }, (_, k) => ({ jsonrpc: '2.0', id: k, method: 'session_get', params: { id: s.id } })));
      const g = await rawSocket(d);
      g.sock.pause();
      g.sock.write(rpcRequest(d, big) + raw(3));
      await sleep(1000);
      assert.equal(await pending(), 1, 'queued behind the unread answer');
      g.sock.destroy();
      await sleep(500);
      assert.equal(await pending(), 1, 'not run once its connection was gone');
    } finally {
      await d.stop();
    }
  });

  it('refusals queued behind another answer on a connection that dies give back the bytes they held (review of the per-connection turns)', async () => {
    const d = await serve({ config: '[server]\nmax_response_bytes = 1048576\n[queue]\nmax_payload_bytes = 65536\n' });
    await d.call('session_create', { metadata: { blob: 'y'.repeat(300_000) } });
    const list = async (): Promise<string> => {
      const a = await d.call('session_list', {});
      return a.error === undefined ? 'ok' : String(a.error.data.code);
    };
    assert.equal(await list(), 'ok');
    // Refusals queued behind another answer: Node never says such a response closed when the
    // client leaves, and each held its bytes for good (80 such connections filled the 4 MiB).
    const bad = rpcRequest(d, '{}', { token: 'x'.repeat(d.token.length) }).repeat(2000);
    for (let i = 0; i < 80; i++) {
      const r = await rawSocket(d, bad);
      r.sock.resume();
      await r.closed;
    }
    assert.equal(await list(), 'ok', 'bulk reads still have room');
    await d.stop();
  });

  it('a request waiting behind an unread answer and a refusal when its client leaves is not counted in flight: a stop does not wait out its grace period for it (review of the per-connection turns)', async () => {
    const d = await serve({ config: '[server]\nshutdown_grace_ms = 3000\n' });
    const s = (await d.call('session_create', { metadata: { blob: 'y'.repeat(1_000_000) } })).result as { id: string };
    const big = JSON.stringify(Array.from({ length: 12 }, (_, k) => ({ jsonrpc: '2.0', id: k, method: 'session_get', params: { id: s.id } })));
    const g = await rawSocket(d);
    g.sock.pause();
    // Behind the unread answer: a call, a refusal (wrong token), a call that passed its checks.
    const h = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'health' });
    g.sock.write(rpcRequest(d, big) + rpcRequest(d, h) + rpcRequest(d, h, { token: 'x'.repeat(d.token.length) }) + rpcRequest(d, h));
    await sleep(500);
    g.sock.destroy();
    await sleep(300);
    assert.equal((await d.stop()).code, 0);
    assert.doesNotMatch(d.stderr(), /cut off/, 'no call was left in flight');
  });

  it('large read answers count against the bound whatever the method: one unread batch per connection on many connections cannot pass it (third review)', async () => {
    // Only bulk reads were refused past the bound: 40 connections, each with one batch of seven
    // session_get calls of a session with ~1 MB of metadata and never read, held 670 MB more
    // against a bound of 32 MiB.
    const d = await serve({ config: '[server]\nmax_response_bytes = 8388608\n' });
    const held: net.Socket[] = [];
    try {
      const s = (await d.call('session_create', { metadata: { blob: 'y'.repeat(960_000) } })).result as { id: string };
      const body = JSON.stringify(Array.from({ length: 7 }, (_, k) => ({ jsonrpc: '2.0', id: k, method: 'session_get', params: { id: s.id } })));
      for (let i = 0; i < 20; i++) {
        const r = await rawSocket(d);
        r.sock.pause();
        r.sock.write(rpcRequest(d, body));
        held.push(r.sock);
      }
      await sleep(2000);
      const refused = await d.call('session_get', { id: s.id });
      assert.equal(refused.error?.data?.code, 'KC_RESULT_TOO_LARGE', JSON.stringify(refused).slice(0, 200));
      assert.match(String(refused.error?.message), /have not read them yet/);
      // Small answers and writes are still served.
      assert.ok((await d.call('health', {})).result);
      assert.ok((await d.call('message_append', { sessionId: s.id, role: 'user', content: 'hi' })).result);
      for (const h of held) h.destroy();
      let again = await d.call('session_get', { id: s.id });
      for (let i = 0; i < 50 && again.error !== undefined; i++) {
        await sleep(100);
        again = await d.call('session_get', { id: s.id });
      }
      assert.ok(again.result, JSON.stringify(again.error));
    } finally {
      for (const h of held) h.destroy();
      await d.stop();
    }
  });

  it('an Upgrade other than WebSocket is ignored (h2c answered over HTTP/1.1); a WebSocket handshake gets a JSON refusal (finding 5)', async () => {
    const d = await serve();
    try {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'health' });
      const headers = `Host: 127.0.0.1:${d.info.port}\r\nAuthorization: Bearer ${d.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n`;
      // As curl --http2 sends it on http://, then a second call on the same connection.
      const h2c = `POST /rpc HTTP/1.1\r\n${headers}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n${body}`;
      const next = `POST /rpc HTTP/1.1\r\n${headers}Connection: close\r\n\r\n${body}`;
      const s = await rawSocket(d, h2c);
      let text = '';
      s.sock.on('data', (c: Buffer) => {
        text += c.toString();
        if (/\}\s*$/.test(text) && !text.includes('Connection: close')) s.sock.write(next);
      });
      await s.closed;
      const answers = text.split(/(?=HTTP\/1\.1 )/);
      assert.equal(answers.length, 2, text);
      for (const a of answers) {
        assert.match(a, /^HTTP\/1\.1 200 /);
        assert.equal(JSON.parse(a.slice(a.indexOf('\r\n\r\n') + 4)).result.status, 'ok');
      }

      const ws = await rawSocket(
        d,
        `GET /rpc HTTP/1.1\r\nHost: 127.0.0.1:${d.info.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${d.token}\r\n\r\n`,
      );
      let refused = '';
      ws.sock.on('data', (c: Buffer) => (refused += c.toString()));
      await ws.closed;
      assert.match(refused, /^HTTP\/1\.1 403 /);
      const error = JSON.parse(refused.slice(refused.indexOf('\r\n\r\n') + 4)).error;
      assert.equal(error.data.code, 'KC_RPC_FORBIDDEN');
      assert.match(error.data.hint, /POST each call to http:\/\/127\.0\.0\.1:\d+\/rpc/);
      const security = d.stderr().split('\n').filter((l) => l.includes('"security"'));
      assert.equal(security.filter((l) => l.includes('"websocket"')).length, 1, security.join('\n'));
    } finally {
      await d.stop();
    }
  });

  it('repeated refusals are summed up with what they carried, not under the first one\'s origin (QA r10)', async () => {
    // Before, one request from http://localhost:3000 and then five from https://evil.example
    // were logged as six from localhost:3000: the summary reused the first line's message.
    const d = await serve();
    try {
      const refusedWith = async (headers: Record<string, string>) => {
        const r = await request(d.info.url, { headers: { ...authHeaders(d.token), ...headers }, body: '{"jsonrpc":"2.0","id":1,"method":"health"}' });
        assert.equal(r.status, 403);
      };
      await refusedWith({ origin: 'http://localhost:3000' });
      for (let i = 0; i < 5; i++) await refusedWith({ origin: `https://evil${i % 2}.example` });
      await refusedWith({ host: 'rebind.attacker.example' });
      for (let i = 0; i < 7; i++) await refusedWith({ host: `h${i}.attacker.example` });
      // Review r10: more distinct ones are counted as such, not as requests.
      for (let i = 0; i < 3; i++) await refusedWith({ host: 'h6.attacker.example' });
      // Second review: a header's whole 16 KiB was logged, and kept for the summary.
      await refusedWith({ 'sec-fetch-site': `cross-site${'x'.repeat(8000)}` });
      assert.equal((await d.stop()).code, 0);
      const lines = d.stderr().split('\n').filter((l) => l.includes('"security"')).map((l) => JSON.parse(l) as { security: string; msg: string; repeated?: number; carried?: { origin?: string; host?: string }[]; carriedMore?: number });
      const browser = lines.filter((l) => l.security === 'browser');
      assert.equal(browser.length, 2, JSON.stringify(browser));
      assert.ok(!d.stderr().includes('x'.repeat(100)), 'a long header is named by its length');
      assert.equal(browser[1]!.repeated, 6);
      assert.match(browser[0]!.msg, /localhost:3000/);
      assert.doesNotMatch(browser[1]!.msg, /localhost:3000/);
      assert.deepEqual(browser[1]!.carried!.map((c) => c.origin ?? '(none)').sort(), ['(none)', 'https://evil0.example', 'https://evil1.example']);
      assert.ok(browser[1]!.carried!.every((c) => (c as { remote?: string }).remote === '127.0.0.1'), 'the client address is kept');
      const host = lines.filter((l) => l.security === 'host');
      assert.equal(host[1]!.repeated, 10);
      assert.equal(host[1]!.carried!.length, 5, 'at most five distinct ones shown');
      assert.equal(host[1]!.carriedMore, 2, 'two other distinct Host headers, whatever their repeats');
      assert.ok(host[1]!.carried!.every((c) => /^h\d\.attacker\.example$/.test(c.host!)), JSON.stringify(host[1]));
    } finally {
      await d.stop();
    }
  });
});
