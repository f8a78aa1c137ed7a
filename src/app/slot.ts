import { AppError, ErrorCode, isAppError } from '../errors/index.js';
import type { Storage } from '../storage/index.js';

export function dbLockedError(): AppError {
  return new AppError(ErrorCode.DB_LOCKED, 'the database is locked: its key was dropped by lock()', {
    hint: 'unlock it with the database passphrase (vault_unlock over RPC, app.unlock() in the library)',
  });
}

/**
 * The open database of an app, or none while it is locked. The app's parts (sessions, messages,
 * queue, vault rows, db) are handed out as facades over the slot, so that the objects a caller
 * holds keep working across lock and unlock: while locked, every method call fails with
 * KC_DB_LOCKED (as a rejected promise, or a throw for the synchronous ones).
 */
export class StorageSlot {
  private readonly lockedAway = new WeakSet<Storage>();

  constructor(private current: Storage | undefined) {}

  get storage(): Storage | undefined {
    return this.current;
  }

  set(storage: Storage | undefined): void {
    this.current = storage;
  }

  /**
   * Takes the open database out to be closed by lock(). Calls that began on it and then find it
   * closed fail KC_DB_LOCKED, as the calls after them do: to their caller the database was
   * locked, not closed for good ("open it again with openBlufio()" would be wrong).
   */
  lockAway(): void {
    if (this.current !== undefined) this.lockedAway.add(this.current);
    this.current = undefined;
  }

  /**
   * What a call on `s` failed with, as its caller should see it. Only the refusals of a closed
   * database (no cause: nothing was done) become KC_DB_LOCKED; a write whose writer was lost
   * keeps its own error, which says it may have been committed.
   */
  private asLocked(s: Storage, err: unknown): unknown {
    return this.lockedAway.has(s) && isAppError(err, ErrorCode.DB_CLOSED) && err.cause === undefined ? dbLockedError() : err;
  }

  facade<T extends object>(pick: (s: Storage) => T, sync = false): T {
    const call = (prop: string, args: unknown[]): unknown => {
      // The storage is looked up when the method is called, not when it was read: a method
      // taken before lock() and called after it is refused the same way.
      const s = this.current;
      if (s === undefined) {
        // Sync methods (vault rows) throw; async ones return a rejected promise.
        if (sync) throw dbLockedError();
        return Promise.reject(dbLockedError());
      }
      const target = pick(s) as Record<string, unknown>;
      let out: unknown;
      try {
        out = (target[prop] as (...a: unknown[]) => unknown).apply(target, args);
      } catch (err) {
        throw this.asLocked(s, err);
      }
      return out instanceof Promise ? out.catch((err: unknown) => Promise.reject(this.asLocked(s, err))) : out;
    };
    return new Proxy({} as T, {
      get: (_t, prop) => {
        // Not a thenable (await on a facade must not hang), and no symbol-keyed magic.
        if (prop === 'then' || typeof prop === 'symbol') return undefined;
        const s = this.current;
        if (s !== undefined) {
          const v = (pick(s) as Record<string, unknown>)[prop];
          if (typeof v !== 'function') return v;
        }
        return (...args: unknown[]): unknown => call(prop, args);
      },
    });
  }
}
