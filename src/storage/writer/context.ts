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
}

/** A write operation: runs synchronously inside a transaction the writer opened. */
export type WriteOp<A, R> = (ctx: WriterContext, args: A) => R;
