import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, describe, it } from 'node:test';
import Database from '../src/storage/driver.js';
import { DIST, tmpDir } from './helpers/index.js';
import { runStock, stockSqlcipher } from './helpers/stock-sqlcipher.js';
import { silentLogger } from './helpers/index.js';
import { openBlufio } from '../src/index.js';
import { cipherCheck, dbEncryptEnable, dbEncryptMigrate, deriveDbKey, readSalt } from '../src/dbcrypt/index.js';

/**
 * Our binding's SQLCipher mode (`cipher = 'sqlcipher'; legacy = 4`) against stock SQLCipher 4,
 * built from zetetic's amalgamation by scripts/build-stock-sqlcipher.sh: each reads what the
 * other wrote, in WAL mode, with frames still in the -wal and after a checkpoint, and the stock
 * side is given nothing but `PRAGMA key`.
 */

type BindingDb = InstanceType<typeof Database>;

const PASS = 'correct horse — bättre 🔐 battery';
const QUOTED_PASS = `o'brien's "key" ''`;
const MARKER = 'BLUFIO-PLAINTEXT-MARKER-Q7Z4K';
const BLOB_MARKER = 'BLUFIO-BLOB-MARKER-X9W2M';

interface Row {
  id: number;
  txt: string;
  data: Buffer;
  n: number | null;
}

const ROWS: Row[] = [
  { id: 1, txt: 'plain ascii', data: Buffer.from(Array.from({ length: 256 }, (_, i) => i)), n: 42 },
  { id: 2, txt: `héllo wörld — 日本語 🔐 "quoted" it's`, data: Buffer.from('00ff10deadbeef00', 'hex'), n: -7 },
  { id: 3, txt: `before ${MARKER} after`, data: Buffer.from(`[${BLOB_MARKER}]`), n: null },
  // Larger than a page: overflow pages go through the cipher too.
  { id: 4, txt: 'ü'.repeat(5000), data: Buffer.alloc(6000, 0xa5), n: 2 ** 53 - 1 },
  { id: 5, txt: '', data: Buffer.alloc(0), n: 0 },
];

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;
const keyPragma = (pass: string): string => `PRAGMA key = ${sqlString(pass)};`;
/** What our binding runs first on every connection to a SQLCipher 4 file. */
const ourPragmas = (pass: string): string => `PRAGMA cipher = 'sqlcipher'; PRAGMA legacy = 4; ${keyPragma(pass)}`;

const CREATE = 'CREATE TABLE t(id INTEGER PRIMARY KEY, txt TEXT NOT NULL, data BLOB NOT NULL, n INTEGER)';
const SELECT = 'SELECT id, txt, data, n FROM t ORDER BY id';
const insertSql = (rows: Row[]): string =>
  rows.map((r) => `INSERT INTO t VALUES (${r.id}, ${sqlString(r.txt)}, X'${r.data.toString('hex')}', ${r.n ?? 'NULL'});`).join('\n');
/** The stock program's output for SELECT over these rows. */
const stockLines = (rows: Row[]): string[] => rows.map((r) => `${r.id}|${r.txt}|X'${r.data.toString('hex')}'|${r.n ?? ''}`);

function openOurs(file: string, pass: string): BindingDb {
  const db = new Database(file);
  try {
    db.exec(ourPragmas(pass));
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function writeOurs(db: BindingDb, rows: Row[]): void {
  const ins = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?)');
  db.transaction(() => {
    for (const r of rows) ins.run(r.id, r.txt, r.data, r.n);
  })();
}

function readOurs(db: BindingDb): Row[] {
  return db.prepare(SELECT).all() as Row[];
}

/** SELECT in the stock program with only `PRAGMA key`; `PRAGMA key` itself answers "ok". */
function stockRead(bin: string, file: string, pass: string): string[] {
  const lines = runStock(bin, file, `${keyPragma(pass)}\n${SELECT};\n`).split('\n');
  assert.equal(lines.pop(), '', 'output ends in a newline');
  assert.equal(lines.shift(), 'ok', 'PRAGMA key answers ok');
  return lines;
}

/** Stock SQLCipher's checks: cipher_integrity_check lists nothing, integrity_check is ok, WAL mode. */
function stockChecks(bin: string, file: string, pass: string): void {
  const out = runStock(
    bin,
    file,
    `${keyPragma(pass)}\nPRAGMA cipher_integrity_check;\nSELECT '--';\nPRAGMA integrity_check;\nPRAGMA journal_mode;\n`,
  );
  assert.equal(out, 'ok\n--\nok\nwal\n', 'no cipher_integrity_check errors, integrity_check ok, journal_mode wal');
}

const size = (f: string): number => (fs.existsSync(f) ? fs.statSync(f).size : -1);

/** The raw bytes of the database and whichever of its -wal and -shm exist. */
function rawBytes(file: string): { name: string; bytes: Buffer }[] {
  return ['', '-wal', '-shm'].filter((s) => fs.existsSync(file + s)).map((s) => ({ name: path.basename(file + s), bytes: fs.readFileSync(file + s) }));
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

function assertNoPlaintext(file: string): void {
  const files = rawBytes(file);
  const db = files.find((f) => f.name === path.basename(file))!;
  assert.ok(db.bytes.length >= 4096, `the database file has at least a page (${db.bytes.length} bytes)`);
  assert.ok(!db.bytes.subarray(0, 16).equals(SQLITE_HEADER), 'the first 16 bytes are not the plain SQLite header');
  for (const f of files) {
    for (const m of [MARKER, BLOB_MARKER]) assert.equal(f.bytes.indexOf(m), -1, `${m} is not in plaintext in ${f.name}`);
  }
}

/**
 * A child process that opens file with our binding, in WAL mode with no automatic checkpoint,
 * writes the rows, reports, and waits to be SIGKILLed: what a crash leaves behind. The
 * passphrase goes on its stdin, not its argv.
 */
async function writeThenGetKilled(file: string, pass: string, rows: Row[]): Promise<void> {
  const code = `
    const [driver, file] = process.argv.slice(1);
    const { default: Database } = await import(driver);
    let input = '';
    for await (const chunk of process.stdin) input += chunk;
    const job = JSON.parse(input);
    const db = new Database(file);
    db.exec(job.pragmas);
    if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal') throw new Error('not wal');
    db.pragma('wal_autocheckpoint = 0');
    db.exec(job.create);
    const ins = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?)');
    db.transaction(() => { for (const r of job.rows) ins.run(r.id, r.txt, Buffer.from(r.data, 'hex'), r.n); })();
    process.stdout.write('written\\n');
    setInterval(() => {}, 60_000);
  `;
  const driver = pathToFileURL(path.join(DIST, 'src', 'storage', 'driver.js')).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code, driver, file], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
  const written = new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.includes('written\n')) resolve();
    });
    child.on('close', (c) => reject(new Error(`the writer exited (${c}) before writing: ${stderr}`)));
  });
  child.stdin.end(JSON.stringify({ pragmas: ourPragmas(pass), create: CREATE, rows: rows.map((r) => ({ ...r, data: r.data.toString('hex') })) }));
  await written;
  child.kill('SIGKILL');
  assert.equal(await closed, 'SIGKILL');
}

describe('SQLCipher 4 interop: our binding and stock SQLCipher read each other', () => {
  let bin: string;
  before(() => {
    bin = stockSqlcipher();
  });

  it('the stock program is SQLCipher 4.x on OpenSSL with SQLCipher 4 defaults', () => {
    const out = runStock(
      bin,
      ':memory:',
      [
        'PRAGMA cipher_version;',
        'PRAGMA cipher_default_kdf_iter;',
        'PRAGMA cipher_default_page_size;',
        'PRAGMA cipher_default_hmac_algorithm;',
        'PRAGMA cipher_default_kdf_algorithm;',
        'PRAGMA cipher_default_plaintext_header_size;',
        "PRAGMA key = 'x';",
        'PRAGMA cipher_provider;',
      ].join('\n'),
    ).split('\n');
    assert.match(out[0] ?? '', /^4\.\d+\.\d+ community$/);
    assert.deepEqual(out.slice(1), ['256000', '4096', 'HMAC_SHA512', 'PBKDF2_HMAC_SHA512', '0', 'ok', 'openssl', '']);
  });

  it('reads a WAL database our binding is writing: frames only in the -wal, then after wal_checkpoint(TRUNCATE) and close', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'ours.db');
    const db = openOurs(file, PASS);
    try {
      assert.equal(db.pragma('journal_mode = WAL', { simple: true }), 'wal');
      db.pragma('wal_autocheckpoint = 0');
      db.exec(CREATE);
      writeOurs(db, ROWS);
      assert.deepEqual(readOurs(db), ROWS);

      // The table lives only in -wal frames: the database file alone has no table t.
      assert.ok(size(`${file}-wal`) > 4096, 'the -wal holds frames');
      const alone = path.join(dir, 'alone.db');
      fs.copyFileSync(file, alone);
      assert.throws(() => runStock(bin, alone, `${keyPragma(PASS)}\nSELECT count(*) FROM t;`), /no such table: t/);

      // The writer's connection is open: the stock program reads the frames alongside it.
      assert.deepEqual(stockRead(bin, file, PASS), stockLines(ROWS));
      stockChecks(bin, file, PASS);
      assertNoPlaintext(file);
      assert.ok(size(`${file}-wal`) > 4096, 'the stock reader left the frames where they were');

      assert.deepEqual(db.pragma('wal_checkpoint(TRUNCATE)'), [{ busy: 0, log: 0, checkpointed: 0 }]);
      assert.equal(size(`${file}-wal`), 0, 'TRUNCATE emptied the -wal');
      assert.deepEqual(stockRead(bin, file, PASS), stockLines(ROWS));
      stockChecks(bin, file, PASS);
      assertNoPlaintext(file);
    } finally {
      db.close();
    }
    assert.equal(size(`${file}-wal`), -1, 'a clean close removed the -wal');
    assert.deepEqual(stockRead(bin, file, PASS), stockLines(ROWS));
    stockChecks(bin, file, PASS);

    // cipher_integrity_check is not vacuous: one flipped byte in page 2 of a copy is reported.
    const bad = path.join(dir, 'corrupt.db');
    const bytes = fs.readFileSync(file);
    bytes[4096 + 200]! ^= 0x01;
    fs.writeFileSync(bad, bytes);
    assert.equal(runStock(bin, bad, `${keyPragma(PASS)}\nPRAGMA cipher_integrity_check;`), 'ok\nHMAC verification failed for page 2\n');
  });

  it('reads a WAL database whose writer was killed before any checkpoint; ours reads it back after the stock shell checkpoints it', async () => {
    const file = path.join(tmpDir(), 'crashed.db');
    await writeThenGetKilled(file, PASS, ROWS);
    assert.ok(size(`${file}-wal`) > 4096, 'the killed writer left frames in the -wal');
    assertNoPlaintext(file);

    // Stock SQLCipher recovers the WAL (it is the only connection: it rebuilds the index from
    // the frames, checking their checksums and decrypting them), and as the last connection to
    // close it checkpoints them into the database file with its own cipher and removes the -wal.
    assert.deepEqual(stockRead(bin, file, PASS), stockLines(ROWS));
    assert.equal(size(`${file}-wal`), -1, 'the stock shell checkpointed and removed the -wal on close');
    stockChecks(bin, file, PASS);

    const db = openOurs(file, PASS);
    try {
      assert.deepEqual(readOurs(db), ROWS);
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  });

  it('our binding reads a WAL database made by stock SQLCipher, checkpointed and with stock frames in the -wal', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'stock.db');
    const first = ROWS.slice(0, 3);
    const rest = ROWS.slice(3);
    const made = runStock(bin, file, `${keyPragma(PASS)}\nPRAGMA journal_mode = WAL;\n${CREATE};\n${insertSql(first)}\n`);
    assert.equal(made, 'ok\nwal\n');
    assert.equal(size(`${file}-wal`), -1, 'the stock shell checkpointed on close');
    assertNoPlaintext(file);

    const db = openOurs(file, PASS);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(readOurs(db), first);
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');

      // With our connection open, the stock shell's close does not checkpoint: its frames stay in the -wal.
      assert.equal(runStock(bin, file, `${keyPragma(PASS)}\n${insertSql(rest)}\n`), 'ok\n');
      assert.ok(size(`${file}-wal`) > 4096, 'the stock writer left frames in the -wal');
      const alone = path.join(dir, 'alone.db');
      fs.copyFileSync(file, alone);
      const copy = openOurs(alone, PASS);
      try {
        assert.equal(copy.prepare('SELECT count(*) FROM t').pluck().get(), first.length, 'the new rows are only in the -wal');
      } finally {
        copy.close();
      }
      assertNoPlaintext(file);

      assert.deepEqual(readOurs(db), ROWS, 'the open connection sees the stock frames');
      const fresh = openOurs(file, PASS);
      try {
        assert.deepEqual(readOurs(fresh), ROWS);
        assert.equal(fresh.pragma('integrity_check', { simple: true }), 'ok');
      } finally {
        fresh.close();
      }

      // Our checkpoint of stock frames, read back by stock SQLCipher.
      assert.deepEqual(db.pragma('wal_checkpoint(TRUNCATE)'), [{ busy: 0, log: 0, checkpointed: 0 }]);
      assert.equal(size(`${file}-wal`), 0);
    } finally {
      db.close();
    }
    assert.deepEqual(stockRead(bin, file, PASS), stockLines(ROWS));
    stockChecks(bin, file, PASS);
  });

  it('a wrong key fails both ways, and leaves the file readable with the right one', () => {
    const dir = tmpDir();
    const ours = path.join(dir, 'ours.db');
    const db = openOurs(ours, PASS);
    db.pragma('journal_mode = WAL');
    db.exec(CREATE);
    writeOurs(db, ROWS);
    db.close();
    const stock = path.join(dir, 'stock.db');
    runStock(bin, stock, `${keyPragma(PASS)}\nPRAGMA journal_mode = WAL;\n${CREATE};\n${insertSql(ROWS)}\n`);

    for (const file of [ours, stock]) {
      assert.throws(() => runStock(bin, file, 'SELECT count(*) FROM t;'), /file is not a database/, 'no key at all');
      for (const wrong of ['wrong', `${PASS} `, PASS.slice(0, -1)]) {
        assert.throws(() => runStock(bin, file, `${keyPragma(wrong)}\nSELECT count(*) FROM t;`), /file is not a database/);
        const w = new Database(file);
        try {
          assert.throws(() => {
            w.exec(ourPragmas(wrong));
            w.prepare('SELECT count(*) FROM t').get();
          }, { code: 'SQLITE_NOTADB' });
        } finally {
          w.close();
        }
      }
      assert.deepEqual(stockRead(bin, file, PASS), stockLines(ROWS));
      const r = openOurs(file, PASS);
      try {
        assert.deepEqual(readOurs(r), ROWS);
      } finally {
        r.close();
      }
    }
  });

  it('leaves no plaintext on disk: not in the database, its -wal or -shm (and the check finds it when there is)', () => {
    const dir = tmpDir();
    // The control: the same rows in a plain database are found by the same search.
    const plain = path.join(dir, 'plain.db');
    const p = new Database(plain);
    p.pragma('journal_mode = WAL');
    p.pragma('wal_autocheckpoint = 0');
    p.exec(CREATE);
    writeOurs(p, ROWS);
    const plainBytes = Buffer.concat(rawBytes(plain).map((f) => f.bytes));
    assert.ok(fs.readFileSync(plain).subarray(0, 16).equals(SQLITE_HEADER));
    assert.notEqual(plainBytes.indexOf(MARKER), -1, 'the marker is found in a plain database');
    assert.notEqual(plainBytes.indexOf(BLOB_MARKER), -1, 'the blob marker is found in a plain database');
    p.close();

    const ours = path.join(dir, 'ours.db');
    const db = openOurs(ours, PASS);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('wal_autocheckpoint = 0');
      db.exec(CREATE);
      writeOurs(db, ROWS);
      assert.ok(size(`${ours}-wal`) > 4096);
      assertNoPlaintext(ours);
      db.pragma('wal_checkpoint(TRUNCATE)');
      assertNoPlaintext(ours);
    } finally {
      db.close();
    }
    assertNoPlaintext(ours);
  });

  it('a passphrase with single quotes is escaped by doubling them, and means the same to both', () => {
    const dir = tmpDir();
    const ours = path.join(dir, 'ours.db');
    const db = openOurs(ours, QUOTED_PASS);
    db.pragma('journal_mode = WAL');
    db.exec(CREATE);
    writeOurs(db, ROWS);
    assert.deepEqual(stockRead(bin, ours, QUOTED_PASS), stockLines(ROWS), 'stock reads ours while our writer is open');
    db.close();
    assert.deepEqual(stockRead(bin, ours, QUOTED_PASS), stockLines(ROWS));

    const stock = path.join(dir, 'stock.db');
    runStock(bin, stock, `${keyPragma(QUOTED_PASS)}\nPRAGMA journal_mode = WAL;\n${CREATE};\n${insertSql(ROWS)}\n`);
    const r = openOurs(stock, QUOTED_PASS);
    try {
      assert.deepEqual(readOurs(r), ROWS);
    } finally {
      r.close();
    }

    // The whole passphrase is the key: without the quotes, or cut at the first one, it is not.
    for (const file of [ours, stock]) {
      for (const near of [QUOTED_PASS.replaceAll("'", ''), 'o', QUOTED_PASS.replaceAll("''", "'")]) {
        assert.throws(() => runStock(bin, file, `${keyPragma(near)}\nSELECT count(*) FROM t;`), /file is not a database/);
      }
    }
  });

  it('databases blufio itself makes (encrypted from birth, and migrated) open in stock SQLCipher with PRAGMA key alone', async () => {
    const env = { DBKEY: PASS };
    const born = path.join(tmpDir(), 'born');
    fs.mkdirSync(born);
    await dbEncryptEnable(born, { passphraseEnv: 'DBKEY', env });
    let app = await openBlufio({ dataDir: born, logger: silentLogger(), env });
    const s1 = await app.sessions.create({ channel: 'interop' });
    await app.messages.append(s1.id, { role: 'user', content: `${MARKER} from birth` });
    await app.close();

    const migrated = path.join(tmpDir(), 'migrated');
    app = await openBlufio({ dataDir: migrated, logger: silentLogger(), env: {} });
    const s2 = await app.sessions.create({ channel: 'interop' });
    await app.messages.append(s2.id, { role: 'user', content: `${MARKER} migrated` });
    await app.close();
    await dbEncryptMigrate(migrated, { passphraseEnv: 'DBKEY', nowMs: 1, env });

    for (const [dir, text] of [[born, `${MARKER} from birth`], [migrated, `${MARKER} migrated`]] as const) {
      const file = path.join(dir, 'blufio.db');
      const out = runStock(bin, file, `${keyPragma(PASS)}\nPRAGMA cipher_integrity_check;\nSELECT '--';\nSELECT content FROM messages;\n`);
      assert.equal(out, `ok\n--\n${text}\n`, dir);
      assert.throws(() => runStock(bin, file, `${keyPragma('not it')}\nSELECT count(*) FROM messages;`), /file is not a database/);
    }
  });

  it("blufio's own page check (vault verify) agrees with stock SQLCipher on a file stock SQLCipher wrote", async () => {
    const file = path.join(tmpDir(), 'stock.db');
    runStock(bin, file, `${keyPragma(PASS)}\nCREATE TABLE t(x);\nINSERT INTO t SELECT zeroblob(3000) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3);\n`);
    const salt = readSalt(file)!;
    const key = await deriveDbKey(PASS, salt);
    const good = cipherCheck(file, key, salt);
    assert.ok(good.pages >= 2);
    assert.deepEqual(good.badPages, []);
    const bytes = fs.readFileSync(file);
    bytes[4096 + 7] = bytes[4096 + 7]! ^ 0x80;
    fs.writeFileSync(file, bytes);
    assert.deepEqual(cipherCheck(file, key, salt).badPages, [2]);
    assert.match(runStock(bin, file, `${keyPragma(PASS)}\nPRAGMA cipher_integrity_check;\n`), /page 2/);
    key.fill(0);
  });
});
