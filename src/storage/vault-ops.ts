import { AppError, ErrorCode } from '../errors/index.js';
import type { WriterContext } from './writer/context.js';

/**
 * Vault rows, written inside the writer thread's transactions. Blobs only: the crypto lives in
 * src/vault, and nothing here ever sees a key or a secret in the clear.
 */

export interface VaultMetaRow {
  vault_id: Uint8Array;
  kdf: string;
  kdf_memory_kib: number;
  kdf_iterations: number;
  kdf_parallelism: number;
  salt: Uint8Array;
  wrapped_key: Uint8Array;
  created_at: number;
  changed_at: number;
}

export type VaultMetaInput = Omit<VaultMetaRow, 'created_at' | 'changed_at'>;

const META_COLUMNS = 'vault_id, kdf, kdf_memory_kib, kdf_iterations, kdf_parallelism, salt, wrapped_key, created_at, changed_at';

/**
 * Runs a vault write with SQLite's secure_delete on: what the write frees (a deleted or replaced
 * sealed value, an old wrapped key) is overwritten with zeros in the file, not left in free
 * space, where anyone with a copy of the file and any passphrase the vault ever had could open
 * it. On for these statements only, on this connection: other writes (queue deletes, message
 * deletes) do not pay for the extra writes. The pages are zeroed as the statement frees them,
 * so switching it off again before the commit is enough.
 */
function zeroingFreed<T>(ctx: WriterContext, write: () => T): T {
  const was = ctx.stmt('PRAGMA secure_delete').pluck().get() as number;
  if (was === 1) return write();
  ctx.stmt('PRAGMA secure_delete = ON').pluck().get();
  try {
    return write();
  } finally {
    ctx.stmt('PRAGMA secure_delete = OFF').pluck().get();
  }
}

/** Creates the vault unless one exists already (another process may have been first): returns the one that holds. */
function init(ctx: WriterContext, m: VaultMetaInput): VaultMetaRow {
  const now = Date.now();
  ctx
    .stmt(
      `INSERT INTO vault_meta (id, vault_id, kdf, kdf_memory_kib, kdf_iterations, kdf_parallelism, salt, wrapped_key, created_at, changed_at)
       VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    )
    .run(m.vault_id, m.kdf, m.kdf_memory_kib, m.kdf_iterations, m.kdf_parallelism, m.salt, m.wrapped_key, now, now);
  return ctx.stmt(`SELECT ${META_COLUMNS} FROM vault_meta WHERE id = 1`).get() as VaultMetaRow;
}

/**
 * A new wrap of the same master key (a new passphrase): one row, one transaction. `expect` is the
 * wrap it replaces, so a change made meanwhile by another process is refused, not overwritten.
 * The old wrap is zeroed in the file (see zeroingFreed): the old passphrase must not open it.
 */
function rewrap(ctx: WriterContext, a: { meta: VaultMetaInput; expect: Uint8Array }): number {
  const now = Date.now();
  const { changes } = zeroingFreed(ctx, () =>
    ctx
      .stmt(
        `UPDATE vault_meta SET kdf = ?, kdf_memory_kib = ?, kdf_iterations = ?, kdf_parallelism = ?, salt = ?, wrapped_key = ?, changed_at = ?
         WHERE id = 1 AND vault_id = ? AND wrapped_key = ?`,
      )
      .run(a.meta.kdf, a.meta.kdf_memory_kib, a.meta.kdf_iterations, a.meta.kdf_parallelism, a.meta.salt, a.meta.wrapped_key, now, a.meta.vault_id, a.expect),
  );
  if (changes !== 1) {
    throw new AppError(ErrorCode.VAULT_LOCKED, 'the vault passphrase was changed by another process meanwhile; nothing was changed', {
      hint: 'unlock with the current passphrase and try again',
    });
  }
  return now;
}

/** A replaced value's old sealed blob is zeroed in the file (see zeroingFreed). */
function put(ctx: WriterContext, a: { name: string; sealed: Uint8Array }): number {
  const now = Date.now();
  zeroingFreed(ctx, () =>
    ctx
      .stmt(
        `INSERT INTO vault_entries (name, sealed, created_at, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
      )
      .run(a.name, a.sealed, now, now),
  );
  return now;
}

function remove(ctx: WriterContext, a: { name: string }): boolean {
  return zeroingFreed(ctx, () => ctx.stmt('DELETE FROM vault_entries WHERE name = ?').run(a.name).changes === 1);
}

export const vaultOps = {
  'vault.init': init,
  'vault.rewrap': rewrap,
  'vault.put': put,
  'vault.delete': remove,
};

export { META_COLUMNS as VAULT_META_COLUMNS };
