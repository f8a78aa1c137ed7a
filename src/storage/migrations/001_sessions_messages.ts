/**
 * Sessions and messages.
 *
 * A message's public id is computed from its `seq` (the rowid, handed out in commit order by the
 * single writer) and its creation time: see messageId() in ids.ts. Messages point at their
 * session by the session's small integer `no`.
 *
 * The index that finds a session's messages is bucketed by time: (seq >> 12, session_no, seq).
 * Every append has to update some index page, and with a plain (session_no, seq) index N busy
 * sessions dirty N different pages per commit (each session's newest entries live in their own
 * page), so a WAL commit of 100 messages from 100 sessions wrote ~100 index pages. Within the
 * current bucket of 4096 messages the entries of all sessions sit together in a few pages, so
 * the same commit dirties about ten: half the write cost per message, and no slowdown as the
 * database grows to millions of messages. `session_buckets` says which buckets hold a session's
 * messages, so a read visits only those.
 *
 * A session's last activity is read from its newest message rather than written to the session
 * row on every append, which would dirty one more page per message.
 */
export const sql = `
CREATE TABLE sessions (
  no          INTEGER PRIMARY KEY,
  id          TEXT NOT NULL UNIQUE,
  channel     TEXT NOT NULL,
  user_id     TEXT,
  state       TEXT NOT NULL CHECK (state IN ('active', 'paused', 'closed', 'interrupted')),
  metadata    TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  -- The process instance that holds an active session; a dead owner means a crash.
  owner       TEXT,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_active_owner ON sessions (owner) WHERE state = 'active';
CREATE INDEX sessions_state ON sessions (state, id);

CREATE TABLE messages (
  seq          INTEGER PRIMARY KEY,
  session_no   INTEGER NOT NULL REFERENCES sessions (no),
  role         TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content      TEXT NOT NULL,
  token_count  INTEGER CHECK (token_count IS NULL OR token_count >= 0),
  metadata     TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_bucket_session ON messages (seq >> 12, session_no, seq);

CREATE TABLE session_buckets (
  session_no  INTEGER NOT NULL REFERENCES sessions (no),
  bucket      INTEGER NOT NULL,
  PRIMARY KEY (session_no, bucket)
) STRICT, WITHOUT ROWID;
`;
