import type { Logger } from 'pino';
import type { QueueSettings } from '../../config/index.js';
import { AppError, ErrorCode, inspected, isAppError, type OptionNames } from '../../errors/index.js';
import { rowId } from '../ids.js';
import { isOwnerAlive } from '../liveness.js';
import { guardRead } from '../read-guard.js';
import type { Db, Statement } from '../sqlite.js';
import { checkLimit } from '../validate.js';
import type { WriterClient } from '../writer/client.js';
import type { ClaimResult, EncodedItem } from './ops.js';
import type {
  BatchItem,
  ClaimOptions,
  EnqueueOptions,
  FailOptions,
  FailOutcome,
  Job,
  JobInfo,
  JobRow,
  QueueStats,
} from './types.js';
import { checkNoSecret, NO_SCRUB, opaqueKey, scrubJson, type Scrubber } from '../scrub.js';
import {
  checkDelay,
  checkInt,
  checkKey,
  checkLease,
  checkPayloadBytes,
  checkQueueName,
  encodePayload,
  errorText,
  jobRef,
  leaseRef,
  leaseRefs,
  optionsObject,
  MAX_ATTEMPTS,
  MAX_BATCH,
  MAX_CLAIM,
  MAX_PRIORITY,
} from './validate.js';
import { jobBytes } from './sizes.js';
import { QueueWorker, type JobHandler, type WorkOptions } from './work.js';

const INFO_COLUMNS = `j.no, q.name AS queue, j.state, j.priority, j.run_at, p.payload, j.attempts, j.max_attempts,
  j.idempotency_key, j.lease_until, j.last_error, j.created_at, j.finished_at`;
// LEFT JOIN: a job whose payload row was lost to damage is still listed (with a null payload).
const INFO_FROM = 'jobs j JOIN queues q ON q.no = j.queue_no LEFT JOIN job_payloads p ON p.no = j.no';


const ENQUEUE_OPTIONS: OptionNames<EnqueueOptions> = { delayMs: true, priority: true, maxAttempts: true, idempotencyKey: true };
/** A batch item: enqueue()'s options and its payload. */
const BATCH_ITEM: OptionNames<BatchItem> = { ...ENQUEUE_OPTIONS, payload: true };
const CLAIM_OPTIONS: OptionNames<ClaimOptions> = { leaseMs: true, limit: true, maxBytes: true, detached: true };
const FAIL_OPTIONS: OptionNames<FailOptions> = { error: true, retryable: true, retryAfterMs: true };
/** Deleted per transaction by retention, so a large backlog never holds the write lock for long. */
const PRUNE_CHUNK = 2000;

function infoFromRow(r: JobRow): JobInfo {
  return {
    id: rowId(r.created_at, r.no),
    queue: r.queue,
    state: r.state,
    payload: r.payload === null ? null : (JSON.parse(r.payload) as unknown),
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    priority: r.priority,
    runAt: r.run_at,
    leaseUntil: r.lease_until,
    lastError: r.last_error,
    idempotencyKey: r.idempotency_key,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

/**
 * The job queue: at-least-once delivery with leases and fencing tokens, retries with backoff, a
 * dead state, idempotent enqueue. Writes go to the writer thread (an enqueue resolves once it is
 * synced to disk); reads and the housekeeping probes run on this thread's read connection.
 * While it is open it returns expired leases and removes completed jobs past their retention,
 * and it wakes this process's workers when a job is enqueued here.
 */
export class Queue {
  private readonly s: Record<string, Statement>;
  private readonly numbers = new Map<string, number>();
  private readonly listeners = new Map<string, Set<(runAt: number) => void>>();
  private readonly workers = new Set<QueueWorker>();
  private readonly timer: NodeJS.Timeout;
  private housekeeping: Promise<void> | undefined;
  /** Set when close() begins: no new workers from then on. */
  private closing = false;
  private closed = false;

  constructor(
    private readonly reader: Db,
    private readonly writer: WriterClient,
    readonly settings: QueueSettings,
    private readonly owner: string,
    /** Where owners' lock files are (see liveness.ts). */
    private readonly ownersDir: string,
    private readonly log: Logger,
    private readonly scrub: Scrubber = NO_SCRUB,
  ) {
    const p = (sql: string): Statement => reader.prepare(sql);
    this.s = {
      queueNo: p('SELECT no FROM queues WHERE name = ?').pluck(),
      names: p('SELECT name FROM queues ORDER BY name').pluck(),
      pending: p("SELECT count(*) AS n, min(run_at) AS oldest FROM jobs WHERE queue_no = ? AND state = 'pending'"),
      waiting: p(`SELECT count(*) FILTER (WHERE run_at <= @now) AS due, count(*) FILTER (WHERE run_at > @now) AS delayed,
        min(run_at) AS oldest FROM jobs WHERE queue_no = @no AND state = 'waiting'`),
      running: p("SELECT count(*) FROM jobs WHERE state = 'running' AND queue_no = ?").pluck(),
      completed: p("SELECT count(*) FROM jobs WHERE state = 'completed' AND queue_no = ?").pluck(),
      dead: p("SELECT count(*) FROM jobs WHERE state = 'dead' AND queue_no = ?").pluck(),
      anyPending: p("SELECT 1 FROM jobs WHERE queue_no = ? AND state = 'pending' LIMIT 1").pluck(),
      nextDue: p("SELECT min(run_at) FROM jobs WHERE queue_no = ? AND state = 'waiting'").pluck(),
      expired: p("SELECT 1 FROM jobs WHERE state = 'running' AND lease_until <= ? LIMIT 1").pluck(),
      owners: p("SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running'").pluck(),
      prunable: p("SELECT 1 FROM jobs WHERE state = 'completed' AND finished_at < ? LIMIT 1").pluck(),
      get: p(`SELECT ${INFO_COLUMNS} FROM ${INFO_FROM} WHERE j.no = ? AND j.created_at = ?`),
      listDead: p(`SELECT ${INFO_COLUMNS} FROM ${INFO_FROM}
        WHERE j.queue_no = ? AND j.state = 'dead' ORDER BY j.finished_at DESC, j.no DESC LIMIT ?`),
      payload: p('SELECT payload FROM job_payloads WHERE no = ?').pluck(),
      queueOf: p('SELECT q.name FROM jobs j JOIN queues q ON q.no = j.queue_no WHERE j.no = ?').pluck(),
    };
    this.timer = setInterval(() => this.tick(), settings.sweepIntervalMs);
    this.timer.unref();
  }

  private read<T>(fn: () => T): T {
    return guardRead(this.reader, this.reader.name, fn);
  }

  /** The queue's number, or undefined while no job was ever enqueued to it. */
  private queueNo(name: string): number | undefined {
    const known = this.numbers.get(name);
    if (known !== undefined) return known;
    const no = this.read(() => this.s.queueNo!.get(name) as number | undefined);
    if (no !== undefined) this.numbers.set(name, no);
    return no;
  }

  private encode(payload: unknown, o: EnqueueOptions | undefined, known: OptionNames<EnqueueOptions> = ENQUEUE_OPTIONS): EncodedItem {
    const opts = optionsObject(o, 'enqueue options', known);
    const text = encodePayload(payload, this.settings.maxPayloadBytes);
    const stored = scrubJson(this.scrub, text, 'payload');
    if (stored.length > text.length) checkPayloadBytes(stored, this.settings.maxPayloadBytes, ' once the secrets in it are redacted');
    return {
      payload: stored,
      delayMs: checkDelay(opts.delayMs, 'delayMs'),
      priority: checkInt(opts.priority, 'priority', -MAX_PRIORITY, MAX_PRIORITY, 0),
      maxAttempts: checkInt(opts.maxAttempts, 'maxAttempts', 1, MAX_ATTEMPTS, this.settings.defaultMaxAttempts),
      key: this.opaque(checkKey(opts.idempotencyKey)),
    };
  }

  private opaque(key: string | null): string | null {
    return key === null ? null : opaqueKey(this.scrub, key);
  }

  private identifier(value: string, field: string): string {
    return checkNoSecret(this.scrub, value, field);
  }

  /** Resolves with the job's id once the job is synced to disk (or with the id of the job that holds the same idempotency key). */
  async enqueue(queue: string, payload: unknown, opts?: EnqueueOptions): Promise<string> {
    const name = this.identifier(checkQueueName(queue), 'queue name');
    const item = this.encode(payload, opts);
    const [id] = await this.writer.run('queue.enqueue', { queue: name, items: [item] });
    this.notify(name, item.delayMs);
    return id!;
  }

  /** Many jobs in one transaction: all of them or none. Ids come back in the order given. */
  async enqueueMany(queue: string, items: readonly BatchItem[]): Promise<string[]> {
    const name = this.identifier(checkQueueName(queue), 'queue name');
    if (!inspected('a batch', () => Array.isArray(items)) || items.length === 0 || items.length > MAX_BATCH) {
      throw new AppError(ErrorCode.INVALID_INPUT, `a batch must be an array of 1 to ${MAX_BATCH} items`);
    }
    const encoded = items.map((it, i) => {
      if (typeof it !== 'object' || it === null) throw new AppError(ErrorCode.INVALID_INPUT, `batch item ${i} must be an object with a payload`);
      try {
        return this.encode(it.payload, it, BATCH_ITEM);
      } catch (err) {
        if (isAppError(err)) throw new AppError(err.code, `batch item ${i}: ${err.message}`, err.hint === undefined ? {} : { hint: err.hint });
        throw err;
      }
    });
    const ids = await this.writer.run('queue.enqueue', { queue: name, items: encoded });
    this.notify(name, Math.min(...encoded.map((e) => e.delayMs)));
    return ids;
  }

  /** Up to `limit` due jobs, highest priority first, then longest due; each leased until its `leaseUntil`. */
  async claim(queue: string, options: ClaimOptions = {}): Promise<Job[]> {
    const name = checkQueueName(queue);
    const opts = optionsObject(options, 'claim options', CLAIM_OPTIONS);
    const leaseMs = checkLease(opts.leaseMs, this.settings.defaultLeaseMs);
    const limit = checkLimit(opts.limit, 'limit', 1, MAX_CLAIM);
    const maxBytes = opts.maxBytes === undefined ? null : checkLimit(opts.maxBytes, 'maxBytes', 0, Number.MAX_SAFE_INTEGER);
    if (opts.detached !== undefined && typeof opts.detached !== 'boolean') throw new AppError(ErrorCode.INVALID_INPUT, 'detached must be true or false');
    const detached = opts.detached === true;
    const r = await this.writer.run('queue.claim', { queue: name, leaseMs, limit, maxBytes, jobBytes: jobBytes(name), detached });
    try {
      return this.read(() => this.jobsFromClaim(name, r));
    } catch (err) {
      // Nobody will run these: give them back rather than leave them leased until the deadline.
      const jobs = r.rows.map((row) => ({ no: row.no, createdAt: row.created_at }));
      this.writer.run('queue.handBack', { token: r.token, jobs }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Payloads are read here rather than returned by the writer: the writer is the one thread every
   * write waits for, and a payload row never changes after enqueue. It exists for as long as the
   * job is not completed, and a claimed job cannot complete without this lease.
   */
  private jobsFromClaim(queue: string, r: ClaimResult): Job[] {
    const jobs: Job[] = [];
    for (const row of r.rows) {
      const payload = this.s.payload!.get(row.no) as string | undefined;
      if (payload === undefined) {
        // Only damage can do this; the job cannot run, so it is set aside where people look.
        this.log.error({ queue, job: rowId(row.created_at, row.no) }, 'a claimed job has no payload row; it is marked dead');
        const ref = { no: row.no, createdAt: row.created_at, token: r.token };
        const error = 'the payload row is missing: the database may be damaged (run blufio db check)';
        this.writer
          .run('queue.fail', { ...ref, error, retryable: false, retryAfterMs: null, retryBaseMs: 0, retryMaxMs: 0 })
          .catch(() => undefined);
        continue;
      }
      jobs.push({
        id: rowId(row.created_at, row.no),
        queue,
        payload: JSON.parse(payload) as unknown,
        attempts: row.attempts,
        maxAttempts: row.max_attempts,
        priority: row.priority,
        leaseToken: r.token,
        leaseUntil: r.leaseUntil,
        createdAt: row.created_at,
        lastError: row.last_error,
      });
    }
    return jobs;
  }

  /** Completes the job. Fails with KC_QUEUE_LEASE_LOST, changing nothing, when the token no longer holds it. */
  ack(id: string, leaseToken: string): Promise<void> {
    let ref;
    try {
      ref = leaseRef(id, leaseToken);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // Not async: this is the hottest call of a busy worker, and the writer's promise will do.
    return this.writer.run('queue.ack', ref) as Promise<unknown> as Promise<void>;
  }

  /**
   * Acks many claimed jobs in one request; each outcome is separate (an AppError where the
   * lease was lost). Workers use it to ack everything that finished in one event-loop turn.
   */
  async ackMany(jobs: readonly { id: string; leaseToken: string }[]): Promise<(AppError | null)[]> {
    const refs = leaseRefs(jobs, 'ackMany');
    const out = await this.writer.run('queue.ackMany', refs);
    return out.map((r) => (r === null ? null : new AppError(r.code, r.message)));
  }

  /** Records a failure: retried after a backoff, or dead when out of attempts or not retryable. */
  async fail(id: string, leaseToken: string, options: FailOptions = {}): Promise<FailOutcome> {
    const ref = leaseRef(id, leaseToken);
    const opts = optionsObject(options, 'fail options', FAIL_OPTIONS);
    if (opts.retryable !== undefined && typeof opts.retryable !== 'boolean') {
      throw new AppError(ErrorCode.INVALID_INPUT, 'retryable must be true or false');
    }
    const retryAfterMs = opts.retryAfterMs === undefined ? null : checkDelay(opts.retryAfterMs, 'retryAfterMs');
    const outcome = await this.writer.run('queue.fail', {
      ...ref,
      error: errorText(opts.error, this.scrub.text),
      retryable: opts.retryable ?? true,
      retryAfterMs,
      retryBaseMs: this.settings.retryBaseMs,
      retryMaxMs: this.settings.retryMaxMs,
    });
    return outcome;
  }

  /** Moves the lease deadline to `ms` from now; returns the new deadline. */
  async extendLease(id: string, leaseToken: string, ms: number): Promise<number> {
    const ref = leaseRef(id, leaseToken);
    return this.writer.run('queue.extendLease', { ...ref, leaseMs: checkLease(ms, undefined) });
  }

  /** Hands the job back unfinished: due again now, this attempt not counted. */
  async release(id: string, leaseToken: string): Promise<void> {
    const ref = leaseRef(id, leaseToken);
    await this.writer.run('queue.release', ref);
    this.wake(this.nameOf(ref));
  }

  /** A dead job goes back to pending with its attempts reset (its last error is kept). */
  async requeue(id: string): Promise<void> {
    const ref = jobRef(id);
    await this.writer.run('queue.requeue', ref);
    this.wake(this.nameOf(ref));
  }

  /**
   * Undoes claims whose jobs never reached a worker (the daemon uses it when a claim's answer
   * cannot be sent): each job still held by its token is pending again exactly as before the
   * claim, its attempt not counted and its place in the queue kept. Jobs whose lease already
   * ended are left alone. Returns how many went back.
   */
  async handBack(jobs: readonly Pick<Job, 'id' | 'leaseToken' | 'queue'>[]): Promise<number> {
    const byToken = new Map<string, { no: number; createdAt: number }[]>();
    for (const ref of leaseRefs(jobs, 'handBack')) {
      let list = byToken.get(ref.token);
      if (list === undefined) byToken.set(ref.token, (list = []));
      list.push({ no: ref.no, createdAt: ref.createdAt });
    }
    let n = 0;
    for (const [token, refs] of byToken) n += await this.writer.run('queue.handBack', { token, jobs: refs });
    if (n > 0) for (const q of new Set(jobs.map((j) => j.queue))) this.wake(q);
    return n;
  }

  /**
   * The queue of a job whose write has just committed, to wake its workers; undefined when it
   * cannot be read, for the write is done and its caller must hear so (the workers' timers
   * find the job anyway).
   */
  private nameOf(ref: { no: number }): string | undefined {
    try {
      return this.read(() => this.s.queueOf!.get(ref.no) as string | undefined);
    } catch {
      return undefined;
    }
  }

  async get(id: string): Promise<JobInfo> {
    const ref = jobRef(id);
    const row = this.read(() => this.s.get!.get(ref.no, ref.createdAt) as JobRow | undefined);
    if (row === undefined) {
      throw new AppError(ErrorCode.NOT_FOUND, `no job with id ${id}`, { hint: 'completed jobs are removed after queue.completed_retention_ms' });
    }
    return infoFromRow(row);
  }

  /** Dead jobs of a queue, most recently dead first. */
  async listDead(queue: string, options: { limit?: number } = {}): Promise<JobInfo[]> {
    const name = checkQueueName(queue);
    const opts = optionsObject(options, 'listDead options', { limit: true });
    const limit = checkLimit(opts.limit, 'limit', 50, 1000);
    const no = this.queueNo(name);
    if (no === undefined) return [];
    return this.read(() => (this.s.listDead!.all(no, limit) as JobRow[]).map(infoFromRow));
  }

  /** Every queue that ever had a job, by name. */
  async names(): Promise<string[]> {
    return this.read(() => this.s.names!.all() as string[]);
  }

  async stats(queue: string): Promise<QueueStats> {
    const name = checkQueueName(queue);
    const no = this.queueNo(name);
    const out: QueueStats = { queue: name, pending: 0, delayed: 0, running: 0, completed: 0, dead: 0, oldestPendingAgeMs: 0 };
    if (no === undefined) return out;
    const now = Date.now();
    // One read transaction: the five counts from one snapshot, so they add up while workers run.
    return this.read(() => this.reader.transaction(() => {
      // Due means pending, or waiting past its time and not yet moved by a claim.
      const p = this.s.pending!.get(no) as { n: number; oldest: number | null };
      const w = this.s.waiting!.get({ now, no }) as { due: number; delayed: number; oldest: number | null };
      out.pending = p.n + w.due;
      out.delayed = w.delayed;
      const oldest = Math.min(p.oldest ?? Infinity, w.due > 0 ? (w.oldest ?? Infinity) : Infinity);
      out.oldestPendingAgeMs = oldest === Infinity ? 0 : Math.max(0, now - oldest);
      out.running = this.s.running!.get(no) as number;
      out.completed = this.s.completed!.get(no) as number;
      out.dead = this.s.dead!.get(no) as number;
      return out;
    })());
  }

  /**
   * Runs `handler` for each job of `queue`, `concurrency` at a time, extending leases while
   * handlers run; a handler that returns completes its job, one that throws fails it. Stop it
   * with `stop()` (or close the app): jobs not started are handed back, running ones get a grace
   * period to finish and are handed back after it.
   */
  work(queue: string, handler: JobHandler, opts: WorkOptions = {}): QueueWorker {
    if (this.closing) throw new AppError(ErrorCode.DB_CLOSED, 'the database is closed');
    const name = checkQueueName(queue);
    if (typeof handler !== 'function') throw new AppError(ErrorCode.INVALID_INPUT, 'the handler must be a function');
    const worker = new QueueWorker(this, name, handler, opts, this.log);
    this.workers.add(worker);
    void worker.stopped.then(() => this.workers.delete(worker));
    return worker;
  }

  /** For workers: is a job of this queue due now, and when is the next one due? */
  dueProbe(queue: string, now: number): { due: boolean; next: number | null } {
    const no = this.queueNo(queue);
    if (no === undefined) return { due: false, next: null };
    return this.read(() => {
      if (this.s.anyPending!.get(no) !== undefined) return { due: true, next: now };
      const next = (this.s.nextDue!.get(no) as number | null) ?? null;
      return { due: next !== null && next <= now, next };
    });
  }

  /** Calls `fn(delayMs)` whenever this process enqueues to `queue`; returns the unsubscribe. */
  subscribe(queue: string, fn: (delayMs: number) => void): () => void {
    let set = this.listeners.get(queue);
    if (set === undefined) this.listeners.set(queue, (set = new Set()));
    set.add(fn);
    return () => void set.delete(fn);
  }

  private notify(queue: string, delayMs: number): void {
    const set = this.listeners.get(queue);
    if (set !== undefined) for (const fn of set) fn(delayMs);
  }

  private wake(queue: string | undefined): void {
    if (queue !== undefined) this.notify(queue, 0);
  }

  private wakeAll(): void {
    for (const queue of this.listeners.keys()) this.notify(queue, 0);
  }

  /**
   * Housekeeping, probed on the read connection so that an idle database costs no writes: leases
   * past their deadline or held by exited processes go back to pending; completed jobs past
   * their retention are deleted, a chunk per transaction.
   */
  private tick(): void {
    if (this.closed || this.housekeeping !== undefined) return;
    const run = this.housekeep().catch((err: unknown) => {
      if (!this.closed && !isAppError(err, ErrorCode.DB_CLOSED)) this.log.warn({ err }, 'queue housekeeping failed; it will be tried again');
    });
    this.housekeeping = run.finally(() => (this.housekeeping = undefined));
  }

  private async housekeep(): Promise<void> {
    const now = Date.now();
    const owners = this.read(() => this.s.owners!.all() as (string | null)[]);
    const ownerGone = owners.some((o) => o !== null && o !== this.owner && !isOwnerAlive(o, this.ownersDir));
    if (ownerGone || this.read(() => this.s.expired!.get(now)) !== undefined) {
      const r = await this.writer.run('queue.sweep', null);
      if (r.returned + r.dead > 0) {
        this.log.warn({ returned: r.returned, dead: r.dead }, 'jobs whose lease expired or whose worker exited were returned to the queue');
        this.wakeAll();
      }
    }
    const before = Date.now() - this.settings.completedRetentionMs;
    while (!this.closed && this.read(() => this.s.prunable!.get(before)) !== undefined) {
      const n = await this.writer.run('queue.prune', { before, limit: PRUNE_CHUNK });
      if (n < PRUNE_CHUNK) break;
    }
  }

  /** Runs housekeeping now (tests and the CLI use it; it also runs every queue.sweep_interval_ms). */
  async sweep(): Promise<void> {
    this.tick();
    await this.housekeeping;
  }

  /** Stops every worker (handing back what they hold) and the housekeeping timer. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.workers].map((w) => w.stop()));
    this.closed = true;
    await this.housekeeping;
  }
}
