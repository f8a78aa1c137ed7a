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

/** What an errno about a path means, in words; codes missing here are told by their own message. */
const FS_MEANING: Record<string, string> = {
  ENOTDIR: 'a part of the path is a file, not a directory',
  ELOOP: 'too many symbolic links on the way (a link that leads to itself?)',
  ENAMETOOLONG: 'the path, or a name in it, is too long',
  ENOENT: 'a directory on the way, or what a symbolic link points at, is missing',
  EEXIST: 'something that is not what was expected is already there',
  EISDIR: 'it is a directory',
  EINVAL: 'the file system does not accept the name or the operation',
  EIO: 'the disk reported an I/O error',
  EMFILE: 'this process has too many files open',
  ENFILE: 'the system has too many files open',
};

/** What to do about an errno that is neither permissions nor space. */
function ioHint(errno: string): string {
  if (PATH_ERRNOS.has(errno)) return 'point --data-dir (BLUFIO_DATA_DIR) or storage.database_path at a directory that exists or can be created';
  if (errno === 'EMFILE' || errno === 'ENFILE') return 'raise the open-file limit (ulimit -n; systemd: LimitNOFILE), or stop what holds many files open';
  if (errno === 'EIO') return 'check the disk (dmesg)';
  return 'try again; if it persists, check the file system (dmesg)';
}

/** Errnos that say the path itself is wrong. */
const PATH_ERRNOS = new Set(['ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'ENOENT', 'EEXIST', 'EISDIR', 'EINVAL']);

/** A file-system error in words: what its errno means (when known here), then its own message. */
export function fsErrorText(err: unknown): string {
  const errno = String((err as NodeJS.ErrnoException | null)?.code);
  const meaning = FS_MEANING[errno];
  const raw = err instanceof Error ? err.message : errno;
  return meaning === undefined ? raw : `${meaning} (${raw})`;
}

/**
 * A file-system error (a Node error with an errno code) about `what` ("cannot create the
 * directory /x"), as the AppError a person can act on: permissions and read-only mounts are
 * KC_DB_READONLY, a full disk or quota KC_DB_FULL, everything else (a path through a file, a
 * symbolic link loop, a name too long, a disk error) KC_DB_IO. An AppError is returned as it
 * is; anything else that is not an errno error gives undefined, for the caller to decide.
 */
export function fileSystemError(what: string, err: unknown, hints: { io?: string; readonly?: string; full?: string; details?: Record<string, unknown> } = {}): AppError | undefined {
  const extra = hints.details === undefined ? {} : { details: hints.details };
  if (err instanceof AppError) return err;
  const errno = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof errno !== 'string' || !/^E[A-Z0-9]+$/.test(errno)) return undefined;
  if (errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS') {
    // The error's own message names the path it was refused (a file deep in objects/, say).
    return new AppError(ErrorCode.DB_READONLY, `${what}: ${fsErrorText(err)}`, {
      hint: hints.readonly ?? 'check the permissions of the data directory, or point BLUFIO_DATA_DIR elsewhere',
      ...extra,
      cause: err,
    });
  }
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new AppError(ErrorCode.DB_FULL, `${what}: no space left on the device${errno === 'EDQUOT' ? ' (disk quota)' : ''}`, {
      hint: hints.full ?? 'free some space; nothing was changed',
      ...extra,
      cause: err,
    });
  }
  return new AppError(ErrorCode.DB_IO, `${what}: ${fsErrorText(err)}`, {
    hint: hints.io ?? ioHint(errno),
    ...extra,
    cause: err,
  });
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
    // The binding checks the directory itself before SQLite sees the path, and throws a bare TypeError.
    if (err instanceof TypeError && /directory does not exist/.test(raw)) {
      return new AppError(ErrorCode.DB_OPEN_FAILED, `cannot open ${where}: its directory is gone (moved or removed while blufio ran?)`, {
        hint: 'close blufio and open it again on the data directory where the database is now',
        details,
        cause: err,
      });
    }
    return fileSystemError(`cannot use ${where}`, err, { details }) ?? new AppError(ErrorCode.INTERNAL, raw, { details, cause: err });
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
