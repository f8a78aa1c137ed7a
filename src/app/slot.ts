import { AppError, ErrorCode } from '../errors/index.js';
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
  constructor(private current: Storage | undefined) {}

  get storage(): Storage | undefined {
    return this.current;
  }

  set(storage: Storage | undefined): void {
    this.current = storage;
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
      return (target[prop] as (...a: unknown[]) => unknown).apply(target, args);
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
