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

/**
 * A value the caller gave, for an error message: whole (as JSON) when short, otherwise only how
 * long it is. Never its start alone: that may be the start of a secret, and a cut secret is no
 * longer recognisable to the redactor that logs and returned errors pass through.
 */
export function shown(value: unknown, max = 60): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = undefined;
  }
  if (json === undefined) return typeof value;
  if (json.length <= max) return json;
  return typeof value === 'string' ? `(a string of ${value.length} characters)` : `(a value of ${json.length} characters as JSON)`;
}

/** The same for a text field of a log line: the text when short, else its length alone. */
export function shownText(value: string, max: number): string;
export function shownText(value: string | undefined, max: number): string | undefined;
export function shownText(value: string | undefined, max: number): string | undefined {
  return value === undefined || value.length <= max ? value : `(${value.length} characters)`;
}

/**
 * Something a caller's code threw, for a message: an Error's message, any other value (a thrown
 * 42, a string, a symbol) shown as `shown` shows it.
 */
export function thrownText(err: unknown): string {
  return err instanceof Error ? String(err.message) : `${shown(err, 40)} (thrown, not an Error)`;
}

/**
 * Runs `look` (Array.isArray, a property read) on a value the caller gave: a TypeError from it
 * (a revoked Proxy cannot be asked anything) is KC_INVALID_INPUT naming `field`.
 */
export function inspected<T>(field: string, look: () => T): T {
  try {
    return look();
  } catch (err) {
    if (err instanceof TypeError) throw invalidInput(`${field} cannot be read: ${err.message}`, 'pass a plain object');
    throw err;
  }
}

/** Every option an options type has, as the keys of an object (the compiler checks it has all of them and no other). */
export type OptionNames<T> = Readonly<Record<keyof T, true>>;

/**
 * An options (or input) argument: undefined means none (every default); anything else must be
 * an object, so null, arrays and other values are refused instead of crashed on. With `known`,
 * a key that is no option is refused too: a misspelt `{ delay: 5000 }` must not run the job at
 * once, as a misspelt setting in the config file must not be ignored.
 */
export function optionsObject<T extends object>(value: T | null | undefined, what: string, known?: OptionNames<T>): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || inspected(what, () => Array.isArray(value))) throw invalidInput(`${what} must be an object`);
  if (known !== undefined) {
    const unknown = inspected(what, () => Object.keys(value)).filter((k) => !Object.hasOwn(known, k));
    if (unknown.length > 0) {
      throw invalidInput(`${what}: ${unknown.length === 1 ? 'no option' : 'no options'} ${unknown.slice(0, 3).map((k) => shown(k, 40)).join(', ')}${unknown.length > 3 ? ', ...' : ''}`, `the options are ${Object.keys(known).join(', ')}`);
    }
  }
  return value;
}
