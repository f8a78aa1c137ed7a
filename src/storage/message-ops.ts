import { AppError, ErrorCode } from '../errors/index.js';
import { rowId } from './ids.js';
import { linkMessageObjects } from './objects/ops.js';
import { sessionRef } from './session-ops.js';
import { bucketOf } from './sql.js';
import type { MessageRole } from './types.js';
import type { WriterContext } from './writer/context.js';

/** Message writes, run inside the writer thread's transactions. */

export interface AppendArgs {
  sessionId: string;
  role: MessageRole;
  content: string;
  tokenCount: number | null;
  metadata: string | null;
  /** Objects the metadata names (app.objects references), linked to the message so gc keeps them. */
  objectRefs?: string[];
}

/** Only the generated fields travel back: the caller already holds the content. */
export interface AppendResult {
  id: string;
  createdAt: number;
}

function append(ctx: WriterContext, a: AppendArgs): AppendResult {
  const session = sessionRef(ctx, a.sessionId);
  if (session.state === 'closed') {
    throw new AppError(ErrorCode.SESSION_CLOSED, `session ${a.sessionId} is closed; it takes no new messages`, {
      hint: 'start a new session instead',
    });
  }
  const tail = ctx.messageTail();
  tail.seq += 1;
  // Never earlier than the message before it, so ids sort in commit order even if the clock steps back.
  tail.createdAt = Math.max(Date.now(), tail.createdAt);
  ctx
    .stmt(
      `INSERT INTO messages (seq, session_no, role, content, token_count, metadata, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(tail.seq, session.no, a.role, a.content, a.tokenCount, a.metadata, tail.createdAt);
  if (a.objectRefs !== undefined) linkMessageObjects(ctx, tail.seq, a.objectRefs);
  const bucket = bucketOf(tail.seq);
  ctx.cached(`bucket:${session.no}:${bucket}`, () =>
    ctx.stmt('INSERT OR IGNORE INTO session_buckets (session_no, bucket) VALUES (?, ?)').run(session.no, bucket),
  );
  return { id: rowId(tail.createdAt, tail.seq), createdAt: tail.createdAt };
}

export const messageOps = {
  'messages.append': append,
};
