// Bench only. Peers that `import Database from "better-sqlite3"` get the binding Blufio itself
// loads (see src/storage/driver.ts for why the version depends on Node's major), so every
// subject of a bench runs on the same SQLite build, and no second copy is compiled.
//
// One difference is undone: better-sqlite3 11.6 and later throw when a transaction function
// returns a promise. liteque (through drizzle-orm 0.33) passes an async function to
// db.transaction() and was written against versions that did not check: there the synchronous
// part ran in the transaction, which committed at once, and the promise was handed back. This
// shim restores exactly that, so liteque runs as its authors ran it.
const major = Number(process.versions.node.split('.')[0]);
const Base = require(major >= 22 ? 'better-sqlite3-multiple-ciphers-node22' : 'better-sqlite3-multiple-ciphers-node20');

class Database extends Base {
  transaction(fn) {
    let stashed;
    const inner = super.transaction(function (...args) {
      const result = fn.apply(this, args);
      if (result && typeof result.then === 'function') {
        stashed = result;
        return undefined;
      }
      return result;
    });
    const wrap = (run) =>
      function (...args) {
        stashed = undefined;
        const out = run.apply(this, args);
        const promise = stashed;
        stashed = undefined;
        return promise ?? out;
      };
    const outer = wrap(inner);
    for (const kind of ['deferred', 'immediate', 'exclusive']) outer[kind] = wrap(inner[kind]);
    outer.default = outer;
    return outer;
  }
}

module.exports = Database;
