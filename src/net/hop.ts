import type { Dispatcher } from 'undici';

type Handler = Dispatcher.DispatchHandler & Record<string, unknown>;
type Abort = (err: Error) => void;

/** Statuses fetch follows (given a Location): their hop is not the last one. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** The size of an interim response as sent: its status line and header lines. */
function interimBytes(rawHeaders: Buffer[], statusText: string): number {
  let n = 'HTTP/1.1 100 \r\n\r\n'.length + statusText.length;
  for (const b of rawHeaders) n += b.length + 2; // ": " or "\r\n" after each
  return n;
}

/** What a hop reports to the request it is part of. */
export interface HopOwner {
  /** Body bytes arrived; false once past the request's limit (the request has then failed). */
  received(bytes: number): boolean;
  /** The hop is over: all of it arrived (`complete`), or it failed. */
  ended(hop: Hop, complete: boolean): void;
}

/**
 * One hop of a fetch (fetch dispatches once per redirect), with the request's byte count and
 * deadline in front of fetch's own handler. Each method undici calls is spelled out and passed
 * on to that handler, as that handler (its methods keep their state on `this`): a class, so every
 * hop shares these methods. The request can stop a hop, in flight or not yet connected.
 */
export class Hop {
  #status = 0;
  #abort: Abort | undefined;
  /** Why the hop was stopped: a hop not yet connected is aborted as soon as it connects. */
  #stopped: Error | undefined;
  /** fetch hears nothing more of this hop from undici: it has moved on from it. */
  #quiet = false;
  #over = false;

  constructor(
    private readonly owner: HopOwner,
    private readonly h: Handler,
  ) {}

  /** All of it arrived, it failed, or it was stopped. */
  get over(): boolean {
    return this.#over;
  }

  /** A redirect (whether fetch follows it is for fetch to say). */
  get redirect(): boolean {
    return REDIRECTS.has(this.#status);
  }

  /**
   * Aborts the hop (when it connects, if it has not yet) and hears nothing more of it. `tell`:
   * fetch gets `err` as the hop's failure now, which fails the request, even for a hop undici
   * has not connected (one queued for a connection from a full pool gets no callback at all
   * until then). Otherwise fetch never hears of it: a redirect's hop fetch has already followed,
   * whose failure would end the whole request (fetch terminates it).
   */
  stop(err: Error, tell: boolean): void {
    if (this.#over) return;
    this.#over = this.#quiet = true;
    this.#stopped = err;
    this.#abort?.(err);
    if (tell) (this.h.onError as (e: Error) => void).call(this.h, err);
  }

  onConnect(abort: Abort, context?: unknown): void {
    if (this.#stopped !== undefined) {
      abort(this.#stopped);
      return;
    }
    this.#abort = abort;
    (this.h.onConnect as (a: Abort, c?: unknown) => void).call(this.h, abort, context);
  }

  onResponseStarted(): void {
    if (this.#quiet) return;
    (this.h.onResponseStarted as (() => void) | undefined)?.call(this.h);
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#quiet) return false;
    // An interim response (103 Early Hints, any 1xx) counts against the limit like body bytes:
    // undici's header limit starts again for each one, and a server could send them for ever.
    if (status < 200 && !this.owner.received(interimBytes(rawHeaders, statusText))) return false;
    this.#status = status;
    return (this.h.onHeaders as (s: number, r: Buffer[], re: () => void, t: string) => boolean).call(this.h, status, rawHeaders, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.#quiet || !this.owner.received(chunk.length)) return false;
    return (this.h.onData as (c: Buffer) => boolean).call(this.h, chunk);
  }

  onComplete(trailers: unknown): void {
    if (this.#quiet) return;
    this.#over = true;
    this.owner.ended(this, true);
    (this.h.onComplete as (t: unknown) => void).call(this.h, trailers);
  }

  onError(err: Error): void {
    if (this.#quiet) return;
    this.#over = true;
    this.owner.ended(this, false);
    (this.h.onError as (e: Error) => void).call(this.h, err);
  }

  onUpgrade(status: number, rawHeaders: Buffer[], socket: unknown): void {
    if (this.#quiet) return;
    (this.h.onUpgrade as (...a: unknown[]) => void).call(this.h, status, rawHeaders, socket);
  }
}
