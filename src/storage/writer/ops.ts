import { messageOps } from '../message-ops.js';
import { objectOps } from '../objects/ops.js';
import { queueOps } from '../queue/ops.js';
import { sessionOps } from '../session-ops.js';
import { vaultOps } from '../vault-ops.js';

/**
 * Every write operation the writer thread can run, by name. The main thread only imports the
 * type of this object, so the SQL stays on the writer's side.
 */
export const writeOps = {
  ...sessionOps,
  ...messageOps,
  ...queueOps,
  ...vaultOps,
  ...objectOps,
};

/**
 * Operations whose commit is synced to disk even at durability "normal". An acknowledged enqueue
 * must survive power loss, not only a crash (a lost ack or claim only delivers a job again,
 * which at-least-once allows; a lost enqueue loses the job), and so must a secret or a new
 * passphrase, which the user may have thrown away everywhere else once told it is stored.
 */
export const DURABLE_OPS: ReadonlySet<string> = new Set([
  'queue.enqueue',
  'queue.requeue',
  'vault.init',
  'vault.rewrap',
  'vault.put',
  'vault.delete',
  // A file is unlinked after these commit: the commit must not be lost after the file is.
  'objects.delete',
  'objects.collect',
  'objects.sweep',
]);

/**
 * Operations that move files inside their transaction run in a transaction of their own: never
 * rolled back and run again because another request of a batch failed (the file moves would
 * not be undone with the rows).
 */
export const SOLO_OPS: ReadonlySet<string> = new Set(['objects.commit', 'objects.delete', 'objects.collect', 'objects.sweep']);

export type WriteOps = typeof writeOps;
export type OpName = keyof WriteOps;
export type OpArgs<K extends OpName> = Parameters<WriteOps[K]>[1];
export type OpReturn<K extends OpName> = ReturnType<WriteOps[K]>;
