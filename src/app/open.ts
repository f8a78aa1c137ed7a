import { z } from 'zod';
import { ErrorCode, isAppError } from '../errors/index.js';
import { checkOptions, loadConfig, LoadOptionsSchema, takeSecretEnv, type BlufioConfig, type Durability, type Env } from '../config/index.js';
import { createLogger, withRedaction, type Logger } from '../log/index.js';
import { Redactor } from '../redact/index.js';
import {
  Storage,
  type BackupOptions,
  type BackupReport,
  type CheckpointResult,
  type CheckReport,
  type Messages,
  type Queue,
  type Sessions,
} from '../storage/index.js';
import { moveConfigSecrets, Vault, type PassphraseProvider } from '../vault/index.js';
import { createSafeFetch, type SafeFetch } from '../net/index.js';
import { assertUnchanged, openGate } from '../dbcrypt/index.js';

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
}

export interface BlufioApp {
  readonly config: BlufioConfig;
  readonly sessions: Sessions;
  readonly messages: Messages;
  readonly queue: Queue;
  readonly vault: Vault;
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
  /** Stops queue workers, finishes pending writes, checkpoints the WAL, zeroes keys and releases the file. */
  close(): Promise<void>;
}

const OpenOptionsSchema = LoadOptionsSchema.extend({
  logger: z
    .custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).info === 'function', 'must be a pino logger')
    .optional(),
  passphrase: z.string().min(1, 'must not be empty').optional(),
  askPassphrase: z.custom<PassphraseProvider>((v) => typeof v === 'function', 'must be a function').optional(),
});

/** The vault passphrases from the environment (taken out of it: see takeSecretEnv). */
function envPassphrases(env: Env): { key: string | undefined; newKey: string | undefined } {
  return { key: takeSecretEnv(env, 'BLUFIO_VAULT_KEY'), newKey: takeSecretEnv(env, 'BLUFIO_NEW_VAULT_KEY') };
}

export async function openBlufio(options: OpenOptions = {}): Promise<BlufioApp> {
  checkOptions(OpenOptionsSchema, options, 'openBlufio');
  const config = loadConfig({
    ...(options.configPath === undefined ? {} : { configPath: options.configPath }),
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    ...(options.durability === undefined ? {} : { durability: options.durability }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  const redactor = new Redactor(config.redaction.extraPatterns);
  const log = options.logger === undefined ? createLogger({ level: config.logging.level, redactor }) : withRedaction(options.logger, redactor);
  const env = options.env ?? process.env;
  const ask = options.askPassphrase;
  const gate = await openGate(config.databasePath, { env, ask });
  const storage = await Storage.open(config, log, {
    scrub: { text: (t) => redactor.redact(t), json: (t) => redactor.scrubJson(t) },
    ...(gate.cipherKey === undefined ? {} : { cipherKey: gate.cipherKey }),
  });
  // A migration started by another process between the gate and the open would leave this one
  // writing to a file about to be replaced: the manifest is read once more now that the file is
  // held open (a migration refuses to start while it is).
  try {
    assertUnchanged(config.databasePath, gate.manifest);
  } catch (err) {
    await storage.close();
    throw err;
  }
  const fromEnv = envPassphrases(env);
  const provider: PassphraseProvider = async (purpose) => {
    if (purpose === 'change') return fromEnv.newKey ?? (await ask?.(purpose));
    return options.passphrase ?? fromEnv.key ?? (await ask?.(purpose));
  };
  const vault = new Vault(storage.vaultRows, provider, log, redactor);
  if (config.plaintextSecrets.length > 0) {
    // Moved at the first chance: now, when a passphrase can be had (given, in the environment,
    // or asked on a terminal); otherwise they stay where they are and this says so.
    try {
      await moveConfigSecrets(config.configPath, vault, log);
    } catch (err) {
      if (!isAppError(err, ErrorCode.VAULT_LOCKED)) {
        await storage.close();
        throw err;
      }
      log.warn(
        { file: config.configPath, secrets: config.plaintextSecrets },
        'the config file holds plaintext secrets; they move into the vault the next time blufio runs with the vault passphrase (BLUFIO_VAULT_KEY)',
      );
    }
  }
  const safeFetch = createSafeFetch({ allowedPrivateIps: config.security.allowedPrivateIps, logger: log });
  return {
    config,
    sessions: storage.sessions,
    messages: storage.messages,
    queue: storage.queue,
    vault,
    db: {
      check: () => storage.check(),
      backup: (dest, opts) => storage.backup(dest, opts),
      checkpoint: () => storage.checkpoint(),
    },
    log,
    redactor,
    fetch: safeFetch,
    close: async () => {
      // storage.close() first: it marks the app closing synchronously, before any await. The
      // vault is locked last, so what is logged while closing is still redacted of its values.
      const stored = storage.close();
      try {
        await Promise.all([stored, safeFetch.close()]);
      } finally {
        vault.lock();
      }
    },
  };
}
