import { AppError, ErrorCode } from '../errors/index.js';
import type { Db, Statement } from './sqlite.js';
import { MESSAGE_ROLES, messageFromRow, type JsonObject, type Message, type MessageRole, type MessageRow } from './types.js';
import { checkCount, checkEnum, checkId, checkJsonObject, checkLimit, checkText } from './validate.js';
import type { WriterClient } from './writer/client.js';

export interface AppendMessageInput {
  role: MessageRole;
  content: string;
  tokenCount?: number | null;
  metadata?: JsonObject | null;
}

export interface ListMessagesOptions {
  /** How many of the newest messages to return (default 50, at most 1000). */
  limit?: number;
  /** Cursor: only messages older than this message id (pass the first id of the last page). */
  before?: string;
}

const COLUMNS = 'id, session_id, role, content, token_count, metadata, created_at';

export class Messages {
  private readonly newest: Statement;
  private readonly seqOf: Statement;
  private readonly sessionExists: Statement;
  private readonly countOf: Statement;

  constructor(
    reader: Db,
    private readonly writer: WriterClient,
    private readonly maxBytes: number,
  ) {
    this.newest = reader.prepare(
      `SELECT ${COLUMNS} FROM messages WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
    );
    this.seqOf = reader.prepare('SELECT seq FROM messages WHERE id = ? AND session_id = ?').pluck();
    this.sessionExists = reader.prepare('SELECT 1 FROM sessions WHERE id = ?').pluck();
    this.countOf = reader.prepare('SELECT count(*) FROM messages WHERE session_id = ?').pluck();
  }

  /** Resolves once the message is committed at the configured durability. */
  async append(sessionId: string, input: AppendMessageInput): Promise<Message> {
    const content = checkText(input.content, 'content', this.maxBytes, true);
    const metadataText = checkJsonObject(input.metadata, 'metadata', this.maxBytes);
    if (metadataText !== null && Buffer.byteLength(content) + metadataText.length > this.maxBytes) {
      throw new AppError(ErrorCode.INVALID_INPUT, `content and metadata together exceed ${this.maxBytes} bytes`, {
        hint: 'store large files as attachments, or raise storage.max_message_bytes',
      });
    }
    const args = {
      sessionId: checkId(sessionId, 'sessionId'),
      role: checkEnum(input.role, 'role', MESSAGE_ROLES),
      content,
      tokenCount: checkCount(input.tokenCount, 'tokenCount'),
      metadata: metadataText,
    };
    const { id, createdAt } = await this.writer.run('messages.append', args);
    return {
      id,
      sessionId: args.sessionId,
      role: args.role,
      content,
      tokenCount: args.tokenCount,
      metadata: metadataText === null ? null : (JSON.parse(metadataText) as JsonObject),
      createdAt,
    };
  }

  /** The newest `limit` messages (older than `before`), oldest first. */
  async list(sessionId: string, opts: ListMessagesOptions = {}): Promise<Message[]> {
    const sid = checkId(sessionId, 'sessionId');
    const limit = checkLimit(opts.limit, 'limit', 50, 1000);
    let bound = Number.MAX_SAFE_INTEGER;
    if (opts.before !== undefined) {
      const seq = this.seqOf.get(checkId(opts.before, 'before'), sid) as number | undefined;
      if (seq === undefined) {
        throw new AppError(ErrorCode.NOT_FOUND, `no message ${JSON.stringify(opts.before)} in session ${JSON.stringify(sid)}`, {
          hint: 'pass as `before` the id of a message returned by an earlier list call',
        });
      }
      bound = seq;
    }
    const rows = this.newest.all(sid, bound, limit) as MessageRow[];
    if (rows.length === 0 && this.sessionExists.get(sid) === undefined) {
      throw new AppError(ErrorCode.NOT_FOUND, `no session with id ${JSON.stringify(sid)}`);
    }
    const out = new Array<Message>(rows.length);
    for (let i = 0; i < rows.length; i++) out[rows.length - 1 - i] = messageFromRow(rows[i]!);
    return out;
  }

  async count(sessionId: string): Promise<number> {
    return this.countOf.get(checkId(sessionId, 'sessionId')) as number;
  }
}
