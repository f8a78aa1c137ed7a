import { AppError, ErrorCode } from '../errors/index.js';
import { isOwnerAlive } from './liveness.js';
import { SESSION_COLUMNS } from './sql.js';
import { sessionFromRow, type Session, type SessionRow, type SessionState } from './types.js';
import { sessionNotFound } from './validate.js';
import type { WriterContext } from './writer/context.js';

/** Session writes, run inside the writer thread's transactions. */

const SELECT = `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`;


export interface SessionRef {
  no: number;
  state: SessionState;
}

/** The row number and state, for the append path; cached while no other process writes. */
export function sessionRef(ctx: WriterContext, id: string): SessionRef {
  const ref = ctx.cached(`session:${id}`, () => ctx.stmt('SELECT no, state FROM sessions WHERE id = ?').get(id) as SessionRef | undefined);
  if (ref === undefined) throw sessionNotFound(id);
  return ref;
}

export function loadSession(ctx: WriterContext, id: string): SessionRow {
  const row = ctx.stmt(SELECT).get(id) as SessionRow | undefined;
  if (row === undefined) throw sessionNotFound(id);
  return row;
}

export interface CreateSessionArgs {
  channel: string;
  userId: string | null;
  metadata: string | null;
}

function create(ctx: WriterContext, a: CreateSessionArgs): Session {
  const now = Date.now();
  const id = ctx.newId(now);
  const { lastInsertRowid } = ctx
    .stmt(
      `INSERT INTO sessions (id, channel, user_id, state, metadata, owner, created_at, updated_at)
       VALUES (?, ?, ?, 'active', ?, ?, ?, ?)`,
    )
    .run(id, a.channel, a.userId, a.metadata, ctx.owner, now, now);
  ctx.remember(`session:${id}`, { no: Number(lastInsertRowid), state: 'active' } satisfies SessionRef);
  return sessionFromRow({
    id,
    channel: a.channel,
    user_id: a.userId,
    state: 'active',
    metadata: a.metadata,
    created_at: now,
    updated_at: now,
  });
}

export interface SetStateArgs {
  id: string;
  state: SessionState;
}

/** `closed` is final: a closed conversation is not silently reopened by a stray call. */
function setState(ctx: WriterContext, a: SetStateArgs): Session {
  const row = loadSession(ctx, a.id);
  if (row.state === 'closed' && a.state !== 'closed') {
    throw new AppError(ErrorCode.SESSION_CLOSED, `session ${a.id} is closed and cannot become ${a.state}`, {
      hint: 'start a new session instead',
    });
  }
  const now = Date.now();
  ctx
    .stmt('UPDATE sessions SET state = ?, owner = ?, updated_at = ? WHERE id = ?')
    .run(a.state, a.state === 'active' ? ctx.owner : null, now, a.id);
  ctx.forget();
  return sessionFromRow({ ...row, state: a.state, updated_at: Math.max(now, row.updated_at) });
}

/** On a clean close this process stops owning its active sessions; they stay active, idle. */
function releaseOwned(ctx: WriterContext): number {
  return ctx.stmt("UPDATE sessions SET owner = NULL WHERE state = 'active' AND owner = ?").run(ctx.owner).changes;
}

/**
 * Sessions whose owning process died without closing were cut off mid-conversation: mark them
 * interrupted so the agent can offer to resume them. Owners that are still alive (a daemon next
 * to this CLI) keep theirs.
 */
export function markInterrupted(ctx: WriterContext): number {
  const owners = ctx
    .stmt("SELECT DISTINCT owner FROM sessions WHERE state = 'active' AND owner IS NOT NULL")
    .pluck()
    .all() as string[];
  let n = 0;
  const now = Date.now();
  ctx.forget();
  for (const owner of owners) {
    if (owner === ctx.owner || isOwnerAlive(owner, ctx.ownersDir)) continue;
    n += ctx
      .stmt("UPDATE sessions SET state = 'interrupted', owner = NULL, updated_at = ? WHERE state = 'active' AND owner = ?")
      .run(now, owner).changes;
  }
  return n;
}

export const sessionOps = {
  'sessions.create': create,
  'sessions.setState': setState,
  'sessions.releaseOwned': releaseOwned,
};
