import type { Dispatcher } from 'undici';
import { AppError, ErrorCode } from '../errors/index.js';
import { Hop, type HopOwner } from './hop.js';
import { harmlessOnly } from './redirects.js';

export interface RequestLimits {
  /** Body bytes that may arrive over every hop of the request together. */
  maxResponseBytes: number;
  /** The whole request, from the call to the last body byte received. */
  requestTimeoutMs: number;
}

/** Ends a hop fetch no longer needs; fetch never sees it (the hop is stopped without telling). */
const NOT_NEEDED = new Error('fetch no longer needs this hop');

/**
 * One fetch call's view of the guarded dispatcher. fetch follows redirects itself, dispatching
 * once per hop; every hop passes through here, which
 * - keeps credential headers and the body from other origins: once a hop leaves the origin the
 *   caller addressed, it and every later hop (even one back, which the other origin chose) carry
 *   only harmless headers, and one that would carry the body is refused before anything is sent;
 * - counts the body bytes that arrive over all hops, and aborts past `maxResponseBytes`: for a
 *   response without content-encoding that is the body the caller gets (the decoded size of an
 *   encoded one is counted by limitBody), and the wire can never carry more than the limit;
 * - holds the request's deadline, which fails the hop in flight when it passes (one still
 *   waiting for a connection or connecting too: it is aborted once undici connects it), and
 *   ends when the last hop's body has arrived, not when the caller gets round to reading it;
 * - drops a redirect's hop once fetch follows it: fetch starts the next hop on the redirect's
 *   headers and never reads the rest of its body, so a body that is still arriving would hold a
 *   connection (paused, once undici's buffers fill, with no timer running) for good, and its
 *   end would be taken for the end of the request. A redirect whose body has all arrived (the
 *   usual small one) is left alone, and its connection serves again.
 * A plain object, not a composed dispatcher, and no AbortSignal or timer of its own: per
 * request this costs a few small objects and a Set entry (a signal combined with a caller's
 * long-lived one leaks on Node 20; fetch's hot path is what the 5% overhead target measures).
 */
export class RequestGuard implements HopOwner {
  #origin: string | undefined;
  /** The origin of the latest hop (where a redirect came from). */
  #at: string | undefined;
  #left = false;
  #received = 0;
  /** The latest hop: every earlier one has been dropped. */
  #hop: Hop | undefined;
  #failed: Error | undefined;
  #answered = false;
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

  /** Stops the hop in flight (fetch reports it as the cause of its TypeError), or refuses the next one. */
  #fail(err: Error): void {
    this.#failed ??= err;
    this.#hop?.stop(this.#failed, true);
    this.done();
  }

  /** The request is over (its last body byte arrived, or it failed): the deadline goes, and any hop still open. */
  done(): void {
    this.deadlines.delete(this);
    this.#hop?.stop(NOT_NEEDED, false);
  }

  /** fetch answered: the latest hop is the last one (none at all for a `data:` URL). */
  answered(): void {
    this.#answered = true;
    if (this.#hop === undefined || this.#hop.over) this.done();
  }

  /**
   * The latest hop is over. A redirect's usually is not the last (fetch follows it with another);
   * whether it was is known once fetch answers (`redirect: 'manual'`, no Location).
   */
  ended(hop: Hop, complete: boolean): void {
    if (!complete || !hop.redirect || this.#answered) this.done();
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.#hop?.stop(NOT_NEEDED, false);
    // The deadline passed (or the limit) between two hops. Thrown, fetch turns it into its usual
    // TypeError('fetch failed') with this as the cause.
    if (this.#failed !== undefined) throw this.#failed;
    const to = opts.origin instanceof URL ? opts.origin.origin : String(opts.origin);
    // The first hop goes where the caller addressed.
    this.#origin ??= to;
    this.#at = to;
    this.#left ||= to !== this.#origin;
    if (this.#left) {
      if (opts.body !== undefined && opts.body !== null) throw this.refuseRedirect(this.#origin, to);
      opts = { ...opts, headers: harmlessOnly(opts.headers) };
    }
    this.#hop = new Hop(this, handler as Dispatcher.DispatchHandler & Record<string, unknown>);
    return this.agent.dispatch(opts, this.#hop as unknown as Dispatcher.DispatchHandler);
  }

  /** The origin of the latest hop; undefined before the first. */
  get at(): string | undefined {
    return this.#at;
  }

  /** Body bytes arrived; false once past the limit, the hop then stopped. */
  received(bytes: number): boolean {
    this.#received += bytes;
    if (this.#received <= this.limits.maxResponseBytes) return true;
    this.#fail(tooLarge(this.#origin ?? 'the server', this.limits.maxResponseBytes));
    return false;
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
