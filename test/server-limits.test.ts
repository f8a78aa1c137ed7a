import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { handleRpcBody, type RpcContext } from '../src/server/rpc.js';
import { authHeaders, request, serveForFile, type DaemonProcess } from './helpers/daemon.js';
import { silentLogger } from './helpers/index.js';

const serve = serveForFile();
const MIB = 1024 * 1024;
/**
 * The smallest answer bound the config allows, so the tests move little data (and a payload
 * bound that one claimed job fits in, as the config requires).
 */
const SMALL = `[server]\nmax_response_bytes = ${MIB}\n[queue]\nmax_payload_bytes = 900000\n`;

/** A batch body of JSON-RPC calls: [id, method, params]; an id of undefined makes a notification. */
function batchOf(calls: [string | number | undefined, string, unknown][]): string {
  return JSON.stringify(calls.map(([id, method, params]) => ({ jsonrpc: '2.0', ...(id === undefined ? {} : { id }), method, params })));
}

/** handleRpcBody over a stand-in app: unit tests of the RPC layer's answer budget. */
function rpcWith(app: object, maxResponseBytes: number): RpcContext {
  const base = { lockStatus: () => ({ locked: false }), redactor: { redact: (t: string) => t } };
  return { app: { ...base, ...app }, log: silentLogger(), maxResponseBytes, startedAtMs: Date.now(), version: 'test', throttle: {} } as unknown as RpcContext;
}

async function stats(d: DaemonProcess, queue: string): Promise<{ pending: number; running: number; dead: number }> {
  return (await d.call('queue_stats', { queue })).result;
}

describe('blufio serve: answers bounded by max_response_bytes (review findings)', () => {
  it('queue_claim claims only the jobs its answer can carry, and none when the first does not fit', async () => {
    const d = await serve({ config: SMALL });
    for (let i = 0; i < 5; i++) assert.equal((await d.call('queue_enqueue', { queue: 'big', payload: 'p'.repeat(300_000), maxAttempts: 2 })).error, undefined);
    const c = await d.call('queue_claim', { queue: 'big', limit: 10 });
    assert.equal(c.error, undefined, JSON.stringify(c.error));
    assert.equal(c.result.length, 3, 'three 300 kB jobs fit in 1 MiB, four do not');
    const big = await stats(d, 'big');
    assert.deepEqual([big.pending, big.running], [2, 3]);
    for (const job of c.result) assert.equal((await d.call('queue_ack', { id: job.id, leaseToken: job.leaseToken })).error, undefined);

    // What the calls before it in a batch left cannot carry the next job: refused, never
    // leased, never dead, however often it is tried.
    const sid = (await d.call('session_create', {})).result.id;
    assert.equal((await d.call('message_append', { sessionId: sid, role: 'user', content: 'm'.repeat(800_000) })).error, undefined);
    for (let i = 0; i < 3; i++) {
      const a = await request(d.info.url, { headers: authHeaders(d.token), body: batchOf([[1, 'message_list', { sessionId: sid }], [2, 'queue_claim', { queue: 'big', limit: 5, leaseMs: 100 }]]) });
      assert.equal(a.json[0].result.length, 1);
      assert.equal(a.json[1].error?.data.code, 'KC_RESULT_TOO_LARGE');
      assert.match(a.json[1].error.message, /nothing was claimed/);
    }
    const s = await stats(d, 'big');
    assert.equal(s.running, 0, 'not leased');
    assert.equal(s.dead, 0, 'no attempt counted');
    assert.equal(s.pending, 2);
  });

  it('a claim whose answer is not sent hands its jobs back as they were: no attempt counted, place kept (review 3, finding 1)', async () => {
    const d = await serve({ config: SMALL });
    const first = (await d.call('queue_enqueue', { queue: 'q', payload: 'p'.repeat(600_000), maxAttempts: 1 })).result as string;
    assert.equal((await d.call('queue_enqueue', { queue: 'q', payload: 'second' })).error, undefined);
    const sid = (await d.call('session_create', {})).result.id;
    // The claim fits what is left when it starts; the append's result (a write, charged
    // whatever is left) then leaves no room for both: either the claim's own charge fails or
    // the batch is too large as a whole, and the claim's answer is the one dropped.
    const a = await request(d.info.url, {
      headers: authHeaders(d.token),
      body: batchOf([['claim', 'queue_claim', { queue: 'q', limit: 1, leaseMs: 60_000 }], ['append', 'message_append', { sessionId: sid, role: 'user', content: 'm'.repeat(500_000) }]]),
    });
    assert.ok(Array.isArray(a.json), a.text.slice(0, 300));
    const byId = new Map<string, any>(a.json.map((x: { id: string }) => [x.id, x]));
    assert.equal(byId.get('append').result.content.length, 500_000, 'the write\'s result is kept');
    assert.equal(byId.get('claim').error?.data.code, 'KC_RESULT_TOO_LARGE');
    assert.match(byId.get('claim').error.message, /nothing was claimed/);
    assert.deepEqual([(await stats(d, 'q')).running, (await stats(d, 'q')).pending], [0, 2], 'nothing stays leased');
    // A claim sent as a notification has nobody to hand its jobs to either.
    const n = await request(d.info.url, { headers: authHeaders(d.token), body: batchOf([[undefined, 'queue_claim', { queue: 'q', limit: 2, leaseMs: 60_000 }], [1, 'health', {}]]) });
    assert.equal(n.json.length, 1);
    assert.deepEqual([(await stats(d, 'q')).running, (await stats(d, 'q')).pending], [0, 2], 'a notification claims nothing');
    // Still first in line, and its one attempt still to come.
    const again = await d.call('queue_claim', { queue: 'q', limit: 1 });
    assert.equal(again.result?.[0]?.id, first, JSON.stringify(again.error));
    assert.equal(again.result[0].attempts, 1);
  });

  it('jobs a claim took past its answer\'s room go back keeping their place (review 3, finding 5)', async () => {
    const calls: string[] = [];
    const job = (n: number) => ({ id: `job${n}`, queue: 'q', payload: 'x'.repeat(5000), leaseToken: 't', attempts: 1 });
    const ctx = rpcWith(
      {
        queue: {
          claim: async () => [job(1), job(2)],
          release: async (id: string) => void calls.push(`release ${id}`),
          handBack: async (jobs: { id: string }[]) => void calls.push(`handBack ${jobs.map((j) => j.id).join(',')}`),
        },
      },
      10_000,
    );
    const out = JSON.parse((await handleRpcBody(ctx, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'queue_claim', params: { queue: 'q' } })))!);
    assert.deepEqual(out.result.map((j: { id: string }) => j.id), ['job1']);
    assert.deepEqual(calls, ['handBack job2'], 'handed back as it was, not released to the end of the line');
  });

  it('a batch too large keeps as many answers as it can: the largest replaced first, only by a smaller error, writes last (review 3, finding 3)', async () => {
    const max = 10_000;
    const ctx = rpcWith({ sessions: { create: async () => ({ id: 's1', metadata: { pad: 'w'.repeat(1500) } }) } }, max);
    const calls: [string | number, string, unknown][] = [['write', 'session_create', {}]];
    for (let i = 0; i < 99; i++) calls.push([i, 'health', {}]);
    const text = (await handleRpcBody(ctx, batchOf(calls)))!;
    const out = JSON.parse(text) as { id: unknown; error?: { message: string } }[];
    assert.ok(Buffer.byteLength(text) <= max, `${Buffer.byteLength(text)} bytes`);
    assert.deepEqual(out.filter((a) => a.error !== undefined).map((a) => a.id), ['write'], 'only the one large answer is replaced');
    assert.match(out[0]!.error!.message, /the call ran, and any change it made is kept/);
    // A read is replaced before a write, even a smaller one.
    const ctx2 = rpcWith({ sessions: { create: async () => ({ id: 's1', metadata: { pad: 'w'.repeat(3000) } }), get: async () => ({ id: 's1', metadata: { pad: 'r'.repeat(2000) } }) } }, 5000);
    const out2 = JSON.parse((await handleRpcBody(ctx2, batchOf([['w', 'session_create', {}], ['r', 'session_get', { id: 's1' }]])))!) as { id: string; error?: unknown }[];
    assert.deepEqual(out2.map((a) => [a.id, a.error === undefined]), [['w', true], ['r', false]]);
  });

  it('a batch shares one answer budget: 100 message_list calls cannot together pass it, nor fill the heap', async () => {
    // A heap far below what 100 answers of 900 kB would take (each held twice: rows, then JSON).
    const d = await serve({ config: SMALL, execArgv: ['--max-old-space-size=128'] });
    const sid = (await d.call('session_create', {})).result.id;
    for (let i = 0; i < 3; i++) assert.equal((await d.call('message_append', { sessionId: sid, role: 'user', content: 'x'.repeat(300_000) })).error, undefined);
    const batch = Array.from({ length: 100 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'message_list', params: { sessionId: sid } }));
    const a = await request(d.info.url, { headers: authHeaders(d.token), body: JSON.stringify(batch) }).catch((err: Error) => ({ status: 0, text: String(err), json: undefined }));
    assert.equal(a.status, 200, `${a.text.slice(0, 300)}\n${d.stderr().slice(-2000)}`);
    assert.ok(Array.isArray(a.json), a.text.slice(0, 300));
    assert.ok(Buffer.byteLength(a.text) <= MIB);
    assert.deepEqual(a.json.map((x: { id: number }) => x.id), batch.map((b) => b.id));
    // The first list takes 900 kB of the 1 MiB; every later one is refused while it reads.
    assert.equal(a.json[0].result.length, 3);
    for (const x of a.json.slice(1)) {
      assert.equal(x.error?.data.code, 'KC_RESULT_TOO_LARGE');
      assert.match(x.error.message, /newest messages asked for hold more than/);
    }
    assert.equal((await d.call('health')).result.status, 'ok');
  });

  it('session_list is charged to the same budget and refused while it reads', async () => {
    const d = await serve({ config: SMALL });
    for (let i = 0; i < 2; i++) assert.equal((await d.call('session_create', { metadata: { blob: 'm'.repeat(400_000) } })).error, undefined);
    const batch = [1, 2].map((id) => ({ jsonrpc: '2.0', id, method: 'session_list', params: {} }));
    const a = await request(d.info.url, { headers: authHeaders(d.token), body: JSON.stringify(batch) });
    assert.ok(Array.isArray(a.json), a.text.slice(0, 300));
    assert.equal(a.json[0].result.length, 2);
    assert.equal(a.json[1].error?.data.code, 'KC_RESULT_TOO_LARGE');
    assert.match(a.json[1].error.message, /newest sessions asked for hold more than/);
  });

  it('message_list and session_list count bytes of JSON, not characters: escaped and multi-byte text stops the read at the bound (review srv, finding 1)', async () => {
    const d = await serve({ config: SMALL });
    const sid = (await d.call('session_create', {})).result.id;
    // 600,000 characters in all, under the 1 MiB bound as characters, 3.6 MB as JSON (\u0001 is six bytes).
    for (let i = 0; i < 2; i++) {
      const a = await d.call('message_append', { sessionId: sid, role: 'user', content: '\u0001'.repeat(300_000) });
      assert.ok(a.error === undefined || a.error.data.code === 'KC_RESULT_TOO_LARGE', JSON.stringify(a.error));
    }
    const m = await d.call('message_list', { sessionId: sid });
    assert.equal(m.error?.data.code, 'KC_RESULT_TOO_LARGE');
    // Refused at the first row read, by the library's bound, not after serialising the page.
    assert.match(m.error!.message, /the 1 newest messages asked for hold more than \d+ bytes as JSON/);
    for (let i = 0; i < 2; i++) assert.equal((await d.call('session_create', { metadata: { blob: '\u00e9'.repeat(300_000) } })).error, undefined);
    const s = await d.call('session_list', {});
    assert.equal(s.error?.data.code, 'KC_RESULT_TOO_LARGE');
    assert.match(s.error!.message, /the 2 newest sessions asked for hold more than \d+ bytes as JSON/);
    assert.equal((await d.call('session_list', { limit: 2 })).error?.data.code, 'KC_RESULT_TOO_LARGE');
    assert.equal((await d.call('session_list', { limit: 1 })).result.length, 1);
  });

  it('a batch whose answers do not all fit keeps every write\'s result, each refused read answered by its own id', async () => {
    const d = await serve({ config: SMALL });
    const sid = (await d.call('session_create', {})).result.id;
    assert.equal((await d.call('message_append', { sessionId: sid, role: 'user', content: 'x'.repeat(700_000) })).error, undefined);
    const batch = [
      { jsonrpc: '2.0', id: 'write', method: 'queue_enqueue', params: { queue: 'pay', payload: { invoice: 42 } } },
      { jsonrpc: '2.0', id: 'read1', method: 'message_list', params: { sessionId: sid } },
      { jsonrpc: '2.0', id: 'read2', method: 'message_list', params: { sessionId: sid } },
      { jsonrpc: '2.0', id: 'append', method: 'message_append', params: { sessionId: sid, role: 'user', content: 'after' } },
    ];
    const a = await request(d.info.url, { headers: authHeaders(d.token), body: JSON.stringify(batch) });
    assert.ok(Array.isArray(a.json), a.text.slice(0, 300));
    const byId = new Map<string, any>(a.json.map((x: { id: string }) => [x.id, x]));
    assert.equal(byId.size, 4);
    assert.match((byId.get('write') as { result: string }).result, /^[0-9A-Z]{26}$/);
    assert.equal((byId.get('append') as { result: { content: string } }).result.content, 'after');
    const reads = ['read1', 'read2'].map((id) => byId.get(id) as { result?: unknown[]; error?: { data: { code: string } } });
    assert.equal(reads.filter((r) => r.result?.length === 1).length, 1, 'one read fits');
    assert.equal(reads.filter((r) => r.error?.data.code === 'KC_RESULT_TOO_LARGE').length, 1, 'the other is refused on its own');
  });
});
