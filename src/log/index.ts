import fs from 'node:fs';
import pino, { type Logger } from 'pino';
import { invalidInput, isAppError } from '../errors/index.js';
import type { LogLevel } from '../config/index.js';
import { printable } from './printable.js';
import { renderBinary } from '../redact/binary.js';

export type { Logger } from 'pino';
export { printable, hasUnsafeChars } from './printable.js';

export interface LoggerOptions {
  level?: LogLevel;
  /** File descriptor to write to; stderr by default so stdout stays for results. */
  fd?: number;
  /** `json` (default): one JSON object per line. `text`: `warn: message (key=value)` for people at a terminal. */
  format?: 'json' | 'text';
  /** Every line passes through it before it is written (see src/redact). */
  redactor?: LineRedactor;
  /** `text` only: an `err` field whole, stack included (the CLI's BLUFIO_DEBUG=1), not `CODE: message`. */
  stacks?: boolean;
}

/** What the logger needs of a redactor: one call per serialised JSON line. */
export interface LineRedactor {
  /** `from`: the text before it holds no secret and need not be scanned. */
  redactJson(line: string, from?: number): string;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const NOT_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/**
 * Renders a pino JSON line as one line of text. The line is the redacted one (the redactor
 * runs on pino's JSON first), so whatever is taken from it here is redacted too.
 */
export function textLine(json: string, stacks = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `${printable(json.trimEnd())}\n`; // never let a log call throw
  }
  const fields = Object.entries(o)
    .filter(([k]) => !NOT_FIELDS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : ((k === 'err' && !stacks && errorField(v)) || JSON.stringify(v))}`);
  const level = LEVEL_NAMES[Number(o.level)] ?? String(o.level);
  return `${level}: ${printable(String(o.msg ?? ''))}${fields.length > 0 ? ` (${printable(fields.join(', '))})` : ''}\n`;
}

/**
 * An error in a text line, as `KC_CODE: message` (an AppError's code, else its type:
 * `TypeError: ...`), the way the CLI reports errors: pino's serialisation carries the stack and
 * every property, which put a whole stack trace in front of the `error[CODE]` line of an
 * expected error. Undefined for a value that is no error (it is shown as JSON).
 */
function errorField(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { code, type, message } = v as Record<string, unknown>;
  if (typeof message !== 'string') return undefined;
  const label = typeof code === 'string' && code.startsWith('KC_') ? code : type;
  return typeof label === 'string' ? `${label}: ${message}` : message;
}

/**
 * The package's logger: pino, writing synchronously (an error logged right before exit is not
 * lost; the volume is small enough for that to cost nothing).
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const fd = opts.fd ?? 2;
  const options = pinoOptions(opts.level ?? 'info', { pid: process.pid }, opts.redactor);
  if (opts.format === 'text') {
    return pino(options, { write: (line: string) => void fs.writeSync(fd, textLine(line, opts.stacks)) });
  }
  return pino(options, pino.destination({ fd, sync: true }));
}

function pinoOptions(level: string, base: Record<string, unknown> | null, redactor: LineRedactor | undefined): pino.LoggerOptions {
  return {
    level,
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    // streamWrite sees the finished JSON line: message, bindings of child loggers, serialised
    // objects and errors with their stacks, all in one string and one pass. Bytes (a Buffer
    // is a list of numbers in JSON, where no secret is recognised) are shown by their size.
    ...(redactor === undefined
      ? {}
      : {
          hooks: {
            streamWrite: (line: string) => redactedLine(redactor, line),
            // Bytes as the merge object (log.info(buf)) are spread into the line as "0":115,"1":107,...
            // keys of their own, which nothing above can tell from an object's: replaced before pino sees them.
            logMethod(this: pino.Logger, args: Parameters<pino.LogFn>, method: pino.LogFn) {
              const first = args[0] as unknown;
              if (ArrayBuffer.isView(first) || first instanceof ArrayBuffer) {
                (args as unknown[])[0] = { binary: `[binary ${first.byteLength} bytes]` };
              }
              return method.apply(this, args);
            },
          },
        }),
  };
}

/**
 * A log line as it may be written: redacted, or, when it cannot be scanned (see Redactor.#scan),
 * withheld whole, its level and time kept. A log call never throws for it, and never writes
 * what was not scanned.
 */
function redactedLine(redactor: LineRedactor, line: string): string {
  try {
    return redactor.redactJson(renderBinary(line), pinoPrefix(line));
  } catch (err) {
    const at = pinoPrefix(line);
    const head = at > 0 ? line.slice(0, at) : '{"level":50';
    const why = isAppError(err) ? err.message : 'it could not be redacted';
    return `${head},"msg":${JSON.stringify(`[a log line of ${line.length} characters was withheld: ${why}]`)}}\n`;
  }
}

const PINO_PREFIX = '{"level":30,"time":"2026-11-23T14:05:00.000Z"'.length;

/**
 * The length of `{"level":30,"time":"2026-11-23T14:05:00.000Z"`, which starts every line and
 * is written by pino itself (a two-digit level number, isoTime): nothing in it can be a secret,
 * and every line is cheaper to redact without it. A few fixed characters are checked, not the
 * whole (this runs for every line); 0 when the line does not start that way. (Not the `pid`
 * after it: a logger made by withRedaction has no base, and there the first key is the caller's.)
 */
export function pinoPrefix(line: string): number {
  // indexOf first, not charCodeAt: pino hands over a rope of concatenated pieces, indexOf
  // flattens it once, and every later read is cheaper for it (~2% of logger throughput).
  return line.indexOf('{"level":') === 0 && line.charCodeAt(11) === 0x2c && line.charCodeAt(18) === 0x3a && line.charCodeAt(43) === 0x5a && line.charCodeAt(44) === 0x22
    ? PINO_PREFIX
    : 0;
}

/**
 * A logger that writes where `logger` writes, at its level and with its bindings, with every
 * line redacted first. For a logger the caller made: pino cannot add a hook to it afterwards.
 * Its own options (redact paths, serializers, messageKey, hooks, later level changes) are not
 * carried over.
 */
export function withRedaction(logger: Logger, redactor: LineRedactor): Logger {
  const stream = (logger as unknown as Record<symbol, pino.DestinationStream | undefined>)[pino.symbols.streamSym];
  if (stream === undefined || typeof stream.write !== 'function') {
    throw invalidInput('openBlufio({ logger }) must be a pino logger', "pass a pino logger, or leave logger out to get blufio's own");
  }
  return pino(pinoOptions(logger.level, null, redactor), stream).child(logger.bindings());
}
