import { AppError } from './app-error.js';
import { ErrorCode } from './codes.js';

/** The error for a value refused before anything was done with it. */
export function invalidInput(message: string, hint?: string): AppError {
  return new AppError(ErrorCode.INVALID_INPUT, message, hint === undefined ? {} : { hint });
}

/** An integer option within [min, max]; `def` when absent (if there is one). */
export function checkInt(value: unknown, field: string, min: number, max: number, def: number | undefined, unit = ''): number {
  if (value === undefined && def !== undefined) return def;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidInput(`${field} must be an integer from ${min} to ${max}${unit} (got ${typeof value === 'number' ? value : typeof value})`);
  }
  return value;
}
