import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openBlufio, type BlufioApp, type OpenOptions } from '../app/index.js';
import { loadConfig } from '../config/index.js';
import { acquireFileLock } from '../dbcrypt/dirlock.js';
import { AppError, ErrorCode } from '../errors/index.js';
import { ioError } from '../dbcrypt/manifest.js';
import { ensurePrivateDir } from '../storage/files.js';
import type { PassphrasePurpose } from '../vault/index.js';
import { checkDirSafe } from './dir-safety.js';
import { BearerCheck, isLoopback } from './guards.js';
import { RpcHttpServer } from './http.js';
import { handleRpcBody, type RpcContext } from './rpc.js';
import { HELD_ANSWERS, HeldAnswers } from './budget.js';
import { DAEMON_LOCK_FILE, recordedPid, removeStateFiles, TOKEN_FILE, writeStateFiles, type DaemonInfo } from './state-files.js';
import { UnlockThrottle } from './throttle.js';

/** How long a start waits for daemon.lock: a client's probe holds it for microseconds, a daemon for good. */
const LOCK_PROBE_GRACE_MS = 250;

export interface DaemonOptions extends Omit<OpenOptions, 'requireVault'> {
  /** Reported by `health`. */
  version?: string;
}

export interface Daemon {
  readonly app: BlufioApp;
  /** What daemon.json says: pid, port, address, url, started_at_ms. */
  readonly info: DaemonInfo;
  /** Where rpc.token is. */
  readonly tokenFile: string;
  /**
   * Stops: no new connections, calls in flight get `[server] shutdown_grace_ms` to finish, queue
   * workers stop and hand back their jobs, the WAL is checkpointed into the database file, the
   * keys are zeroed, daemon.json and rpc.token are removed. Calling it again while it runs
   * cuts the grace period short.
   */
  close(): Promise<void>;
}

/**
 * `blufio serve`. Startup, each step a clear error that stops it: the config (a non-loopback
 * bind without TLS is refused before anything opens); the directory's daemon lock (a second
 * daemon on the same data directory is refused); the database per vault.json (its key when
 * encrypted), migrations, recovery of leases and interrupted sessions; the vault, which must
 * unlock if it exists, and plaintext config secrets moved into it; then the socket, daemon.json
 * and rpc.token (in that order, see state-files.ts), and one ready line. The vault lives in the database, so the database opens
 * (with its own key when encrypted) before the vault unlocks; nothing listens before both.
 */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const config = loadConfig({
    ...(opts.configPath === undefined ? {} : { configPath: opts.configPath }),
    ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
    ...(opts.env === undefined ? {} : { env: opts.env }),
  });
  const bindAddress = config.security.bindAddress;
  if (!isLoopback(bindAddress) && config.server.tls === undefined) {
    throw new AppError(ErrorCode.TLS_REQUIRED, `[security] bind_address ${bindAddress} is not a loopback address, and serving it without TLS would send the token and every call in the clear`, {
      hint: 'set [server] tls_cert and tls_key (PEM files), or bind 127.0.0.1',
    });
  }
  const dir = config.dataDir;
  try {
    ensurePrivateDir(dir);
  } catch (err) {
    throw ioError(`cannot create the data directory ${dir}`, err);
  }
  checkDirSafe(dir);
  let starting = true;
  // Not at once: a client's readStateFiles may be probing the lock for a moment (it takes the
  // shared lock for microseconds); a running daemon holds it for good.
  const releaseLock = await acquireFileLock(path.join(dir, DAEMON_LOCK_FILE), LOCK_PROBE_GRACE_MS, () => {
    const pid = recordedPid(dir);
    return new AppError(ErrorCode.SERVER_RUNNING, `another blufio serve${pid === undefined ? '' : ` (pid ${pid})`} is already serving ${dir}`, {
      hint: 'stop it first, or give this one another --data-dir',
    });
  });
  // A daemon killed with SIGKILL left its daemon.json and rpc.token behind, and its port may be
  // anyone's by now. They go before the slow part of the start (see state-files.ts).
  try {
    removeStateFiles(dir);
  } catch (err) {
    releaseLock();
    throw ioError(`cannot remove the stale ${TOKEN_FILE} and daemon.json in ${dir}`, err);
  }
  let app: BlufioApp | undefined;
  let http: RpcHttpServer | undefined;
  try {
    const { version: _version, askPassphrase, ...open } = opts;
    // A terminal is asked only while starting: once serving, nothing an RPC call does may put a
    // prompt on the daemon's terminal (and hang the call until someone types).
    const ask = askPassphrase === undefined ? undefined : (purpose: PassphrasePurpose) => (starting ? askPassphrase(purpose) : Promise.resolve(undefined));
    app = await openBlufio({ ...open, ...(ask === undefined ? {} : { askPassphrase: ask }), requireVault: true });
    const token = randomBytes(32).toString('base64url');
    // No log line or stored row may ever carry the token.
    app.redactor.pin('rpc-token', token);
    const bearer = new BearerCheck(token);
    const held = new HeldAnswers(HELD_ANSWERS * config.server.maxResponseBytes);
    const ctx: RpcContext = {
      app,
      throttle: new UnlockThrottle(),
      startedAtMs: Date.now(),
      version: opts.version ?? '0.0.0',
      log: app.log,
      maxResponseBytes: config.server.maxResponseBytes,
      held,
    };
    const server = new RpcHttpServer({
      settings: config.server,
      bindAddress,
      bearer,
      log: app.log,
      redact: (t) => ctx.app.redactor.redact(t),
      handle: (body) => handleRpcBody(ctx, body),
      held,
    });
    http = server;
    const bound = await server.listen();
    const info: DaemonInfo = { pid: process.pid, port: bound.port, address: bindAddress, url: server.url, started_at_ms: ctx.startedAtMs };
    try {
      writeStateFiles(dir, info, token);
    } catch (err) {
      throw ioError(`cannot write daemon.json and ${TOKEN_FILE} in ${dir}`, err);
    }
    const started = app;
    starting = false;
    app.log.info({ url: info.url, address: bindAddress, port: info.port, dataDir: dir, tls: server.scheme === 'https' }, 'blufio serve ready');
    let closing: Promise<void> | undefined;
    return {
      app: started,
      info,
      tokenFile: path.join(dir, TOKEN_FILE),
      close() {
        if (closing !== undefined) {
          void server.close(0);
          return closing;
        }
        closing = (async () => {
          started.log.info('blufio serve stopping: no new calls; waiting for the ones in flight');
          try {
            // The files go before the port is released: once it is, anyone may bind it, and a
            // client that still found daemon.json would send them the live token and its
            // request (a vault_unlock passphrase, say) during the grace period.
            removeStateFiles(dir);
            await server.close(config.server.shutdownGraceMs);
            await started.close();
          } finally {
            removeStateFiles(dir);
            bearer.clear();
            started.redactor.unpin('rpc-token');
            releaseLock();
          }
          started.log.info('blufio serve stopped; the database is checkpointed into one file');
        })();
        return closing;
      },
    };
  } catch (err) {
    removeStateFiles(dir);
    await http?.close(0).catch(() => undefined);
    await app?.close().catch(() => undefined);
    removeStateFiles(dir);
    releaseLock();
    throw err;
  }
}
