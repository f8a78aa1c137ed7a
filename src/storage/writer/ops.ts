import { messageOps } from '../message-ops.js';
import { queueOps } from '../queue/ops.js';
import { sessionOps } from '../session-ops.js';

/**
 * Every write operation the writer thread can run, by name. The main thread only imports the
 * type of this object, so the SQL stays on the writer's side.
 */
export const writeOps = {
  ...sessionOps,
  ...messageOps,
  ...queueOps,
};

export type WriteOps = typeof writeOps;
export type OpName = keyof WriteOps;
export type OpArgs<K extends OpName> = Parameters<WriteOps[K]>[1];
export type OpReturn<K extends OpName> = ReturnType<WriteOps[K]>;
