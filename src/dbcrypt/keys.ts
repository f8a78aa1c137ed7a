import { createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { AppError, ErrorCode } from '../errors/index.js';
import { withFileDescriptor } from '../storage/held-files.js';
import { privateBytes } from '../vault/seal.js';
import { ioError, SQLCIPHER_KDF_ITERATIONS } from './manifest.js';

/**
 * SQLCipher v4 with its default profile: PBKDF2-HMAC-SHA512 over the passphrase and the file's
 * 16-byte salt (its first 16 bytes), 256,000 iterations, AES-256-CBC pages of 4096 bytes, each
 * with a 16-byte IV and a 64-byte HMAC-SHA512 in its reserved tail.
 *
 * SQLCipher would run that KDF on every connection it opens (the writer thread, the reader,
 * each check and backup): about 130 ms each here. The key is derived once, here, and every
 * connection is given it raw together with the salt (`x'<key><salt>'`), which SQLCipher uses as
 * is. The file is the same one `PRAGMA key = '<passphrase>'` opens in stock SQLCipher 4.
 */
export const SALT_BYTES = 16;
export const KEY_BYTES = 32;
const PAGE_SIZE = 4096;
const IV_BYTES = 16;
const HMAC_BYTES = 64;
const RESERVE = IV_BYTES + HMAC_BYTES;
const HMAC_SALT_MASK = 0x3a;
const HMAC_KDF_ITERATIONS = 2;
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

const pbkdf2Async = promisify(pbkdf2);

export function newSalt(): Buffer {
  return randomBytes(SALT_BYTES);
}

/** The page key from a passphrase (off the event loop: PBKDF2 at 256k rounds takes a while). */
export async function deriveDbKey(passphrase: string, salt: Buffer): Promise<Buffer> {
  const pass = privateBytes(passphrase); // not a slice of the shared pool (see privateBytes)
  try {
    return await pbkdf2Async(pass, salt, SQLCIPHER_KDF_ITERATIONS, KEY_BYTES, 'sha512');
  } finally {
    pass.fill(0);
  }
}

/**
 * The value for `PRAGMA key`: the raw key and salt in SQLCipher's blob-literal form. The caller
 * zeroes `key` afterwards; the string itself cannot be zeroed (a limit of JavaScript strings, and
 * of the pragma interface, which takes text).
 */
export function rawKeyLiteral(key: Buffer, salt: Buffer): string {
  return `x'${key.toString('hex')}${salt.toString('hex')}'`;
}

export type FileKind = 'missing' | 'empty' | 'plaintext' | 'encrypted';

/**
 * Opens a database file for reading its first bytes: a regular file (through a symlink, as
 * SQLite would), never a directory, and never a wait on a FIFO. undefined when it does not exist.
 */
function openDatabaseFile(file: string): number | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EISDIR') throw notAFile(file, 'a directory');
    throw ioError(`cannot read ${file}`, err);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw notAFile(file, st.isDirectory() ? 'a directory' : 'not a regular file');
  }
  return fd;
}

function notAFile(file: string, what: string): AppError {
  return new AppError(ErrorCode.DB_OPEN_FAILED, `${file} is ${what}, not a database file`, {
    hint: 'move it away (the database is a file of its own); nothing was changed',
  });
}

/** What a database file is, from its first bytes: SQLite's magic means plaintext. */
export function fileKind(file: string): FileKind {
  const kind = withFileDescriptor(file, () => openDatabaseFile(file), (fd): FileKind => {
    const head = Buffer.alloc(16);
    const n = fs.readSync(fd, head, 0, 16, 0);
    if (n === 0) return 'empty';
    return n === 16 && head.equals(SQLITE_MAGIC) ? 'plaintext' : 'encrypted';
  });
  return kind ?? 'missing';
}

/** The salt an encrypted file starts with. */
export function readSalt(file: string): Buffer | undefined {
  return withFileDescriptor(file, () => openDatabaseFile(file), (fd) => {
    const salt = Buffer.alloc(SALT_BYTES);
    return fs.readSync(fd, salt, 0, SALT_BYTES, 0) === SALT_BYTES ? salt : undefined;
  });
}

export interface CipherCheck {
  pages: number;
  /** Page numbers (from 1) whose HMAC does not verify: wrong key, damage, or tampering. */
  badPages: number[];
  /** The file is not a whole number of pages. */
  partialPage: boolean;
}

/**
 * SQLCipher's cipher_integrity_check, done here because the binding's SQLCipher emulation lacks
 * the pragma: every page of the database file must carry a valid HMAC-SHA512 (over its
 * ciphertext, its IV and its page number) under the key. Reads the main file only: run it on a
 * checkpointed database.
 */
export function cipherCheck(file: string, key: Buffer, salt: Buffer): CipherCheck {
  const hmacSalt = Buffer.from(salt.map((b) => b ^ HMAC_SALT_MASK));
  const hmacKey = pbkdf2Sync(key, hmacSalt, HMAC_KDF_ITERATIONS, KEY_BYTES, 'sha512');
  const size = fs.statSync(file).size;
  const pages = Math.floor(size / PAGE_SIZE);
  const badPages: number[] = [];
  const page = Buffer.alloc(PAGE_SIZE);
  const pgno = Buffer.alloc(4);
  try {
    // Through held-files: this process may have the file open through SQLite.
    withFileDescriptor(file, () => fs.openSync(file, 'r'), (fd) => {
      for (let n = 1; n <= pages; n++) {
        fs.readSync(fd, page, 0, PAGE_SIZE, (n - 1) * PAGE_SIZE);
        const start = n === 1 ? SALT_BYTES : 0;
        pgno.writeUInt32LE(n);
        const mac = createHmac('sha512', hmacKey)
          .update(page.subarray(start, PAGE_SIZE - RESERVE + IV_BYTES))
          .update(pgno)
          .digest();
        if (!timingSafeEqual(mac, page.subarray(PAGE_SIZE - HMAC_BYTES))) badPages.push(n);
      }
    });
  } finally {
    hmacKey.fill(0);
    page.fill(0);
  }
  return { pages, badPages, partialPage: size % PAGE_SIZE !== 0 };
}
