import { Response as UndiciResponse } from 'undici';
import { AppError, ErrorCode } from '../errors/index.js';

/**
 * The guard's failures reject the way fetch's own do: `TypeError('fetch failed')` before the
 * response, `TypeError('terminated')` while its body is read, the AppError as the cause.
 */
export function fetchFailed(cause: AppError, answered = false): TypeError {
  return new TypeError(answered ? 'terminated' : 'fetch failed', { cause });
}

/**
 * One request's overall deadline: connect, redirects, headers and the whole body. undici's own
 * timers are idle timers, which a server sending an interim response or a body byte now and
 * then resets forever.
 */
export class Deadline {
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  #answered = false;

  constructor(ms: number, origin: string) {
    this.#timer = setTimeout(() => {
      const cause = new AppError(ErrorCode.NET_TIMEOUT, `the request to ${origin} took longer than requestTimeoutMs (${ms} ms)`, {
        hint: 'raise requestTimeoutMs if this request is expected to take that long',
        details: { origin, requestTimeoutMs: ms },
      });
      this.#controller.abort(fetchFailed(cause, this.#answered));
    }, ms);
    // A response nobody reads must not keep the process alive until the deadline.
    this.#timer.unref();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The response has arrived: from now on a timeout fails the body. */
  answered(): void {
    this.#answered = true;
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * A response's own identity, which a Response built around another body does not have (and a
 * status outside 200-599, which undici's fetch passes on but its constructor refuses).
 */
function keepIdentity(copy: UndiciResponse, from: UndiciResponse): UndiciResponse {
  const { url, redirected, type, status, ok } = from;
  return Object.defineProperties(copy, {
    url: { value: url },
    redirected: { value: redirected },
    type: { value: type },
    status: { value: status },
    ok: { value: ok },
    clone: { value: () => keepIdentity(UndiciResponse.prototype.clone.call(copy), from) },
  });
}

/**
 * `res` with its body counted as the caller reads it (text(), json(), arrayBuffer(), a reader):
 * decoded bytes, after content-encoding, so a few KB of nested gzip cannot become gigabytes in
 * memory. Past `max` the read fails and the connection is dropped. `finished` runs once the body
 * is read to its end, fails or is cancelled.
 */
export function limitBody(res: UndiciResponse, max: number, origin: string, finished: () => void): UndiciResponse {
  if (res.body === null) {
    finished();
    return res;
  }
  const reader = res.body.getReader();
  let seen = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const chunk = await reader.read().catch((err: unknown) => {
          finished();
          throw err;
        });
        if (chunk.done) {
          finished();
          controller.close();
          return;
        }
        seen += chunk.value.byteLength;
        if (seen > max) {
          finished();
          const cause = new AppError(ErrorCode.RESULT_TOO_LARGE, `the response from ${origin} is larger than maxResponseBytes (${max} bytes)`, {
            hint: 'raise maxResponseBytes if responses this large are expected',
            details: { origin, maxResponseBytes: max },
          });
          const err = fetchFailed(cause, true);
          controller.error(err);
          reader.cancel(err).catch(() => {});
          return;
        }
        controller.enqueue(chunk.value);
      },
      cancel(reason) {
        finished();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 }, // read from the network only as the caller reads
  );
  const status = res.status >= 200 && res.status <= 599 ? res.status : 200; // the real one is kept below
  const copy = new UndiciResponse(body as never, { status, statusText: res.statusText, headers: res.headers });
  return keepIdentity(copy, res);
}
