/**
 * The sizes that bound a claimed job's JSON, in one module without imports: the config loader
 * checks with them that [server] max_response_bytes can carry the largest job a queue_claim
 * may return (else that job would stop every RPC claim of its queue for good).
 */

/** A job's last_error is at most this many characters, plus TRUNCATED_MARK (see errorText). */
export const MAX_ERROR_CHARS = 16 * 1024;
export const TRUNCATED_MARK = '… (truncated)';

/**
 * The largest last_error as a JSON string: every UTF-16 unit escaped as \u00XX (6 bytes, more
 * than its UTF-8), and the quotes. The other texts stored there are short constants.
 */
export const MAX_ERROR_JSON_BYTES = 6 * (MAX_ERROR_CHARS + TRUNCATED_MARK.length) + 2;

/** Queue names are ASCII, at most this many characters. */
export const MAX_QUEUE_NAME_CHARS = 128;

/**
 * A claimed job's JSON besides its payload, last error and queue name: the field names, a
 * 26-character id, the lease token, five numbers of at most 16 digits, and a comma.
 */
export const JOB_FIELDS_BYTES = 256;

/** An answer's JSON-RPC envelope around its result: `{"jsonrpc":"2.0","id":...,"result":}` with an id of up to 256 characters, escaped. */
export const ENVELOPE_BYTES = 2048;

/** A claimed job's JSON besides its payload and last error (see JOB_FIELDS_BYTES). */
export function jobBytes(queue: string): number {
  return JOB_FIELDS_BYTES + Buffer.byteLength(JSON.stringify(queue));
}

/**
 * The smallest max_response_bytes whose answer to a queue_claim alone in its request holds
 * any one job: a payload of `maxPayloadBytes`, the largest last error and queue name, the
 * envelope, and the brackets of a batch and of the job list.
 */
export function claimFloorBytes(maxPayloadBytes: number): number {
  return 2 + ENVELOPE_BYTES + 2 + maxPayloadBytes + MAX_ERROR_JSON_BYTES + JOB_FIELDS_BYTES + MAX_QUEUE_NAME_CHARS + 2;
}
