import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/index.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: LogLevel;
  /** File descriptor to write JSON lines to; stderr by default so stdout stays for results. */
  fd?: number;
}

/**
 * The package's logger: JSON lines on stderr. Synchronous writes, so an error logged right
 * before exit is not lost; the daemon's volume is small enough for that to cost nothing.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    { level: opts.level ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: opts.fd ?? 2, sync: true }),
  );
}
