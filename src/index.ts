/** The library face of blufio: `import { openBlufio, AppError } from 'blufio'`. */
export { openBlufio } from './app/index.js';
export { startDaemon, daemonLockHeld, readStateFiles } from './server/index.js';
export type { Daemon, DaemonOptions, DaemonInfo } from './server/index.js';
export type { BlufioApp, OpenOptions } from './app/index.js';
export { ObjectStore } from './objects/index.js';
export type { ObjectInfo, ObjectStats, PutOptions, PutResult, ObjectSource, GcReport, VerifyReport, VerifyProblem } from './objects/index.js';
export { AppError, ErrorCode, isAppError } from './errors/index.js';
export type { ErrorCodeValue } from './errors/index.js';
export { loadConfig } from './config/index.js';
export type { BlufioConfig, Durability } from './config/index.js';
export { createLogger } from './log/index.js';
export { Secret, Vault, maskSecret } from './vault/index.js';
export type { SecretListing, VaultStatus, PassphraseProvider, PassphrasePurpose } from './vault/index.js';
export type { Logger } from './log/index.js';
export { Redactor, RULES as REDACTION_RULES } from './redact/index.js';
export type { ExtraRule, Rule as RedactionRule } from './redact/index.js';
export { createSafeFetch, createSafeDispatcher, judgeAddress } from './net/index.js';
export type { SafeFetch, SafeFetchOptions, AddressVerdict, NetLogger } from './net/index.js';
export { SESSION_STATES, MESSAGE_ROLES, JOB_STATES, JobError } from './storage/index.js';
export type {
  Session,
  SessionState,
  Message,
  MessageRole,
  JsonObject,
  CreateSessionInput,
  ListSessionsOptions,
  AppendMessageInput,
  ListMessagesOptions,
  CheckReport,
  BackupReport,
  BackupOptions,
  Queue,
  QueueWorker,
  Job,
  JobInfo,
  JobState,
  JobHandler,
  QueueStats,
  EnqueueOptions,
  BatchItem,
  ClaimOptions,
  FailOptions,
  FailOutcome,
  WorkOptions,
  WorkerCounts,
} from './storage/index.js';
