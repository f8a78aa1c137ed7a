import { guardRead } from './read-guard.js';
import type { Db, Statement } from './sqlite.js';
import { VAULT_META_COLUMNS, type VaultMetaInput, type VaultMetaRow } from './vault-ops.js';
import type { WriterClient } from './writer/client.js';

export type { VaultMetaInput, VaultMetaRow };

export interface VaultEntryRow {
  name: string;
  sealed: Uint8Array;
  created_at: number;
  updated_at: number;
}

/** The vault's rows as stored: reads on this thread's connection, writes through the writer. */
export class VaultRows {
  private readonly s: Record<'meta' | 'entry' | 'all' | 'count' | 'signature', Statement>;

  constructor(
    private readonly reader: Db,
    private readonly writer: WriterClient,
  ) {
    this.s = {
      meta: reader.prepare(`SELECT ${VAULT_META_COLUMNS} FROM vault_meta WHERE id = 1`),
      entry: reader.prepare('SELECT name, sealed, created_at, updated_at FROM vault_entries WHERE name = ?'),
      all: reader.prepare('SELECT name, sealed, created_at, updated_at FROM vault_entries ORDER BY name'),
      count: reader.prepare('SELECT count(*) FROM vault_entries').pluck(),
      // What changes with every vault write, by any process: a passphrase change, a set, a delete.
      signature: reader.prepare(
        "SELECT ifnull((SELECT changed_at FROM vault_meta WHERE id = 1), '') || ':' || (SELECT count(*) || ':' || ifnull(max(updated_at), '') FROM vault_entries)",
      ).pluck(),
    };
  }

  private read<T>(fn: () => T): T {
    return guardRead(this.reader, this.reader.name, fn);
  }

  meta(): VaultMetaRow | undefined {
    return this.read(() => this.s.meta.get() as VaultMetaRow | undefined);
  }

  entry(name: string): VaultEntryRow | undefined {
    return this.read(() => this.s.entry.get(name) as VaultEntryRow | undefined);
  }

  entries(): VaultEntryRow[] {
    return this.read(() => this.s.all.all() as VaultEntryRow[]);
  }

  count(): number {
    return this.read(() => this.s.count.get() as number);
  }

  init(meta: VaultMetaInput): Promise<VaultMetaRow> {
    return this.writer.run('vault.init', meta);
  }

  rewrap(meta: VaultMetaInput, expect: Uint8Array): Promise<number> {
    return this.foldingWal(this.writer.run('vault.rewrap', { meta, expect }));
  }

  put(name: string, sealed: Uint8Array): Promise<number> {
    return this.foldingWal(this.writer.run('vault.put', { name, sealed }));
  }

  async delete(name: string): Promise<boolean> {
    const deleted = await this.writer.run('vault.delete', { name });
    // Nothing freed, nothing to fold in.
    return deleted ? this.foldingWal(Promise.resolve(deleted)) : deleted;
  }

  /**
   * A checkpoint a vault write still owes, tried again: one of this process's writes whose
   * checkpoint a reader held up, or a write by another process (a CLI's set-secret or
   * change-passphrase beside the daemon), whose own checkpoint may have been held up and which
   * has exited since. One small read when nothing is owed; the app calls it every second,
   * locked or not (it needs no key).
   */
  settle(): void {
    if (this.settling) return;
    let now: unknown;
    try {
      now = this.read(() => this.s.signature.get());
    } catch {
      return; // closed or locked: the next open's close checkpoints
    }
    if (now !== this.seen) {
      this.owed = true;
      this.seen = now;
    }
    if (!this.owed) return;
    this.settling = true;
    this.fold().finally(() => (this.settling = false));
  }

  private owed = false;
  private settling = false;
  /** The vault's signature when it was last folded in (see settle). */
  private seen: unknown = undefined;

  /** Folds the WAL in and truncates it; `owed` says whether that is still to be done. */
  private async fold(): Promise<void> {
    try {
      const before = this.read(() => this.s.signature.get());
      const r = await this.writer.checkpoint();
      this.owed = r.busy || r.checkpointedFrames < r.walFrames;
      if (!this.owed) this.seen = before;
    } catch {
      this.owed = true;
    }
  }

  /**
   * After a vault write, the WAL still holds the earlier images of its pages (the old sealed
   * value, the old wrapped key) until it is reused: a checkpoint that truncates it, without
   * waiting for anyone, lets them go now. A reader elsewhere may hold the WAL for now: then it
   * is tried again until it succeeds (settle). Vault writes are rare, so the
   * checkpoint costs nothing that matters; no other write asks for one.
   */
  private async foldingWal<T>(write: Promise<T>): Promise<T> {
    const out = await write;
    // The write is committed and acknowledged; a checkpoint that cannot finish now (a reader
    // holds the WAL) is owed, and settle() tries it again (the app's refresh, every second).
    await this.fold();
    return out;
  }
}
