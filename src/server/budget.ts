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
  /** What this request has taken of `held` so far (given back by release()). */
  #held = 0;

  /** `maxBytes` less the two brackets of a batch; `held`: the daemon's answers not yet sent. */
  constructor(
    readonly maxBytes: number,
    private readonly held?: HeldAnswers,
  ) {
    this.#left = maxBytes - 2;
  }

  /** What is left (negative once answers that could not be refused overdrew it): of this request's bound, and of what the daemon may hold. */
  get left(): number {
    return this.held === undefined ? this.#left : Math.min(this.#left, this.held.room);
  }

  /** Whether the daemon's answers not yet read by their clients, not this request, leave it less than its own bound. */
  get heldElsewhere(): boolean {
    return this.held !== undefined && this.held.room < this.#left;
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
    if (bytes > this.left) return false;
    this.charge(bytes);
    return true;
  }

  /** Takes `bytes` whatever is left: an answer that must be sent (a write's result, an error). */
  charge(bytes: number): void {
    this.#left -= bytes;
    this.#held += bytes;
    if (this.held !== undefined) this.held.bytes += bytes;
  }

  /** The answer is made: what it took of the daemon's room is given back (the server holds the answer itself until it is sent). */
  release(): void {
    if (this.held !== undefined) this.held.bytes -= this.#held;
    this.#held = 0;
  }
}

/**
 * The bytes of answers the daemon holds at once, being made or waiting to be read by their
 * clients: [server] max_response_bytes bounds one answer, but a client that asks and never
 * reads keeps its answer in the daemon's memory, and eight such clients with 56 MiB each held
 * over a GB. Past this bound, bulk reads are refused (KC_RESULT_TOO_LARGE, saying why) until
 * answers are read or their connections close.
 */
export class HeldAnswers {
  bytes = 0;

  constructor(readonly limit: number) {}

  /** What may still be taken. */
  get room(): number {
    return this.limit - this.bytes;
  }

  /** Holds `bytes` of an answer being sent until `until` emits 'close'. */
  holdUntilClosed(bytes: number, until: { once(event: 'close', f: () => void): unknown }): void {
    this.bytes += bytes;
    until.once('close', () => {
      this.bytes -= bytes;
    });
  }
}

/** How many answers as large as [server] max_response_bytes the daemon may hold at once. */
export const HELD_ANSWERS = 4;

/** Why a bulk read was refused when HeldAnswers, not its own request, left it too little room; and what to do. */
export const HELD_FULL = {
  why: `the daemon holds as many bytes of answers as it may (${HELD_ANSWERS} times [server] max_response_bytes), made for clients that have not read them yet`,
  hint: 'try again in a moment; a client that never reads its answers should be stopped',
} as const;
