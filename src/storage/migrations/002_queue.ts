/**
 * The job queue.
 *
 * A job is waiting (not due before `run_at`: delayed, or backing off after a failure), pending
 * (due, waiting for a worker), running (leased to a worker until `lease_until` under
 * `lease_token`), completed (kept for the retention time, then deleted) or dead (out of attempts,
 * kept with its last error until someone re-queues it). A job's public id is made from its rowid
 * and creation time, like a message id.
 *
 * Queues are numbered so that every index holds a small integer rather than the name. Each
 * state has its own partial index, ordered the way that state is read:
 * - `jobs_waiting`: a queue's waiting jobs by due time. A claim first moves the ones now due to
 *   pending (a range read), so that
 * - `jobs_due`, a queue's pending jobs by priority (highest first) then by the time they became
 *   due, holds only due jobs: a claim takes the first `limit` entries and reads nothing else,
 *   however many jobs are scheduled for later.
 * - `jobs_leased`: running jobs by lease deadline, so finding expired leases is a range read.
 * - `jobs_completed`: completed jobs by finish time, so retention deletes a range; the queue
 *   number rides along so counting a queue's completed jobs reads only the index.
 * - `jobs_dead`: a queue's dead jobs, newest last, for listing and counting them.
 * A job moves between these as its state changes; no index holds entries for every job.
 *
 * Payloads live in their own table, written once and deleted with the job: a claim, an ack or a
 * lease extension rewrites the small job row, never a payload of up to max_payload_bytes (SQLite
 * rewrites a whole record, overflow pages included, when any column of it changes).
 *
 * The CHECKs spell value lists with OR, not IN: SQLite evaluates `x IN ('a', 'b', 'c')` in a
 * CHECK by building a small temporary table on every row written, which measured at a third of
 * the cost of an ack.
 *
 * An idempotency key is unique per queue for as long as its job exists: waiting, pending, running, dead,
 * or completed within the retention time.
 */
export const sql = `
CREATE TABLE queues (
  no    INTEGER PRIMARY KEY,
  name  TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE jobs (
  no               INTEGER PRIMARY KEY,
  queue_no         INTEGER NOT NULL REFERENCES queues (no),
  state            TEXT NOT NULL
                   CHECK (state = 'waiting' OR state = 'pending' OR state = 'running' OR state = 'completed' OR state = 'dead'),
  priority         INTEGER NOT NULL,
  run_at           INTEGER NOT NULL,
  attempts         INTEGER NOT NULL CHECK (attempts >= 0),
  max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
  idempotency_key  TEXT,
  lease_token      TEXT,
  lease_until      INTEGER,
  -- The process instance holding the lease; a dead owner's leases are returned at once.
  lease_owner      TEXT,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  finished_at      INTEGER,
  CHECK ((state = 'running') = (lease_until IS NOT NULL)),
  CHECK ((state = 'completed' OR state = 'dead') = (finished_at IS NOT NULL))
) STRICT;
-- Same rowid as the job; deleted with it.
CREATE TABLE job_payloads (
  no       INTEGER PRIMARY KEY,
  payload  TEXT NOT NULL CHECK (json_valid(payload))
) STRICT;

CREATE INDEX jobs_waiting ON jobs (queue_no, run_at) WHERE state = 'waiting';
CREATE INDEX jobs_due ON jobs (queue_no, priority DESC, run_at) WHERE state = 'pending';
CREATE INDEX jobs_leased ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_completed ON jobs (finished_at, queue_no) WHERE state = 'completed';
CREATE INDEX jobs_dead ON jobs (queue_no, finished_at) WHERE state = 'dead';
CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue_no, idempotency_key) WHERE idempotency_key IS NOT NULL;
`;
