import { guardRead } from '../read-guard.js';
import type { Db, Statement } from '../sqlite.js';
import type { WriterClient } from '../writer/client.js';
import type { Collected, CollectArgs, CommitObjectArgs, CommitObjectResult, DeleteObjectArgs, Freed, GcCursor, SweepArgs } from './ops.js';

export type { Collected, CollectArgs, CommitObjectArgs, CommitObjectResult, DeleteObjectArgs, Freed, GcCursor, SweepArgs };

export interface ObjectRow {
  id: string;
  address: string;
  content_type: string;
  name: string | null;
  created_at: number;
  size: number;
  stored_size: number;
  encrypted: 0 | 1;
  /** How many messages reference it. */
  refs: number;
}

export interface BlobRow {
  address: string;
  encrypted: 0 | 1;
  size: number;
  stored_size: number;
}

export interface ObjectCounts {
  objects: number;
  blobs: number;
  encryptedBlobs: number;
  /** The objects' sizes added up, as if each were stored alone. */
  logicalBytes: number;
  /** What the files take: each distinct content once. */
  storedBytes: number;
  /** Objects no message references (gc removes them once older than gc_grace_ms, unless a job or session names them). */
  unreferenced: number;
}

const OBJECT_COLUMNS = `o.id, o.address, o.content_type, o.name, o.created_at, b.size, b.stored_size, b.encrypted,
  (SELECT count(*) FROM message_objects m WHERE m.object_no = o.no) AS refs`;

/** The object store's rows: reads on this thread's connection, writes through the writer. */
export class ObjectRows {
  private readonly s: Record<'get' | 'first' | 'after' | 'blobs' | 'counts' | 'storedBytes' | 'refsOf' | 'hasBlob', Statement>;

  constructor(
    private readonly reader: Db,
    private readonly writer: WriterClient,
  ) {
    const from = 'FROM objects o JOIN object_blobs b ON b.address = o.address';
    this.s = {
      get: reader.prepare(`SELECT ${OBJECT_COLUMNS} ${from} WHERE o.id = ?`),
      first: reader.prepare(`SELECT ${OBJECT_COLUMNS} ${from} ORDER BY o.id LIMIT ?`),
      after: reader.prepare(`SELECT ${OBJECT_COLUMNS} ${from} WHERE o.id > ? ORDER BY o.id LIMIT ?`),
      hasBlob: reader.prepare('SELECT 1 FROM object_blobs WHERE address = ?').pluck(),
      refsOf: reader.prepare('SELECT id FROM objects WHERE address = ? ORDER BY id').pluck(),
      blobs: reader.prepare('SELECT address, encrypted, size, stored_size FROM object_blobs ORDER BY address'),
      storedBytes: reader.prepare('SELECT coalesce(sum(stored_size), 0) FROM object_blobs').pluck(),
      counts: reader.prepare(
        `SELECT (SELECT count(*) FROM objects) AS objects,
                (SELECT count(*) FROM object_blobs) AS blobs,
                (SELECT count(*) FROM object_blobs WHERE encrypted = 1) AS encryptedBlobs,
                (SELECT coalesce(sum(b.size), 0) FROM objects o JOIN object_blobs b ON b.address = o.address) AS logicalBytes,
                (SELECT coalesce(sum(stored_size), 0) FROM object_blobs) AS storedBytes,
                (SELECT count(*) FROM objects o WHERE NOT EXISTS (SELECT 1 FROM message_objects m WHERE m.object_no = o.no)) AS unreferenced`,
      ),
    };
  }

  private read<T>(fn: () => T): T {
    return guardRead(this.reader, this.reader.name, fn);
  }

  /** Throws what any call would (KC_DB_LOCKED through the app's facade, KC_DB_CLOSED): checked before a put reads its source. */
  assertOpen(): void {
    this.read(() => undefined);
  }

  get(id: string): ObjectRow | undefined {
    return this.read(() => this.s.get.get(id) as ObjectRow | undefined);
  }

  list(limit: number, after?: string): ObjectRow[] {
    return this.read(() => (after === undefined ? this.s.first.all(limit) : this.s.after.all(after, limit)) as ObjectRow[]);
  }

  blobs(): BlobRow[] {
    return this.read(() => this.s.blobs.all() as BlobRow[]);
  }

  hasBlob(address: string): boolean {
    return this.read(() => this.s.hasBlob.get(address) !== undefined);
  }

  /** The references whose content is stored at `address`. */
  refsOf(address: string): string[] {
    return this.read(() => this.s.refsOf.all(address) as string[]);
  }

  /** What the stored files take, in bytes (what [objects] max_total_bytes bounds). */
  storedBytes(): number {
    return this.read(() => this.s.storedBytes.get() as number);
  }

  counts(): ObjectCounts {
    return this.read(() => this.s.counts.get() as ObjectCounts);
  }

  commit(args: CommitObjectArgs): Promise<CommitObjectResult> {
    return this.writer.run('objects.commit', args);
  }

  delete(args: DeleteObjectArgs): Promise<Freed> {
    return this.writer.run('objects.delete', args);
  }

  collect(args: CollectArgs): Promise<Collected> {
    return this.writer.run('objects.collect', args);
  }

  sweep(args: SweepArgs): Promise<Freed> {
    return this.writer.run('objects.sweep', args);
  }
}
