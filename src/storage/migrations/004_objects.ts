/**
 * The object store's index (the bytes live in files under the vault directory's `objects/`).
 *
 * `object_blobs` is one row per stored file, named by its address: the SHA-256 of the content
 * for a plain object, a keyed hash (HMAC under a key from the vault) for an encrypted one, so
 * the same bytes put twice are stored once. `objects` is one row per put: the reference handed
 * out (`obj_<ULID>`), with the name and content type the caller gave, pointing at its blob.
 *
 * `message_objects` says which messages reference which objects (found in their metadata when
 * they are appended); gc keeps every object that a row here, a live job's payload or a
 * session's metadata names.
 */
export const sql = `
CREATE TABLE object_blobs (
  address      TEXT PRIMARY KEY CHECK (length(address) = 64),
  encrypted    INTEGER NOT NULL CHECK (encrypted = 0 OR encrypted = 1),
  size         INTEGER NOT NULL CHECK (size >= 0),
  stored_size  INTEGER NOT NULL CHECK (stored_size >= 0),
  created_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE objects (
  no            INTEGER PRIMARY KEY,
  id            TEXT NOT NULL UNIQUE,
  address       TEXT NOT NULL REFERENCES object_blobs (address),
  content_type  TEXT NOT NULL,
  name          TEXT,
  created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX objects_address ON objects (address);
CREATE INDEX objects_created ON objects (created_at);

CREATE TABLE message_objects (
  object_no    INTEGER NOT NULL REFERENCES objects (no),
  message_seq  INTEGER NOT NULL REFERENCES messages (seq),
  PRIMARY KEY (object_no, message_seq)
) STRICT, WITHOUT ROWID;
`;
