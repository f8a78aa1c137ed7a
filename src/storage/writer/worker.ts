/**
 * The writer thread: the one connection of this process that writes. Requests arrive as
 * messages; every request that is waiting when a transaction starts joins it (group commit), so
 * N concurrent callers share one BEGIN IMMEDIATE ... COMMIT and, at durability "full", one fsync.
 * Each request runs inside its own savepoint, so one caller's failure rolls back only its own
 * changes. The fsync happens here, never on the main thread's event loop.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { AppError, ErrorCode } from '../../errors/index.js';
import { MIGRATIONS, runMigrations } from '../migrations/index.js';
import { sweepLeases } from '../queue/ops.js';
import { ownersDir } from '../liveness.js';
import { markInterrupted } from '../session-ops.js';
import { openConnection, type Db } from '../sqlite.js';
import { isSqliteError, toAppError } from '../sqlite-errors.js';
import { WriterContext } from './context.js';
import { DURABLE_OPS, SOLO_OPS, writeOps } from './ops.js';
import {
  CHECKPOINT_OP,
  CLOSE_OP,
  type FromWriter,
  type OpRequest,
  type OpResult,
  type SerializedError,
  type CheckpointResult,
  type CloseResult,
  type ToWriter,
  type WriterInit,
} from './protocol.js';

/** An upper bound on one transaction, so one huge burst cannot hold the lock for long. */
const MAX_BATCH = 2000;

const port = parentPort;
if (port === null) throw new Error('writer worker started outside a worker thread');
const init = workerData as WriterInit;

function serialize(err: unknown): SerializedError {
  const e = toAppError(err, { file: init.databasePath });
  const out: SerializedError = { code: e.code, message: e.message };
  if (e.hint !== undefined) out.hint = e.hint;
  if (e.details !== undefined) out.details = e.details;
  return out;
}

function send(msg: FromWriter): void {
  port!.postMessage(msg);
}

/** Errors that belong to one request; anything else (I/O, full disk, corruption) fails the batch. */
function isRequestError(err: unknown): boolean {
  if (err instanceof AppError) return true;
  return isSqliteError(err, 'SQLITE_CONSTRAINT') || isSqliteError(err, 'SQLITE_TOOBIG') || isSqliteError(err, 'SQLITE_MISMATCH');
}

let db!: Db;
let ctx!: WriterContext;
let opened: Db | undefined;
const pending: OpRequest[] = [];
let closed = false;

function start(): void {
  db = openConnection(init.databasePath, {
    durability: init.durability,
    lockTimeoutMs: init.lockTimeoutMs,
    ...(init.cipherKey === undefined ? {} : { cipherKey: init.cipherKey }),
  });
  opened = db;
  ctx = new WriterContext(db, init.owner, ownersDir(init.databasePath));
  const migrated = runMigrations(db, MIGRATIONS, init.databasePath, Date.now);
  const interrupted = runTransaction(() => markInterrupted(ctx));
  const recoveredJobs = runTransaction(() => sweepLeases(ctx));
  send({
    kind: 'ready',
    info: {
      pragmas: {
        journalMode: String(db.pragma('journal_mode', { simple: true })),
        synchronous: Number(db.pragma('synchronous', { simple: true })),
        foreignKeys: Number(db.pragma('foreign_keys', { simple: true })),
        busyTimeoutMs: Number(db.pragma('busy_timeout', { simple: true })),
      }, schemaVersion: migrated.version, migrationsApplied: migrated.applied, interruptedSessions: interrupted, recoveredJobs },
  });
}

/**
 * At durability "normal" a batch that holds an operation that must survive power loss (an
 * enqueue) is committed with synchronous=FULL. SQLite refuses to change the setting inside a
 * transaction, so it is chosen before BEGIN, and only switched when it changes.
 */
let syncFull = init.durability === 'full';
function chooseSync(batch: OpRequest[]): void {
  if (init.durability === 'full') return;
  let full = false;
  for (const [, name] of batch) {
    if (DURABLE_OPS.has(name)) {
      full = true;
      break;
    }
  }
  if (full !== syncFull) {
    ctx.stmt(full ? 'PRAGMA synchronous = FULL' : 'PRAGMA synchronous = NORMAL').run();
    // On macOS a plain fsync does not reach the platter; "durable" asks for F_FULLFSYNC there too.
    ctx.stmt(full ? 'PRAGMA fullfsync = ON' : 'PRAGMA fullfsync = OFF').run();
    syncFull = full;
  }
}

/** Transaction control through prepared statements: parsing them on every batch costs. */
const tx = {
  begin: (): void => {
    ctx.stmt('BEGIN IMMEDIATE').run();
    ctx.beginTransaction();
  },
  commit: (): void => void ctx.stmt('COMMIT').run(),
  rollback: (): void => {
    ctx.forget();
    if (db.inTransaction) ctx.stmt('ROLLBACK').run();
  },
  savepoint: (): void => void ctx.stmt('SAVEPOINT op').run(),
  release: (): void => void ctx.stmt('RELEASE op').run(),
  undo: (): void => {
    ctx.forget();
    ctx.stmt('ROLLBACK TO op').run();
    ctx.stmt('RELEASE op').run();
  },
};

function runTransaction<T>(fn: () => T): T {
  tx.begin();
  try {
    const out = fn();
    tx.commit();
    return out;
  } catch (err) {
    tx.rollback();
    throw err;
  }
}

type OpFn = (c: WriterContext, a: unknown) => unknown;

function lookup(name: string): OpFn {
  const op = (writeOps as Record<string, OpFn>)[name];
  if (op === undefined) throw new AppError(ErrorCode.INTERNAL, `unknown write operation ${name}`);
  return op;
}

/** The whole transaction failed (lock timeout, I/O, full disk): nobody in it was acknowledged. */
function failAll(batch: OpRequest[], err: unknown): OpResult[] {
  try {
    tx.rollback();
  } catch {
    // SQLite may already have rolled back on its own (SQLITE_FULL, IOERR).
  }
  const e = serialize(err);
  return batch.map(([id]) => [id, 0, e]);
}

/**
 * The fast path: every request of the batch in one transaction with no savepoints. Requests
 * check before they write, so they rarely fail; when one does, the batch is rolled back and
 * run again in isolated mode, where each request has its own savepoint and fails alone.
 */
function runBatch(batch: OpRequest[]): OpResult[] {
  const results: OpResult[] = [];
  try {
    chooseSync(batch);
    tx.begin();
    for (const [id, name, args] of batch) results.push([id, 1, lookup(name)(ctx, args)]);
    tx.commit();
    return results;
  } catch (err) {
    if (!isRequestError(err)) return failAll(batch, err);
    tx.rollback();
    if (batch.length === 1) return [[batch[0]![0], 0, serialize(err)]];
    return runIsolated(batch);
  }
}

function runIsolated(batch: OpRequest[]): OpResult[] {
  const results: OpResult[] = [];
  try {
    tx.begin();
    for (const [id, name, args] of batch) {
      tx.savepoint();
      try {
        const value = lookup(name)(ctx, args);
        tx.release();
        results.push([id, 1, value]);
      } catch (err) {
        if (!isRequestError(err)) throw err;
        tx.undo();
        results.push([id, 0, serialize(err)]);
      }
    }
    tx.commit();
    return results;
  } catch (err) {
    return failAll(batch, err);
  }
}

/**
 * Folds the WAL into the database file and truncates it, without waiting for anyone. A TRUNCATE
 * checkpoint holds the write lock while it waits for readers; with the usual busy timeout a
 * long reader elsewhere (a backup, a db check) would stall every writer of every process for
 * that long. With no wait it does what it can now and says `busy` when others were in the way;
 * the last connection to close checkpoints and removes the WAL anyway.
 */
function checkpointNow(): CheckpointResult {
  db.pragma('busy_timeout = 0');
  try {
    const row = (db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[])[0];
    return { busy: (row?.busy ?? 1) !== 0, walFrames: row?.log ?? -1, checkpointedFrames: row?.checkpointed ?? -1 };
  } finally {
    db.pragma(`busy_timeout = ${Math.trunc(init.lockTimeoutMs)}`);
  }
}

/**
 * CLOSE: hand back active sessions, fold the WAL into the database file so that it can be
 * copied alone, and release the file. A checkpoint that fails (SQLITE_FULL: the database file
 * must grow into room the WAL itself takes) loses nothing, since every commit is in the WAL and
 * the next open replays it; so it does not fail the close, whose caller's work is done. It is
 * handed back for the main thread to log, and the file is released whatever happened.
 */
function closeNow(): CloseResult {
  closed = true;
  try {
    runTransaction(() => writeOps['sessions.releaseOwned'](ctx));
  } catch {
    // Best effort: a session left with a dead owner is marked interrupted on the next open.
  }
  try {
    checkpointNow();
    return { checkpointError: null };
  } catch (err) {
    return { checkpointError: serialize(err) };
  } finally {
    db.close();
  }
}

function control(req: OpRequest): OpResult {
  const [id, name] = req;
  try {
    return [id, 1, name === CHECKPOINT_OP ? checkpointNow() : closeNow()];
  } catch (err) {
    return [id, 0, serialize(err)];
  }
}

function pump(): void {
  for (;;) {
    let msg: { message: ToWriter } | undefined;
    while ((msg = receiveMessageOnPort(port!) as { message: ToWriter } | undefined) !== undefined) {
      pending.push(...msg.message.items);
    }
    if (pending.length === 0) return;
    const results: OpResult[] = [];
    while (pending.length > 0) {
      const first = pending[0]!;
      if (first[1] === CLOSE_OP || first[1] === CHECKPOINT_OP) {
        pending.shift();
        results.push(closed ? [first[0], 1, null] : control(first));
        continue;
      }
      let n = 0;
      if (SOLO_OPS.has(first[1])) n = 1;
      else while (n < pending.length && n < MAX_BATCH && pending[n]![1] !== CLOSE_OP && pending[n]![1] !== CHECKPOINT_OP && !SOLO_OPS.has(pending[n]![1])) n++;
      const batch = pending.splice(0, n);
      if (closed) {
        for (const [id] of batch) {
          results.push([id, 0, { code: ErrorCode.DB_CLOSED, message: 'the database is closed' }]);
        }
        continue;
      }
      results.push(...runBatch(batch));
      // Answer this batch before starting the next, so its callers are not held by later work.
      send({ kind: 'results', items: results.splice(0) });
    }
    if (results.length > 0) send({ kind: 'results', items: results });
    if (closed) {
      port!.close();
      return;
    }
  }
}

try {
  start();
  port.on('message', (m: ToWriter) => {
    pending.push(...m.items);
    pump();
  });
} catch (err) {
  try {
    // Opening failed part way: release the file so the main thread can report and exit cleanly.
    opened?.close();
  } catch {
    // Nothing more to release.
  }
  send({ kind: 'fatal', error: serialize(err) });
  port.close();
}
