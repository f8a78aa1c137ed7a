import { AppError, ErrorCode, isAppError, shown } from '../errors/index.js';
import type { BlufioApp } from '../app/index.js';
import { ENVELOPE_BYTES } from '../storage/queue/sizes.js';
import type { Job } from '../storage/queue/types.js';
import { HELD_FULL, type ResponseBudget } from './budget.js';
import type { UnlockThrottle } from './throttle.js';

type Params = Record<string, unknown>;

export interface MethodContext {
  app: BlufioApp;
  throttle: UnlockThrottle;
  startedAtMs: number;
  version: string;
  /** [server] max_response_bytes: reads that could exceed it are bounded while they read. */
  maxResponseBytes: number;
  /** What is left of it for this HTTP request (a batch shares one). */
  budget: ResponseBudget;
}

interface Method {
  /** The named parameters: true = required. Any other key is refused. */
  params: Record<string, boolean>;
  /** Still served while locked (the lock's own methods, health). */
  whileLocked?: true;
  /**
   * Returns bulk data: runs alone within its request, bounded while it reads by what is left of
   * the request's ResponseBudget (room()), and refused rather than answered past it.
   */
  bulk?: true;
  /** Changes nothing: its answer is the first dropped when a batch's answers do not fit. */
  readOnly?: true;
  /**
   * Undoes the call when its answer cannot be sent (queue_claim: hands its jobs back as they
   * were), so that its answer can be dropped like a read's and the error can say nothing happened.
   */
  undo?(ctx: MethodContext, result: unknown): Promise<unknown>;
  run(ctx: MethodContext, p: Params): Promise<unknown> | unknown;
}

/** The keys of `p` that are present, for options objects (an absent key keeps the library's default). */
function pick(p: Params, keys: readonly string[]): Params {
  const out: Params = {};
  for (const k of keys) if (p[k] !== undefined) out[k] = p[k];
  return out;
}

function lockedError(app: BlufioApp): AppError {
  const s = app.lockStatus();
  if (s.databaseLocked) {
    return new AppError(ErrorCode.DB_LOCKED, 'the database is locked (vault_lock): its key was dropped', {
      hint: 'call vault_unlock with the passphrase (and databasePassphrase when the database has its own)',
    });
  }
  return new AppError(ErrorCode.VAULT_LOCKED, 'the daemon is locked (vault_lock, or a vault made by another process that it has no passphrase for): no call that reads or stores data is served', {
    hint: 'call vault_unlock with the passphrase',
  });
}

export { ENVELOPE_BYTES };

/**
 * queue_claim bounded by the bytes its answer may take: the queue claims no more than fit (and
 * nothing, failing, when the first due job does not), so no job is leased for an answer that
 * would then be refused. Its estimate is close but not exact (a last error's escaping); should
 * the jobs still not fit, they are handed back as they were (attempts not counted, places in
 * the queue kept) before failing.
 */
async function claimWithin(app: BlufioApp, p: Params, maxBytes: number): Promise<unknown> {
  // Detached: the client holds the lease, not the daemon, so a restart of the daemon must not
  // return it to pending while the client still works on the job; it ends at its deadline.
  const jobs = await app.queue.claim(p.queue as string, { ...pick(p, ['leaseMs', 'limit']), maxBytes, detached: true });
  let fit = 0;
  let bytes = 2; // []
  for (const job of jobs) {
    bytes += Buffer.byteLength(JSON.stringify(job)) + 1;
    if (bytes > maxBytes) break;
    fit++;
  }
  const over = jobs.splice(fit);
  // Should this fail (the database closing), they return when their lease ends.
  if (over.length > 0) await app.queue.handBack(over).catch(() => undefined);
  if (jobs.length === 0 && over.length > 0) throw tooLargeToClaim(p.queue, maxBytes);
  return jobs;
}

function tooLargeToClaim(queue: unknown, maxBytes: number): AppError {
  return new AppError(ErrorCode.RESULT_TOO_LARGE, `the jobs of queue ${shown(String(queue), 100)} do not fit in the ${Math.max(0, maxBytes)} bytes this answer may hold; nothing was claimed`, {
    hint: 'claim fewer at a time (limit), or raise [server] max_response_bytes',
  });
}

/**
 * A bulk read within room(): when what the daemon holds for other clients, not this request,
 * made the room too small, its refusal says so.
 */
async function withinRoom<T>(ctx: MethodContext, read: (maxBytes: number) => Promise<T>): Promise<T> {
  const maxBytes = room(ctx);
  const elsewhere = ctx.budget.heldElsewhere;
  try {
    return await read(maxBytes);
  } catch (err) {
    if (!elsewhere || !isAppError(err, ErrorCode.RESULT_TOO_LARGE)) throw err;
    throw new AppError(ErrorCode.RESULT_TOO_LARGE, `${err.message}, and only ${maxBytes} were left: ${HELD_FULL.why}; nothing was read`, { hint: HELD_FULL.hint });
  }
}

/** The bytes a bulk read may return: what is left of the request's budget, less the envelope. */
function room(ctx: MethodContext): number {
  const left = ctx.budget.left - ENVELOPE_BYTES;
  if (left < 1 && ctx.budget.heldElsewhere) {
    throw new AppError(ErrorCode.RESULT_TOO_LARGE, `no room is left for this answer: ${HELD_FULL.why}; nothing was read`, { hint: HELD_FULL.hint });
  }
  if (left < 1) {
    throw new AppError(ErrorCode.RESULT_TOO_LARGE, `nothing is left of [server] max_response_bytes (${ctx.maxResponseBytes}) for this answer: the calls before it in the batch took it; nothing was read`, {
      hint: 'ask for less at a time (a smaller limit, a smaller batch)',
    });
  }
  return left;
}

const KEY_INVALID: readonly string[] = [ErrorCode.VAULT_KEY_INVALID, ErrorCode.DB_KEY_INVALID];

/**
 * The RPC methods. Params are named and mirror the library call each one fronts; the library
 * checks the values, this table checks which keys may appear. While the daemon is locked only
 * the methods marked `whileLocked` run: data a locked daemon stores could not be scrubbed of the
 * vault's values, and jobs it hands out could not be worked without them.
 */
export const METHODS: Readonly<Record<string, Method>> = {
  health: {
    params: {},
    whileLocked: true,
    readOnly: true,
    run: ({ app, startedAtMs, version }) => ({
      status: app.lockStatus().locked ? 'locked' : 'ok',
      version,
      pid: process.pid,
      uptimeMs: Date.now() - startedAtMs,
    }),
  },
  vault_lock_status: {
    params: {},
    whileLocked: true,
    readOnly: true,
    run: ({ app }) => app.lockStatus(),
  },
  vault_lock: {
    params: {},
    whileLocked: true,
    async run({ app }) {
      const s = app.lockStatus();
      if (!s.locked && !s.databaseEncrypted && !(await app.vault.status()).exists) {
        throw new AppError(ErrorCode.NOT_FOUND, 'there is nothing to lock: no vault exists and the database is not encrypted', {
          hint: 'blufio config set-secret <name> creates the vault',
        });
      }
      await app.lock();
      return app.lockStatus();
    },
  },
  vault_unlock: {
    params: { passphrase: true, databasePassphrase: false },
    whileLocked: true,
    async run({ app, throttle }, p) {
      if (typeof p.passphrase !== 'string' || p.passphrase === '') throw new AppError(ErrorCode.INVALID_INPUT, 'passphrase must be a non-empty string');
      if (p.databasePassphrase !== undefined && (typeof p.databasePassphrase !== 'string' || p.databasePassphrase === '')) {
        throw new AppError(ErrorCode.INVALID_INPUT, 'databasePassphrase must be a non-empty string when given');
      }
      const s = app.lockStatus();
      if (!s.locked && !s.databaseEncrypted && !s.vaultUnlocked && !(await app.vault.status()).exists) {
        throw new AppError(ErrorCode.NOT_FOUND, 'there is no vault to unlock, and the database is not encrypted', {
          hint: 'blufio config set-secret <name> creates the vault',
        });
      }
      const refused = throttle.begin();
      if (refused !== undefined) {
        const why = refused.busy ? 'another unlock attempt is running' : 'too many failed unlock attempts';
        throw new AppError(ErrorCode.RPC_RATE_LIMITED, `${why}; try again in ${Math.ceil(refused.waitMs / 1000)} s`, {
          details: { retryAfterMs: refused.waitMs },
        });
      }
      let ok: boolean | undefined;
      try {
        await app.unlock({ passphrase: p.passphrase, ...(p.databasePassphrase === undefined ? {} : { databasePassphrase: p.databasePassphrase as string }) });
        ok = true;
      } catch (err) {
        if (isAppError(err) && KEY_INVALID.includes(err.code)) ok = false;
        throw err;
      } finally {
        throttle.end(ok);
      }
      return app.lockStatus();
    },
  },
  secret_list: { params: {}, readOnly: true, run: ({ app }) => app.vault.list() },
  session_create: {
    params: { channel: false, userId: false, metadata: false },
    run: ({ app }, p) => app.sessions.create(pick(p, ['channel', 'userId', 'metadata'])),
  },
  session_get: { params: { id: true }, readOnly: true, run: ({ app }, p) => app.sessions.get(p.id as string) },
  session_list: {
    params: { limit: false, state: false, before: false },
    bulk: true,
    readOnly: true,
    run: (ctx, p) => withinRoom(ctx, (maxBytes) => ctx.app.sessions.list({ ...pick(p, ['limit', 'state', 'before']), maxBytes })),
  },
  session_set_state: {
    params: { id: true, state: true },
    run: ({ app }, p) => app.sessions.setState(p.id as string, p.state as never),
  },
  message_append: {
    params: { sessionId: true, role: true, content: true, tokenCount: false, metadata: false },
    run: ({ app }, p) => app.messages.append(p.sessionId as string, pick(p, ['role', 'content', 'tokenCount', 'metadata']) as never),
  },
  message_list: {
    params: { sessionId: true, limit: false, before: false },
    bulk: true,
    readOnly: true,
    run: (ctx, p) => withinRoom(ctx, (maxBytes) => ctx.app.messages.list(p.sessionId as string, { ...pick(p, ['limit', 'before']), maxBytes })),
  },
  queue_enqueue: {
    params: { queue: true, payload: true, delayMs: false, priority: false, maxAttempts: false, idempotencyKey: false },
    run: ({ app }, p) => app.queue.enqueue(p.queue as string, p.payload, pick(p, ['delayMs', 'priority', 'maxAttempts', 'idempotencyKey'])),
  },
  queue_claim: {
    params: { queue: true, leaseMs: false, limit: false },
    bulk: true,
    run: (ctx, p) => withinRoom(ctx, (maxBytes) => claimWithin(ctx.app, p, maxBytes)),
    undo: (ctx, jobs) => ctx.app.queue.handBack(jobs as Job[]),
  },
  queue_ack: {
    params: { id: true, leaseToken: true },
    run: async ({ app }, p) => {
      await app.queue.ack(p.id as string, p.leaseToken as string);
      return null;
    },
  },
  queue_extend: {
    params: { id: true, leaseToken: true, leaseMs: true },
    run: ({ app }, p) => app.queue.extendLease(p.id as string, p.leaseToken as string, p.leaseMs as number),
  },
  queue_fail: {
    params: { id: true, leaseToken: true, error: false, retryable: false, retryAfterMs: false },
    run: ({ app }, p) => app.queue.fail(p.id as string, p.leaseToken as string, pick(p, ['error', 'retryable', 'retryAfterMs'])),
  },
  queue_stats: { params: { queue: true }, readOnly: true, run: ({ app }, p) => app.queue.stats(p.queue as string) },
};

/** Checks the params' keys against the method's; the message says which key is wrong. */
export function checkParams(method: string, m: Method, params: unknown): Params {
  if (params === undefined) params = {};
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw new AppError(ErrorCode.INVALID_INPUT, `params of ${method} must be an object of named parameters`);
  }
  const p = params as Params;
  for (const k of Object.keys(p)) {
    if (!Object.hasOwn(m.params, k)) {
      const known = Object.keys(m.params);
      throw new AppError(ErrorCode.INVALID_INPUT, `${method} has no parameter ${shown(k, 100)}`, {
        hint: known.length === 0 ? `${method} takes no parameters` : `its parameters: ${known.join(', ')}`,
      });
    }
  }
  for (const [k, required] of Object.entries(m.params)) {
    if (required && p[k] === undefined) throw new AppError(ErrorCode.INVALID_INPUT, `${method} needs the parameter ${k}`);
  }
  return p;
}

/** Whether `method` is one of the bulk reads (see Method.bulk). */
export function isBulk(method: string): boolean {
  return Object.hasOwn(METHODS, method) && METHODS[method]!.bulk === true;
}

/** How to undo a call of `method` whose answer cannot be sent (see Method.undo), if it can be. */
export function undoOf(method: string): Method['undo'] {
  return Object.hasOwn(METHODS, method) ? METHODS[method]!.undo : undefined;
}

/** Whether `method` changes nothing (see Method.readOnly); false for unknown names. */
export function isReadOnly(method: string): boolean {
  return Object.hasOwn(METHODS, method) && METHODS[method]!.readOnly === true;
}

export async function callMethod(ctx: MethodContext, method: string, params: unknown): Promise<unknown> {
  const m = Object.hasOwn(METHODS, method) ? METHODS[method] : undefined;
  if (m === undefined) {
    throw new AppError(ErrorCode.RPC_METHOD_NOT_FOUND, `there is no method ${shown(method, 100)}`, {
      hint: `methods: ${Object.keys(METHODS).join(', ')}`,
    });
  }
  const p = checkParams(method, m, params);
  if (m.whileLocked !== true && ctx.app.lockStatus().locked) throw lockedError(ctx.app);
  return m.run(ctx, p);
}
