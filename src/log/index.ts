import fs from 'node:fs';
import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config/index.js';
import { printable } from './printable.js';

export type { Logger } from 'pino';
export { printable } from './printable.js';

export interface LoggerOptions {
  level?: LogLevel;
  /** File descriptor to write to; stderr by default so stdout stays for results. */
  fd?: number;
  /** `json` (default): one JSON object per line. `text`: `warn: message (key=value)` for people at a terminal. */
  format?: 'json' | 'text';
}

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const NOT_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** Renders a pino JSON line as one line of text. */
export function textLine(json: string): string {
  const o = JSON.parse(json) as Record<string, unknown>;
  const fields = Object.entries(o)
    .filter(([k]) => !NOT_FIELDS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const level = LEVEL_NAMES[Number(o.level)] ?? String(o.level);
  return `${level}: ${printable(String(o.msg ?? ''))}${fields.length > 0 ? ` (${printable(fields.join(', '))})` : ''}\n`;
}

/**
 * The package's logger: pino, writing synchronously (an error logged right before exit is not
 * lost; the volume is small enough for that to cost nothing).
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const fd = opts.fd ?? 2;
  const options = { level: opts.level ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (opts.format === 'text') {
    return pino(options, { write: (line: string) => void fs.writeSync(fd, textLine(line)) });
  }
  return pino(options, pino.destination({ fd, sync: true }));
}
