import { optionsObject, type OptionNames } from '../errors/index.js';
import type { Db, Statement } from './sqlite.js';
import { guardRead } from './read-guard.js';
import { SESSION_COLUMNS } from './sql.js';
import { sessionFromRow, SESSION_STATES, type JsonObject, type Session, type SessionRow, type SessionState } from './types.js';
import { jsonStringBytes, jsonTextBytes, PageBound } from './page-bound.js';
import { checkNoSecret, NO_SCRUB, scrubJson, type Scrubber } from './scrub.js';
import { checkEnum, checkId, checkJsonObject, checkLimit, checkText, checkOptionalText, sessionNotFound } from './validate.js';
import type { WriterClient } from './writer/client.js';

export interface CreateSessionInput {
  channel?: string;
  userId?: string | null;
  metadata?: JsonObject | null;
}

const CREATE_INPUT: OptionNames<CreateSessionInput> = { channel: true, userId: true, metadata: true };

export interface ListSessionsOptions {
  limit?: number;
  state?: SessionState;
  /** Cursor: only sessions created before this session id. */
  before?: string;
  /**
   * Fail with KC_RESULT_TOO_LARGE, having read no further, when the page's channels, user ids
   * and metadata (plus 200 for the rest of each session) come to more than this many
   * characters: a bound on the memory one call can take (1,000 sessions of 1 MiB metadata
   * would be a gigabyte). Default: no bound.
   */
  maxChars?: number;
  /**
   * The same, in bytes of the page as JSON (UTF-8, escapes included): an upper bound on
   * JSON.stringify(page) reckoned before anything is serialised. The daemon passes what is left
   * of [server] max_response_bytes. Default: no bound.
   */
  maxBytes?: number;
}

const LIST_OPTIONS: OptionNames<ListSessionsOptions> = { limit: true, state: true, before: true, maxChars: true, maxBytes: true };

/** A listed session's JSON besides its channel, user id and metadata: field names, id, state, two times. */
const SESSION_CHARS = 200;

const COLUMNS = SESSION_COLUMNS;
const MAX_METADATA_BYTES = 1024 * 1024;

/**
 * Conversations. Writes go to the writer thread; reads run on this thread's read connection,
 * where a WAL snapshot never waits for the writer.
 */
export class Sessions {
  private readonly byId: Statement;
  private readonly listAll: Statement;
  private readonly listState: Statement;

  constructor(
    private readonly reader: Db,
    private readonly writer: WriterClient,
    private readonly scrub: Scrubber = NO_SCRUB,
  ) {
    this.byId = reader.prepare(`SELECT ${COLUMNS} FROM sessions WHERE id = ?`);
    this.listAll = reader.prepare(`SELECT ${COLUMNS} FROM sessions WHERE id < ? ORDER BY id DESC LIMIT ?`);
    this.listState = reader.prepare(
      `SELECT ${COLUMNS} FROM sessions WHERE state = ? AND id < ? ORDER BY id DESC LIMIT ?`,
    );
  }

  async create(given?: CreateSessionInput): Promise<Session> {
    const input = optionsObject(given, 'the input of sessions.create()', CREATE_INPUT);
    const userId = checkOptionalText(input.userId, 'userId', 1024);
    return this.writer.run('sessions.create', {
      channel: checkNoSecret(this.scrub, checkText(input.channel ?? 'default', 'channel', 256), 'channel'),
      userId: userId === null ? null : checkNoSecret(this.scrub, userId, 'userId'),
      metadata: this.scrubbed(checkJsonObject(input.metadata, 'metadata', MAX_METADATA_BYTES)?.text ?? null),
    });
  }

  private scrubbed(text: string | null): string | null {
    return text === null ? null : scrubJson(this.scrub, text, 'metadata');
  }

  async get(id: string): Promise<Session> {
    const row = guardRead(this.reader, this.reader.name, () => this.byId.get(checkId(id, 'id')) as SessionRow | undefined);
    if (row === undefined) {
      throw sessionNotFound(id);
    }
    return sessionFromRow(row);
  }

  /** Newest first. */
  async list(given?: ListSessionsOptions): Promise<Session[]> {
    const opts = optionsObject(given, 'the options of sessions.list()', LIST_OPTIONS);
    const limit = checkLimit(opts.limit, 'limit', 50, 1000);
    const before = opts.before === undefined ? '\u{10FFFF}' : checkId(opts.before, 'before');
    const state = opts.state === undefined ? undefined : checkEnum(opts.state, 'state', SESSION_STATES);
    const page = new PageBound(opts, 'sessions');
    return guardRead(this.reader, this.reader.name, () => {
      const rows = (state === undefined ? this.listAll.iterate(before, limit) : this.listState.iterate(state, before, limit)) as IterableIterator<SessionRow>;
      const out: Session[] = [];
      for (const r of rows) {
        const bytes = page.countsBytes ? SESSION_CHARS + jsonStringBytes(r.channel) + (r.user_id === null ? 4 : jsonStringBytes(r.user_id)) + jsonTextBytes(r.metadata) : 0;
        page.charge(SESSION_CHARS + r.channel.length + (r.user_id?.length ?? 0) + (r.metadata?.length ?? 0), bytes);
        out.push(sessionFromRow(r));
      }
      return out;
    });
  }

  async setState(id: string, state: SessionState): Promise<Session> {
    return this.writer.run('sessions.setState', { id: checkId(id, 'id'), state: checkEnum(state, 'state', SESSION_STATES) });
  }

  /** Picks up a paused or interrupted conversation in this process. */
  async resume(id: string): Promise<Session> {
    return this.setState(id, 'active');
  }
}
