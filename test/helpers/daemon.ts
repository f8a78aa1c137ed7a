import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after } from 'node:test';
import { readStateFiles } from '../../src/server/index.js';
import { CLI, cleanEnv, sleep, tmpDir } from './index.js';

export interface DaemonFiles {
  pid: number;
  port: number;
  address: string;
  url: string;
  started_at_ms: number;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed body, undefined when it is empty or not JSON. */
  json: any;
}

export interface RpcAnswer {
  result?: any;
  error?: { code: number; message: string; data: { code: string; hint?: string; retryAfterMs?: number } };
  id?: unknown;
}

/** A `blufio serve` child process, started and ready (daemon.json written). */
export interface DaemonProcess {
  child: ChildProcess;
  dir: string;
  env: NodeJS.ProcessEnv;
  info: DaemonFiles;
  token: string;
  stderr(): string;
  /** The process's exit, once it has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** One call with the token; the JSON-RPC answer. */
  call(method: string, params?: unknown): Promise<RpcAnswer>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Raw HTTP(S) request to the daemon with full control of the headers; never throws for a status. */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ca?: string; agent?: http.Agent } = {},
): Promise<HttpAnswer> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      {
        hostname: u.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? 'POST',
        headers: opts.headers ?? {},
        ...(opts.ca === undefined ? {} : { ca: opts.ca }),
        ...(opts.agent === undefined ? { agent: false } : { agent: opts.agent }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function authHeaders(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
}

export async function rpc(url: string, token: string, method: string, params?: unknown, extra: { ca?: string; agent?: http.Agent } = {}): Promise<RpcAnswer> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) });
  const a = await request(url, { headers: authHeaders(token), body, ...extra });
  if (a.json === undefined) throw new Error(`no JSON answer (HTTP ${a.status}): ${a.text}`);
  return a.json as RpcAnswer;
}

/**
 * Starts `blufio serve` for `dir` (a fresh temporary directory by default) and waits until it
 * has written daemon.json, or rejects with its stderr when it exits first.
 */
export async function startServe(
  opts: { dir?: string; config?: string; env?: NodeJS.ProcessEnv; args?: string[]; execArgv?: string[]; openFileLimit?: number } = {},
): Promise<DaemonProcess> {
  const dir = opts.dir ?? path.join(tmpDir('blufio-serve-'), 'data');
  const cfgDir = tmpDir('blufio-cfg-');
  const configFile = path.join(cfgDir, 'blufio.toml');
  fs.writeFileSync(configFile, opts.config ?? '');
  const env = opts.env ?? cleanEnv();
  const argv = [...(opts.execArgv ?? []), CLI, '--config', configFile, '--data-dir', dir, 'serve', ...(opts.args ?? [])];
  // A lower open-file limit (ulimit -n) is set by a shell that then becomes the daemon.
  const [file, args] = opts.openFileLimit === undefined ? [process.execPath, argv] : ['bash', ['-c', `ulimit -n ${opts.openFileLimit} && exec "$0" "$@"`, process.execPath, ...argv]];
  const child = spawn(file, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  // Read as every client must: rpc.token first, daemon.json second (see src/server/state-files.ts).
  let files: ReturnType<typeof readStateFiles>;
  // Hang guard only (a daemon that never gets ready fails the test instead of stalling it).
  for (let i = 0; ; i++) {
    if (gone) throw new Error(`blufio serve exited before it was ready:\n${stderr}`);
    if (/blufio serve ready/.test(stderr) && (files = readStateFiles(dir)) !== undefined) break;
    if (i > 3000) {
      child.kill('SIGKILL');
      throw new Error(`blufio serve was not ready after a minute:\n${stderr}`);
    }
    await sleep(20);
  }
  const { info, token } = files as { info: DaemonFiles; token: string };
  return {
    child,
    dir,
    env,
    info,
    token,
    stderr: () => stderr,
    exited,
    call: (method, params) => rpc(info.url, token, method, params),
    async stop(signal = 'SIGTERM') {
      if (!gone) child.kill(signal);
      return exited;
    },
  };
}

/** Config file text with `[server]`/`[security]` lines added. */
export function configText(lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** startServe for one test file: every daemon it started is SIGKILLed when the file's tests end. */
export function serveForFile(): (opts?: Parameters<typeof startServe>[0]) => Promise<DaemonProcess> {
  const running: DaemonProcess[] = [];
  after(async () => {
    await Promise.all(running.map((d) => d.stop('SIGKILL')));
  });
  return async (opts) => {
    const d = await startServe(opts);
    running.push(d);
    return d;
  };
}
