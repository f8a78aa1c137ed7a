import path from 'node:path';
import { z } from 'zod';
import { AppError, ErrorCode, isAppError } from '../errors/index.js';
import { checkOptions, configSecretValues, forgetSecretEnv, loadConfig, LoadOptionsSchema, takeSecret, takeSecretEnv, type BlufioConfig, type SecretFileWarning, type Durability, type Env } from '../config/index.js';
import { createLogger, withRedaction, type Logger } from '../log/index.js';
import { Redactor } from '../redact/index.js';
import {
  ownersDir,
  Storage,
  type BackupOptions,
  type BackupReport,
  type CheckpointResult,
  type CheckReport,
  type Messages,
  type Queue,
  type Sessions,
} from '../storage/index.js';
import { moveConfigSecrets, nameLooksLikeSecret, PASSPHRASE_PIN_CHARS, Vault, VAULT_KEY_ENV, type PassphraseProvider } from '../vault/index.js';
import { createSafeFetch, type SafeFetch } from '../net/index.js';
import { fileKind, keyFor, openGate, refuseSharedKeyChange } from '../dbcrypt/index.js';
import { dbLockedError, StorageSlot } from './slot.js';
import { ObjectStore } from '../objects/index.js';

export interface OpenOptions {
  /** The data directory ("vault path"); default BLUFIO_DATA_DIR, storage.database_path, then XDG. */
  dataDir?: string;
  /** The TOML config file; default BLUFIO_CONFIG, then ~/.config/blufio/blufio.toml. */
  configPath?: string;
  /** Overrides storage.durability from the config file. */
  durability?: Durability;
  /** A pino logger to use instead of JSON lines on stderr. */
  logger?: Logger;
  /** The vault passphrase; default BLUFIO_VAULT_KEY. Used when the vault is first needed. */
  passphrase?: string;
  /**
   * Asked when no passphrase was given and BLUFIO_VAULT_KEY is not set (the CLI's hidden
   * prompt), and for the new one on a passphrase change when BLUFIO_NEW_VAULT_KEY is not set.
   */
  askPassphrase?: PassphraseProvider;
  env?: Env;
  /**
   * No degraded start (the daemon): a vault that exists must unlock now, and plaintext secrets in
   * the config file must move into the vault now; otherwise the open fails (KC_VAULT_LOCKED,
   * KC_VAULT_KEY_INVALID). Without it the vault unlocks when first used.
   */
  requireVault?: boolean;
}

export interface BlufioApp {
  readonly config: BlufioConfig;
  readonly sessions: Sessions;
  readonly messages: Messages;
  readonly queue: Queue;
  readonly vault: Vault;
  /** Attachments: put(streamOrBuffer) → ref for message metadata; get(ref) → stream; gc, verify. */
  readonly objects: ObjectStore;
  readonly db: {
    check(): Promise<CheckReport>;
    backup(dest: string, opts?: BackupOptions): Promise<BackupReport>;
    checkpoint(): Promise<CheckpointResult>;
  };
  /** Redacts secrets from every line: the built-in formats, [redaction] patterns and the vault's values. */
  readonly log: Logger;
  /** The redactor behind `log` and storage: `redact(text)` for text you show or send elsewhere. */
  readonly redactor: Redactor;
  /**
   * The SSRF-safe fetch with this config's `security.allowed_private_ips`, logging to `log`.
   * Its connections are closed by `close()`.
   */
  readonly fetch: SafeFetch;
  /**
   * Zeroes the vault key and, when the database is encrypted, closes it and drops its key: every
   * call that needs them then fails KC_VAULT_LOCKED or KC_DB_LOCKED until unlock(). Queue workers
   * stop with the database (start them again after unlock).
   */
  lock(): Promise<void>;
  /**
   * Opens what lock() closed. `passphrase` unlocks the vault, and the database too unless
   * `databasePassphrase` is given for it. A wrong one fails (KC_DB_KEY_INVALID,
   * KC_VAULT_KEY_INVALID) and leaves everything locked.
   */
  unlock(opts: { passphrase?: string; databasePassphrase?: string }): Promise<void>;
  lockStatus(): LockStatus;
  /** Stops queue workers, finishes pending writes, checkpoints the WAL, zeroes keys and releases the file. */
  close(): Promise<void>;
}

export interface LockStatus {
  /**
   * lock() was called and unlock() has not succeeded since, or another process created a vault
   * that this app has no passphrase for (until unlock()).
   */
  locked: boolean;
  /** Since when (ms since 1970), null when not locked. */
  lockedSinceMs: number | null;
  databaseEncrypted: boolean;
  /** The database is closed for want of its key (only ever when it is encrypted). */
  databaseLocked: boolean;
  vaultUnlocked: boolean;
}

const OpenOptionsSchema = LoadOptionsSchema.extend({
  logger: z
    .custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).info === 'function', 'must be a pino logger')
    .optional(),
  passphrase: z.string().min(1, 'must not be empty').optional(),
  askPassphrase: z.custom<PassphraseProvider>((v) => typeof v === 'function', 'must be a function').optional(),
  requireVault: z.boolean().optional(),
});

/**
 * The vault passphrases from the environment (taken out of it: see takeSecretEnv), or from the
 * file BLUFIO_VAULT_KEY_FILE names (a systemd credential, a container secret), which keeps the
 * passphrase out of the process's initial environment. Read before the logger exists, so a
 * warning about the file waits in `warnings`.
 */
function envPassphrases(env: Env): { key: string | undefined; newKey: string | undefined; warnings: [string, string][] } {
  const warnings: [string, string][] = [];
  // The new passphrase first: reading the key's file can fail, and must leave neither behind.
  const newKey = takeSecretEnv(env, 'BLUFIO_NEW_VAULT_KEY');
  const key = takeSecret(env, VAULT_KEY_ENV, '', (message, file) => warnings.push([message, file]));
  return { key, newKey, warnings };
}

/** The redactor's name for the passphrase of an encrypted database (see unlock and lock). */
const DB_PASSPHRASE_PIN = 'database-passphrase';

/**
 * The redactor matches the database passphrase while the database is open (as the vault does its
 * own; see PASSPHRASE_PIN_CHARS). Never throws: the database is open by then, and a redactor that
 * cannot take the passphrase (its regex would be too large) must not leave it open unowned.
 */
function pinDbPassphrase(redactor: Redactor, log: Logger, p: string): void {
  if ([...p].length < PASSPHRASE_PIN_CHARS) return;
  try {
    redactor.pin(DB_PASSPHRASE_PIN, p);
  } catch (err) {
    log.error({ err }, 'the database passphrase could not be added to the redactor: it is not redacted');
  }
}

const UnlockOptionsSchema = z.strictObject({
  passphrase: z.string().optional(),
  databasePassphrase: z.string().optional(),
});

export async function openBlufio(options: OpenOptions = {}): Promise<BlufioApp> {
  // The passphrases leave process.env before anything can fail (bad options or config, a
  // database held by another process, a wrong key): a failed open must leave nothing there
  // for the caller's child processes. The database key's variable is named in vault.json, so
  // it is taken by the gate, as soon as vault.json is read.
  let env: Env = process.env;
  try {
    env = (options as OpenOptions | null | undefined)?.env ?? process.env;
  } catch {
    // A revoked Proxy: checkOptions below refuses it, after the passphrases left process.env.
  }
  const envKeys = envPassphrases(env);
  checkOptions(OpenOptionsSchema, options, 'openBlufio');
  const config = loadConfig({
    ...(options.configPath === undefined ? {} : { configPath: options.configPath }),
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.durability === undefined ? {} : { durability: options.durability }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  const redactor = new Redactor(config.redaction.extraPatterns);
  // Secrets written in the config file are matched from the first log line on, whether or not
  // they can be moved into the vault (no passphrase at hand; the vault holds another value).
  redactor.pinAll(configSecretValues(config).map((s) => [`config:${s.vaultName}`, s.value]));
  const log = options.logger === undefined ? createLogger({ level: config.logging.level, redactor }) : withRedaction(options.logger, redactor);
  const warnFile: SecretFileWarning = (message, file) => log.warn({ file }, message);
  for (const [message, file] of envKeys.warnings) warnFile(message, file);
  // A database passphrase typed at the prompt is tried on the vault too (below): someone who
  // uses one passphrase for both types it once.
  let typed: string | undefined;
  const ask: PassphraseProvider | undefined =
    options.askPassphrase === undefined
      ? undefined
      : async (purpose) => {
          const p = await options.askPassphrase!(purpose);
          if (purpose === 'database' || purpose === 'new-database') typed = p;
          return p;
        };
  const gate = await openGate(config.databasePath, { env, ask, lockTimeoutMs: config.storage.lockTimeoutMs, warn: warnFile });
  const scrub = { text: (t: string) => redactor.redact(t), json: (t: string) => redactor.scrubJson(t) };
  let storage: Storage;
  try {
    storage = await Storage.open(config, log, { scrub, ...(gate.cipherKey === undefined ? {} : { cipherKey: gate.cipherKey }) });
  } finally {
    // Held until the connections are open: a migration cannot start in between.
    gate.release();
  }
  const slot = new StorageSlot(storage);
  const encrypted = gate.cipherKey !== undefined;
  // The database passphrase is a secret like the vault's: redacted while the database is open
  // (the vault pins its own), forgotten by lock().
  if (gate.passphrase !== undefined) pinDbPassphrase(redactor, log, gate.passphrase);
  let lockedSince: number | null = null;
  let vaultLockedByUser = false;
  let closed = false;
  const fromEnv: { key: string | undefined; newKey: string | undefined; given: string | undefined } = { key: envKeys.key, newKey: envKeys.newKey, given: options.passphrase };
  /** The passphrase this app may use without asking: given to openBlufio, or BLUFIO_VAULT_KEY. */
  const standing = (): string | undefined => fromEnv.given ?? fromEnv.key;
  const provider: PassphraseProvider = async (purpose) => {
    // Locked on purpose: only unlock() with a passphrase opens the vault again, not the
    // environment, the passphrase given at open, or a prompt.
    if (vaultLockedByUser) return undefined;
    if (purpose === 'change') return fromEnv.newKey ?? (await ask?.(purpose));
    return standing() ?? (await ask?.(purpose));
  };
  const vault = new Vault(slot.facade((s) => s.vaultRows, true), provider, log, redactor);
  // After changePassphrase() the standing passphrase is the new one: a lock() and the next use
  // retried the old one and failed KC_VAULT_KEY_INVALID.
  vault.onPassphraseChange((p) => {
    if (standing() !== undefined) fromEnv.given = p;
  });
  vault.guardPassphraseChange(() => refuseSharedKeyChange(config.databasePath));
  if (typed !== undefined && standing() === undefined) {
    try {
      await vault.tryUnlock(typed);
    } catch (err) {
      await storage.close();
      throw err;
    }
  }
  typed = undefined;
  if (options.requireVault === true) {
    try {
      await vault.unlock();
    } catch (err) {
      await storage.close();
      throw err;
    }
  }
  // Named like a token, a secret cannot be a vault entry: it stays in the file (moveConfigSecrets says so).
  const movable = config.plaintextSecrets.filter((n) => nameLooksLikeSecret(n).length === 0);
  if (config.plaintextSecrets.length > 0) {
    // Moved at the first chance: now, when a passphrase can be had (given, in the environment,
    // or asked on a terminal); otherwise they stay where they are and this says so.
    try {
      await moveConfigSecrets(config.configPath, vault, log);
    } catch (err) {
      if (!isAppError(err, ErrorCode.VAULT_LOCKED) || options.requireVault === true) {
        await storage.close();
        if (isAppError(err, ErrorCode.VAULT_LOCKED)) {
          throw new AppError(ErrorCode.VAULT_LOCKED, `${config.configPath} holds plaintext secrets (${movable.join(', ')}) and no vault passphrase is available to move them into the vault`, {
            hint: 'set BLUFIO_VAULT_KEY, or start on a terminal to be asked for it',
          });
        }
        throw err;
      }
      log.warn(
        { file: config.configPath, secrets: movable },
        'the config file holds plaintext secrets; they move into the vault the next time blufio runs with the vault passphrase (BLUFIO_VAULT_KEY)',
      );
    }
  }
  // Secrets set or deleted by another process (the CLI beside a daemon) reach the redactor
  // within a second, so no log line or stored row of this process carries them. A vault that
  // another process created after this one started is opened with the standing passphrase;
  // without one, the app reports itself locked (a daemon then refuses data calls) until
  // unlock(): values it cannot know must not be stored unredacted.
  // A vault a caller locked (app.vault.lock()) is not opened again by this: the key stays away
  // until a use or unlock() asks for it. Its values are gone from the redactor meanwhile, so
  // the app reports itself locked (a daemon refuses data calls) until then, as for a vault it
  // cannot open. (app.lock() has its own flag, vaultLockedByUser.)
  let vaultAppeared: number | null = null;
  // Whether the vault was there when this app opened: one that was is not news. The CLI waiting
  // at its passphrase prompt warned that another process had created it.
  const vaultAtOpen = (await vault.status().catch(() => ({ exists: true }))).exists;
  let refreshing = false;
  let lockedByVaultCaller = false;
  vault.onLock(() => {
    if (!vaultLockedByUser) lockedByVaultCaller = true;
  });
  const refreshVault = async (): Promise<void> => {
    if (closed) return;
    // Locked or not: a vault write's old values must leave the file whatever happens after it.
    vault.settle();
    if (vault.unlocked) {
      // Open again (a use, unlock()): whatever locked it is over.
      lockedByVaultCaller = false;
      vaultAppeared = null;
      vault.refresh();
      return;
    }
    if (vaultLockedByUser || closed || !(await vault.status()).exists) return;
    if (lockedByVaultCaller) {
      vaultAppeared ??= Date.now();
      return;
    }
    const p = standing();
    if (p === undefined) {
      if (vaultAppeared === null) {
        vaultAppeared = Date.now();
        if (!vaultAtOpen) log.warn('a vault was created by another process and no passphrase is at hand to open it: locked until unlock() (vault_unlock)');
      }
      return;
    }
    await vault.unlock(p);
    vaultAppeared = null;
  };
  const refresher = setInterval(() => {
    if (refreshing) return;
    refreshing = true;
    refreshVault()
      .catch((err: unknown) => {
        if (isAppError(err, ErrorCode.VAULT_KEY_INVALID) || isAppError(err, ErrorCode.VAULT_TAMPERED)) {
          // The standing passphrase does not open the vault another process created (or its key
          // record is damaged, logged at ERROR once): no derivation again every second.
          fromEnv.key = fromEnv.given = undefined;
          vaultAppeared ??= Date.now();
        } else if (!isAppError(err, ErrorCode.DB_LOCKED) && !isAppError(err, ErrorCode.DB_CLOSED) && !isAppError(err, ErrorCode.VAULT_LOCKED)) {
          log.warn({ err }, 'reading the vault entries for the redactor failed');
        }
      })
      .finally(() => (refreshing = false));
  }, 1000);
  refresher.unref();
  const objects = new ObjectStore({
    rows: slot.facade((s) => s.objectRows, true),
    vaultDir: path.dirname(config.databasePath),
    settings: config.objects,
    vault,
    log,
    scrub,
    lockTimeoutMs: config.storage.lockTimeoutMs,
    ownersDir: ownersDir(config.databasePath),
  });
  const safeFetch = createSafeFetch({ allowedPrivateIps: config.security.allowedPrivateIps, logger: log });
  // lock, unlock and close run one at a time: an unlock racing a lock must not leave a database
  // open that the lock meant to close.
  // One with nothing before it starts at once, synchronously: close() must mark the storage
  // closing before its caller's next statement.
  let turn: Promise<unknown> = Promise.resolve();
  let inFlight = 0;
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = inFlight === 0 ? fn() : turn.then(fn, fn);
    inFlight++;
    turn = p.then(
      () => void inFlight--,
      () => void inFlight--,
    );
    return p;
  };
  // The object store's directory as vault.json names it, for the backup's refusals (none when
  // vault.json cannot be read: the backup then keeps to the default names).
  const objectStoreDir = (): string[] => {
    try {
      return [objects.dir];
    } catch {
      return [];
    }
  };
  return {
    config,
    sessions: slot.facade((s) => s.sessions),
    messages: slot.facade((s) => s.messages),
    queue: slot.facade((s) => s.queue),
    vault,
    objects,
    db: slot.facade((s) => ({
      check: () => s.check(),
      backup: (dest: string, opts?: BackupOptions) => s.backup(dest, opts, objectStoreDir()),
      checkpoint: () => s.checkpoint(),
    })),
    log,
    redactor,
    fetch: safeFetch,
    lock: () =>
      serial(async () => {
        if (closed) throw new AppError(ErrorCode.DB_CLOSED, 'the app is closed');
        lockedSince ??= Date.now();
        vaultLockedByUser = true;
        try {
          vault.lock();
        } finally {
          // No passphrase stays reachable from this app once locked (strings cannot be zeroed,
          // but they can be let go), whatever failed above or fails below.
          fromEnv.key = fromEnv.newKey = fromEnv.given = undefined;
          vaultAppeared = null;
          forgetSecretEnv();
          const s = slot.storage;
          try {
            if (encrypted && s !== undefined) {
              slot.lockAway();
              await s.close();
            }
          } finally {
            redactor.unpin(DB_PASSPHRASE_PIN);
          }
        }
        log.info({ databaseEncrypted: encrypted }, 'locked');
      }),
    unlock: (given) =>
      serial(async () => {
        // Passphrases come from JavaScript callers too: a number is refused, not a TypeError.
        const opts = checkOptions(UnlockOptionsSchema, given, 'unlock');
        if (closed) throw new AppError(ErrorCode.DB_CLOSED, 'the app is closed');
        if (!opts.passphrase && !opts.databasePassphrase) {
          throw new AppError(ErrorCode.INVALID_INPUT, 'unlock needs a passphrase', { hint: 'pass { passphrase } (and { databasePassphrase } when the database has its own)' });
        }
        const dbPass = opts.databasePassphrase ?? opts.passphrase;
        let opened: Storage | undefined;
        if (encrypted && slot.storage === undefined) {
          if (dbPass === undefined || dbPass === '') throw dbLockedError();
          // It was open, encrypted, before lock(): gone or replaced meanwhile, it must not be
          // born again (a new empty database, under whatever passphrase unlock was given).
          const kind = fileKind(config.databasePath);
          if (kind !== 'encrypted') {
            throw new AppError(ErrorCode.DB_STATE_MISMATCH, `${config.databasePath} is ${kind} now; it was an encrypted database when the app was locked`, {
              hint: 'restore the encrypted database (from a backup) and unlock again; nothing was changed',
            });
          }
          try {
            opened = await Storage.open(config, log, { scrub, cipherKey: await keyFor(config.databasePath, dbPass) });
            pinDbPassphrase(redactor, log, dbPass);
          } catch (err) {
            throw isAppError(err, ErrorCode.DB_KEY_INVALID) ? wrongDatabasePassphrase(opts.databasePassphrase === undefined, err) : err;
          }
          slot.set(opened);
        }
        try {
          if (opts.passphrase !== undefined) {
            await vault.unlock(opts.passphrase);
            vaultLockedByUser = false;
            lockedByVaultCaller = false;
          }
        } catch (err) {
          if (opened !== undefined) {
            slot.lockAway();
            try {
              await opened.close();
            } finally {
              redactor.unpin(DB_PASSPHRASE_PIN);
            }
          }
          throw err;
        }
        if (!vaultLockedByUser) {
          lockedSince = null;
          if (vault.unlocked) vaultAppeared = null;
        }
        log.info({ vaultLocked: vaultLockedByUser }, 'unlocked');
      }),
    lockStatus: () => ({
      locked: lockedSince !== null || vaultAppeared !== null,
      lockedSinceMs: lockedSince ?? vaultAppeared,
      databaseEncrypted: encrypted,
      databaseLocked: encrypted && slot.storage === undefined,
      vaultUnlocked: vault.unlocked,
    }),
    close: () =>
      serial(async () => {
        closed = true;
        clearInterval(refresher);
        // storage.close() first: it marks the app closing synchronously, before any await. The
        // vault is locked last, so what is logged while closing is still redacted of its values.
        // Puts in progress are stopped (their temporary files removed).
        const stopped = objects.close();
        const stored = slot.storage?.close();
        try {
          await Promise.all([stopped, stored, safeFetch.close()]);
        } finally {
          try {
            vault.lock();
          } finally {
            redactor.unpin(DB_PASSPHRASE_PIN);
          }
        }
      }),
  };
}

/**
 * unlock() with a database passphrase that does not open it. Without databasePassphrase the
 * vault passphrase was tried, as for whoever uses one for both; a database whose key came from
 * its variable at open needs it given anew (the key is dropped at lock, the variable with it),
 * and saying "check the variable" would send the caller to what is never read again.
 */
function wrongDatabasePassphrase(triedVaultPassphrase: boolean, cause: AppError): AppError {
  if (!triedVaultPassphrase) {
    return new AppError(ErrorCode.DB_KEY_INVALID, 'the database passphrase is wrong: it does not open the encrypted database; nothing was changed', {
      hint: 'send the passphrase the database was encrypted with as databasePassphrase',
      cause,
    });
  }
  return new AppError(
    ErrorCode.DB_KEY_INVALID,
    'the passphrase does not open the encrypted database, which has a passphrase of its own (the key read at start from the variable db_encryption.key_reference names was dropped at lock); nothing was changed',
    {
      hint: 'send the database passphrase as databasePassphrase beside passphrase (vault_unlock { passphrase, databasePassphrase }; app.unlock({ passphrase, databasePassphrase }))',
      cause,
    },
  );
}
