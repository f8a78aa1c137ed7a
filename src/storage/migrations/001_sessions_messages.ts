/**
 * Sessions and messages. Messages carry two keys: `seq`, the rowid that orders a conversation in
 * commit order whatever the clocks did, and `id`, the public ULID that sorts by creation time.
 */
export const sql = `
CREATE TABLE sessions (
  id          TEXT PRIMARY KEY NOT NULL,
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
  id           TEXT NOT NULL UNIQUE,
  session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
  role         TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content      TEXT NOT NULL,
  token_count  INTEGER CHECK (token_count IS NULL OR token_count >= 0),
  metadata     TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
  created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX messages_session_seq ON messages (session_id, seq);
`;
