/** What the queue hands out. Times are milliseconds since the Unix epoch. */

/** waiting: not due yet (delayed, backing off); pending: due, waiting for a worker. */
export const JOB_STATES = ['waiting', 'pending', 'running', 'completed', 'dead'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface EnqueueOptions {
  /** Not before this many milliseconds from now (default 0). */
  delayMs?: number;
  /** Higher runs first (default 0, from -1000000 to 1000000). */
  priority?: number;
  /** Claims after which a job that keeps failing is dead (default queue.default_max_attempts). */
  maxAttempts?: number;
  /** A second enqueue with the same key, while the first job exists, returns the first job's id. */
  idempotencyKey?: string;
}

export interface BatchItem extends EnqueueOptions {
  payload: unknown;
}

export interface ClaimOptions {
  /** How long the lease lasts before the job goes back to pending (default queue.default_lease_ms). */
  leaseMs?: number;
  /** At most this many jobs (default 1, at most 1000). */
  limit?: number;
  /**
   * At most this many bytes of JSON for the jobs together (default: no bound): fewer jobs are
   * claimed when they would not fit, and when even the first due job does not, the claim fails
   * with KC_RESULT_TOO_LARGE having leased nothing and counted no attempt. The daemon bounds
   * queue_claim by [server] max_response_bytes this way.
   */
  maxBytes?: number;
  /**
   * The lease is held outside this process (the daemon's RPC clients hold what queue_claim
   * gives them): it ends only at its deadline, never because this process exited. By default a
   * lease is this process's, and returns to pending as soon as the process is seen gone.
   */
  detached?: boolean;
}

/** A claimed job: yours until `leaseUntil`, for calls that carry `leaseToken`. */
export interface Job {
  id: string;
  queue: string;
  payload: unknown;
  /** Claims so far, this one included. */
  attempts: number;
  maxAttempts: number;
  priority: number;
  leaseToken: string;
  leaseUntil: number;
  createdAt: number;
  /** The error of the previous attempt, when there was one. */
  lastError: string | null;
}

export interface FailOptions {
  /** What went wrong; kept on the job (truncated to 16 KiB). */
  error?: unknown;
  /** false: dead at once, whatever attempts remain (default true). */
  retryable?: boolean;
  /** Retry after exactly this long instead of the exponential backoff (a server's Retry-After). */
  retryAfterMs?: number;
}

export interface FailOutcome {
  /** pending: it will be retried at `runAt`. */
  state: 'pending' | 'dead';
  /** When a retried job is due again; null for a dead one. */
  runAt: number | null;
}

/** A job as stored, for inspection: listing the dead, `get`. */
export interface JobInfo {
  id: string;
  queue: string;
  state: JobState;
  payload: unknown;
  attempts: number;
  maxAttempts: number;
  priority: number;
  runAt: number;
  leaseUntil: number | null;
  lastError: string | null;
  idempotencyKey: string | null;
  createdAt: number;
  finishedAt: number | null;
}

export interface QueueStats {
  queue: string;
  /** Due now and waiting for a worker. */
  pending: number;
  /** Pending but not yet due (delayed, or backing off after a failure). */
  delayed: number;
  running: number;
  completed: number;
  dead: number;
  /** How long the longest-waiting due job has been due; 0 when none is waiting. */
  oldestPendingAgeMs: number;
}

export interface JobRow {
  no: number;
  queue: string;
  state: JobState;
  priority: number;
  run_at: number;
  payload: string | null;
  attempts: number;
  max_attempts: number;
  idempotency_key: string | null;
  lease_until: number | null;
  last_error: string | null;
  created_at: number;
  finished_at: number | null;
}
