import { Response as UndiciResponse } from 'undici';
import type { AppError } from '../errors/index.js';
import { tooLarge } from './request-guard.js';

/**
 * The guard's failures reject the way fetch's own do: `TypeError('fetch failed')` before the
 * response, `TypeError('terminated')` while its body is read, the AppError as the cause.
 */
export function fetchFailed(cause: AppError, answered = false): TypeError {
  return new TypeError(answered ? 'terminated' : 'fetch failed', { cause });
}

/**
 * A response's own identity, which a Response built around another body does not have (a
 * status outside 200-599, which undici's fetch passes on but its constructor refuses, and a
 * reason phrase its constructor would refuse too).
 */
function keepIdentity(copy: UndiciResponse, from: UndiciResponse): UndiciResponse {
  const { url, redirected, type, status, ok, statusText } = from;
  return Object.defineProperties(copy, {
    url: { value: url },
    redirected: { value: redirected },
    type: { value: type },
    status: { value: status },
    statusText: { value: statusText },
    ok: { value: ok },
    clone: { value: () => keepIdentity(UndiciResponse.prototype.clone.call(copy), from) },
  });
}

/**
 * `res`, whose body is content-encoded, with the decoded body counted as the caller reads it
 * (text(), json(), arrayBuffer(), a reader), so a few KB of nested gzip cannot become gigabytes
 * in memory; past `max` the read fails and the connection is dropped. (The bytes on the wire
 * are counted by RequestGuard; without content-encoding they are the body, and no copy is made.)
 * The original body is taken only at the first read: a response dropped unread stays unlocked,
 * so undici cancels it when it is collected and its connection is freed.
 */
export function limitBody(res: UndiciResponse, max: number, origin: string): UndiciResponse {
  if (res.body === null) return res;
  const source = res.body;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let seen = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        reader ??= source.getReader();
        const chunk = await reader.read();
        if (chunk.done) {
          controller.close();
          return;
        }
        seen += chunk.value.byteLength;
        if (seen > max) {
          const err = fetchFailed(tooLarge(origin, max), true);
          controller.error(err);
          reader.cancel(err).catch(() => {});
          return;
        }
        controller.enqueue(chunk.value);
      },
      cancel(reason) {
        return (reader ?? source).cancel(reason);
      },
    },
    { highWaterMark: 0 }, // read from the network only as the caller reads
  );
  const status = res.status >= 200 && res.status <= 599 ? res.status : 200; // the real one is kept below
  return keepIdentity(new UndiciResponse(body as never, { status, headers: res.headers }), res);
}
