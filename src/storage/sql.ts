/**
 * SQL that the read side and the writer side must agree on. The bucket expression is spelt
 * `seq >> 12` everywhere: SQLite uses the expression index only for that same expression.
 */

/** Messages per index bucket (4096): seq >> 12. */
export const BUCKET_SIZE = 4096;

export function bucketOf(seq: number): number {
  return Math.floor(seq / BUCKET_SIZE);
}

/** The newest message of a session: its newest bucket, then the newest entry in it. */
const LAST_MESSAGE_AT = `(SELECT m.created_at FROM messages m
    WHERE (m.seq >> 12) = (SELECT max(sb.bucket) FROM session_buckets sb WHERE sb.session_no = sessions.no)
      AND m.session_no = sessions.no
    ORDER BY m.seq DESC LIMIT 1)`;

/**
 * A session as handed out. Its `updated_at` is the later of the row's own change time and its
 * newest message, so appends need not touch the session row.
 */
export const SESSION_COLUMNS = `id, channel, user_id, state, metadata, created_at,
  max(updated_at, coalesce(${LAST_MESSAGE_AT}, 0)) AS updated_at`;

export const MESSAGE_COLUMNS = 'seq, role, content, token_count, metadata, created_at';

/** The buckets that hold a session's messages, newest first, from a given bucket down. */
export const SESSION_BUCKETS_DESC = 'SELECT bucket FROM session_buckets WHERE session_no = ? AND bucket <= ? ORDER BY bucket DESC';

/** A session's messages in one bucket, newest first, below a seq bound. */
export const MESSAGES_IN_BUCKET = `SELECT ${MESSAGE_COLUMNS} FROM messages
  WHERE (seq >> 12) = ? AND session_no = ? AND seq < ? ORDER BY seq DESC LIMIT ?`;

/**
 * Counted bucket by bucket, each through the expression index. The unary + strips the column's
 * INTEGER affinity: compared with an affinity the expression index would not be used.
 */
export const COUNT_SESSION_MESSAGES = `SELECT coalesce(sum((SELECT count(*) FROM messages m
    WHERE (m.seq >> 12) = +sb.bucket AND m.session_no = sb.session_no)), 0)
  FROM session_buckets sb WHERE sb.session_no = ?`;
