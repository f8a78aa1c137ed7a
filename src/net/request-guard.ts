import type { Dispatcher } from 'undici';
import { AppError, ErrorCode } from '../errors/index.js';
import { harmlessOnly } from './redirects.js';

export interface RequestLimits {
  /** Body bytes that may arrive over every hop of the request together. */
  maxResponseBytes: number;
  /** The whole request, from the call to the last body byte received. */
  requestTimeoutMs: number;
}

type Handler = Dispatcher.DispatchHandler & Record<string, unknown>;
type Abort = (err: Error) => void;

/** Statuses fetch follows (given a Location): their hop is not the last one. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * One fetch call's view of the guarded dispatcher. fetch follows redirects itself, dispatching
 * once per hop; every hop passes through here, which
 * - keeps credential headers and the body from other origins: once a hop leaves the origin the
 *   caller addressed, it and every later hop (even one back, which the other origin chose) carry
 *   only harmless headers, and one that would carry the body is refused before anything is sent;
 * - counts the body bytes that arrive over all hops, and aborts past `maxResponseBytes`: for a
 *   response without content-encoding that is the body the caller gets (the decoded size of an
 *   encoded one is counted by limitBody), and the wire can never carry more than the limit;
 * - holds the request's deadline, which aborts the hop in flight when it passes (a hop not yet
 *   connected, as soon as it is: the connect has its own bound), and ends when the last hop's
 *   body has arrived, not when the caller gets round to reading it.
 * A plain object, not a composed dispatcher, and no AbortSignal or timer of its own: per
 * request this costs two small objects and a Set entry (a signal combined with a caller's
 * long-lived one leaks on Node 20; fetch's hot path is what the 5% overhead target measures).
 */
export class RequestGuard {
  #origin: string | undefined;
  #left = false;
  #received = 0;
  #abort: Abort | undefined;
  #failed: Error | undefined;
  #answered = false;
  #redirectArrived = false;
  /** When the deadline passes, in performance.now() time. */
  readonly due: number;

  constructor(
    private readonly agent: Dispatcher,
    private readonly limits: RequestLimits,
    private readonly deadlines: Deadlines,
    private readonly refuseRedirect: (from: string, to: string) => Error,
  ) {
    this.due = performance.now() + limits.requestTimeoutMs;
    deadlines.add(this);
  }

  /** The deadline passed: the request fails now, whatever hop it is in. */
  expire(): void {
    const origin = this.#origin ?? 'the server';
    this.#fail(
      new AppError(ErrorCode.NET_TIMEOUT, `the request to ${origin} took longer than requestTimeoutMs (${this.limits.requestTimeoutMs} ms)`, {
        hint: 'raise requestTimeoutMs if this request is expected to take that long',
        details: { origin, requestTimeoutMs: this.limits.requestTimeoutMs },
      }),
    );
  }

  /** Aborts the hop in flight (fetch reports it as the cause of its TypeError), or the next one. */
  #fail(err: Error): void {
    this.#failed ??= err;
    this.#abort?.(this.#failed);
  }

  /** The request is over (its last body byte arrived, or it failed): the deadline goes. */
  done(): void {
    this.deadlines.delete(this);
  }

  /**
   * A redirect's hop has all arrived. Whether it was the last hop is known only once fetch
   * answers (it was not followed: `redirect: 'manual'`, no Location): then the request is over.
   */
  redirectArrived(): void {
    if (this.#answered) this.done();
    else this.#redirectArrived = true;
  }

  /** fetch answered: the hop in flight is the last one (none at all for a `data:` URL). */
  answered(): void {
    this.#answered = true;
    if (this.#redirectArrived || this.#origin === undefined) this.done();
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const to = opts.origin instanceof URL ? opts.origin.origin : String(opts.origin);
    // The first hop goes where the caller addressed.
    this.#origin ??= to;
    // The redirect before this hop was followed: it was not the last.
    this.#redirectArrived = false;
    this.#left ||= to !== this.#origin;
    if (this.#left) {
      // Thrown, fetch turns it into its usual TypeError('fetch failed') with this as the cause.
      if (opts.body !== undefined && opts.body !== null) throw this.refuseRedirect(this.#origin, to);
      opts = { ...opts, headers: harmlessOnly(opts.headers) };
    }
    return this.agent.dispatch(opts, new Watched(this, handler as Handler) as unknown as Dispatcher.DispatchHandler);
  }

  /** A hop connected: its abort is the one a failure uses (at once, if it already failed). */
  connected(abort: Abort): void {
    this.#abort = abort;
    if (this.#failed !== undefined) abort(this.#failed);
  }

  /** Body bytes arrived; false once past the limit, the hop then aborted. */
  received(bytes: number): boolean {
    this.#received += bytes;
    if (this.#received <= this.limits.maxResponseBytes) return true;
    this.#fail(tooLarge(this.#origin ?? 'the server', this.limits.maxResponseBytes));
    return false;
  }
}

/**
 * fetch's handler for one hop, with the request's byte count and deadline in front of it. Each
 * method undici calls is spelled out and passed on to fetch's own handler, as that handler (its
 * methods keep their state on `this`): a class, so every request shares these methods.
 */
class Watched {
  #status = 0;

  constructor(
    private readonly guard: RequestGuard,
    private readonly h: Handler,
  ) {}

  onConnect(abort: Abort, context?: unknown): void {
    this.guard.connected(abort);
    (this.h.onConnect as (a: Abort, c?: unknown) => void).call(this.h, abort, context);
  }

  onResponseStarted(): void {
    (this.h.onResponseStarted as (() => void) | undefined)?.call(this.h);
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    this.#status = status;
    return (this.h.onHeaders as (s: number, r: Buffer[], re: () => void, t: string) => boolean).call(this.h, status, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (!this.guard.received(chunk.length)) return false;
    return (this.h.onData as (c: Buffer) => boolean).call(this.h, chunk);
  }

  onComplete(trailers: unknown): void {
    // A redirect's hop ends here, the request usually does not: the next hop is still to come.
    if (REDIRECTS.has(this.#status)) this.guard.redirectArrived();
    else this.guard.done();
    (this.h.onComplete as (t: unknown) => void).call(this.h, trailers);
  }

  onError(err: Error): void {
    this.guard.done();
    (this.h.onError as (e: Error) => void).call(this.h, err);
  }

  onUpgrade(status: number, rawHeaders: Buffer[], socket: unknown): void {
    (this.h.onUpgrade as (...a: unknown[]) => void).call(this.h, status, rawHeaders, socket);
  }
}

/**
 * The requests in flight of one safe fetch, failed by a sweep when their deadline passes: one
 * interval timer for all of them (it stops when a sweep finds none), rather than a timer set and
 * cleared per request. A deadline fires within a quarter of requestTimeoutMs (at most 1 s) late.
 */
export class Deadlines {
  readonly #live = new Set<RequestGuard>();
  #sweeper: NodeJS.Timeout | undefined;
  readonly #every: number;

  constructor(requestTimeoutMs: number) {
    this.#every = Math.max(5, Math.min(1000, Math.floor(requestTimeoutMs / 4)));
  }

  add(g: RequestGuard): void {
    this.#live.add(g);
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweep(), this.#every);
      // Requests in flight keep the process alive by their sockets, not by this.
      this.#sweeper.unref();
    }
  }

  delete(g: RequestGuard): void {
    this.#live.delete(g);
  }

  #sweep(): void {
    const now = performance.now();
    // In the order they started, so in the order they are due.
    for (const g of this.#live) {
      if (g.due > now) return;
      this.#live.delete(g);
      g.expire();
    }
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

export function tooLarge(origin: string, max: number): AppError {
  return new AppError(ErrorCode.RESULT_TOO_LARGE, `the response from ${origin} is larger than maxResponseBytes (${max} bytes)`, {
    hint: 'raise maxResponseBytes if responses this large are expected',
    details: { origin, maxResponseBytes: max },
  });
}
