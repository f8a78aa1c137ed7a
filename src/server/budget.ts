/**
 * The bytes one HTTP request's answer may still take: [server] max_response_bytes, shared by
 * every call of a batch. Each call allowed the whole bound would let a batch of 100 reads
 * materialise 100 times it (gigabytes, and V8 aborts the process), so the reads that return
 * bulk data (message_list, session_list, queue_claim) run one at a time, each bounded by what
 * is left when its turn comes, and every answer is charged as it is made.
 */
export class ResponseBudget {
  #left: number;
  #turn: Promise<unknown> = Promise.resolve();

  /** `maxBytes` less the two brackets of a batch. */
  constructor(readonly maxBytes: number) {
    this.#left = maxBytes - 2;
  }

  /** What is left (negative once answers that could not be refused overdrew it). */
  get left(): number {
    return this.#left;
  }

  /**
   * Runs `fn` after every bulk read started before it has finished and been charged: reads
   * are synchronous on one connection anyway, so this costs no concurrency.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(fn);
    this.#turn = run.catch(() => undefined);
    return run;
  }

  /** Takes `bytes` when they fit; false, taking nothing, when they do not. */
  take(bytes: number): boolean {
    if (bytes > this.#left) return false;
    this.#left -= bytes;
    return true;
  }

  /** Takes `bytes` whatever is left: an answer that must be sent (a write's result, an error). */
  charge(bytes: number): void {
    this.#left -= bytes;
  }
}
