import type { Logger } from 'pino';
import { AppError, ErrorCode, isAppError, type OptionNames } from '../../errors/index.js';
import type { Queue } from './queue.js';
import type { FailOptions, Job } from './types.js';
import { checkInt, checkLease, MAX_CLAIM, MAX_DELAY_MS, optionsObject } from './validate.js';

const WORK_OPTIONS: OptionNames<WorkOptions> = { concurrency: true, leaseMs: true, prefetch: true, pollMs: true, stopGraceMs: true };

/**
 * What a handler gets besides the job. `signal` aborts when the job is no longer this worker's:
 * its lease was lost, or the worker stopped and the grace period ran out. (It is made on first
 * use: most handlers never look, and an AbortController per job is a measurable cost.)
 */
export class JobContext {
  private controller: AbortController | undefined;
  private reason: unknown;
  private aborted = false;

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** @internal */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * Runs one job. A handler that returns (or resolves) completes the job; one that throws fails
 * it (see JobError for how to say "do not retry" or "retry after").
 */
export type JobHandler = (job: Job, ctx: JobContext) => unknown;

export interface WorkOptions {
  /** Handlers running at once (default 1, at most 1000). */
  concurrency?: number;
  /** The lease taken on each job, renewed while its handler runs (default queue.default_lease_ms). */
  leaseMs?: number;
  /**
   * At most this many jobs claimed ahead of free handlers (default 256). A worker starts by
   * claiming ahead as many as its concurrency and claims further ahead only while its handlers
   * sit idle waiting for claims, so slow handlers never hoard jobs and fast ones get them in
   * large batches. Jobs claimed ahead are leased while they wait; on stop they go back unstarted.
   */
  prefetch?: number;
  /** How often an idle worker looks for jobs enqueued by other processes (default 250 ms). */
  pollMs?: number;
  /** How long stop() waits for running handlers before handing their jobs back (default 10 s). */
  stopGraceMs?: number;
}

/** Thrown by a handler to shape the failure: `retryable: false` makes the job dead at once. */
export class JobError extends Error {
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: { retryable?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'JobError';
    this.retryable = opts.retryable ?? true;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface WorkerCounts {
  completed: number;
  failed: number;
  /** Handed back unfinished at stop. */
  released: number;
  /** Lost to an expired lease (another worker may run them). */
  lost: number;
}

interface Held {
  job: Job;
  ctx: JobContext | undefined;
  /** The job is no longer this worker's: its outcome is not reported. */
  gone: boolean;
  extending: boolean;
}

/**
 * What a thrown error asks for. A handler's error must always be recorded, so an odd
 * retryAfterMs is brought into range here rather than refused by fail() (which would leave the
 * job leased until its deadline, its error lost).
 */
function failOptions(err: unknown): FailOptions {
  try {
    const o: FailOptions = { error: err };
    if (err instanceof Error) {
      const e = err as Error & { retryable?: unknown; retryAfterMs?: unknown };
      if (e.retryable === false) o.retryable = false;
      if (typeof e.retryAfterMs === 'number' && !Number.isNaN(e.retryAfterMs)) {
        o.retryAfterMs = Math.min(MAX_DELAY_MS, Math.max(0, Math.round(e.retryAfterMs)));
      }
    }
    return o;
  } catch {
    // A thrown Proxy whose traps throw: recorded as a failure all the same.
    return { error: UNREADABLE_ERROR };
  }
}

const UNREADABLE_ERROR = 'the handler failed with a value that cannot be read';

/** setTimeout fires at once for a delay past 2^31-1 ms (24.8 days); longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One queue's worker loop. It claims in batches (up to concurrency + prefetch jobs held), starts
 * handlers as slots free up, acknowledges without holding a slot (so the next handler starts
 * while the last ack is being committed, and acks of many jobs share one commit), and renews the
 * lease of every job it holds well before the deadline. When a claim comes back short the worker
 * sleeps until a job is enqueued in this process, a delayed job falls due, or the next poll.
 */
export class QueueWorker {
  readonly counts: WorkerCounts = { completed: 0, failed: 0, released: 0, lost: 0 };
  /** Resolves when the worker has stopped and everything it held is settled. */
  readonly stopped: Promise<void>;

  private readonly concurrency: number;
  private readonly maxPrefetch: number;
  /** How far ahead the worker claims now: grows from `concurrency` toward `maxPrefetch` while handlers starve. */
  private prefetch: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly graceMs: number;

  private readonly buffer: Held[] = [];
  /**
   * Handlers that have not returned. A set of runs, not a map by job id: a run whose lease was
   * lost stays here until its handler returns (it still occupies a slot), while the same job,
   * claimed again, may already be running beside it.
   */
  private readonly running = new Set<Held>();
  /** Acks, fails and hand-backs sent and not yet answered. */
  private writes = 0;
  /** Finished jobs of this event-loop turn, acked together. */
  private acks: Held[] = [];
  private writesDone: (() => void) | undefined;
  private claiming: Promise<void> | undefined;
  /** The last claim came back short: wait for a reason to look again. */
  private drained = false;
  /** Bumped by every reason to look again, so a claim that was already running cannot hide one. */
  private wakeups = 0;
  private stopping: Promise<void> | undefined;
  private resolveStopped!: () => void;
  private idle: (() => void) | undefined;
  private readonly unsubscribe: () => void;
  private readonly pollTimer: NodeJS.Timeout;
  private readonly renewTimer: NodeJS.Timeout;
  private dueTimer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;

  constructor(
    private readonly queue: Queue,
    readonly name: string,
    private readonly handler: JobHandler,
    opts: WorkOptions,
    private readonly log: Logger,
  ) {
    opts = optionsObject(opts, 'work options', WORK_OPTIONS);
    this.concurrency = checkInt(opts.concurrency, 'concurrency', 1, MAX_CLAIM, 1);
    this.maxPrefetch = checkInt(opts.prefetch, 'prefetch', 0, MAX_CLAIM, 256);
    this.prefetch = Math.min(this.concurrency, this.maxPrefetch);
    this.leaseMs = checkLease(opts.leaseMs, queue.settings.defaultLeaseMs);
    this.pollMs = checkInt(opts.pollMs, 'pollMs', 10, 60_000, 250);
    this.graceMs = checkInt(opts.stopGraceMs, 'stopGraceMs', 0, 3_600_000, 10_000);
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
    this.unsubscribe = queue.subscribe(name, (delayMs) => this.onEnqueued(delayMs));
    // Unlike the queue's own housekeeping, a running worker keeps the process alive, as a server does.
    this.pollTimer = setInterval(() => this.poll(), this.pollMs);
    // Renew when a third of the lease is left, checking often enough to never miss that window.
    this.renewTimer = setInterval(() => this.renew(), Math.max(20, Math.floor(this.leaseMs / 6)));
    queueMicrotask(() => this.pump());
  }

  private get capacity(): number {
    return this.concurrency + this.prefetch;
  }

  private pump(): void {
    if (this.stopping !== undefined) return;
    while (this.running.size < this.concurrency && this.buffer.length > 0) {
      const next = this.buffer.shift()!;
      // Held past its deadline (the event loop was busy, the machine slept): another worker may
      // be running it already, so it is not started here.
      if (next.job.leaseUntil <= Date.now()) this.lose(next);
      else this.start(next);
    }
    if (this.claiming !== undefined || this.drained) return;
    const held = this.running.size + this.buffer.length;
    // Refill when a slot is free, or the prefetched jobs are half gone: claims stay batched.
    if (held >= this.capacity || (this.running.size >= this.concurrency && this.buffer.length * 2 > this.prefetch)) return;
    this.claim(Math.min(MAX_CLAIM, this.capacity - held));
  }

  private claim(limit: number): void {
    const seen = this.wakeups;
    this.claiming = this.queue
      .claim(this.name, { leaseMs: this.leaseMs, limit })
      .then(
        (jobs) => {
          // Short, and nothing happened meanwhile that this claim may have missed: sleep.
          if (jobs.length < limit) this.drained = seen === this.wakeups;
          // Handlers waited for this claim and there is more work: claim further ahead next time.
          else if (this.running.size < this.concurrency && this.buffer.length === 0) {
            this.prefetch = Math.min(this.maxPrefetch, Math.max(1, this.prefetch * 2));
          }
          for (const job of jobs) this.buffer.push({ job, ctx: undefined, gone: false, extending: false });
          if (this.stopping !== undefined) this.handBack(this.buffer.splice(0));
        },
        (err: unknown) => {
          // Lock timeouts and the like: wait for the next poll rather than spin.
          this.drained = true;
          if (this.stopping === undefined && !isAppError(err, ErrorCode.DB_CLOSED)) {
            this.log.warn({ err, queue: this.name }, 'claiming jobs failed; trying again at the next poll');
          }
        },
      )
      .finally(() => {
        this.claiming = undefined;
        this.pump();
      });
  }

  private start(held: Held): void {
    held.ctx = new JobContext();
    this.running.add(held);
    let result: unknown;
    let thenable: boolean;
    try {
      result = this.handler(held.job, held.ctx);
      // Inside the try: a returned object's `then` may be a getter that throws.
      thenable = result instanceof Promise || (typeof result === 'object' && result !== null && typeof (result as PromiseLike<unknown>).then === 'function');
    } catch (err) {
      this.finish(held, false, err);
      return;
    }
    if (thenable) {
      // Awaited inside an async function, not Promise.resolve(result).then(...): that returns a
      // native promise as it is, and calls its own `then`, which may be a getter that throws.
      // An await never looks `then` up on a native promise, and anything else it throws
      // becomes this function's rejection.
      (async () => {
        await result;
      })().then(
        () => this.finish(held, true, undefined),
        (err: unknown) => this.finish(held, false, err),
      );
    } else {
      this.finish(held, true, undefined);
    }
  }

  private finish(held: Held, ok: boolean, err: unknown): void {
    this.running.delete(held);
    if (!held.gone) {
      held.gone = true;
      const { id, leaseToken } = held.job;
      if (ok) this.ackLater(held);
      else this.track(this.queue.fail(id, leaseToken, failOptions(err)), held, 'failed');
    }
    if (this.running.size === 0) this.idle?.();
    this.pump();
  }

  /** Acks go out once per event-loop turn, as one request: one message and one result for many jobs. */
  private ackLater(held: Held): void {
    if (this.acks.push(held) === 1) {
      this.writes++;
      setImmediate(() => {
        const batch = this.acks;
        this.acks = [];
        this.queue.ackMany(batch.map((h) => h.job)).then(
          (outcomes) => {
            outcomes.forEach((e, i) => (e === null ? this.counts.completed++ : this.writeFailed(batch[i]!, e)));
            this.writeSettled();
          },
          (err: unknown) => {
            for (const h of batch) this.writeFailed(h, err);
            this.writeSettled();
          },
        );
      });
    }
  }

  /** Counts a write about a job until it is answered; a lost lease there is reported, not thrown. */
  private track(p: Promise<unknown>, held: Held, outcome: keyof WorkerCounts): void {
    this.writes++;
    p.then(
      () => {
        this.counts[outcome]++;
        this.writeSettled();
      },
      (err: unknown) => {
        this.writeFailed(held, err);
        this.writeSettled();
      },
    );
  }

  private writeSettled(): void {
    if (--this.writes === 0) this.writesDone?.();
  }

  private writeFailed(held: Held, err: unknown): void {
    if (isAppError(err, ErrorCode.QUEUE_LEASE_LOST)) {
      this.counts.lost++;
      this.log.warn({ queue: this.name, job: held.job.id }, 'a job finished after its lease was lost; it will run again');
    } else if (!isAppError(err, ErrorCode.DB_CLOSED)) {
      this.log.error({ err, queue: this.name, job: held.job.id }, 'recording a job outcome failed; the job will run again when its lease expires');
    }
  }

  private wake(): void {
    this.wakeups++;
    this.drained = false;
    this.pump();
  }

  private onEnqueued(delayMs: number): void {
    if (delayMs <= 0) {
      this.wake();
    } else {
      this.wakeAt(Date.now() + delayMs);
    }
  }

  private wakeAt(at: number): void {
    if (this.stopping !== undefined || at >= this.dueAt) return;
    if (this.dueTimer !== undefined) clearTimeout(this.dueTimer);
    this.dueAt = at;
    this.dueTimer = setTimeout(() => {
      this.dueTimer = undefined;
      this.dueAt = Infinity;
      if (Date.now() < at) this.wakeAt(at);
      else this.wake();
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now()) + 1));
  }

  /** Looks for work other processes enqueued, and for delayed jobs coming due. */
  private poll(): void {
    if (!this.drained || this.claiming !== undefined || this.stopping !== undefined) return;
    try {
      const probe = this.queue.dueProbe(this.name, Date.now());
      if (probe.due) {
        this.wake();
      } else if (probe.next !== null) {
        this.wakeAt(probe.next);
      }
    } catch (err) {
      if (!isAppError(err, ErrorCode.DB_CLOSED)) this.log.warn({ err, queue: this.name }, 'polling the queue failed');
    }
  }

  /** Extends every held lease that is down to its last third; a lease that cannot be extended is lost. */
  private renew(): void {
    const now = Date.now();
    for (const held of [...this.buffer, ...this.running]) {
      if (held.gone || held.extending || held.job.leaseUntil - now > this.leaseMs / 3) continue;
      held.extending = true;
      this.queue.extendLease(held.job.id, held.job.leaseToken, this.leaseMs).then(
        (until) => {
          held.job.leaseUntil = until;
          held.extending = false;
        },
        (err: unknown) => {
          held.extending = false;
          if (isAppError(err, ErrorCode.QUEUE_LEASE_LOST)) this.lose(held);
          else if (!isAppError(err, ErrorCode.DB_CLOSED)) this.log.warn({ err, queue: this.name, job: held.job.id }, 'extending a lease failed; trying again');
        },
      );
    }
  }

  private lose(held: Held): void {
    if (held.gone) return;
    held.gone = true;
    this.counts.lost++;
    const i = this.buffer.indexOf(held);
    if (i >= 0) this.buffer.splice(i, 1);
    held.ctx?.abort(new AppError(ErrorCode.QUEUE_LEASE_LOST, `the lease on job ${held.job.id} was lost`));
    this.log.warn({ queue: this.name, job: held.job.id }, 'a lease was lost before its job finished; the job will run again');
  }

  /**
   * Hands jobs back unfinished, each as if it had not been claimed: its attempt not counted and
   * its place in the queue kept (a stop must not send the head of the queue to the back). One
   * whose lease ended meanwhile is not this worker's to give back: counted as lost.
   */
  private handBack(list: Held[]): void {
    const mine = list.filter((held) => !held.gone);
    if (mine.length === 0) return;
    for (const held of mine) held.gone = true;
    this.writes++;
    this.queue.handBack(mine.map((held) => held.job)).then(
      (n) => {
        this.counts.released += n;
        this.counts.lost += mine.length - n;
        this.writeSettled();
      },
      (err: unknown) => {
        for (const held of mine) this.writeFailed(held, err);
        this.writeSettled();
      },
    );
  }

  /**
   * Stops claiming and hands back the jobs not started; waits up to the grace period for running
   * handlers to finish (their outcomes are recorded), then aborts the rest and hands them back.
   * Resolves when every outcome and hand-back is committed.
   */
  stop(opts: { graceMs?: number } = {}): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    let graceMs: number;
    try {
      graceMs = checkInt(optionsObject(opts, 'stop options', { graceMs: true }).graceMs, 'graceMs', 0, 3_600_000, this.graceMs);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.stopping = (async () => {
      this.unsubscribe();
      clearInterval(this.pollTimer);
      if (this.dueTimer !== undefined) clearTimeout(this.dueTimer);
      this.handBack(this.buffer.splice(0));
      if (this.running.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => (this.idle = resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
        ]);
        clearTimeout(timer);
      }
      const unfinished = [...this.running];
      for (const held of unfinished) held.ctx?.abort(new AppError(ErrorCode.DB_CLOSED, 'the worker is stopping'));
      this.handBack(unfinished);
      await this.claiming;
      if (this.writes > 0) await new Promise<void>((resolve) => (this.writesDone = resolve));
      clearInterval(this.renewTimer);
      this.resolveStopped();
    })();
    return this.stopping;
  }
}
