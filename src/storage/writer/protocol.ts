import type { Durability } from '../../config/index.js';

/** Messages between the main thread and the writer thread. Kept small: they are cloned. */

export interface WriterInit {
  databasePath: string;
  durability: Durability;
  lockTimeoutMs: number;
  owner: string;
  cipherKey?: string;
}

export interface SerializedError {
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/** The pragmas as the writer connection reports them, for `db check` and tests. */
export interface WriterPragmas {
  journalMode: string;
  synchronous: number;
  foreignKeys: number;
  busyTimeoutMs: number;
}

export interface ReadyInfo {
  pragmas: WriterPragmas;
  schemaVersion: number;
  migrationsApplied: number[];
  interruptedSessions: number;
  /** Jobs whose lease had expired or whose holder had exited, found at open. */
  recoveredJobs: { returned: number; dead: number };
}

export interface CheckpointResult {
  /** Another connection was writing or reading: the WAL could not be fully folded in and truncated. */
  busy: boolean;
  walFrames: number;
  checkpointedFrames: number;
}

/** What CLOSE answers: the file is released; a checkpoint that failed is reported, not thrown. */
export interface CloseResult {
  checkpointError: SerializedError | null;
}

/** One requested operation: [request id, op name, args]. */
export type OpRequest = [number, string, unknown];
/** One outcome: [request id, 1, value] or [request id, 0, error]. */
export type OpResult = [number, 1, unknown] | [number, 0, SerializedError];

export type ToWriter = { kind: 'ops'; items: OpRequest[] };

export type FromWriter =
  | { kind: 'ready'; info: ReadyInfo }
  | { kind: 'fatal'; error: SerializedError }
  | { kind: 'results'; items: OpResult[] };

/** Control operations run between transactions, in order with the writes around them. */
export const CLOSE_OP = '__close';
export const CHECKPOINT_OP = '__checkpoint';
