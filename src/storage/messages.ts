import { AppError, ErrorCode, optionsObject, type OptionNames } from '../errors/index.js';
import { rowId, parseRowId } from './ids.js';
import { refsIn } from './objects/layout.js';
import { guardRead } from './read-guard.js';
import type { Db, Statement } from './sqlite.js';
import { bucketOf, COUNT_SESSION_MESSAGES, MESSAGES_IN_BUCKET, SESSION_BUCKETS_DESC } from './sql.js';
import { MESSAGE_ROLES, messageFromRow, type JsonObject, type Message, type MessageRole, type MessageRow } from './types.js';
import { jsonStringBytes, jsonTextBytes, PageBound } from './page-bound.js';
import { NO_SCRUB, scrubJson, type Scrubber } from './scrub.js';
import { checkCount, checkEnum, checkId, checkJsonObject, checkLimit, checkText, sessionNotFound, shownId } from './validate.js';
import type { WriterClient } from './writer/client.js';

export interface AppendMessageInput {
  role: MessageRole;
  content: string;
  tokenCount?: number | null;
  metadata?: JsonObject | null;
}

const APPEND_INPUT: OptionNames<AppendMessageInput> = { role: true, content: true, tokenCount: true, metadata: true };

export interface ListMessagesOptions {
  /** How many of the newest messages to return (default 50, at most 1000). */
  limit?: number;
  /** Cursor: only messages older than this message id (pass the first id of the last page). */
  before?: string;
  /**
   * Fail with KC_RESULT_TOO_LARGE, having read no further, when the page's content and metadata
   * come to more than this many characters: a bound on the memory one call can take.
   * Default: no bound.
   */
  maxChars?: number;
  /**
   * The same, in bytes of the page as JSON (UTF-8, escapes included): an upper bound on
   * JSON.stringify(page) reckoned before anything is serialised. The daemon passes what is left
   * of [server] max_response_bytes. Default: no bound.
   */
  maxBytes?: number;
}

const LIST_OPTIONS: OptionNames<ListMessagesOptions> = { limit: true, before: true, maxChars: true, maxBytes: true };

/** A listed message's JSON besides its content, metadata and session id: field names, id, role, two numbers. */
const MESSAGE_FIELDS_BYTES = 200;

function objectRefsOf(metadata: string | null): { objectRefs?: string[] } {
  if (metadata === null) return {};
  const refs = refsIn(metadata);
  return refs.size === 0 ? {} : { objectRefs: [...refs] };
}

export class Messages {
  private readonly buckets: Statement;
  private readonly inBucket: Statement;
  private readonly seqOf: Statement;
  private readonly sessionNo: Statement;
  private readonly countOf: Statement;

  constructor(
    private readonly reader: Db,
    private readonly writer: WriterClient,
    private readonly maxBytes: number,
    private readonly scrub: Scrubber = NO_SCRUB,
  ) {
    this.buckets = reader.prepare(SESSION_BUCKETS_DESC).pluck();
    this.inBucket = reader.prepare(MESSAGES_IN_BUCKET);
    this.seqOf = reader.prepare('SELECT created_at FROM messages WHERE seq = ? AND session_no = ?').pluck();
    this.sessionNo = reader.prepare('SELECT no FROM sessions WHERE id = ?').pluck();
    this.countOf = reader.prepare(COUNT_SESSION_MESSAGES).pluck();
  }

  /** Resolves once the message is committed at the configured durability. */
  async append(sessionId: string, message: AppendMessageInput): Promise<Message> {
    // Required: undefined is refused as null is, not taken as an empty message.
    const input = optionsObject(message ?? null, 'the message given to messages.append()', APPEND_INPUT);
    const given = checkText(input.content, 'content', this.maxBytes, true, 'store large files as attachments (app.objects), or raise storage.max_message_bytes');
    const metadata = checkJsonObject(input.metadata, 'metadata', this.maxBytes);
    if (metadata !== null && Buffer.byteLength(given, 'utf8') + metadata.bytes > this.maxBytes) {
      throw new AppError(ErrorCode.INVALID_INPUT, `content and metadata together exceed ${this.maxBytes} bytes`, {
        hint: 'store large files as attachments, or raise storage.max_message_bytes',
      });
    }
    // Secrets are taken out before the write; what is returned is what was stored.
    const content = this.scrub.text(given);
    const metadataText = metadata === null ? null : scrubJson(this.scrub, metadata.text, 'metadata');
    const args = {
      sessionId: checkId(sessionId, 'sessionId'),
      role: checkEnum(input.role, 'role', MESSAGE_ROLES),
      content,
      tokenCount: checkCount(input.tokenCount, 'tokenCount'),
      metadata: metadataText,
      ...objectRefsOf(metadataText),
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
  async list(sessionId: string, given?: ListMessagesOptions): Promise<Message[]> {
    const opts = optionsObject(given, 'the options of messages.list()', LIST_OPTIONS);
    const sid = checkId(sessionId, 'sessionId');
    const limit = checkLimit(opts.limit, 'limit', 50, 1000);
    const before = opts.before === undefined ? undefined : checkId(opts.before, 'before');
    const bound = new PageBound(opts, 'messages');
    return guardRead(this.reader, this.reader.name, () => this.newest(sid, limit, before, bound));
  }

  private newest(sid: string, limit: number, before: string | undefined, page: PageBound): Message[] {
    const no = this.noOf(sid);
    let bound = Number.MAX_SAFE_INTEGER;
    if (before !== undefined) {
      const ref = parseRowId(before);
      const createdAt = ref === undefined ? undefined : (this.seqOf.get(ref.seq, no) as number | undefined);
      if (ref === undefined || createdAt === undefined || rowId(createdAt, ref.seq) !== before) {
        throw new AppError(ErrorCode.NOT_FOUND, `no message ${shownId(before)} in session ${shownId(sid)}`, {
          hint: 'pass as `before` the id of a message returned by an earlier list call',
        });
      }
      bound = ref.seq;
    }
    // Newest first, bucket by bucket, visiting only the buckets that hold this session's messages.
    const rows: MessageRow[] = [];
    const fixedBytes = page.countsBytes ? MESSAGE_FIELDS_BYTES + jsonStringBytes(sid) : 0;
    for (const bucket of this.buckets.iterate(no, bucketOf(bound)) as IterableIterator<number>) {
      for (const r of this.inBucket.iterate(bucket, no, bound, limit - rows.length) as IterableIterator<MessageRow>) {
        const bytes = page.countsBytes ? fixedBytes + jsonStringBytes(r.content) + jsonTextBytes(r.metadata) : 0;
        page.charge(r.content.length + (r.metadata?.length ?? 0), bytes);
        rows.push(r);
      }
      if (rows.length >= limit) break;
    }
    const out = new Array<Message>(rows.length);
    for (let i = 0; i < rows.length; i++) out[rows.length - 1 - i] = messageFromRow(rows[i]!, sid);
    return out;
  }

  async count(sessionId: string): Promise<number> {
    const sid = checkId(sessionId, 'sessionId');
    return guardRead(this.reader, this.reader.name, () => this.countOf.get(this.noOf(sid)) as number);
  }

  private noOf(sessionId: string): number {
    const no = this.sessionNo.get(sessionId) as number | undefined;
    if (no === undefined) {
      throw sessionNotFound(sessionId);
    }
    return no;
  }
}
