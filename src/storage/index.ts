export { Storage } from './store.js';
export type { BackupOptions } from './store.js';
export type { CheckReport, BackupReport } from './maintenance/index.js';
export { diagnose, type Diagnosis } from './maintenance/check.js';
export { Sessions } from './sessions.js';
export type { CreateSessionInput, ListSessionsOptions } from './sessions.js';
export { Messages } from './messages.js';
export type { AppendMessageInput, ListMessagesOptions } from './messages.js';
export { MIGRATIONS, latestVersion } from './migrations/index.js';
export type { Migration } from './migrations/index.js';
export { SESSION_STATES, MESSAGE_ROLES } from './types.js';
export type { Session, SessionState, Message, MessageRole, JsonObject } from './types.js';
export { ID_CHARS, isUlid } from './ids.js';
export type { CheckpointResult } from './writer/protocol.js';
export { Queue } from './queue/queue.js';
export { QueueWorker, JobError } from './queue/work.js';
export type { JobHandler, WorkOptions, WorkerCounts } from './queue/work.js';
export { JOB_STATES } from './queue/types.js';
export type {
  Job,
  JobInfo,
  JobState,
  QueueStats,
  EnqueueOptions,
  BatchItem,
  ClaimOptions,
  FailOptions,
  FailOutcome,
} from './queue/types.js';
export { VaultRows } from './vault-rows.js';
export type { VaultEntryRow, VaultMetaInput, VaultMetaRow } from './vault-rows.js';
export { ObjectRows } from './objects/rows.js';
export type { ObjectRow, BlobRow, ObjectCounts, Collected, Freed, GcCursor } from './objects/rows.js';
export { ADDRESS, OBJECT_REF, OBJECT_REF_CHARS, TMP_DIR, TRASH_DIR, blobPath, blobCandidates, trashPath, tempName, tempOwner, listDir, removeFile, makeDir, ownDir, isOwnDir, fileError, isPlainFile } from './objects/layout.js';
export { fsErrorText } from './sqlite-errors.js';
export { newOwnerToken, isOwnerAlive, holdOwner, ownersDir } from './liveness.js';
export type { HeldOwner } from './liveness.js';
export { checkText, checkLimit } from './validate.js';
export type { Scrubber } from './scrub.js';
export { ensurePrivateDir, isPrivateTemp, orphanedWal, sideFileNotRegular, writePrivateFile } from './files.js';
