import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import { sleep } from './helpers/index.js';
import { rpc, startServe, type DaemonProcess } from './helpers/daemon.js';

let daemon: DaemonProcess | undefined;
after(async () => {
  await daemon?.stop('SIGKILL');
});

/** The daemon's resident set size in MiB, from /proc. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

const CLIENTS = 200;

describe('blufio serve under load', () => {
  it(`${CLIENTS} concurrent clients on loopback: no errors, memory flat`, async (t) => {
    // V8 grows its old generation to a multiple of what survived the last full collection and may
    // go tens of thousands of calls without one: a CI run climbed 145 to 220 MiB in a straight
    // line, with nothing retained (the same build here, run for 650,000 calls, levels at 165).
    // Growing by a quarter instead keeps RSS near what is live, which is what a leak raises.
    daemon = await startServe({ execArgv: ['--heap-growing-percent=25'] });
    const d = daemon;
    const sessionId = (await d.call('session_create', { channel: 'load' })).result.id as string;
    const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
    const errors: string[] = [];
    let calls = 0;
    let stopping = false;
    const clients = Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = 0; !stopping; i++) {
        try {
          const kind = i % 4;
          const r =
            kind === 0
              ? await rpc(d.info.url, d.token, 'queue_enqueue', { queue: 'load', payload: { c, i } }, { agent })
              : kind === 1
                ? await rpc(d.info.url, d.token, 'session_get', { id: sessionId }, { agent })
                : kind === 2
                  ? await rpc(d.info.url, d.token, 'message_list', { sessionId, limit: 20 }, { agent })
                  : await rpc(d.info.url, d.token, 'message_append', { sessionId, role: 'user', content: `client ${c} call ${i} ${'x'.repeat(200)}` }, { agent });
          if (r.error !== undefined) errors.push(`${r.error.data.code}: ${r.error.message}`);
          calls++;
        } catch (err) {
          errors.push(String(err));
        }
      }
    });
    // Bounded by calls, not by time: warm up, take the baseline, then run eight times as many.
    const pid = d.child.pid!;
    const waitCalls = async (n: number) => {
      while (calls < n && errors.length === 0) await sleep(50);
    };
    await waitCalls(8_000);
    const warm = rssMiB(pid);
    const samples: number[] = [];
    for (let k = 1; k <= 8; k++) {
      await waitCalls(8_000 + k * 8_000);
      samples.push(rssMiB(pid));
    }
    stopping = true;
    await Promise.all(clients);
    agent.destroy();
    assert.deepEqual(errors.slice(0, 5), [], `${errors.length} errors`);
    // Flat: over the second half memory does not keep climbing: a leak of 1 KB a call (a typed
    // array kept per call, tried in the RPC handler) raised the peaks compared below by 50 MiB,
    // 1.7 KB by 69 (Node 20, 72,000 calls). The first half may grow in steps as V8 sizes its
    // heap for 200 clients: here Node 24 settles about 60 MiB above the first baseline (without
    // the flag above, CI measured up to 220 more), Node 20 about 20. Where it settles is V8's
    // sizing, not ours; the total is bounded well above it, so that only growth of another
    // order fails here.
    // Peak against peak: V8's collections make RSS a sawtooth (Node 20 here: 27 MiB between a
    // trough at the fourth sample and a peak at the last, with no growth), and a trough taken as
    // the baseline measured the saw, not a leak. A leak raises the peaks as much as the troughs.
    const secondHalf = Math.max(...samples.slice(-2)) - Math.max(samples[2]!, samples[3]!);
    const total = Math.max(...samples.slice(-2)) - warm;
    t.diagnostic(`${calls} calls, RSS warm ${warm.toFixed(1)} MiB, then ${samples.map((s) => s.toFixed(1)).join(', ')} MiB`);
    assert.ok(secondHalf < 40, `RSS grew ${secondHalf.toFixed(1)} MiB over the second half of a steady load (peak to peak)`);
    assert.ok(total < 256, `RSS grew ${total.toFixed(1)} MiB from ${warm.toFixed(1)} under steady load`);
    assert.equal((await d.stop()).code, 0);
  });
});
