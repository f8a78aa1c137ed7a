import { firedRules, Redactor } from '../redact/index.js';
import { hkdfSync, randomBytes, randomFillSync } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError, ErrorCode, invalidInput, optionsObject, shown, type OptionNames } from '../errors/index.js';
import { MAX_SECRET_BYTES } from '../config/index.js';
import type { VaultEntryRow, VaultMetaInput, VaultMetaRow, VaultRows } from '../storage/index.js';
import { checkKdfParams, DEFAULT_KDF, deriveKey, KEY_BYTES, SALT_BYTES, type KdfParams } from './kdf.js';
import { maskSecret } from './mask.js';
import { assertNewPassphrase } from './new-passphrase.js';
import { entryAad, open, privateBytes, seal, tampered, wrapAad } from './seal.js';
import { Secret } from './secret.js';

export type SubkeyOptions = { create?: boolean };
const SUBKEY_OPTIONS: OptionNames<SubkeyOptions> = { create: true };
/** Labels name purposes (`blufio/objects/v1`); anything longer is not a label. */
const MAX_LABEL_CHARS = 200;

/** The redactor's name for the passphrase that opened the vault (see keep()). */
const PASSPHRASE_PIN = 'vault-passphrase';
/**
 * A passphrase shorter than this is not matched: people choose passphrases, and a short one is
 * too likely an ordinary word ("password"), which every message and id holding it would lose.
 */
export const PASSPHRASE_PIN_CHARS = 12;

/** Why a passphrase is wanted: to open the vault, to create it (ask twice), or to replace it (ask twice). */
/** `database`: the key of an encrypted database (see dbcrypt), asked before the vault's. */
/**
 * What a passphrase is asked for: `database` opens an encrypted database, `new-database` makes
 * one (encrypted from birth), which a prompt asks twice for, as it does for `create`.
 */
export type PassphrasePurpose = 'unlock' | 'create' | 'change' | 'database' | 'new-database';
/** Supplies a passphrase, or undefined when there is none to be had (headless, no BLUFIO_VAULT_KEY). */
export type PassphraseProvider = (purpose: PassphrasePurpose) => Promise<string | undefined>;

export interface SecretListing {
  name: string;
  /** `sk-...4f2b`, `****` for short values, null when the entry does not open. */
  preview: string | null;
  tampered: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface VaultStatus {
  exists: boolean;
  unlocked: boolean;
  entries: number;
  kdf: { algorithm: 'argon2id'; memoryKib: number; iterations: number; parallelism: number } | null;
  createdAt: number | null;
  passphraseChangedAt: number | null;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const NAME_MAX = 128;
const NAME_FIRST = /^[A-Za-z0-9]$/;
const NAME_REST = /^[A-Za-z0-9._:/-]$/;
/** The largest secret value, in UTF-8 bytes (the config file's limit for a secret too). */
export const MAX_VALUE_BYTES = MAX_SECRET_BYTES;
/** Names of tampered entries in one log line; and how many are remembered as already logged. */
const TAMPERED_NAMES_LOGGED = 10;
const MAX_TAMPERED_REMEMBERED = 10_000;

/** The built-in formats alone: a name is checked against them, not against the vault's values. */
const FORMATS_ONLY = new Redactor();

/** The names of the formats `name` matches: none for an ordinary name. */
function secretFormatsIn(name: string): string[] {
  const redacted = FORMATS_ONLY.redact(name);
  return redacted === name ? [] : firedRules(redacted);
}

/**
 * A secret name, checked; `example` ends the hint (how this caller passes a name). A name that
 * fails the check is never quoted, not even in part: it may be a secret passed where a name
 * belongs (set(token, name), the arguments swapped: a base64 key with + or =, a password with
 * punctuation), and the message would carry it into the caller's logs. The message says
 * what is wrong instead: the length, or the first character not allowed and where it is.
 */
export function checkSecretName(name: unknown, example = 'call set(name, value)'): string {
  if (typeof name === 'string' && NAME.test(name)) return name;
  const formats = typeof name === 'string' ? secretFormatsIn(name) : [];
  const looks = formats.length === 0 ? '' : `; it looks like a secret itself (${formats.join(', ')})`;
  throw new AppError(ErrorCode.INVALID_INPUT, `that secret name is not valid: ${nameFault(name)}${looks}`, {
    hint: `use 1-128 characters: letters, digits and . _ : / -, starting with a letter or digit; ${example}`,
  });
}

const checkName = (name: unknown): string => checkSecretName(name);

function nameFault(name: unknown): string {
  if (typeof name !== 'string') return `it is ${name === null ? 'null' : typeof name}, not a string`;
  if (name.length === 0) return 'it is empty';
  if (name.length > NAME_MAX) return `it is ${name.length} characters long, more than ${NAME_MAX}`;
  const chars = Array.from(name);
  for (const [i, c] of chars.entries()) {
    if ((i === 0 ? NAME_FIRST : NAME_REST).test(c)) continue;
    return `character ${i + 1} (${charShown(c)}) is not allowed${i === 0 ? ' first' : ''}`;
  }
  return 'it is not valid'; // not reached: every character passed
}

/** One character for a message: printable ASCII quoted, anything else as its code point. */
function charShown(c: string): string {
  const cp = c.codePointAt(0)!;
  return cp >= 0x20 && cp < 0x7f ? JSON.stringify(c) : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * A name that is not in the vault is not quoted either: it may be a secret passed where a name
 * belongs (get(token)), in a format no rule knows, and the error may well be logged. Whoever
 * asked knows what they asked for.
 */
export function noSuchSecret(name: string): AppError {
  return new AppError(ErrorCode.NOT_FOUND, `no secret by that name (${name.length} characters) is in the vault`, { hint: 'blufio config list-secrets shows the names' });
}

/**
 * Names are stored in the clear (they say what a secret is for): one that is itself a secret
 * (set(token, name), the arguments swapped) is refused, naming the format, never the value.
 */
function checkNewName(name: string, example = 'call set(name, value) with a name such as providers.openai.api_key'): string {
  const formats = secretFormatsIn(name);
  if (formats.length === 0) return name;
  throw new AppError(ErrorCode.INVALID_INPUT, `that secret name looks like a secret itself (${formats.join(', ')}); nothing was stored`, {
    hint: `names are stored in the clear: ${example}`,
  });
}

/** A name for a new secret, checked as set() checks it: valid, and not itself shaped like a secret. */
export function checkNewSecretName(name: unknown, example?: string): string {
  return checkNewName(checkSecretName(name, example), example);
}

/** The formats a secret's name matches (a provider or channel named like a token): none for an ordinary name. */
export function nameLooksLikeSecret(name: string): string[] {
  return secretFormatsIn(name);
}

/**
 * The stored record's KDF parameters, checked before any derivation: another kdf, parameters out
 * of bounds or a salt of another length (argon2 refuses one under 8 bytes) is a changed record.
 */
function paramsOf(m: VaultMetaRow): KdfParams {
  if (m.kdf !== 'argon2id') throw tampered(`the vault's key record (kdf ${JSON.stringify(m.kdf)})`);
  if (m.salt.length !== SALT_BYTES) {
    throw new AppError(ErrorCode.VAULT_TAMPERED, `the vault's key record has a salt of ${m.salt.length} bytes, not ${SALT_BYTES}; it was changed or damaged`, {
      hint: 'restore the database from a backup; blufio never writes such a salt',
    });
  }
  return checkKdfParams({ memoryKib: m.kdf_memory_kib, iterations: m.kdf_iterations, parallelism: m.kdf_parallelism });
}

/** Passphrases come from JavaScript callers too: anything but a string is refused as input, not a TypeError. */
function checkPassphrase(p: unknown): asserts p is string | undefined {
  if (p !== undefined && typeof p !== 'string') {
    throw new AppError(ErrorCode.INVALID_INPUT, `the vault passphrase must be a string, not ${p === null ? 'null' : typeof p}`);
  }
}

/** NFC first: the same passphrase typed on two keyboards (é as one code point or as e + ́) opens the vault. */
function passphraseBytes(p: string): Buffer {
  checkPassphrase(p);
  if (p.length === 0) throw new AppError(ErrorCode.INVALID_INPUT, 'the vault passphrase must not be empty');
  return privateBytes(p.normalize('NFC'));
}

/** A passphrase being chosen: see assertNewPassphrase. */
function newPassphraseBytes(p: string): Buffer {
  checkPassphrase(p);
  assertNewPassphrase(p, 'passphrase');
  return passphraseBytes(p);
}

/**
 * The secret vault: AES-256-GCM entries under a random master key, which is wrapped by an
 * Argon2id key from the passphrase. The master key exists only in this Buffer while unlocked,
 * and is zeroed by lock() and close().
 */
function fingerprint(rows: VaultEntryRow[]): string {
  return rows.map((r) => `${r.name}\0${r.updated_at}`).join('\n');
}

export class Vault {
  private masterKey: Buffer | undefined;
  private vaultId: Buffer | undefined;

  constructor(
    private readonly rows: VaultRows,
    private readonly passphrase: PassphraseProvider,
    private readonly log: Logger,
    /** Kept current with every value while unlocked, so logs and stored data can be scrubbed of them. */
    private readonly redactor?: Redactor,
  ) {}

  /** Hands every readable value to the redactor: called when the key arrives. */
  private feedRedactor(key: Buffer, id: Buffer): void {
    if (this.redactor === undefined) return;
    const rows = this.rows.entries();
    this.fed = fingerprint(rows);
    this.known = new Set(rows.map((r) => r.name));
    this.redactor.replaceSecrets(this.values(key, id, rows));
  }

  private values(key: Buffer, id: Buffer, rows: VaultEntryRow[]): [string, string][] {
    const values: [string, string][] = [];
    const failed: string[] = [];
    for (const row of rows) {
      const plain = open(key, row.sealed, entryAad(id, row.name));
      if (plain === undefined) {
        failed.push(row.name);
        continue;
      }
      values.push([row.name, plain.toString('utf8')]);
      plain.fill(0);
    }
    this.reportTampered(failed);
    return values;
  }

  /**
   * Entries that fail authentication, logged at ERROR by name (never a value): once each time
   * the entries are read (an unlock, a change seen by refresh(), a list()), not per tick.
   */
  private reportTampered(names: string[]): void {
    // Once per name in this process, and at most a few names a line: the names come from the
    // file, and a hostile one with 100,000 bad entries must not fill the log on every read.
    const fresh = names.filter((n) => !this.tamperedSeen.has(n));
    if (fresh.length === 0) return;
    for (const n of fresh) if (this.tamperedSeen.size < MAX_TAMPERED_REMEMBERED) this.tamperedSeen.add(n);
    this.log.error(
      { count: fresh.length, secrets: fresh.slice(0, TAMPERED_NAMES_LOGGED).map((n) => (n.length > 80 ? `${n.slice(0, 80)}…` : n)) },
      'vault entries failed authentication: changed, moved or damaged',
    );
  }

  private readonly tamperedSeen = new Set<string>();

  /** The entries' names and update times when the redactor was last brought up to date. */
  private fed = '';

  /**
   * Brings the redactor up to date with entries another process (the CLI beside a daemon) set or
   * deleted since: values set elsewhere are matched from now on, deleted ones are forgotten. One
   * small read when nothing changed; nothing at all while locked. A daemon calls it every second.
   */
  /** Retries a checkpoint vault writes still owe (see VaultRows.settle): needs no key. */
  settle(): void {
    this.rows.settle();
  }

  refresh(): void {
    if (this.redactor === undefined || this.masterKey === undefined || this.vaultId === undefined) return;
    const rows = this.rows.entries();
    const print = fingerprint(rows);
    if (print === this.fed) return;
    this.fed = print;
    const names = new Set(rows.map((r) => r.name));
    for (const gone of this.known) if (!names.has(gone)) this.redactor.deleteSecret(gone);
    this.known = names;
    this.redactor.addSecrets(this.values(this.masterKey, this.vaultId, rows));
  }

  private known = new Set<string>();

  get unlocked(): boolean {
    return this.masterKey !== undefined;
  }

  async status(): Promise<VaultStatus> {
    const m = this.rows.meta();
    return {
      exists: m !== undefined,
      unlocked: this.unlocked,
      entries: m === undefined ? 0 : this.rows.count(),
      kdf: m === undefined ? null : { algorithm: 'argon2id', memoryKib: m.kdf_memory_kib, iterations: m.kdf_iterations, parallelism: m.kdf_parallelism },
      createdAt: m?.created_at ?? null,
      passphraseChangedAt: m?.changed_at ?? null,
    };
  }

  /**
   * Opens the vault with `passphrase` (or the configured source). Returns false when there is no
   * vault yet. An explicit passphrase is always checked, even when the vault is already open.
   */
  async unlock(passphrase?: string): Promise<boolean> {
    checkPassphrase(passphrase);
    if (passphrase !== undefined) return this.doUnlock(passphrase);
    // Callers arriving while an unlock runs share it: one prompt, one derivation, one key.
    this.unlocking ??= this.doUnlock(undefined).finally(() => (this.unlocking = undefined));
    return this.unlocking;
  }

  private unlocking: Promise<boolean> | undefined;
  private creating: Promise<void> | undefined;
  /** Bumped by lock(): an unlock or creation that started before it does not store its key. */
  private epoch = 0;

  /**
   * Unlocks with `passphrase` if it fits, without an error logged when it does not (for a
   * candidate such as the database passphrase just typed); false when it does not or there is
   * no vault yet.
   */
  async tryUnlock(passphrase: string): Promise<boolean> {
    checkPassphrase(passphrase);
    try {
      return await this.doUnlock(passphrase, true);
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.VAULT_KEY_INVALID) return false;
      throw err;
    }
  }

  private async doUnlock(passphrase: string | undefined, quiet = false): Promise<boolean> {
    const m = this.rows.meta();
    if (m === undefined) return false;
    if (this.unlocked && passphrase === undefined) return true;
    const epoch = this.epoch;
    const p = passphrase ?? (await this.passphrase('unlock'));
    if (p === undefined) throw this.lockedError();
    const key = await this.unwrap(m, passphraseBytes(p), quiet);
    if (epoch === this.epoch && this.masterKey !== undefined) {
      key.fill(0); // already open: an explicit passphrase was only checked
      // It opens the vault: the current one (another process may have changed it since this
      // one opened), whatever was matched before.
      this.pinPassphrase(p);
      return true;
    }
    this.keep(key, m.vault_id, epoch, p);
    return true;
  }

  /**
   * Makes `key` the master key, unless a lock() came in since `epoch` was read (while a
   * passphrase was asked or a key derived): then the key is zeroed and the caller is refused, so
   * nothing that started before a lock leaves the vault open after it. The passphrase that
   * opened it is redacted like a value while the vault is open (typed into a chat, pasted into
   * a tool's arguments), and forgotten by lock().
   */
  private keep(key: Buffer, vaultId: Uint8Array, epoch: number, passphrase: string): void {
    if (epoch !== this.epoch) {
      key.fill(0);
      throw this.lockedError();
    }
    this.masterKey = key;
    this.vaultId = Buffer.from(vaultId);
    this.pinPassphrase(passphrase);
    this.feedRedactor(key, this.vaultId);
  }

  /** The redactor matches `p` (when long enough; see PASSPHRASE_PIN_CHARS) instead of any earlier one. */
  private pinPassphrase(p: string): void {
    if (this.redactor === undefined) return;
    try {
      if ([...p].length >= PASSPHRASE_PIN_CHARS) this.redactor.pin(PASSPHRASE_PIN, p);
      else this.redactor.unpin(PASSPHRASE_PIN);
    } catch (err) {
      // The redactor cannot take it (its regex would be too large). The vault is open all the
      // same, and an earlier passphrase (which may open nothing now) is not kept in its place.
      try {
        this.redactor.unpin(PASSPHRASE_PIN);
      } catch {
        // It stays as it was: nothing more can be done here.
      }
      this.log.error({ err }, 'the vault passphrase could not be added to the redactor: it is not redacted');
    }
  }

  private lockedError(): AppError {
    return new AppError(ErrorCode.VAULT_LOCKED, 'the vault is locked: this needs the vault passphrase', {
      hint: 'set BLUFIO_VAULT_KEY, or run the command on a terminal to be asked for it',
    });
  }

  /** The master key inside `m`, unwrapped with the key from `pass` (zeroed here, as is the derived key). */
  private async unwrap(m: VaultMetaRow, pass: Buffer, quiet = false): Promise<Buffer> {
    let kek: Buffer | undefined;
    try {
      const params = this.recordParams(m);
      kek = await this.derive(pass, m, params);
      const key = open(kek, m.wrapped_key, wrapAad(m.vault_id, params, m.salt));
      if (key === undefined || key.length !== KEY_BYTES) {
        if (!quiet) this.log.error('vault unlock failed: wrong passphrase, or a changed key record');
        throw new AppError(ErrorCode.VAULT_KEY_INVALID, 'the passphrase does not open the vault', {
          hint: 'check BLUFIO_VAULT_KEY (or what you typed); the passphrase cannot be recovered if it is lost',
        });
      }
      return key;
    } finally {
      pass.fill(0);
      kek?.fill(0);
    }
  }

  /** paramsOf, with a refused record logged at ERROR (a security violation: someone changed it). */
  private recordParams(m: VaultMetaRow): KdfParams {
    try {
      return paramsOf(m);
    } catch (err) {
      this.log.error({ err }, 'the vault key record was changed or damaged');
      throw err;
    }
  }

  /**
   * The key-encryption key from a stored record. The record passed paramsOf, so a derivation
   * that argon2 refuses for its arguments anyway (InvalidArg) is a changed record too, never an
   * internal error. Any other failure (memory) is not the record's doing: it is thrown as it is,
   * and whoever unlocks may try again, where calling it tampering would lock the app for good.
   */
  private async derive(pass: Buffer, m: VaultMetaRow, params: KdfParams): Promise<Buffer> {
    try {
      return await deriveKey(pass, m.salt, params);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'InvalidArg') throw err;
      this.log.error({ err }, 'the vault key record was changed or damaged: the key derivation refused it');
      throw new AppError(ErrorCode.VAULT_TAMPERED, "the vault's key record cannot be used: the key derivation refused it; it was changed or damaged", {
        hint: 'restore the database from a backup',
        cause: err,
      });
    }
  }

  private async wrap(vaultId: Buffer, masterKey: Buffer, pass: Buffer): Promise<VaultMetaInput> {
    const salt = randomBytes(SALT_BYTES);
    let kek: Buffer | undefined;
    try {
      kek = await deriveKey(pass, salt, DEFAULT_KDF);
      return {
        vault_id: new Uint8Array(vaultId),
        kdf: 'argon2id',
        kdf_memory_kib: DEFAULT_KDF.memoryKib,
        kdf_iterations: DEFAULT_KDF.iterations,
        kdf_parallelism: DEFAULT_KDF.parallelism,
        salt: new Uint8Array(salt),
        wrapped_key: seal(kek, masterKey, wrapAad(vaultId, DEFAULT_KDF, salt)),
      };
    } finally {
      kek?.fill(0);
      pass.fill(0);
    }
  }

  /**
   * The key, unlocked (creating the vault first when there is none: the first secret creates
   * it). Callers use it synchronously after the await: keyNow() checks that no lock() came in
   * between (a lock zeroes the very Buffer returned here, and a key of zeros must never encrypt
   * or derive anything).
   */
  private async keyNow(create: boolean): Promise<{ key: Buffer; id: Buffer }> {
    const r = await this.ready(create);
    this.live(r.key);
    return r;
  }

  /** Throws unless `key` is still the live master key: checked right before it is used, synchronously. */
  private live(key: Buffer): void {
    if (this.masterKey !== key) throw this.lockedError();
  }

  private async ready(create: boolean): Promise<{ key: Buffer; id: Buffer }> {
    if (this.masterKey === undefined) {
      const opened = await this.unlock();
      if (!opened) {
        if (!create) throw new AppError(ErrorCode.NOT_FOUND, 'there is no vault yet', { hint: 'blufio config set-secret <name> creates it' });
        this.creating ??= this.create().finally(() => (this.creating = undefined));
        await this.creating;
      }
    }
    return { key: this.masterKey!, id: this.vaultId! };
  }

  private async create(): Promise<void> {
    // Read before the passphrase is asked for: a lock() while the prompt waits must stop the
    // creation, as it stops an unlock.
    const epoch = this.epoch;
    const p = await this.passphrase('create');
    if (p === undefined) {
      throw new AppError(ErrorCode.VAULT_LOCKED, 'creating the vault needs a passphrase', {
        hint: 'set BLUFIO_VAULT_KEY, or run the command on a terminal to choose one',
      });
    }
    if (epoch !== this.epoch) throw this.lockedError();
    const id = randomBytes(16);
    const key = randomFillSync(Buffer.alloc(KEY_BYTES));
    const held = await this.rows.init(await this.wrap(id, key, newPassphraseBytes(p)));
    if (Buffer.compare(Buffer.from(held.vault_id), id) !== 0) {
      // Another process created the vault first: ours is discarded, theirs must open with this
      // passphrase (a lock() during that derivation is honoured too).
      key.fill(0);
      this.keep(await this.unwrap(held, passphraseBytes(p)), held.vault_id, epoch, p);
      return;
    }
    this.keep(key, id, epoch, p);
    this.log.info('vault created');
  }

  async set(name: string, value: string): Promise<void> {
    const n = checkNewName(checkName(name));
    if (typeof value !== 'string' || value.length === 0) throw new AppError(ErrorCode.INVALID_INPUT, `the value of ${n} must be a non-empty string`);
    if (!value.isWellFormed()) throw new AppError(ErrorCode.INVALID_INPUT, `the value of ${n} has an unpaired UTF-16 surrogate`);
    const bytes = privateBytes(value);
    try {
      if (bytes.length > MAX_VALUE_BYTES) throw new AppError(ErrorCode.INVALID_INPUT, `the value of ${n} is ${bytes.length} bytes; the limit is ${MAX_VALUE_BYTES}`);
      const { key, id } = await this.keyNow(true);
      this.live(key);
      // Known to the redactor before it is stored, so no log line of the write can carry it.
      this.redactor?.setSecret(n, value);
      await this.rows.put(n, seal(key, bytes, entryAad(id, n)));
    } finally {
      bytes.fill(0);
    }
  }

  /**
   * A 256-bit key for one purpose (`label`, e.g. `blufio/objects/v1`), derived from the master
   * key with HKDF-SHA256 and bound to this vault's id: other parts get keys of their own without
   * ever holding the master key. Unlocks when needed; `create` creates the vault when there is
   * none (asking for a new passphrase). The caller zeroes the Buffer when done with it.
   */
  async subkey(label: string, opts?: SubkeyOptions): Promise<Buffer> {
    if (typeof label !== 'string' || label.length === 0 || label.length > MAX_LABEL_CHARS) {
      throw invalidInput(`a subkey label must be a string of 1 to ${MAX_LABEL_CHARS} characters (got ${shown(label, 40)})`);
    }
    const { create } = optionsObject(opts, 'subkey options', SUBKEY_OPTIONS);
    if (create !== undefined && typeof create !== 'boolean') throw invalidInput(`subkey option create must be true or false (got ${shown(create, 20)})`);
    const { key, id } = await this.keyNow(create === true);
    this.live(key);
    return Buffer.from(hkdfSync('sha256', key, id, Buffer.from(label, 'utf8'), KEY_BYTES));
  }

  /** Whether a secret of this name is stored (names are not secret: no unlock needed). */
  has(name: string): boolean {
    return this.rows.entry(checkName(name)) !== undefined;
  }

  async get(name: string): Promise<Secret> {
    const n = checkName(name);
    const { key, id } = await this.keyNow(false);
    this.live(key);
    const row = this.rows.entry(n);
    if (row === undefined) throw noSuchSecret(n);
    const plain = open(key, row.sealed, entryAad(id, n));
    if (plain === undefined) {
      this.reportTampered([n]);
      throw tampered(`the secret ${n}`);
    }
    // A value another process stored since the unlock is known to the redactor from now on.
    this.redactor?.setSecret(n, plain.toString('utf8'));
    return new Secret(plain);
  }

  async list(): Promise<SecretListing[]> {
    if (this.rows.meta() === undefined) return [];
    const { key, id } = await this.keyNow(false);
    this.live(key);
    const seen: [string, string][] = [];
    const failed: string[] = [];
    const listing = this.rows.entries().map((row) => {
      const plain = open(key, row.sealed, entryAad(id, row.name));
      let preview: string | null = null;
      if (plain !== undefined) {
        const value = plain.toString('utf8');
        preview = maskSecret(value);
        seen.push([row.name, value]);
        plain.fill(0);
      } else {
        failed.push(row.name);
      }
      return { name: row.name, preview, tampered: plain === undefined, createdAt: row.created_at, updatedAt: row.updated_at };
    });
    this.reportTampered(failed);
    // Values another process stored since the unlock are known to the redactor from now on.
    this.redactor?.addSecrets(seen);
    return listing;
  }

  async delete(name: string): Promise<boolean> {
    // A stored name the check refuses (a row written by other means) can still be deleted.
    const n =
      typeof name === 'string' && !NAME.test(name) && this.rows.entry(name) !== undefined
        ? name
        : checkSecretName(name, 'blufio config list-secrets (or list()) shows the names stored');
    await this.ready(false);
    const deleted = await this.rows.delete(n);
    this.redactor?.deleteSecret(n);
    return deleted;
  }

  /** Re-wraps the master key under a new passphrase: one row in one transaction; no entry changes. */
  async changePassphrase(newPassphrase?: string): Promise<void> {
    checkPassphrase(newPassphrase);
    // Before anything is asked or derived: a refused change must not have made anyone type.
    for (const guard of this.changeGuards) guard();
    const m = this.rows.meta();
    if (m === undefined) throw new AppError(ErrorCode.NOT_FOUND, 'there is no vault yet', { hint: 'blufio config set-secret <name> creates it' });
    const ready = await this.keyNow(false);
    this.live(ready.key);
    // A private copy: a lock() while the new passphrase is asked and derived zeroes the live key,
    // and a zero key must never be wrapped (every entry would be lost).
    const key = Buffer.alloc(KEY_BYTES);
    ready.key.copy(key);
    try {
      const p = newPassphrase ?? (await this.passphrase('change'));
      if (p === undefined) {
        throw new AppError(ErrorCode.VAULT_LOCKED, 'changing the passphrase needs the new one', {
          hint: 'set BLUFIO_NEW_VAULT_KEY, or run the command on a terminal to be asked for it',
        });
      }
      await this.rows.rewrap(await this.wrap(ready.id, key, newPassphraseBytes(p)), m.wrapped_key);
      for (const l of this.changeListeners) l(p);
      // The old one opens nothing now; the new one is what a leak would give away. Only while
      // the vault is open: a lock() that came in meanwhile holds no passphrase (and an unlock
      // after it opened the same key, which the new one now wraps).
      if (this.masterKey !== undefined) this.pinPassphrase(p);
    } finally {
      key.fill(0);
    }
    this.log.info('vault passphrase changed');
  }

  private readonly changeListeners = new Set<(newPassphrase: string) => void>();
  private readonly changeGuards = new Set<() => void>();

  /** Checked first by every passphrase change: a guard that throws refuses the change, nothing asked or written. */
  guardPassphraseChange(guard: () => void): void {
    this.changeGuards.add(guard);
  }

  /**
   * Called after this vault's passphrase was changed, with the new one: whoever unlocks it again
   * without asking (the app's standing passphrase) must not go on trying the old one.
   */
  onPassphraseChange(listener: (newPassphrase: string) => void): void {
    this.changeListeners.add(listener);
  }

  private readonly lockListeners = new Set<() => void>();

  /**
   * Called on every lock(): parts holding keys derived from the vault (subkey) drop them and
   * stop what uses them. Returns the undo.
   */
  onLock(listener: () => void): () => void {
    this.lockListeners.add(listener);
    return () => void this.lockListeners.delete(listener);
  }

  /** Zeroes the master key; the next use unlocks again. */
  lock(): void {
    for (const l of this.lockListeners) {
      try {
        l();
      } catch (err) {
        this.log.error({ err }, 'a lock listener failed');
      }
    }
    this.epoch++;
    this.masterKey?.fill(0);
    this.masterKey = undefined;
    this.vaultId = undefined;
    this.fed = '';
    this.known = new Set();
    // Locked means no plaintext secret held by this process: the redactor forgets the values
    // and the passphrase, and falls back to the known formats.
    this.redactor?.clearSecrets();
    this.redactor?.unpin(PASSPHRASE_PIN);
  }
}
