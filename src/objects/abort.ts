/** Waiting on what a put reads, without letting close() or a vault lock wait for it. */

export function noop(): void {}

/**
 * `p`, or the signal's reason as soon as it aborts (close() and a vault lock abort a put): a
 * source gone quiet or a file on a stalled disk does not hold them up. What `p` gives after
 * that goes to `late` (a file handle opened too late is closed there). The listener is removed
 * once `p` settles: one per wait, rather than reactions piled on one long-lived promise.
 */
export function orAbort<T>(p: Promise<T>, signal: AbortSignal | undefined, late?: (v: T) => void): Promise<T> {
  if (signal === undefined) return p;
  return new Promise((resolve, reject) => {
    let over = false;
    const onAbort = (): void => {
      over = true;
      reject(signal.reason as Error);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (over) late?.(v);
        else resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}
