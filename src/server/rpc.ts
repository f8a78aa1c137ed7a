import type { Logger } from 'pino';
import { AppError, ErrorCode, isAppError, shown } from '../errors/index.js';
import { callMethod, type MethodContext } from './methods.js';

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

export interface RpcContext extends MethodContext {
  log: Logger;
}

async function one(ctx: RpcContext, req: unknown): Promise<RpcResponse | undefined> {
  let id: Id = null;
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
    const result = await callMethod(ctx, r.method, r.params);
    // A notification (no id) gets no answer, but it did run.
    if (!Object.hasOwn(r, 'id')) return undefined;
    return { jsonrpc: '2.0', id, result: result === undefined ? null : result };
  } catch (err) {
    const isNotification = req !== null && typeof req === 'object' && !Array.isArray(req) && !Object.hasOwn(req, 'id');
    const error = toRpcError(err, (t) => ctx.app.redactor.redact(t), ctx.log);
    if (isNotification && error.code !== RpcCode.INVALID_REQUEST) return undefined;
    return { jsonrpc: '2.0', id, error };
  }
}

/**
 * Answers one HTTP request body: a single call or a batch. undefined means nothing to send
 * back (only notifications). Calls of a batch run concurrently, so their writes share commits.
 */
export async function handleRpcBody(ctx: RpcContext, body: string): Promise<RpcResponse | RpcResponse[] | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return {
      jsonrpc: '2.0',
      id: null,
      error: { code: RpcCode.PARSE_ERROR, message: 'the request body is not valid JSON', data: { code: ErrorCode.RPC_INVALID_REQUEST } },
    };
  }
  if (!Array.isArray(parsed)) return one(ctx, parsed);
  if (parsed.length === 0 || parsed.length > MAX_BATCH) {
    const error = toRpcError(invalidRequest(`a batch holds 1 to ${MAX_BATCH} requests, this one ${parsed.length}`), (t) => t, ctx.log);
    return { jsonrpc: '2.0', id: null, error };
  }
  const answers = (await Promise.all(parsed.map((r) => one(ctx, r)))).filter((a): a is RpcResponse => a !== undefined);
  return answers.length === 0 ? undefined : answers;
}
