import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

/**
 * The SQLite binding: better-sqlite3-multiple-ciphers (plain SQLite and SQLCipher v4 in one
 * library), in the major version that is safe on the running Node.
 *
 * - Node 22 and later get 13.x, built on Node-API. 12.x aborts the process on Node 24
 *   (`Assertion failed: (env) != nullptr` in Statement::~Statement, seen here in our own test
 *   suite): its objects subclass node::ObjectWrap, whose Node 24 destructor needs a live
 *   Environment, which is gone when a worker thread (our writer) shuts down.
 * - Node 20 gets 12.x: 13.x declares Node >= 22 and crashes on Node 20.
 *
 * Both are the same library and API; the two are installed under aliases and only one is
 * ever loaded. 12.x is an optional dependency: it compiles at install, and on Node 22+ a
 * missing C++ toolchain must not fail the install of a module that is never used there.
 */
const require = createRequire(import.meta.url);
const major = Number(process.versions.node.split('.')[0]);

export const BINDING = major >= 22 ? 'better-sqlite3-multiple-ciphers-node22' : 'better-sqlite3-multiple-ciphers-node20';

function load(): typeof BetterSqlite3 {
  try {
    return require(BINDING) as typeof BetterSqlite3;
  } catch (err) {
    // Not an AppError on purpose: this module loads before anything could report one, and the
    // message must reach whoever installed the package.
    throw new Error(
      `the SQLite binding ${BINDING} is not installed or does not load on Node ${process.version}: ${(err as Error).message}. ` +
        (major >= 22
          ? 'Run npm install again.'
          : 'On Node 20 it is compiled at install: install python3, make and g++, then run npm rebuild.'),
      { cause: err },
    );
  }
}

const Database: typeof BetterSqlite3 = load();

export default Database;
export type { BetterSqlite3 };
