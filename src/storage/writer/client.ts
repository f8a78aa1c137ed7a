import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { AppError, ErrorCode } from '../../errors/index.js';
import type { OpArgs, OpName, OpReturn } from './ops.js';
import {
  CHECKPOINT_OP,
  CLOSE_OP,
  type CheckpointResult,
  type CloseResult,
  type FromWriter,
  type OpRequest,
  type ReadyInfo,
  type SerializedError,
  type ToWriter,
  type WriterInit,
} from './protocol.js';

/**
 * A turn's requests are sent together at setImmediate, but a burst of this many goes at once, so
 * the writer can start on it while the rest of the burst is still being prepared (measured best
 * between 16 and 64 with 100 concurrent callers).
 */
const FLUSH_AT = 32;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

function revive(e: SerializedError): AppError {
  return new AppError(e.code, e.message, {
    ...(e.hint === undefined ? {} : { hint: e.hint }),
    ...(e.details === undefined ? {} : { details: e.details }),
  });
}

/**
 * The main thread's handle on the writer thread. Calls made in the same turn of the event loop
 * travel in one message; the writer folds everything waiting into one transaction. The worker is
 * unref'd while nothing is in flight, so an embedding program that forgets close() still exits.
 */
export class WriterClient {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Pending>();
  private outbox: OpRequest[] = [];
  private flushScheduled = false;
  private nextId = 1;
  private dead: AppError | undefined;
  private closing = false;
  private readonly exited: Promise<void>;

  private constructor(worker: Worker, private readonly log: Logger) {
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
  }

  static start(init: WriterInit, log: Logger): Promise<{ client: WriterClient; info: ReadyInfo }> {
    // env: {}: the thread reads no variable, and a copy of the environment made now would keep
    // BLUFIO_VAULT_KEY (taken out of process.env only after the database is open) for its lifetime.
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init, env: {} });
    const client = new WriterClient(worker, log);
    return new Promise((resolve, reject) => {
      const onEarlyExit = (code: number): void =>
        reject(new AppError(ErrorCode.INTERNAL, `the database writer thread exited during start (code ${code})`));
      worker.once('exit', onEarlyExit);
      worker.once('error', (err) => reject(new AppError(ErrorCode.INTERNAL, `the database writer failed to start: ${err.message}`, { cause: err })));
      worker.on('message', (m: FromWriter) => {
        if (m.kind === 'ready') {
          worker.off('exit', onEarlyExit);
          client.attach();
          resolve({ client, info: m.info });
        } else if (m.kind === 'fatal') {
          worker.off('exit', onEarlyExit);
          reject(revive(m.error));
        } else {
          client.onResults(m.items);
        }
      });
    });
  }

  private attach(): void {
    this.worker.unref();
    this.worker.on('error', (err) => this.fail(new AppError(ErrorCode.INTERNAL, `the database writer crashed: ${err.message}`, { cause: err })));
    this.worker.on('exit', (code) => {
      if (!this.closing || this.waiting.size > 0) {
        this.fail(new AppError(ErrorCode.DB_CLOSED, `the database writer stopped (exit code ${code})`));
      }
    });
  }

  private fail(err: AppError): void {
    if (this.dead === undefined) {
      this.dead = err;
      if (!this.closing) this.log.error({ err: { code: err.code, message: err.message } }, 'database writer lost');
    }
    if (this.waiting.size === 0) return;
    // A write in flight may have committed before the thread stopped (its answer is what was
    // lost): say so, so that a caller reads back before it retries rather than writing twice.
    const unknown = new AppError(err.code, `${err.message}; a write in flight may or may not have been committed`, {
      hint: 'open the database again and read back what this call wrote before retrying it',
      cause: err,
    });
    for (const p of this.waiting.values()) p.reject(unknown);
    this.waiting.clear();
  }

  private onResults(items: [number, 0 | 1, unknown][]): void {
    for (const [id, ok, value] of items) {
      const p = this.waiting.get(id);
      if (p === undefined) continue;
      this.waiting.delete(id);
      if (ok === 1) p.resolve(value);
      else p.reject(revive(value as SerializedError));
    }
    if (this.waiting.size === 0 && !this.closing) this.worker.unref();
  }

  private flush = (): void => {
    this.flushScheduled = false;
    const items = this.outbox;
    if (items.length === 0) return;
    this.outbox = [];
    const msg: ToWriter = { kind: 'ops', items };
    this.worker.postMessage(msg);
  };

  private enqueue(name: string, args: unknown): Promise<unknown> {
    if (this.dead !== undefined) return Promise.reject(this.dead);
    if (this.closing) {
      return Promise.reject(new AppError(ErrorCode.DB_CLOSED, 'the database is closed', { hint: 'open it again with openBlufio()' }));
    }
    const id = this.nextId++;
    const promise = new Promise<unknown>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    if (this.waiting.size === 1) this.worker.ref();
    this.outbox.push([id, name, args]);
    if (this.outbox.length >= FLUSH_AT) {
      this.flush();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    return promise;
  }

  run<K extends OpName>(name: K, args: OpArgs<K>): Promise<OpReturn<K>> {
    return this.enqueue(name, args) as Promise<OpReturn<K>>;
  }

  checkpoint(): Promise<CheckpointResult> {
    return this.enqueue(CHECKPOINT_OP, null) as Promise<CheckpointResult>;
  }

  /** Runs after every write already submitted; resolves when the file is released. */
  async close(): Promise<void> {
    if (this.closing) return this.exited;
    if (this.dead !== undefined) {
      await this.worker.terminate();
      return;
    }
    const done = this.enqueue(CLOSE_OP, null);
    this.closing = true;
    // Hold the event loop open until the thread has really released the file.
    this.worker.ref();
    try {
      // A CLOSE that follows another one answers null: the first already reported.
      const checkpointError = ((await done) as CloseResult | null)?.checkpointError;
      if (checkpointError != null) {
        // Code and message only: the hint of KC_DB_FULL speaks of a rolled-back write, not of this.
        this.log.warn(
          { err: { code: checkpointError.code, message: checkpointError.message } },
          'the WAL could not be folded into the database file at close; nothing is lost: the next open replays it',
        );
      }
    } finally {
      await this.exited;
    }
  }
}
