import { AppError, ErrorCode } from '../../errors/index.js';
import Database from '../driver.js';
import type { Db } from '../sqlite.js';
import { checksum, type Migration } from './list.js';

/** Every table, index, trigger and view by name, with its type and definition, and each table's columns. */
interface Shape {
  objects: Map<string, { type: string; sql: string | null }>;
  columns: Map<string, string>;
}

const OBJECTS = 'SELECT type, name, sql FROM sqlite_schema';
// One text per table: what a statement relies on (names, declared types, NOT NULL, key order).
// Asked of the migrations' own tables only: a person's virtual table whose module this SQLite
// lacks (sqlite-vec's vec0, the shell's zipfile) cannot even be described, and failed the open.
const COLUMNS = `SELECT group_concat(name || ' ' || type || ' ' || "notnull" || ' ' || pk, ', ') FROM pragma_table_xinfo(?)`;

/**
 * A definition as SQLite keeps it, with runs of white space made one space. The migrations
 * only CREATE (no ALTER, whose rewriting of the stored text could differ between SQLite
 * versions): the file holds their statements verbatim, as the in-memory copy does.
 */
const definition = (sql: string | null): string | null => (sql === null ? null : sql.replace(/\s+/g, ' ').trim());

/** The shape of `db`; the columns of the tables named in `tables` (all of its own tables when absent). */
function shapeOf(db: Db, tables?: Iterable<string>): Shape {
  const objects = new Map(
    (db.prepare(OBJECTS).all() as { type: string; name: string; sql: string | null }[]).map((r) => [r.name, { type: r.type, sql: definition(r.sql) }]),
  );
  const columnsOf = db.prepare(COLUMNS).pluck();
  const names = tables ?? [...objects].filter(([, o]) => o.type === 'table').map(([name]) => name);
  const columns = new Map<string, string>();
  for (const t of names) if (objects.get(t)?.type === 'table') columns.set(t, columnsOf.get(t) as string);
  return { objects, columns };
}

/**
 * The shapes the migrations give, by the checksums of those applied: built once per thread. With a -wal
 * present one command checks the shape up to three times (both connections' read-only probes,
 * then the writer's open), and the migrations never change while the process runs.
 */
const expected = new Map<string, Shape>();

/** The shape the migrations give, built in memory (about 2 ms). */
function expectedShape(list: readonly Migration[], migrationsTable: string): Shape {
  const sorted = [...list].sort((a, b) => a.version - b.version);
  const key = sorted.map(checksum).join(',');
  let shape = expected.get(key);
  if (shape !== undefined) return shape;
  const mem = new Database(':memory:');
  try {
    mem.exec(migrationsTable);
    for (const m of sorted) mem.exec(m.sql);
    shape = shapeOf(mem);
  } finally {
    mem.close();
  }
  expected.set(key, shape);
  return shape;
}

/**
 * Refuses a migrated database whose schema lacks a table, index, trigger or view the migrations
 * create, or has one defined otherwise (columns, a UNIQUE index made plain, a CHECK dropped):
 * such a file was changed outside blufio (or restored from something that was not a copy of
 * it). Let through, the first statement that needed the missing part failed mid-operation
 * ("no such table", "ON CONFLICT clause does not match"), reported as a bug. What a person
 * added (a table, an index of their own, ANALYZE's statistics) is left alone.
 */
export function verifyShape(db: Db, list: readonly Migration[], migrationsTable: string, file: string): void {
  const want = expectedShape(list, migrationsTable);
  const have = shapeOf(db, want.columns.keys());
  const problems: string[] = [];
  for (const [name, { type, sql }] of want.objects) {
    const found = have.objects.get(name);
    if (found === undefined) problems.push(`the ${type} ${name} is missing`);
    else if (found.type !== type) problems.push(`${name} is a ${found.type}, not a ${type}`);
    else if (want.columns.has(name) && have.columns.get(name) !== want.columns.get(name)) problems.push(`the columns of ${name} were changed`);
    else if (found.sql !== sql) problems.push(`the ${type} ${name} is defined otherwise`);
  }
  if (problems.length === 0) return;
  throw new AppError(ErrorCode.DB_CORRUPT, `the schema of ${file} is not the one its migrations made: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`, {
    hint: 'it was changed outside blufio or damaged; nothing was written to it. Restore it from a backup (blufio db backup makes one)',
    details: { file, problems: problems.slice(0, 20) },
  });
}
