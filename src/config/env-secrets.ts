import fs from 'node:fs';
import { AppError, ErrorCode } from '../errors/index.js';
import type { Env } from './paths.js';
import { readOnce } from './read-once.js';
import { refuseReplaceableByAnyone } from './writable.js';

/**
 * Secrets passed in this process's environment (BLUFIO_VAULT_KEY, the variable a database key
 * reference names) are taken out of it on first read: a child process the agent starts later
 * must not inherit them. Later reads in the same process get the value taken, within its
 * `scope` (a database key's vault directory): a process that opened one directory with DBKEY
 * does not use that key on another directory whose vault.json also names DBKEY (it asks, or
 * stops with KC_DB_LOCKED).
 */
const taken = new Map<string, string>();
/** Passphrase files already warned about (an open reads its file more than once). */
const warnedFiles = new Set<string>();

/** Drops what was taken (on lock: unlocking again needs the passphrase given anew). */
export function forgetSecretEnv(): void {
  taken.clear();
}

export function takeSecretEnv(env: Env, name: string, scope = ''): string | undefined {
  if (env !== process.env) return env[name] || undefined;
  const key = `${scope}\0${name}`;
  const v = process.env[name];
  if (v) taken.set(key, v);
  delete process.env[name];
  // A variable taken for the whole process (the vault's BLUFIO_VAULT_KEY, read first by every
  // open) serves a scoped lookup of the same name too: a database key recorded as
  // env:BLUFIO_VAULT_KEY (one passphrase for both) must find it, not an emptied variable.
  return taken.get(key) ?? (scope === '' ? undefined : taken.get(`\0${name}`));
}

/** Told of a passphrase file that every user can read (once per file and process). */
export type SecretFileWarning = (message: string, file: string) => void;

/**
 * A secret from the variable `name`, or from the file `<name>_FILE` names (see readSecretFile):
 * the file keeps the secret out of the process's initial environment, which a variable can
 * never leave. Setting both is refused (which one was meant?). The file is read on every call,
 * not kept (it may be rewritten after a passphrase change); `warn` is told once per file when
 * every user can read it.
 */
export function takeSecret(env: Env, name: string, scope: string, warn: SecretFileWarning): string | undefined {
  const value = takeSecretEnv(env, name, scope);
  const variable = `${name}_FILE`;
  const file = env[variable];
  if (file === undefined || file === '') return value;
  if (value !== undefined) {
    throw new AppError(ErrorCode.INVALID_INPUT, `both ${name} and ${variable} are set`, { hint: 'set one of them (the file keeps the passphrase out of the environment)' });
  }
  const read = readSecretFile(file, variable);
  if (read.othersCanRead && !warnedFiles.has(file)) {
    warnedFiles.add(file);
    warn(`the passphrase file (${variable}) can be read by every user; chmod 600 it (a container secret mounted 0444 is readable by every process in the container)`, file);
  }
  return read.value;
}

/** Where no logger is at hand: Node's own warning channel (stderr, or a 'warning' listener). */
export const emitSecretFileWarning: SecretFileWarning = (message, file) => {
  process.emitWarning(`${message}: ${file}`);
};

/** A passphrase file is a line of text: more than this is not one. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * The secret in the file a `<NAME>_FILE` variable names (a systemd credential, a container
 * secret): its text, less one final line break. Unlike a variable's value, it never enters the
 * process's initial environment, which /proc/<pid>/environ shows for the process's life.
 * Opened once (no FIFO wait: O_NONBLOCK; what was checked is what is read), a regular file
 * only, read to at most the limit whatever size it claims (a /proc file says 0), as UTF-8
 * whole. Like the config file, one that any user could change or replace is refused: whoever
 * writes it chooses the passphrase a new vault gets.
 */
export function readSecretFile(file: string, variable: string): { value: string; othersCanRead: boolean } {
  const bad = (why: string, hint?: string): AppError =>
    new AppError(ErrorCode.INVALID_INPUT, `${variable} names ${file}, which ${why}`, {
      hint: hint ?? `point ${variable} at a file that holds the passphrase alone (one line of UTF-8 text), readable by this user only`,
    });
  let read: { data: Buffer; st: fs.Stats };
  try {
    read = readOnce(file, MAX_SECRET_FILE_BYTES, (st) => {
      if (!st.isFile()) throw bad('is not a regular file');
      refuseReplaceableByAnyone(file, st, (what, hint) => {
        throw bad(`is refused: ${what}, and it holds a passphrase`, hint);
      });
    });
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw bad(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const { data: raw, st } = read;
  const n = raw.length;
  let text: string;
  try {
    if (n > MAX_SECRET_FILE_BYTES) throw bad(`is larger than ${MAX_SECRET_FILE_BYTES} bytes`);
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw bad('is not UTF-8 text');
    }
  } finally {
    raw.fill(0);
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') throw bad('is empty');
  if (value.includes('\n')) throw bad('holds more than one line');
  return { value, othersCanRead: (st.mode & 0o004) !== 0 };
}
