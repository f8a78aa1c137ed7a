import { AppError, ErrorCode } from '../errors/index.js';

interface SqliteLikeError {
  code?: unknown;
  message?: unknown;
}

function sqliteCode(err: unknown): string | undefined {
  const code = (err as SqliteLikeError | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

export function isSqliteError(err: unknown, prefix?: string): boolean {
  const code = sqliteCode(err);
  return code !== undefined && (prefix === undefined || code.startsWith(prefix));
}

/**
 * Turns whatever a SQLite call threw into an AppError with a code a script can branch on and a
 * message a person can act on. The raw SQLite code stays in `details` for diagnosis.
 */
export function toAppError(err: unknown, ctx: { file?: string } = {}): AppError {
  if (err instanceof AppError) return err;
  const code = sqliteCode(err);
  const raw = err instanceof Error ? err.message : String(err);
  const where = ctx.file === undefined ? 'the database' : ctx.file;
  const details = { ...(code === undefined ? {} : { sqlite: code }), ...(ctx.file === undefined ? {} : { file: ctx.file }) };
  if (code === undefined) {
    const errno = (err as NodeJS.ErrnoException | null)?.code;
    if (errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS') {
      return new AppError(ErrorCode.DB_READONLY, `cannot write ${where}: ${errno}`, {
        hint: 'check the permissions of the data directory, or point BLUFIO_DATA_DIR elsewhere',
        details,
        cause: err,
      });
    }
    if (errno === 'ENOSPC') {
      return new AppError(ErrorCode.DB_FULL, `no space left on the device holding ${where}`, { details, cause: err });
    }
    return new AppError(ErrorCode.INTERNAL, raw, { details, cause: err });
  }
  if (code === 'SQLITE_NOTADB') {
    return new AppError(ErrorCode.DB_CORRUPT, `${where} is not a SQLite database (or it is encrypted)`, {
      hint: 'nothing was changed; restore the file from a backup (blufio db backup) or move it away to start fresh',
      details,
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_CORRUPT')) {
    return new AppError(ErrorCode.DB_CORRUPT, `${where} is damaged: ${raw}`, {
      hint: 'stop writing to it and restore it from a backup (blufio db backup); blufio db check shows what is wrong',
      details,
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new AppError(
      ErrorCode.DB_LOCK_TIMEOUT,
      `another process held ${where} locked for longer than storage.lock_timeout_ms`,
      { hint: 'find the process that keeps a write transaction open, or raise storage.lock_timeout_ms', details, cause: err },
    );
  }
  if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') {
    return new AppError(ErrorCode.DB_READONLY, `${where} cannot be written: ${raw}`, {
      hint: 'blufio needs write access to the database file and to the directory that holds it (for -wal and -shm)',
      details,
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new AppError(ErrorCode.DB_OPEN_FAILED, `cannot open ${where}: ${raw}`, {
      hint: 'check that the directory exists and that this user may read and write it and the -wal/-shm files beside it',
      details,
      cause: err,
    });
  }
  if (code === 'SQLITE_FULL') {
    return new AppError(ErrorCode.DB_FULL, `the disk holding ${where} is full`, {
      hint: 'free some space; the write was rolled back and nothing acknowledged was lost',
      details,
      cause: err,
    });
  }
  if (code.startsWith('SQLITE_IOERR')) {
    return new AppError(ErrorCode.DB_IO, `I/O error on ${where}: ${raw}`, {
      hint: 'check the disk (dmesg) and free space; the failed write was rolled back',
      details,
      cause: err,
    });
  }
  if (code === 'SQLITE_TOOBIG' || code.startsWith('SQLITE_CONSTRAINT')) {
    return new AppError(ErrorCode.INVALID_INPUT, `rejected by the database: ${raw}`, { details, cause: err });
  }
  return new AppError(ErrorCode.INTERNAL, `database error: ${raw}`, { details, cause: err });
}
