import { AppError, ErrorCode } from '../../errors/index.js';
import Database from '../driver.js';
import type { Db } from '../sqlite.js';
import type { Migration } from './list.js';

/** Every table, index, trigger and view by name, and each table's columns in order. */
interface Shape {
  objects: Map<string, string>;
  columns: Map<string, string>;
}

const OBJECTS = 'SELECT type, name FROM sqlite_schema';
// One text per table: what a statement relies on (names, declared types, NOT NULL, key order).
const COLUMNS = `SELECT s.name AS tbl, group_concat(c.name || ' ' || c.type || ' ' || c."notnull" || ' ' || c.pk, ', ') AS cols
  FROM sqlite_schema AS s, pragma_table_xinfo(s.name) AS c WHERE s.type = 'table' GROUP BY s.name`;

function shapeOf(db: Db): Shape {
  const objects = new Map((db.prepare(OBJECTS).all() as { type: string; name: string }[]).map((r) => [r.name, r.type]));
  const columns = new Map((db.prepare(COLUMNS).all() as { tbl: string; cols: string }[]).map((r) => [r.tbl, r.cols]));
  return { objects, columns };
}

/** The shape the migrations give, built in memory (about 2 ms, once per open). */
function expectedShape(list: readonly Migration[], migrationsTable: string): Shape {
  const mem = new Database(':memory:');
  try {
    mem.exec(migrationsTable);
    for (const m of [...list].sort((a, b) => a.version - b.version)) mem.exec(m.sql);
    return shapeOf(mem);
  } finally {
    mem.close();
  }
}

/**
 * Refuses a migrated database whose schema lacks a table, index, trigger or view the migrations
 * create, or whose tables' columns differ from theirs: such a file was changed outside blufio
 * (or restored from something that was not a copy of it). Let through, the first statement that
 * needed the missing part failed mid-operation as "no such table", reported as a bug. What a
 * person added (a table, an index of their own, ANALYZE's statistics) is left alone.
 */
export function verifyShape(db: Db, list: readonly Migration[], migrationsTable: string, file: string): void {
  const want = expectedShape(list, migrationsTable);
  const have = shapeOf(db);
  const problems: string[] = [];
  for (const [name, type] of want.objects) {
    const found = have.objects.get(name);
    if (found === undefined) problems.push(`the ${type} ${name} is missing`);
    else if (found !== type) problems.push(`${name} is a ${found}, not a ${type}`);
  }
  for (const [table, cols] of want.columns) {
    const found = have.columns.get(table);
    if (found !== undefined && found !== cols) problems.push(`the columns of ${table} were changed`);
  }
  if (problems.length === 0) return;
  throw new AppError(ErrorCode.DB_CORRUPT, `the schema of ${file} is not the one its migrations made: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`, {
    hint: 'it was changed outside blufio or damaged; nothing was written to it. Restore it from a backup (blufio db backup makes one)',
    details: { file, problems: problems.slice(0, 20) },
  });
}
