/**
 * The secret vault's rows. The storage part keeps them as opaque blobs; src/vault does the crypto.
 *
 * `vault_meta` has at most one row: the vault's random id, the Argon2id parameters and salt, and
 * the master key wrapped (AES-256-GCM) by the key derived from the passphrase. Changing the
 * passphrase rewrites only this row.
 *
 * `vault_entries` holds one AES-256-GCM blob per secret name, sealed with the master key and
 * bound to the name and the vault id. Nothing here is plaintext but the names.
 */
export const sql = `
CREATE TABLE vault_meta (
  id               INTEGER PRIMARY KEY CHECK (id = 1),
  vault_id         BLOB NOT NULL CHECK (length(vault_id) = 16),
  kdf              TEXT NOT NULL,
  kdf_memory_kib   INTEGER NOT NULL,
  kdf_iterations   INTEGER NOT NULL,
  kdf_parallelism  INTEGER NOT NULL,
  salt             BLOB NOT NULL,
  wrapped_key      BLOB NOT NULL,
  created_at       INTEGER NOT NULL,
  changed_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE vault_entries (
  name        TEXT PRIMARY KEY,
  sealed      BLOB NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`;
