import type { Logger } from 'pino';
import { AppError, ErrorCode, isAppError, shown } from '../errors/index.js';
import { HELD_FULL, ResponseBudget, type HeldAnswers } from './budget.js';
import { callMethod, isBulk, isReadOnly, undoOf, type MethodContext } from './methods.js';

/** JSON-RPC 2.0's own error codes, and -32000 for everything the application refuses. */
export const RpcCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL: -32603,
  APPLICATION: -32000,
} as const;

/** A batch larger than this is refused whole: one request must not queue unbounded work. */
export const MAX_BATCH = 100;

type Id = string | number | null;

export interface RpcError {
  code: number;
  message: string;
  data: { code: string; hint?: string; retryAfterMs?: number };
}

export interface RpcResponse {
  jsonrpc: '2.0';
  id: Id;
  result?: unknown;
  error?: RpcError;
}

const ENVELOPE_KEYS = new Set(['jsonrpc', 'method', 'params', 'id']);

function rpcCodeOf(code: string): number {
  switch (code) {
    case ErrorCode.INVALID_INPUT:
      return RpcCode.INVALID_PARAMS;
    case ErrorCode.RPC_METHOD_NOT_FOUND:
      return RpcCode.METHOD_NOT_FOUND;
    case ErrorCode.RPC_INVALID_REQUEST:
      return RpcCode.INVALID_REQUEST;
    case ErrorCode.INTERNAL:
      return RpcCode.INTERNAL;
    default:
      return RpcCode.APPLICATION;
  }
}

/**
 * The error a caller sees: our code in data.code, the message and hint passed through the
 * redactor. Anything that is not an AppError is a bug: logged whole here, reported as
 * KC_INTERNAL without its text (which may hold anything).
 */
export function toRpcError(err: unknown, redact: (text: string) => string, log: Logger): RpcError {
  if (!isAppError(err) || err.code === ErrorCode.INTERNAL) {
    log.error({ err }, 'an RPC call failed unexpectedly');
    return { code: RpcCode.INTERNAL, message: 'internal error (logged by the daemon)', data: { code: ErrorCode.INTERNAL } };
  }
  const data: RpcError['data'] = { code: err.code };
  if (err.hint !== undefined) data.hint = redact(err.hint);
  const retry = err.details?.retryAfterMs;
  if (typeof retry === 'number') data.retryAfterMs = retry;
  return { code: rpcCodeOf(err.code), message: redact(err.message), data };
}

function invalidRequest(why: string): AppError {
  return new AppError(ErrorCode.RPC_INVALID_REQUEST, `not a JSON-RPC 2.0 request: ${why}`, {
    hint: 'send {"jsonrpc":"2.0","id":1,"method":"health","params":{}}',
  });
}

/** The daemon's context; each request adds its own ResponseBudget. */
export interface RpcContext extends Omit<MethodContext, 'budget'> {
  log: Logger;
  /** The daemon's answers being made or waiting to be read: every request's budget draws on it too. */
  held?: HeldAnswers;
}

/**
 * One call's answer, serialised: `readOnly` when the call changed nothing (an error, a read);
 * `undo` when what it changed can be undone should the answer not be sent (a queue_claim's
 * leases: jobs whose token reaches nobody would go dead unseen).
 */
interface Answer {
  id: Id;
  text: string;
  bytes: number;
  readOnly: boolean;
  undo?: () => Promise<boolean>;
}

function answer(id: Id, body: Omit<RpcResponse, 'jsonrpc' | 'id'>, readOnly: boolean): Answer {
  const text = JSON.stringify({ jsonrpc: '2.0', id, ...body });
  return { id, text, bytes: Buffer.byteLength(text), readOnly };
}

/** A read's answer up to this size is always sent (health, a lock status, a small record). */
const SMALL_ANSWER_BYTES = 64 * 1024;

/**
 * What a refused call did: `read` changed nothing; `write` ran and its changes are kept;
 * `undone` was a claim whose jobs went back as they were; `kept` a claim whose jobs could not
 * be handed back (the database closing) and return when their lease ends.
 */
type Outcome = 'read' | 'write' | 'undone' | 'kept';

const OUTCOME_TEXT: Record<Outcome, string> = {
  read: '',
  write: '; the call ran, and any change it made is kept',
  undone: '; nothing was claimed: the jobs it had leased were handed back as they were (attempts not counted, places in the queue kept)',
  kept: '; the jobs it leased could not be handed back, and return to the queue when their lease ends',
};

function tooLarge(bytes: number, left: number, max: number, outcome: Outcome, heldElsewhere = false): AppError {
  const size = Number.isFinite(bytes) ? `${bytes} bytes` : 'too long for a string';
  if (heldElsewhere) {
    return new AppError(
      ErrorCode.RESULT_TOO_LARGE,
      `the answer to this call (${size}) is larger than the room left (${Math.max(0, left)} bytes): ${HELD_FULL.why}${OUTCOME_TEXT[outcome]}`,
      { hint: HELD_FULL.hint },
    );
  }
  return new AppError(
    ErrorCode.RESULT_TOO_LARGE,
    `the answer to this call (${size}) is larger than what is left (${Math.max(0, left)} bytes) of [server] max_response_bytes (${max}) for this request${OUTCOME_TEXT[outcome]}`,
    { hint: 'ask for less at a time (a smaller limit, a smaller batch)' },
  );
}

/** Runs an answer's undo; an undo that fails is logged and reported as `kept`. */
async function undone(ctx: RpcContext, undo: (() => Promise<boolean>) | undefined, readOnly: boolean): Promise<Outcome> {
  if (undo === undefined) return readOnly ? 'read' : 'write';
  return (await undo()) ? 'undone' : 'kept';
}

async function one(ctx: MethodContext & RpcContext, req: unknown): Promise<Answer | undefined> {
  let id: Id = null;
  let bulk = false;
  let readOnly = true;
  try {
    if (req === null || typeof req !== 'object' || Array.isArray(req)) throw invalidRequest('each request must be an object');
    const r = req as Record<string, unknown>;
    if (Object.hasOwn(r, 'id')) {
      const v = r.id;
      if (v !== null && typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) throw invalidRequest('id must be a string, a number or null');
      if (typeof v === 'string' && v.length > 256) throw invalidRequest('id must be at most 256 characters');
      id = v as Id;
    }
    if (r.jsonrpc !== '2.0') throw invalidRequest('"jsonrpc" must be "2.0"');
    if (typeof r.method !== 'string') throw invalidRequest('"method" must be a string');
    for (const k of Object.keys(r)) if (!ENVELOPE_KEYS.has(k)) throw invalidRequest(`unknown member ${shown(k, 100)}`);
    const method = r.method;
    const { budget } = ctx;
    const run = async (): Promise<Answer | undefined> => {
      const result = await callMethod(ctx, method, r.params);
      const undoMethod = undoOf(method);
      const undo =
        undoMethod === undefined
          ? undefined
          : async (): Promise<boolean> => {
              try {
                await undoMethod(ctx, result);
                return true;
              } catch (err) {
                ctx.log.error({ err, method }, 'a call whose answer could not be sent could not be undone');
                return false;
              }
            };
      // A notification (no id) gets no answer, but it did run; a claim's jobs would reach nobody.
      if (!Object.hasOwn(r, 'id')) {
        await undo?.();
        return undefined;
      }
      let a: Answer;
      try {
        a = answer(id, { result: result === undefined ? null : result }, readOnly);
      } catch (err) {
        // Past what a string can hold: refused like any answer too large.
        if (err instanceof RangeError) {
          const left = budget.left;
          throw tooLarge(Infinity, left, budget.maxBytes, await undone(ctx, undo, readOnly), budget.heldElsewhere);
        }
        throw err;
      }
      // The comma before it in a batch is counted too. A claim fitted itself within room(), but
      // the calls beside it may have used the budget since: then its jobs go back.
      // A read's answer past a small size must fit too (session_get of 1 MB of metadata, in
      // batches, on many connections that never read: over 600 MB held against a 32 MiB bound).
      // A write's result is sent whatever is left: the write happened.
      const fitted = bulk || (readOnly && a.bytes > SMALL_ANSWER_BYTES);
      if (fitted && !budget.take(a.bytes + 1)) {
        const left = budget.left;
        const elsewhere = budget.heldElsewhere;
        throw tooLarge(a.bytes, left, budget.maxBytes, await undone(ctx, undo, readOnly), elsewhere);
      }
      if (!fitted) budget.charge(a.bytes + 1);
      if (undo !== undefined) a.undo = undo;
      return a;
    };
    bulk = isBulk(method);
    readOnly = isReadOnly(method);
    return await (bulk ? budget.exclusive(run) : run());
  } catch (err) {
    const isNotification = req !== null && typeof req === 'object' && !Array.isArray(req) && !Object.hasOwn(req, 'id');
    const error = toRpcError(err, (t) => ctx.app.redactor.redact(t), ctx.log);
    if (isNotification && error.code !== RpcCode.INVALID_REQUEST) return undefined;
    // An error changed nothing, or says what it changed (a write that failed rolled back).
    const a = answer(id, { error }, true);
    ctx.budget.charge(a.bytes + 1);
    return a;
  }
}

/**
 * The answers as one JSON text within max_response_bytes. The budget keeps bulk reads within
 * it; what can still pass it are results that had to be made whatever was left (a write's
 * result, a small read that finished after the bulk ones). Then answers are replaced by a
 * KC_RESULT_TOO_LARGE error under their own id, largest first, and only where the error is
 * smaller than the answer (so the total only shrinks and as many answers as possible stay):
 * first those of calls that changed nothing or can be undone (a claim, whose jobs are then
 * handed back before the error is sent), writes' only after them (last resort: one write's
 * result alone past the bound), so a caller learns which of its writes happened.
 */
async function assemble(ctx: MethodContext & RpcContext, answers: Answer[], batch: boolean): Promise<string> {
  const max = ctx.budget.maxBytes;
  let total = answers.reduce((n, a) => n + a.bytes, 0) + (batch ? 2 + answers.length - 1 : 0);
  if (total > max) {
    const refusal = (a: Answer, left: number, outcome: Outcome): Answer =>
      answer(a.id, { error: toRpcError(tooLarge(a.bytes, left, max, outcome), (t) => ctx.app.redactor.redact(t), ctx.log) }, true);
    const outcomes = (a: Answer): Outcome[] => (a.undo !== undefined ? ['undone', 'kept'] : [a.readOnly ? 'read' : 'write']);
    const droppable = (a: Answer): number => (a.readOnly || a.undo !== undefined ? 0 : 1);
    const order = [...answers.keys()].sort((x, y) => droppable(answers[x]!) - droppable(answers[y]!) || answers[y]!.bytes - answers[x]!.bytes);
    const chosen: { i: number; left: number }[] = [];
    for (const i of order) {
      if (total <= max) break;
      const a = answers[i]!;
      const left = max - (total - a.bytes);
      // The largest error it may become (an undo that fails says so at more length).
      const bytes = Math.max(...outcomes(a).map((o) => refusal(a, left, o).bytes));
      if (bytes >= a.bytes) continue;
      total += bytes - a.bytes;
      chosen.push({ i, left });
    }
    await Promise.all(
      chosen.map(async ({ i, left }) => {
        const a = answers[i]!;
        answers[i] = refusal(a, left, await undone(ctx, a.undo, a.readOnly));
      }),
    );
    total = answers.reduce((n, a) => n + a.bytes, 0) + (batch ? 2 + answers.length - 1 : 0);
    if (total > max) {
      // Only answers smaller than their own refusal are left; every write's outcome is kept.
      ctx.log.warn({ bytes: total, max }, 'an answer passes [server] max_response_bytes: what is left of it cannot shrink further');
    }
  }
  return batch ? `[${answers.map((a) => a.text).join(',')}]` : answers[0]!.text;
}

/**
 * Answers one HTTP request body, a single call or a batch, as JSON text within
 * [server] max_response_bytes. undefined means nothing to send back (only notifications).
 * Calls of a batch run concurrently, so their writes share commits; they share one
 * ResponseBudget.
 */
export async function handleRpcBody(base: RpcContext, body: string): Promise<string | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return JSON.stringify({
      jsonrpc: '2.0',
      id: null,
      error: { code: RpcCode.PARSE_ERROR, message: 'the request body is not valid JSON', data: { code: ErrorCode.RPC_INVALID_REQUEST } },
    });
  }
  const ctx = { ...base, budget: new ResponseBudget(base.maxResponseBytes, base.held) };
  try {
    if (!Array.isArray(parsed)) {
      const a = await one(ctx, parsed);
      return a === undefined ? undefined : await assemble(ctx, [a], false);
    }
    if (parsed.length === 0 || parsed.length > MAX_BATCH) {
      const error = toRpcError(invalidRequest(`a batch holds 1 to ${MAX_BATCH} requests, this one ${parsed.length}`), (t) => t, ctx.log);
      return JSON.stringify({ jsonrpc: '2.0', id: null, error });
    }
    const answers = (await Promise.all(parsed.map((r) => one(ctx, r)))).filter((a): a is Answer => a !== undefined);
    return answers.length === 0 ? undefined : await assemble(ctx, answers, true);
  } finally {
    // The HTTP server holds the answer from here until it is sent (HeldAnswers).
    ctx.budget.release();
  }
}
