/**
 * The one error type that crosses part boundaries. `code` is public interface (printed by the CLI,
 * returned over RPC as `error.data.code`), so codes are never renamed; the message says what went
 * wrong and what to do about it, and the hint, when present, is the next step a person can take.
 */
export interface AppErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Extra structured facts for logs and RPC (never secret values). */
  details?: Record<string, unknown>;
}

export class AppError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.hint !== undefined) out.hint = this.hint;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

export function isAppError(err: unknown, code?: string): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}
