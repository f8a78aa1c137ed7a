import type { Db, Statement } from '../sqlite.js';
import { UlidGenerator } from '../ids.js';

/**
 * What a write operation sees inside the writer thread: the one write connection, a cache of
 * prepared statements (preparing is most of the cost of a small statement), the ID generator
 * and this process's owner token.
 */
export class WriterContext {
  private readonly statements = new Map<string, Statement>();
  private readonly ids = new UlidGenerator();

  constructor(
    readonly db: Db,
    readonly owner: string,
    /** Where owners' lock files are (see liveness.ts). */
    readonly ownersDir: string,
  ) {}

  stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  newId(now: number): string {
    return this.ids.next(now);
  }

  /**
   * Facts read from the file (the newest message, session states), kept across transactions
   * for as long as no other connection has committed: `PRAGMA data_version` changes exactly
   * when another connection (another process, or the CLI beside the daemon) wrote. Anything
   * learnt inside a transaction that is rolled back is forgotten with it.
   */
  private readonly cache = new Map<string, unknown>();
  private dataVersion: unknown = undefined;

  /** Called right after every BEGIN IMMEDIATE, when the snapshot is the newest there is. */
  beginTransaction(): void {
    const v = this.stmt('PRAGMA data_version').pluck().get();
    if (v !== this.dataVersion || this.cache.size > 50_000) {
      this.cache.clear();
      this.dataVersion = v;
    }
  }

  /** After any ROLLBACK or ROLLBACK TO. */
  forget(): void {
    this.cache.clear();
  }

  cached<T>(key: string, read: () => T): T {
    if (this.cache.has(key)) return this.cache.get(key) as T;
    const v = read();
    this.cache.set(key, v);
    return v;
  }

  remember(key: string, value: unknown): void {
    this.cache.set(key, value);
  }

  /** The newest message's seq and time; the caller advances it as it appends. */
  messageTail(): { seq: number; createdAt: number } {
    return this.cached('tail', () => {
      const row = this.stmt('SELECT seq, created_at FROM messages ORDER BY seq DESC LIMIT 1').get() as
        | { seq: number; created_at: number }
        | undefined;
      return { seq: row?.seq ?? 0, createdAt: row?.created_at ?? 0 };
    });
  }
}
