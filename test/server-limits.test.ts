import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authHeaders, request, serveForFile, type DaemonProcess } from './helpers/daemon.js';

const serve = serveForFile();
const MIB = 1024 * 1024;
/** The smallest answer bound the config allows, so the tests move little data. */
const SMALL = `[server]\nmax_response_bytes = ${MIB}\n[queue]\nmax_payload_bytes = ${2 * MIB}\n`;

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

    // One job larger than any answer: refused again and again, never leased, never dead.
    assert.equal((await d.call('queue_enqueue', { queue: 'huge', payload: 'h'.repeat(1_200_000), maxAttempts: 1 })).error, undefined);
    for (let i = 0; i < 3; i++) {
      const r = await d.call('queue_claim', { queue: 'huge', limit: 5, leaseMs: 100 });
      assert.equal(r.error?.data.code, 'KC_RESULT_TOO_LARGE');
      assert.match(r.error!.message, /nothing was claimed/);
    }
    const s = await stats(d, 'huge');
    assert.equal(s.running, 0, 'not leased');
    assert.equal(s.dead, 0, 'no attempt counted');
    assert.equal(s.pending, 1);
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
