import { randomBytes } from 'node:crypto';
import { AppError, ErrorCode } from '../../errors/index.js';
import { rowId } from '../ids.js';
import { isOwnerAlive } from '../liveness.js';
import type { WriterContext } from '../writer/context.js';
import { retryDelay } from './backoff.js';
import type { FailOutcome } from './types.js';

/**
 * Queue writes, run inside the writer thread's transactions. Every lease check and the change it
 * guards happen in one transaction of the one writer, so a check cannot go stale before its write.
 */

/** A job named by the two halves of its id; the creation time tells a reused rowid apart. */
export interface JobRef {
  no: number;
  createdAt: number;
}

export interface LeaseRef extends JobRef {
  token: string;
}

export interface EncodedItem {
  /** JSON text, already checked. */
  payload: string;
  delayMs: number;
  priority: number;
  maxAttempts: number;
  key: string | null;
}

export interface EnqueueArgs {
  queue: string;
  items: EncodedItem[];
}

export interface ClaimArgs {
  queue: string;
  leaseMs: number;
  limit: number;
  /**
   * Claim only as many jobs as fit in this many bytes of JSON (payload, last error, and
   * `jobBytes` for the rest of each job); null: no bound. See claimWithin.
   */
  maxBytes: number | null;
  jobBytes: number;
  /** No owner recorded: the lease ends only at its deadline (see ClaimOptions.detached). */
  detached: boolean;
}

/** A claimed job's row; the payload is read by the caller on its own connection, off the writer. */
export interface ClaimedRow {
  no: number;
  attempts: number;
  max_attempts: number;
  priority: number;
  created_at: number;
  last_error: string | null;
}

export interface ClaimResult {
  token: string;
  leaseUntil: number;
  rows: ClaimedRow[];
}

export interface FailArgs extends LeaseRef {
  error: string;
  retryable: boolean;
  retryAfterMs: number | null;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface ExtendArgs extends LeaseRef {
  leaseMs: number;
}

export interface SweepResult {
  /** Back to pending because a lease deadline passed or its holder's process is gone. */
  returned: number;
  /** Out of attempts when its lease was lost. */
  dead: number;
}

const EXPIRED_MESSAGE = 'the lease expired: the worker stopped, or did not finish or extend it in time';
const OWNER_GONE_MESSAGE = 'the process that held the lease exited without finishing the job';

/** The queue's number; created on first use when `create`, else undefined for a queue never used. */
function queueNo(ctx: WriterContext, name: string, create: boolean): number | undefined {
  const known = ctx.cached(`queue:${name}`, () => ctx.stmt('SELECT no FROM queues WHERE name = ?').pluck().get(name) as number | undefined);
  if (known !== undefined || !create) return known;
  const no = Number(ctx.stmt('INSERT INTO queues (name) VALUES (?)').run(name).lastInsertRowid);
  ctx.remember(`queue:${name}`, no);
  return no;
}

function enqueue(ctx: WriterContext, a: EnqueueArgs): string[] {
  const now = Date.now();
  const qno = queueNo(ctx, a.queue, true)!;
  const insert = ctx.stmt(
    `INSERT INTO jobs (queue_no, state, priority, run_at, attempts, max_attempts, idempotency_key, created_at)
     VALUES (?, ?, ?, ?, 0, ?, ?, ?)
     ON CONFLICT (queue_no, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`,
  );
  const insertPayload = ctx.stmt('INSERT INTO job_payloads (no, payload) VALUES (?, ?)');
  const ids = new Array<string>(a.items.length);
  for (let i = 0; i < a.items.length; i++) {
    const it = a.items[i]!;
    const r = insert.run(qno, it.delayMs > 0 ? 'waiting' : 'pending', it.priority, now + it.delayMs, it.maxAttempts, it.key, now);
    if (r.changes === 1) {
      insertPayload.run(r.lastInsertRowid, it.payload);
      ids[i] = rowId(now, Number(r.lastInsertRowid));
      continue;
    }
    // The key is taken: hand back the job that holds it.
    const held = ctx
      .stmt('SELECT no, created_at FROM jobs WHERE queue_no = ? AND idempotency_key = ?')
      .get(qno, it.key) as { no: number; created_at: number };
    ids[i] = rowId(held.created_at, held.no);
  }
  return ids;
}

/** Returns expired leases to pending (or to dead, when that was the last attempt). */
function returnExpired(ctx: WriterContext, now: number): SweepResult {
  return returnLeases(ctx, 'lease_until <= ?', now, EXPIRED_MESSAGE, now);
}

function returnLeases(ctx: WriterContext, where: string, arg: number | string, message: string, now: number): SweepResult {
  const dead = ctx
    .stmt(
      `UPDATE jobs SET state = 'dead', finished_at = ?, last_error = ?, lease_until = NULL, lease_owner = NULL
       WHERE state = 'running' AND ${where} AND attempts >= max_attempts`,
    )
    .run(now, message, arg).changes;
  const returned = ctx
    .stmt(
      `UPDATE jobs SET state = 'pending', run_at = ?, last_error = ?, lease_token = NULL, lease_until = NULL, lease_owner = NULL
       WHERE state = 'running' AND ${where}`,
    )
    .run(now, message, arg).changes;
  return { returned, dead };
}

/**
 * Expired leases, and every lease held by a process that no longer exists (its jobs need not
 * wait out their deadline). Leases of live processes, this one included, are left alone.
 */
export function sweepLeases(ctx: WriterContext): SweepResult {
  const now = Date.now();
  const out = returnExpired(ctx, now);
  const owners = ctx.stmt("SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running'").pluck().all() as (string | null)[];
  for (const owner of owners) {
    if (owner === null || owner === ctx.owner || isOwnerAlive(owner, ctx.ownersDir)) continue;
    const r = returnLeases(ctx, 'lease_owner = ?', owner, OWNER_GONE_MESSAGE, now);
    out.returned += r.returned;
    out.dead += r.dead;
  }
  return out;
}

function claim(ctx: WriterContext, a: ClaimArgs): ClaimResult {
  const now = Date.now();
  const token = randomBytes(12).toString('base64url');
  const leaseUntil = now + a.leaseMs;
  const qno = queueNo(ctx, a.queue, false);
  if (qno === undefined) return { token, leaseUntil, rows: [] };
  returnExpired(ctx, now);
  ctx.stmt("UPDATE jobs SET state = 'pending' WHERE state = 'waiting' AND queue_no = ? AND run_at <= ?").run(qno, now);
  const rows = (
    a.maxBytes === null
      ? ctx
          .stmt(
            `UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?, lease_owner = ?
             WHERE no IN (SELECT no FROM jobs WHERE queue_no = ? AND state = 'pending' AND run_at <= ?
                          ORDER BY priority DESC, run_at LIMIT ?)
             RETURNING no, attempts, max_attempts, priority, run_at, created_at, last_error`,
          )
          .all(token, leaseUntil, a.detached ? null : ctx.owner, qno, now, a.limit)
      : ctx
          .stmt(
            `UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?, lease_owner = ?
             WHERE no IN (SELECT value FROM json_each(?))
             RETURNING no, attempts, max_attempts, priority, run_at, created_at, last_error`,
          )
          .all(token, leaseUntil, a.detached ? null : ctx.owner, JSON.stringify(claimWithin(ctx, a, qno, now)))
  ) as (ClaimedRow & { run_at: number })[];
  // RETURNING comes in no particular order: hand jobs out in the order they were chosen.
  rows.sort((x, y) => y.priority - x.priority || x.run_at - y.run_at || x.no - y.no);
  return { token, leaseUntil, rows };
}

/**
 * The due jobs a claim bounded by `maxBytes` takes, in claim order: as many as fit, the first
 * that does not ends the list. A claim whose answer is refused for its size would leave its
 * jobs leased and their attempts counted with no worker holding them (repeated, they end dead
 * unseen), so the size is known before anything is leased: when even the first job does not
 * fit, the claim fails and changes nothing. A job's size is its stored payload (the JSON it is
 * sent as), its last error as a JSON string, and `jobBytes` for the rest.
 */
function claimWithin(ctx: WriterContext, a: ClaimArgs, qno: number, now: number): number[] {
  // octet_length() reads a payload's size from its record header, not the payload itself (the
  // database is UTF-8), and the rows are read one at a time: a claim stops at the first job that
  // does not fit rather than sizing every due job inside the write transaction.
  const due = ctx
    .stmt(
      `SELECT j.no, j.created_at, coalesce(octet_length(p.payload), 4) + length(CAST(json_quote(j.last_error) AS BLOB)) AS bytes
       FROM jobs j LEFT JOIN job_payloads p ON p.no = j.no
       WHERE j.queue_no = ? AND j.state = 'pending' AND j.run_at <= ?
       ORDER BY j.priority DESC, j.run_at, j.no LIMIT ?`,
    )
    .iterate(qno, now, a.limit) as IterableIterator<{ no: number; created_at: number; bytes: number }>;
  const take: number[] = [];
  let total = 0;
  for (const job of due) {
    total += job.bytes + a.jobBytes;
    if (total <= (a.maxBytes ?? Infinity)) {
      take.push(job.no);
      continue;
    }
    if (take.length === 0) {
      const id = rowId(job.created_at, job.no);
      throw new AppError(ErrorCode.RESULT_TOO_LARGE, `job ${id}, the next due in queue ${JSON.stringify(a.queue)}, is ${job.bytes + a.jobBytes} bytes as JSON, more than the ${a.maxBytes} bytes this answer may hold; nothing was claimed`, {
        hint: 'raise [server] max_response_bytes (and claim it alone), or claim it through the library, which has no such bound',
        details: { id },
      });
    }
    break;
  }
  return take;
}

interface LeaseRow {
  state: string;
  lease_token: string | null;
  lease_until: number | null;
  attempts: number;
  max_attempts: number;
}

function notFound(ref: JobRef): AppError {
  return new AppError(ErrorCode.NOT_FOUND, `no job with id ${rowId(ref.createdAt, ref.no)}`, {
    hint: 'completed jobs are removed after queue.completed_retention_ms',
  });
}

function leaseRow(ctx: WriterContext, ref: JobRef): LeaseRow {
  const row = ctx
    .stmt('SELECT state, lease_token, lease_until, attempts, max_attempts FROM jobs WHERE no = ? AND created_at = ?')
    .get(ref.no, ref.createdAt) as LeaseRow | undefined;
  if (row === undefined) throw notFound(ref);
  return row;
}

/** Why a lease token no longer holds its job. */
function leaseLost(ref: LeaseRef, row: LeaseRow, now: number): AppError {
  const id = rowId(ref.createdAt, ref.no);
  let why: string;
  if (row.state === 'running' && row.lease_token === ref.token) why = `its lease expired at ${new Date(row.lease_until ?? now).toISOString()}`;
  else if (row.state === 'running') why = 'another lease holds it (it was claimed again after this lease ended, or this token was never its lease)';
  else if (row.state === 'pending' || row.state === 'waiting') why = 'its lease ended and it is waiting to be claimed again';
  else why = `it is ${row.state}`;
  return new AppError(ErrorCode.QUEUE_LEASE_LOST, `the lease token no longer holds job ${id}: ${why}`, {
    hint: 'a job whose lease ended is delivered again; do not repeat its side effects without checking, and extend long leases with extendLease',
    details: { id, state: row.state },
  });
}

/** The job's row, when `token` holds a live lease on it; otherwise the reason it does not. */
function holding(ctx: WriterContext, ref: LeaseRef, now: number): LeaseRow {
  const row = leaseRow(ctx, ref);
  if (row.state !== 'running' || row.lease_token !== ref.token || (row.lease_until ?? 0) <= now) throw leaseLost(ref, row, now);
  return row;
}

function ack(ctx: WriterContext, a: LeaseRef): null {
  const now = Date.now();
  const { changes } = ctx
    .stmt(
      `UPDATE jobs SET state = 'completed', finished_at = ?, lease_until = NULL, lease_owner = NULL
       WHERE no = ? AND created_at = ? AND state = 'running' AND lease_token = ? AND lease_until > ?`,
    )
    .run(now, a.no, a.createdAt, a.token, now);
  if (changes === 1) return null;
  const row = leaseRow(ctx, a);
  // The same ack again (a retry after a lost reply) finds its own completion: nothing to do.
  if (row.state === 'completed' && row.lease_token === a.token) return null;
  throw leaseLost(a, row, now);
}

/** A failure inside a batch of acks: the others still count. */
export interface AckFailure {
  code: string;
  message: string;
}

/** Many acks in one request (a worker's finished jobs of one event-loop turn); each succeeds or fails alone. */
function ackMany(ctx: WriterContext, refs: LeaseRef[]): (AckFailure | null)[] {
  return refs.map((r) => {
    try {
      return ack(ctx, r);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return { code: err.code, message: err.message };
    }
  });
}

function fail(ctx: WriterContext, a: FailArgs): FailOutcome {
  const now = Date.now();
  const row = holding(ctx, a, now);
  if (!a.retryable || row.attempts >= row.max_attempts) {
    ctx
      .stmt(`UPDATE jobs SET state = 'dead', finished_at = ?, last_error = ?, lease_until = NULL, lease_owner = NULL WHERE no = ?`)
      .run(now, a.error, a.no);
    return { state: 'dead', runAt: null };
  }
  const runAt = now + (a.retryAfterMs ?? retryDelay(row.attempts, a.retryBaseMs, a.retryMaxMs));
  ctx
    .stmt(
      `UPDATE jobs SET state = ?, run_at = ?, last_error = ?, lease_token = NULL, lease_until = NULL, lease_owner = NULL
       WHERE no = ?`,
    )
    .run(runAt > now ? 'waiting' : 'pending', runAt, a.error, a.no);
  return { state: 'pending', runAt };
}

function extendLease(ctx: WriterContext, a: ExtendArgs): number {
  const now = Date.now();
  holding(ctx, a, now);
  const leaseUntil = now + a.leaseMs;
  ctx.stmt('UPDATE jobs SET lease_until = ? WHERE no = ?').run(leaseUntil, a.no);
  return leaseUntil;
}

/** Gives the job back as if this claim had not happened: due now, the attempt not counted. */
function release(ctx: WriterContext, a: LeaseRef): null {
  const now = Date.now();
  holding(ctx, a, now);
  ctx
    .stmt(
      `UPDATE jobs SET state = 'pending', run_at = ?, attempts = max(attempts - 1, 0),
         lease_token = NULL, lease_until = NULL, lease_owner = NULL
       WHERE no = ?`,
    )
    .run(now, a.no);
  return null;
}

/**
 * Undoes a claim whose jobs never reached anyone (its answer could not be sent): each job still
 * held by `token` goes back to pending exactly as it was before the claim, its attempt not
 * counted and its run_at, so its place in the queue, unchanged (a claim does not change run_at).
 * A job whose lease has meanwhile been swept or re-claimed is left alone. Returns how many went back.
 */
function handBack(ctx: WriterContext, a: { token: string; jobs: JobRef[] }): number {
  // A lease past its deadline is no longer this token's to give back, swept or not: its attempt
  // counted (on a last attempt, the job is dead at the next sweep).
  const stmt = ctx.stmt(
    `UPDATE jobs SET state = 'pending', attempts = max(attempts - 1, 0), lease_token = NULL, lease_until = NULL, lease_owner = NULL
     WHERE no = ? AND created_at = ? AND state = 'running' AND lease_token = ? AND lease_until > ?`,
  );
  const now = Date.now();
  let n = 0;
  for (const j of a.jobs) n += stmt.run(j.no, j.createdAt, a.token, now).changes;
  return n;
}

function requeue(ctx: WriterContext, a: JobRef): null {
  const row = leaseRow(ctx, a);
  if (row.state !== 'dead') {
    throw new AppError(ErrorCode.QUEUE_NOT_DEAD, `job ${rowId(a.createdAt, a.no)} is ${row.state}; only dead jobs can be re-queued`, {
      details: { id: rowId(a.createdAt, a.no), state: row.state },
    });
  }
  ctx
    .stmt(`UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, finished_at = NULL, lease_token = NULL WHERE no = ?`)
    .run(Date.now(), a.no);
  return null;
}

/** Deletes up to `limit` completed jobs that finished before `before`; the caller repeats while it returns `limit`. */
function prune(ctx: WriterContext, a: { before: number; limit: number }): number {
  const nos = ctx
    .stmt(`SELECT no FROM jobs WHERE state = 'completed' AND finished_at < ? ORDER BY finished_at LIMIT ?`)
    .pluck()
    .all(a.before, a.limit) as number[];
  const job = ctx.stmt('DELETE FROM jobs WHERE no = ?');
  const payload = ctx.stmt('DELETE FROM job_payloads WHERE no = ?');
  for (const no of nos) {
    job.run(no);
    payload.run(no);
  }
  return nos.length;
}

export const queueOps = {
  'queue.enqueue': enqueue,
  'queue.claim': claim,
  'queue.ack': ack,
  'queue.ackMany': ackMany,
  'queue.fail': fail,
  'queue.extendLease': extendLease,
  'queue.release': release,
  'queue.handBack': handBack,
  'queue.requeue': requeue,
  'queue.sweep': (ctx: WriterContext, _a: null): SweepResult => sweepLeases(ctx),
  'queue.prune': prune,
};
