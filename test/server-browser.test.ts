import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { startServe, type DaemonProcess } from './helpers/daemon.js';

const CHROMIUM = '/usr/bin/chromium';
// CI installs Debian's chromium (.ci/run); elsewhere the test says why it did not run.
const skip = !fs.existsSync(CHROMIUM) && process.env.CI !== 'true' ? 'needs /usr/bin/chromium (apt install chromium)' : false;

/** What a hostile page on another local origin tries against the daemon; each reports what the page could see. */
const ATTACKS = `
async function attacks(target, wsTarget, token) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session_create', params: { channel: 'pwned' } });
  const out = {};
  const attempt = async (name, fn) => {
    try { out[name] = { ok: true, seen: await fn() }; } catch (e) { out[name] = { ok: false, error: String(e && e.name) }; }
  };
  // fetch with the token (as if it had leaked to the page): needs a CORS preflight.
  await attempt('fetch-cors', async () => { const r = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body }); return { status: r.status, text: await r.text() }; });
  // A "simple" request needs no preflight: the browser sends it, but the page may not read the answer.
  await attempt('fetch-simple', async () => { const r = await fetch(target, { method: 'POST', headers: { 'content-type': 'text/plain' }, body }); return { status: r.status, text: await r.text() }; });
  await attempt('fetch-no-cors', async () => { const r = await fetch(target, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'application/json' }, body }); return { type: r.type, status: r.status, text: await r.text() }; });
  await attempt('fetch-get', async () => { const r = await fetch(target); return { status: r.status, text: await r.text() }; });
  await attempt('xhr', () => new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', target);
    x.setRequestHeader('content-type', 'application/json');
    x.setRequestHeader('authorization', 'Bearer ' + token);
    x.onload = () => resolve({ status: x.status, text: x.responseText });
    x.onerror = () => reject(Object.assign(new Error('xhr'), { name: 'XhrError' }));
    x.send(body);
  }));
  await attempt('form', () => new Promise((resolve) => {
    const frame = document.createElement('iframe');
    frame.name = 'sink';
    document.body.appendChild(frame);
    const form = document.createElement('form');
    form.method = 'POST';
    form.action = target;
    form.target = 'sink';
    form.enctype = 'text/plain';
    const input = document.createElement('input');
    input.name = body.slice(0, -1) + ',"x":"';
    input.value = '"}';
    form.appendChild(input);
    document.body.appendChild(form);
    frame.onload = () => {
      let text;
      try { text = frame.contentDocument ? frame.contentDocument.body.innerText : null; } catch (e) { text = 'blocked: ' + e.name; }
      resolve({ readable: text });
    };
    form.submit();
  }));
  await attempt('websocket', () => new Promise((resolve, reject) => {
    const ws = new WebSocket(wsTarget);
    ws.onopen = () => { ws.send(body); };
    ws.onmessage = (m) => resolve({ message: String(m.data) });
    ws.onerror = () => reject(Object.assign(new Error('ws'), { name: 'WebSocketError' }));
  }));
  return out;
}
`;

describe('blufio serve against a hostile page in Chromium', { skip }, () => {
  let browser: Browser;
  let daemon: DaemonProcess;
  let page: http.Server;

  before(async () => {
    daemon = await startServe();
    page = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><html><body><script>${ATTACKS}</script></body></html>`);
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    page?.close();
    await daemon?.stop();
  });

  for (const host of ['127.0.0.1', 'localhost']) {
    it(`fetch, XHR, a form POST and a WebSocket from http://${host}:<other port> get nothing readable and change nothing`, async () => {
      const ctx = await browser.newContext();
      const tab = await ctx.newPage();
      await tab.goto(`http://${host}:${(page.address() as AddressInfo).port}/`);
      const target = `http://${host}:${daemon.info.port}/rpc`;
      const results = (await tab.evaluate(
        ([t, w, token]) => (globalThis as unknown as { attacks: (a: string, b: string, c: string) => Promise<unknown> }).attacks(t!, w!, token!),
        [target, target.replace('http:', 'ws:'), daemon.token],
      )) as Record<string, { ok: boolean; seen?: { status?: number; text?: string; type?: string; readable?: string | null; message?: string }; error?: string }>;
      await ctx.close();

      assert.deepEqual(Object.keys(results).sort(), ['fetch-cors', 'fetch-get', 'fetch-no-cors', 'fetch-simple', 'form', 'websocket', 'xhr']);
      // No CORS header is sent, so every readable-response attempt fails in the browser.
      for (const name of ['fetch-cors', 'fetch-simple', 'fetch-get', 'xhr', 'websocket']) {
        assert.equal(results[name]!.ok, false, `${name} got an answer: ${JSON.stringify(results[name])}`);
      }
      // no-cors: an opaque response, nothing in it.
      assert.deepEqual(results['fetch-no-cors']!.seen, { type: 'opaque', status: 0, text: '' });
      // The form's answer lands in a frame of another origin, which the page cannot read.
      const form = results.form!.seen!.readable;
      assert.ok(form === null || /^blocked/.test(form ?? ''), `form answer readable: ${form}`);

      // Nothing changed, and the daemon saw browser requests and refused them.
      const sessions = await daemon.call('session_list', {});
      assert.deepEqual(sessions.result, []);
      const refused = daemon
        .stderr()
        .split('\n')
        .filter((l) => l.includes('"security"'))
        .map((l) => (JSON.parse(l) as { security: string }).security);
      assert.ok(refused.includes('browser'), `browser requests refused and logged: ${refused}`);
    });
  }
});
