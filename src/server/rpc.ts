import type { Logger } from 'pino';
import { AppError, ErrorCode, isAppError, shown } from '../errors/index.js';
import { ResponseBudget } from './budget.js';
import { callMethod, isBulk, isReadOnly, type MethodContext } from './methods.js';

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
}

/** One call's answer, serialised: `readOnly` when the call changed nothing (an error, a read). */
interface Answer {
  id: Id;
  text: string;
  bytes: number;
  readOnly: boolean;
}

function answer(id: Id, body: Omit<RpcResponse, 'jsonrpc' | 'id'>, readOnly: boolean): Answer {
  const text = JSON.stringify({ jsonrpc: '2.0', id, ...body });
  return { id, text, bytes: Buffer.byteLength(text), readOnly };
}

function tooLarge(bytes: number, left: number, max: number, readOnly: boolean): AppError {
  return new AppError(
    ErrorCode.RESULT_TOO_LARGE,
    `the answer to this call (${Number.isFinite(bytes) ? `${bytes} bytes` : 'too long for a string'}) is larger than what is left (${Math.max(0, left)} bytes) of [server] max_response_bytes (${max}) for this request${readOnly ? '' : '; the call ran, and any change it made is kept'}`,
    { hint: 'ask for less at a time (a smaller limit, a smaller batch)' },
  );
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
      // A notification (no id) gets no answer, but it did run.
      if (!Object.hasOwn(r, 'id')) return undefined;
      let a: Answer;
      try {
        a = answer(id, { result: result === undefined ? null : result }, readOnly);
      } catch (err) {
        // Past what a string can hold: refused like any answer too large.
        if (err instanceof RangeError) throw tooLarge(Infinity, budget.left, budget.maxBytes, readOnly);
        throw err;
      }
      // The comma before it in a batch is counted too.
      // (A bulk read that changes something, queue_claim, has already fitted itself within room().)
      if (bulk && !budget.take(a.bytes + 1)) throw tooLarge(a.bytes, budget.left, budget.maxBytes, readOnly);
      if (!bulk) budget.charge(a.bytes + 1);
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
 * result, a small read that finished after the bulk ones). Then the largest answers of calls
 * that changed nothing, and only after them the largest others (last resort: one write's
 * result alone past the bound), are replaced by a KC_RESULT_TOO_LARGE error under their own
 * id: every other answer stays, so a caller learns which of its writes happened.
 */
function assemble(ctx: MethodContext & RpcContext, answers: Answer[], batch: boolean): string {
  const max = ctx.budget.maxBytes;
  let total = answers.reduce((n, a) => n + a.bytes, 0) + (batch ? 2 + answers.length - 1 : 0);
  if (total > max) {
    const order = [...answers.keys()].sort((x, y) => Number(answers[y]!.readOnly) - Number(answers[x]!.readOnly) || answers[y]!.bytes - answers[x]!.bytes);
    for (const i of order) {
      if (total <= max) break;
      const a = answers[i]!;
      const error = toRpcError(tooLarge(a.bytes, max - (total - a.bytes), max, a.readOnly), (t) => ctx.app.redactor.redact(t), ctx.log);
      const replaced = answer(a.id, { error }, true);
      total += replaced.bytes - a.bytes;
      answers[i] = replaced;
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
  const ctx = { ...base, budget: new ResponseBudget(base.maxResponseBytes) };
  if (!Array.isArray(parsed)) {
    const a = await one(ctx, parsed);
    return a === undefined ? undefined : assemble(ctx, [a], false);
  }
  if (parsed.length === 0 || parsed.length > MAX_BATCH) {
    const error = toRpcError(invalidRequest(`a batch holds 1 to ${MAX_BATCH} requests, this one ${parsed.length}`), (t) => t, ctx.log);
    return JSON.stringify({ jsonrpc: '2.0', id: null, error });
  }
  const answers = (await Promise.all(parsed.map((r) => one(ctx, r)))).filter((a): a is Answer => a !== undefined);
  return answers.length === 0 ? undefined : assemble(ctx, answers, true);
}
