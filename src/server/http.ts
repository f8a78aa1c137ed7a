import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { AppError, ErrorCode, shownText } from '../errors/index.js';
import type { ServerSettings } from '../config/index.js';
import { ConnectionSlots } from './connections.js';
import { connectionLimit } from './descriptors.js';
import type { HeldAnswers } from './budget.js';
import { browserRefusal, hostAllowed, hostForm, type BearerCheck } from './guards.js';
import { toRpcError } from './rpc.js';

/** Bounds on what a client may hold open or send before it is cut off. */
const LIMITS = {
  maxHeaderSize: 16 * 1024,
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  keepAliveTimeout: 5_000,
  idleSocketMs: 60_000,
  /** How often Node enforces the two timeouts above (its default, 30 s, lets silent sockets pile up). */
  connectionsCheckingInterval: 1_000,
  /** Requests one connection may have waiting for their answers (HTTP pipelining); past it they are refused. */
  pipelined: 16,
} as const;

export interface RpcHttpOptions {
  settings: ServerSettings;
  bindAddress: string;
  bearer: BearerCheck;
  log: Logger;
  redact: (text: string) => string;
  /**
   * Answers a body that passed every check, as JSON text already within max_response_bytes
   * (the RPC layer keeps it there, error by error); undefined = no content (notifications only).
   */
  handle: (body: string) => Promise<string | undefined>;
  /** Where the answers being sent are counted until their connection has taken them (HeldAnswers). */
  held?: HeldAnswers;
}

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
} as const;

/** Of the refusals a summary line counts, how many distinct ones it shows. */
const SUMMARY_DISTINCT = 5;
/** How many more distinct ones it counts (beyond that, "at least"). */
const SUMMARY_COUNTED = 10_000;

/**
 * Security events are logged at ERROR, but a hostile page retrying in a loop must not flood the
 * log: the first of each kind is logged at once, then at most one line per 10 s with a count.
 * That line shows what the refused requests carried (client address, origin, Host header: up to
 * SUMMARY_DISTINCT distinct ones, and how many other distinct ones), never only the first's:
 * one harmless request first must not hide the attack behind it.
 */
class SecurityLog {
  private readonly pending = new Map<string, { count: number; seen: Map<string, Record<string, unknown>>; others: Set<string>; timer: NodeJS.Timeout }>();
  constructor(private readonly log: Logger) {}

  refused(kind: string, fields: Record<string, unknown>, message: string): void {
    const held = this.pending.get(kind);
    if (held !== undefined) {
      held.count++;
      const key = JSON.stringify(fields);
      if (held.seen.has(key)) return;
      if (held.seen.size < SUMMARY_DISTINCT) held.seen.set(key, fields);
      // Counted by a digest: 10,000 keys of a header's 16 KiB each would hold 160 MB.
      else if (held.others.size < SUMMARY_COUNTED) held.others.add(createHash('sha256').update(key).digest('base64'));
      return;
    }
    this.log.error({ security: kind, ...fields }, message);
    // Repeats within 10 s are counted, and the count is logged when the 10 s are up.
    const timer = setTimeout(() => this.flush(kind), 10_000);
    timer.unref();
    this.pending.set(kind, { count: 0, seen: new Map(), others: new Set(), timer });
  }

  private flush(kind: string): void {
    const held = this.pending.get(kind);
    if (held === undefined) return;
    this.pending.delete(kind);
    clearTimeout(held.timer);
    if (held.count === 0) return;
    this.log.error(
      { security: kind, repeated: held.count, carried: [...held.seen.values()], ...(held.others.size > 0 ? { carriedMore: held.others.size } : {}) },
      `refused ${held.count} more request(s) of this kind (${kind}) within 10 s, not logged one by one; what they carried is listed`,
    );
  }

  /** Logs every count still held (at shutdown): nothing refused goes unreported. */
  flushAll(): void {
    for (const kind of [...this.pending.keys()]) this.flush(kind);
  }
}

/**
 * The daemon's HTTP face: POST /rpc and nothing else. Each request passes, in order: the Host
 * header (DNS rebinding), browser signals (Origin, Sec-Fetch-Site), the path and method, the
 * bearer token, the content type and the body size; only then is the body read. No CORS header
 * is ever sent, and WebSocket upgrades are refused.
 */
export class RpcHttpServer {
  private readonly server: http.Server;
  private readonly security: SecurityLog;
  private inFlight = 0;
  private stopping = false;
  private drained: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  private port = 0;
  private readonly slots: ConnectionSlots;
  /** Per connection, its requests' turns (pipelined requests run one after another). */
  private readonly turns = new WeakMap<Socket, Turns>();

  constructor(private readonly o: RpcHttpOptions) {
    this.security = new SecurityLog(o.log);
    const opts = {
      maxHeaderSize: LIMITS.maxHeaderSize,
      headersTimeout: LIMITS.headersTimeout,
      requestTimeout: LIMITS.requestTimeout,
      keepAliveTimeout: LIMITS.keepAliveTimeout,
      connectionsCheckingInterval: LIMITS.connectionsCheckingInterval,
    };
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.onRequest(req, res, false);
    const tls = o.settings.tls;
    this.server =
      tls === undefined
        ? http.createServer(opts, handler)
        : https.createServer({ ...opts, key: readPem(tls.key, 'tls_key'), cert: readPem(tls.cert, 'tls_cert'), minVersion: 'TLSv1.2' }, handler);
    // Not server.maxConnections: it refuses new connections while idle ones hold every slot.
    // And never past the descriptors this process may open (descriptors.ts).
    const slots = new ConnectionSlots(connectionLimit(o.settings.maxConnections, o.log), o.log);
    this.slots = slots;
    this.server.on('connection', (socket: Socket) => slots.accept(socket));
    this.server.timeout = LIMITS.idleSocketMs;
    // Expect: 100-continue is answered only after the checks, so no body is sent to be refused.
    this.server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.onRequest(req, res, true));
    // No 'upgrade' listener: Node then hands every request that offers an Upgrade to onRequest
    // as plain HTTP/1.1 (RFC 9110 lets a server ignore the offer), so `curl --http2` (h2c) is
    // answered as any call; check() refuses WebSocket handshakes.
  }

  get scheme(): 'http' | 'https' {
    return this.o.settings.tls === undefined ? 'http' : 'https';
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(bindError(err, this.o.bindAddress, this.o.settings.port));
      this.server.once('error', onError);
      this.server.listen({ host: this.o.bindAddress, port: this.o.settings.port, exclusive: true }, () => {
        this.server.off('error', onError);
        const a = this.server.address() as AddressInfo;
        this.port = a.port;
        resolve(a);
      });
    });
  }

  /** The URL clients call. */
  get url(): string {
    // A wildcard bind is reached locally through loopback (the Host check accepts that address).
    const unspecified = this.o.bindAddress === '0.0.0.0' ? '127.0.0.1' : this.o.bindAddress === '::' ? '::1' : this.o.bindAddress;
    return `${this.scheme}://${hostForm(unspecified)}:${this.port}/rpc`;
  }

  /**
   * Stops accepting, lets calls in flight finish for up to `graceMs`, then cuts what is left.
   * Idle keep-alive connections are closed at once.
   */
  close(graceMs: number): Promise<void> {
    if (this.closing !== undefined) {
      // Asked again (a second signal): stop waiting for calls in flight.
      if (graceMs === 0) this.drained?.();
      return this.closing;
    }
    this.stopping = true;
    this.closing = (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      if (this.inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.drained = resolve;
          timer = setTimeout(resolve, graceMs);
        });
        clearTimeout(timer);
        if (this.inFlight > 0) this.o.log.warn({ calls: this.inFlight }, 'calls still running when the shutdown grace period ended were cut off');
      }
      this.server.closeAllConnections();
      await closed;
      this.security.flushAll();
    })();
    return this.closing;
  }

  /** Sends `body` (JSON text as is, anything else serialised; undefined: no content). */
  private send(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string | number> = { ...extra };
    if (this.stopping) headers.connection = 'close';
    if (body === undefined) {
      res.writeHead(status === 200 ? 204 : status, headers).end();
      return;
    }
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const bytes = Buffer.byteLength(text);
    this.o.held?.holdUntilClosed(bytes, res);
    res.writeHead(status, { ...JSON_HEADERS, ...headers, 'content-length': bytes }).end(text);
  }

  /** A refusal before the body is read: the connection is closed after it, the body never read. */
  private refuse(res: http.ServerResponse, status: number, err: AppError, extra: Record<string, string> = {}): void {
    // The connection ends after this answer: requests pipelined behind it are not run.
    const turns = this.turns.get(res.req.socket);
    const at = turns?.places.get(res);
    if (turns !== undefined && at !== undefined) turns.endsAfter = Math.min(turns.endsAfter, at);
    const error = toRpcError(err, this.o.redact, this.o.log);
    this.send(res, status, { jsonrpc: '2.0', id: null, error }, { connection: 'close', ...extra });
  }

  /**
   * 413, then the rest of the body is read and dropped for a moment before the connection is
   * closed: closing with the client's bytes unread makes the kernel reset the connection, and
   * the client could lose the answer before reading it. Bounded: at most another
   * max_body_bytes, at most 2 s.
   */
  private refuseTooLarge(req: http.IncomingMessage, res: http.ServerResponse): void {
    const max = this.o.settings.maxBodyBytes;
    const error = toRpcError(tooLarge(max), this.o.redact, this.o.log);
    this.send(res, 413, { jsonrpc: '2.0', id: null, error });
    const socket = req.socket;
    const linger = setTimeout(() => socket.destroy(), 2_000);
    linger.unref();
    let dropped = 0;
    req.on('data', (c: Buffer) => {
      dropped += c.length;
      if (dropped > max) socket.destroy();
    });
    req.once('end', () => socket.end());
    socket.once('close', () => clearTimeout(linger));
  }

  /** The checks that need no body, in order; true when the request may go on (else it was answered). */
  private check(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const remote = req.socket.remoteAddress;
    // Node keeps the first of repeated headers; a request that repeats these is refused whole.
    const repeated = (['host', 'authorization', 'origin', 'sec-fetch-site'] as const).find((h) => (req.headersDistinct[h]?.length ?? 0) > 1);
    if (repeated !== undefined) {
      this.security.refused('repeated-header', { remote, header: repeated }, `refused a request with more than one ${repeated} header`);
      this.refuse(res, 400, new AppError(ErrorCode.RPC_INVALID_REQUEST, `the ${repeated} header is repeated`));
      return false;
    }
    if (/(^|[\s,])websocket($|[\s,/])/i.test(req.headers.upgrade ?? '')) {
      this.security.refused('websocket', { remote, origin: shownText(req.headers.origin, 200) }, 'refused a WebSocket upgrade: the daemon speaks JSON-RPC over POST /rpc only');
      this.refuse(res, 403, new AppError(ErrorCode.RPC_FORBIDDEN, 'WebSocket is not served: the daemon speaks JSON-RPC over HTTP', { hint: `POST each call to ${this.url}` }));
      return false;
    }
    if (!hostAllowed(req.headers.host, req.socket.localAddress, this.port, this.o.settings.allowedHosts, this.scheme === 'https' ? 443 : 80)) {
      this.security.refused('host', { remote, host: shownText(req.headers.host, 200) }, 'refused a request whose Host header is not this daemon\'s address (DNS rebinding?)');
      this.refuse(res, 403, new AppError(ErrorCode.RPC_FORBIDDEN, 'the Host header does not name this daemon', { hint: `call ${this.url}` }));
      return false;
    }
    const browser = browserRefusal(req.headers, this.o.settings.allowedOrigins);
    if (browser !== undefined) {
      this.security.refused('browser', { remote, origin: shownText(req.headers.origin, 200), secFetchSite: shownText(req.headers['sec-fetch-site'], 40) }, `refused ${browser}: web pages may not call the daemon`);
      this.refuse(res, 403, new AppError(ErrorCode.RPC_FORBIDDEN, 'requests from web pages are refused', { hint: 'list the origin in [server] allowed_origins to allow it' }));
      return false;
    }
    if (req.url !== '/rpc') {
      this.refuse(res, 404, new AppError(ErrorCode.NOT_FOUND, 'not found: the daemon answers POST /rpc only'));
      return false;
    }
    if (req.method !== 'POST') {
      this.refuse(res, 405, new AppError(ErrorCode.RPC_INVALID_REQUEST, `${String(req.method).slice(0, 20)} is not allowed: use POST /rpc`), { allow: 'POST' });
      return false;
    }
    if (!this.o.bearer.accepts(req.headers.authorization)) {
      this.security.refused('auth', { remote, header: req.headers.authorization === undefined ? 'missing' : 'wrong' }, 'refused an RPC call without the right bearer token');
      this.refuse(res, 401, new AppError(ErrorCode.RPC_UNAUTHORIZED, 'missing or wrong bearer token', { hint: 'send Authorization: Bearer <the token in rpc.token>' }), {
        'www-authenticate': 'Bearer',
      });
      return false;
    }
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    if (!/^application\/json\s*(;|$)/.test(type)) {
      this.refuse(res, 415, new AppError(ErrorCode.RPC_INVALID_REQUEST, 'the body must be JSON: send Content-Type: application/json'));
      return false;
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > this.o.settings.maxBodyBytes) {
      this.refuseTooLarge(req, res);
      return false;
    }
    return true;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse, expectContinue: boolean): void {
    const socket = req.socket;
    this.slots.begin(socket);
    let turns = this.turns.get(socket);
    if (turns === undefined) {
      const made: Turns = { placed: 0, endsAfter: Infinity, latest: undefined, places: new Map() };
      this.turns.set(socket, made);
      // Node never emits 'close' for a response still queued behind another when its socket
      // dies (only the requests are aborted): what waits on it would wait for ever. Held bytes
      // of answers already made (refusals) stayed counted: 80 connections of pipelined
      // unauthenticated requests left no room for any bulk read under a 1 MiB bound, a
      // request counted in flight made every shutdown wait its whole grace period.
      socket.once('close', () => {
        for (const queued of [...made.places.keys()]) if (!queued.socket) queued.emit('close');
      });
      turns = made;
    }
    const t = turns;
    // Requests on one connection run one after another, each once the answer before it has been
    // handed to the kernel: a client that pipelines and never reads holds one answer in the
    // daemon, not one per request (16 session_set_state calls, each answered with a 1 MB
    // session, on each of 30 connections held 1.5 GB; writes' results are sent whatever is left
    // of the held-answers bound). Per connection, not per request: a request costs no promise
    // and no entry in a map that outlives it (a WeakMap keyed by each response, and a promise a
    // request, kept the daemon about 10 MiB larger under the 200-client load test on Node 24).
    const place = ++t.placed;
    t.places.set(res, place);
    const waiting = t.places.size;
    const before = t.latest;
    t.latest = res;
    res.once('close', () => {
      this.slots.end(socket);
      t.places.delete(res);
      if (t.latest === res) t.latest = undefined;
    });
    if (this.stopping) {
      this.refuse(res, 503, new AppError(ErrorCode.SERVER_SHUTTING_DOWN, 'the daemon is shutting down'));
      return;
    }
    if (!this.check(req, res)) return;
    if (waiting > LIMITS.pipelined) {
      // Node parses every request a client pipelines in one write and answers them in turn,
      // holding each answer until the one before it has been read.
      this.refuse(res, 503, new AppError(ErrorCode.RPC_RATE_LIMITED, `more than ${LIMITS.pipelined} requests on this connection are waiting for their answers to be read; this one was not run`, {
        hint: 'read the answers before sending more requests on one connection, or use more connections',
      }), { 'retry-after': '1' });
      return;
    }
    this.inFlight++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.inFlight--;
      if (this.inFlight === 0) this.drained?.();
    };
    res.once('close', finish);
    if (expectContinue) res.writeContinue();
    const max = this.o.settings.maxBodyBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.removeAllListeners('data');
        this.refuseTooLarge(req, res);
        return;
      }
      chunks.push(chunk);
    });
    req.once('error', () => finish());
    req.once('end', () => {
      if (size > max) return;
      let body: string;
      try {
        body = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, size));
      } catch {
        body = '\u0000'; // not UTF-8: answered as not JSON
      }
      const run = (): void => {
        // Gone before its turn (the client left, the daemon cut it, or a refusal before it
        // ends the connection): not run, nobody would learn what it did. The socket, not the
        // response: Node destroys the responses queued behind only after this turn begins.
        if (res.destroyed || socket.destroyed || !socket.writable || t.endsAfter < place) return;
        this.o.handle(body).then(
          (answer) => this.send(res, 200, answer),
          (err: unknown) => this.send(res, 500, { jsonrpc: '2.0', id: null, error: toRpcError(err, this.o.redact, this.o.log) }),
        );
      };
      // The request before it is still open (its 'close' has not come): its turn follows that.
      // After the rest of that 'close' (its held bytes are given back first).
      if (before !== undefined && t.places.has(before)) before.once('close', () => queueMicrotask(run));
      else queueMicrotask(run);
    });
  }
}

/** What the server keeps per connection so that its requests run in turn. */
interface Turns {
  /** Requests seen so far: each request's place on its connection is the count at its arrival (1, 2, ...). */
  placed: number;
  /** The place of the first refusal that ends the connection (Connection: close). */
  endsAfter: number;
  /** The newest request's response, until it closes: the next request runs after that. */
  latest: http.ServerResponse | undefined;
  /** The place of each request not closed yet (a refusal looks up its own); its size is how many wait for their answers. */
  places: Map<http.ServerResponse, number>;
}

function tooLarge(max: number): AppError {
  return new AppError(ErrorCode.RPC_BODY_TOO_LARGE, `the request body is larger than ${max} bytes`, { hint: 'raise [server] max_body_bytes, or send less at once' });
}

function readPem(file: string, key: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new AppError(ErrorCode.CONFIG_INVALID, `cannot read [server] ${key} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      hint: 'point it at a readable PEM file',
    });
  }
}

function bindError(err: NodeJS.ErrnoException, host: string, port: number): AppError {
  const where = `${hostForm(host)}:${port}`;
  const why =
    err.code === 'EADDRINUSE'
      ? 'the port is in use by another program'
      : err.code === 'EADDRNOTAVAIL'
        ? 'the address is not one of this machine\'s'
        : err.code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : (err.code ?? err.message);
  return new AppError(ErrorCode.SERVER_BIND_FAILED, `cannot listen on ${where}: ${why}`, {
    hint: 'choose another [server] port (0 picks a free one) or [security] bind_address',
    cause: err,
  });
}
