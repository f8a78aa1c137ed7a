import { AppError, ErrorCode } from '../errors/index.js';
import type { Db } from './sqlite.js';
import { toAppError } from './sqlite-errors.js';

/**
 * Runs a read on this thread's connection and turns whatever SQLite throws (a damaged page
 * found mid-read, an I/O error) into an AppError, as writes do; a read after close() is
 * KC_DB_CLOSED rather than a TypeError from the binding.
 */
export function guardRead<T>(reader: Db, file: string, fn: () => T): T {
  if (!reader.open) throw new AppError(ErrorCode.DB_CLOSED, 'the database is closed', { hint: 'open it again with openBlufio()' });
  try {
    return fn();
  } catch (err) {
    throw toAppError(err, { file });
  }
}
