import { AppError, ErrorCode } from '../errors/index.js';
import { loadSession } from './session-ops.js';
import type { MessageRole } from './types.js';
import type { WriterContext } from './writer/context.js';

/** Message writes, run inside the writer thread's transactions. */

export interface AppendArgs {
  sessionId: string;
  role: MessageRole;
  content: string;
  tokenCount: number | null;
  metadata: string | null;
}

/** Only the generated fields travel back: the caller already holds the content. */
export interface AppendResult {
  id: string;
  createdAt: number;
}

function append(ctx: WriterContext, a: AppendArgs): AppendResult {
  const session = loadSession(ctx, a.sessionId);
  if (session.state === 'closed') {
    throw new AppError(ErrorCode.SESSION_CLOSED, `session ${a.sessionId} is closed; it takes no new messages`, {
      hint: 'start a new session instead',
    });
  }
  const now = Date.now();
  const id = ctx.newId(now);
  ctx
    .stmt(
      `INSERT INTO messages (id, session_id, role, content, token_count, metadata, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(id, a.sessionId, a.role, a.content, a.tokenCount, a.metadata, now);
  ctx.stmt('UPDATE sessions SET updated_at = ? WHERE id = ? AND updated_at < ?').run(now, a.sessionId, now);
  return { id, createdAt: now };
}

export const messageOps = {
  'messages.append': append,
};
