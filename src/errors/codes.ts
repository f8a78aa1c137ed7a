/**
 * Every error code this package raises. They are a public contract: add freely, rename never.
 * The `KC_DB_*` encryption codes are fixed by the DB-encryption contract.
 */
export const ErrorCode = {
  /** Something this package did not expect: a bug, reported with its cause. */
  INTERNAL: 'KC_INTERNAL',
  INVALID_INPUT: 'KC_INVALID_INPUT',
  NOT_FOUND: 'KC_NOT_FOUND',
  CLI_USAGE: 'KC_CLI_USAGE',

  CONFIG_INVALID: 'KC_CONFIG_INVALID',
  CONFIG_NOT_FOUND: 'KC_CONFIG_NOT_FOUND',

  SCHEMA_TOO_NEW: 'KC_SCHEMA_TOO_NEW',
  DB_MIGRATION_FAILED: 'KC_DB_MIGRATION_FAILED',
  DB_MIGRATION_MODIFIED: 'KC_DB_MIGRATION_MODIFIED',
  DB_CORRUPT: 'KC_DB_CORRUPT',
  DB_READONLY: 'KC_DB_READONLY',
  DB_OPEN_FAILED: 'KC_DB_OPEN_FAILED',
  DB_FULL: 'KC_DB_FULL',
  DB_IO: 'KC_DB_IO',
  DB_LOCK_TIMEOUT: 'KC_DB_LOCK_TIMEOUT',
  DB_CLOSED: 'KC_DB_CLOSED',
  BACKUP_FAILED: 'KC_BACKUP_FAILED',
  BACKUP_EXISTS: 'KC_BACKUP_EXISTS',

  SESSION_CLOSED: 'KC_SESSION_CLOSED',

  /** The lease token no longer holds the job: its deadline passed, or it was released, re-claimed or finished. */
  QUEUE_LEASE_LOST: 'KC_QUEUE_LEASE_LOST',
  /** The vault exists but no passphrase was given (or it is locked). */
  VAULT_LOCKED: 'KC_VAULT_LOCKED',
  /** The passphrase does not open the vault. */
  VAULT_KEY_INVALID: 'KC_VAULT_KEY_INVALID',
  /** An entry (or the vault's key record) fails authentication: changed, moved or damaged. */
  VAULT_TAMPERED: 'KC_VAULT_TAMPERED',

  /** The safe fetch refused an address that is not public (and not in security.allowed_private_ips). */
  SSRF_BLOCKED: 'KC_SSRF_BLOCKED',
  /** Plain http (or a non-loopback bind without TLS) where only TLS is allowed. */
  TLS_REQUIRED: 'KC_TLS_REQUIRED',
  /** The safe fetch refused a redirect: one that would send the request body to another origin, or whose Location cannot be parsed. */
  NET_REDIRECT_BLOCKED: 'KC_NET_REDIRECT_BLOCKED',
  /** The safe fetch: the whole request (connect, redirects, reading the body) took longer than requestTimeoutMs. */
  NET_TIMEOUT: 'KC_NET_TIMEOUT',

  /** Only dead jobs can be re-queued. */
  QUEUE_NOT_DEAD: 'KC_QUEUE_NOT_DEAD',

  /** vault.json cannot be parsed or fails its version's JSON Schema. */
  MANIFEST_INVALID: 'KC_MANIFEST_INVALID',
  /** vault.json was written by a newer blufio (a schema_version this one does not know). */
  MANIFEST_TOO_NEW: 'KC_MANIFEST_TOO_NEW',
  /** Encryption was enabled over an existing plaintext database and `db-encrypt migrate` has not run yet. */
  DB_ENCRYPTION_PENDING: 'KC_DB_ENCRYPTION_PENDING',
  /** The database file does not match what vault.json says (plaintext where encrypted is recorded, or the reverse). */
  DB_STATE_MISMATCH: 'KC_DB_STATE_MISMATCH',

  /**
   * A result would be larger than the bound set for it ([server] max_response_bytes over RPC;
   * a safe fetch's maxResponseBytes for a response body).
   */
  RESULT_TOO_LARGE: 'KC_RESULT_TOO_LARGE',
  /** blufio serve: the data directory can be written by other users, who could redirect clients and take the token. */
  SERVER_DIR_UNSAFE: 'KC_SERVER_DIR_UNSAFE',
  /** blufio serve: another daemon already serves this data directory. */
  SERVER_RUNNING: 'KC_SERVER_RUNNING',
  /** blufio serve: the address or port cannot be bound (in use, not an address of this machine). */
  SERVER_BIND_FAILED: 'KC_SERVER_BIND_FAILED',
  /** The daemon is stopping and takes no new calls. */
  SERVER_SHUTTING_DOWN: 'KC_SERVER_SHUTTING_DOWN',
  /** RPC: no bearer token, or the wrong one. */
  RPC_UNAUTHORIZED: 'KC_RPC_UNAUTHORIZED',
  /** RPC: refused before authentication: a browser's Origin or cross-site request, a foreign Host header, a WebSocket. */
  RPC_FORBIDDEN: 'KC_RPC_FORBIDDEN',
  /** RPC: the request body is larger than server.max_body_bytes. */
  RPC_BODY_TOO_LARGE: 'KC_RPC_BODY_TOO_LARGE',
  /** RPC: not JSON, or not a JSON-RPC 2.0 request. */
  RPC_INVALID_REQUEST: 'KC_RPC_INVALID_REQUEST',
  /** RPC: no method of that name. */
  RPC_METHOD_NOT_FOUND: 'KC_RPC_METHOD_NOT_FOUND',
  /** RPC: too many failed vault_unlock attempts; wait `retryAfterMs`. */
  RPC_RATE_LIMITED: 'KC_RPC_RATE_LIMITED',

  /** An object is larger than [objects] max_object_bytes. */
  OBJECT_TOO_LARGE: 'KC_OBJECT_TOO_LARGE',
  /** Storing the object would take the store past [objects] max_total_bytes. */
  OBJECT_STORE_FULL: 'KC_OBJECT_STORE_FULL',
  /** An object's file fails its check (hash, authentication, length) or is missing: changed or damaged. */
  OBJECT_CORRUPT: 'KC_OBJECT_CORRUPT',
  /** delete() of an object a message (or a live job, or a session) still references, without `force`. */
  OBJECT_REFERENCED: 'KC_OBJECT_REFERENCED',

  // Fixed by the DB-encryption contract (seed 002).
  DB_KEY_INVALID: 'KC_DB_KEY_INVALID',
  DB_LOCKED: 'KC_DB_LOCKED',
  DB_ENCRYPTION_UNSUPPORTED: 'KC_DB_ENCRYPTION_UNSUPPORTED',
  DB_ENCRYPTION_MIGRATION_FAILED: 'KC_DB_ENCRYPTION_MIGRATION_FAILED',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];
