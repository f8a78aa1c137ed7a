export { startDaemon } from './daemon.js';
export type { Daemon, DaemonOptions } from './daemon.js';
export { METHODS } from './methods.js';
export { RpcCode, MAX_BATCH } from './rpc.js';
export type { RpcResponse, RpcError } from './rpc.js';
export { DAEMON_FILE, TOKEN_FILE, DAEMON_LOCK_FILE, daemonLockHeld, readStateFiles } from './state-files.js';
export type { DaemonInfo } from './state-files.js';
