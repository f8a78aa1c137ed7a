import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { AppError, ErrorCode } from '../errors/index.js';
import {
  DATABASE_FILE_NAME,
  defaultConfigPath,
  defaultDataDir,
  expandPath,
  type Env,
} from './paths.js';
import { checkOptions } from './options.js';
import { physicalPath } from './path-walk.js';
import { readOnce } from './read-once.js';
import { refuseReplaceableByAnyone } from './writable.js';
import { ConfigFileSchema, KNOWN_KEYS, LoadOptionsSchema, type Durability, type LogLevel } from './schema.js';
import { plaintextSecrets, type PlaintextSecret } from './secrets.js';
import { locateKey } from './toml-locate.js';
import { claimFloorBytes } from '../storage/queue/sizes.js';

/** The validated configuration with every path resolved. */
export interface BlufioConfig {
  /** The file that was (or would have been) read. */
  configPath: string;
  configFileFound: boolean;
  /** The "vault path": the directory that holds the database and vault.json. */
  dataDir: string;
  databasePath: string;
  storage: {
    durability: Durability;
    maxMessageBytes: number;
    lockTimeoutMs: number;
  };
  queue: QueueSettings;
  /** [objects]: the attachment store. */
  objects: ObjectSettings;
  /** Providers' settings other than their secrets (those are in the vault). */
  providers: Record<string, { baseUrl: string | undefined }>;
  channels: string[];
  /** Vault names of secrets still written in plaintext in the config file (never their values). */
  plaintextSecrets: string[];
  /** [security]: `allowedPrivateIps` in normal CIDR form (`10.0.0.0/8`, `192.168.1.20/32`). */
  security: { allowedPrivateIps: string[]; bindAddress: string };
  /** [server]: the daemon (`blufio serve`). TLS paths are absolute (relative ones are from the config file's directory). */
  server: ServerSettings;
  /** [redaction]: extra secret formats, each a named regex, already checked. */
  redaction: { extraPatterns: { name: string; regex: string }[] };
  logging: { level: LogLevel };
}

export interface ServerSettings {
  port: number;
  tls: { cert: string; key: string } | undefined;
  allowedOrigins: string[];
  allowedHosts: string[];
  maxBodyBytes: number;
  maxResponseBytes: number;
  maxConnections: number;
  shutdownGraceMs: number;
}

export interface ObjectSettings {
  maxObjectBytes: number;
  /** 0 = no limit. */
  maxTotalBytes: number;
  gcGraceMs: number;
}

/** The [queue] table: defaults for jobs and the housekeeping that runs while the queue is open. */
export interface QueueSettings {
  maxPayloadBytes: number;
  defaultMaxAttempts: number;
  defaultLeaseMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  completedRetentionMs: number;
  sweepIntervalMs: number;
}

export interface LoadConfigOptions {
  /** Explicit config file (`--config`); wins over BLUFIO_CONFIG. Must exist. */
  configPath?: string;
  /** Explicit data directory; wins over BLUFIO_DATA_DIR and storage.database_path. */
  dataDir?: string;
  durability?: Durability;
  env?: Env;
}

/** A config file larger than this is not a config file; refuse it rather than parse it. */
const MAX_CONFIG_BYTES = 1024 * 1024;

function invalid(file: string, line: number | undefined, what: string, hint?: string): AppError {
  const where = line === undefined ? file : `${file} line ${line}`;
  return new AppError(ErrorCode.CONFIG_INVALID, `invalid config ${where}: ${what}`, {
    hint: hint ?? `fix the file, or point --config / BLUFIO_CONFIG at another one`,
    details: { file, ...(line === undefined ? {} : { line }) },
  });
}

/**
 * The config says where API keys are sent (`base_url`), which addresses the agent may reach and
 * where the database lives: a file any user can change, or replace, hands all of that to them
 * (see refuseReplaceableByAnyone).
 */
function refuseWritableByAnyone(file: string, st: fs.Stats): void {
  refuseReplaceableByAnyone(file, st, (what, hint) => {
    throw new AppError(ErrorCode.CONFIG_INVALID, `config file ${file} refused: ${what}, and it says where API keys are sent`, { hint, details: { file } });
  });
}

function readConfigText(file: string, explicit: boolean): string | undefined {
  let buf: Buffer;
  try {
    // What is checked is what is read: the file opened once (readOnce), not stat then read by
    // the path, which another user's swap in between would have passed.
    buf = readOnce(file, MAX_CONFIG_BYTES, (st) => {
      if (!st.isFile()) throw invalid(file, undefined, 'it is not a regular file');
      if (st.size > MAX_CONFIG_BYTES) {
        throw invalid(file, undefined, `the file is ${st.size} bytes; a config file is at most 1 MiB`);
      }
      refuseWritableByAnyone(file, st);
    }).data;
    if (buf.length > MAX_CONFIG_BYTES) {
      buf.fill(0);
      throw invalid(file, undefined, 'the file is larger than 1 MiB; a config file is at most 1 MiB');
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return undefined;
    if (code === 'ENOENT') {
      throw new AppError(ErrorCode.CONFIG_NOT_FOUND, `config file ${file} does not exist`, {
        hint: 'create it, or drop --config / BLUFIO_CONFIG to use the defaults',
      });
    }
    throw new AppError(ErrorCode.CONFIG_INVALID, `cannot read config file ${file}: ${code ?? String(err)}`, {
      hint: 'check that the file is readable by this user',
      cause: err,
    });
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return text.startsWith('\uFEFF') ? text.slice(1) : text;
  } catch {
    throw invalid(file, undefined, 'the file is not valid UTF-8 (TOML must be UTF-8)');
  } finally {
    // It may hold plaintext secrets: the bytes go, the string is what the caller keeps.
    buf.fill(0);
  }
}

/**
 * Longest key name echoed whole in a message (the longest a provider or channel name may be). A
 * longer one is named by its length alone, never its
 * start (as `shown` does for values): a key can be a secret pasted on the wrong line, and a cut
 * secret is no longer recognisable to the redactor that errors pass through.
 */
const SHOWN_KEY_CHARS = 64;

function showKey(key: string | number): string {
  const k = String(key);
  const chars = [...k].length;
  return chars <= SHOWN_KEY_CHARS ? k : `(a name of ${chars} characters)`;
}

function showPath(keys: readonly (string | number)[]): string {
  return keys.map(showKey).join('.');
}

function describeIssue(issue: z.core.$ZodIssue): { path: (string | number)[]; text: string }[] {
  const base = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => {
      const p = [...base, k];
      return { path: p, text: `unknown key ${showPath(p)}` };
    });
  }
  const invalidName = issue.code === 'custom' && issue.params?.invalidName === true;
  if (issue.code === 'invalid_key' || invalidName) {
    // A table name refused (`[providers.OpenAI]`): zod's message is only "Invalid key in
    // record"; the rule it broke is in the name schema's own issues.
    const rule = issue.code === 'invalid_key' ? issue.issues.map((i) => i.message).join('; ') : issue.message;
    const last = String(base[base.length - 1] ?? '');
    const name = showKey(last) === last ? ` ${JSON.stringify(last)}` : '';
    return [{ path: base, text: `key ${showPath(base)}: the name${name} ${rule}` }];
  }
  return [{ path: base, text: `key ${showPath(base)} ${issue.message}` }];
}

function knownKeysHint(keyPath: (string | number)[]): string | undefined {
  const table = keyPath.slice(0, -1).join('.');
  const keys = KNOWN_KEYS[table];
  if (keys === undefined) return undefined;
  return `known keys in ${table === '' ? 'the top level' : `[${table}]`}: ${keys.join(', ')}`;
}

/**
 * Reads and validates the config file, then resolves where the data lives. The order of
 * precedence for the data directory is: the `dataDir` option (`--data-dir`), BLUFIO_DATA_DIR,
 * `storage.database_path`, then the XDG default.
 */
/**
 * [server] max_response_bytes must carry the largest job a queue_claim may return: a job too
 * large for any answer would be refused to every RPC claim, and stop its queue for RPC workers.
 */
function checkClaimFits(configPath: string, text: string | undefined, maxResponse: number, maxPayload: number): void {
  const floor = claimFloorBytes(maxPayload);
  if (maxResponse >= floor) return;
  const line = text === undefined ? undefined : (locateKey(text, ['server', 'max_response_bytes']) ?? locateKey(text, ['queue', 'max_payload_bytes']));
  throw invalid(
    configPath,
    line,
    `[server] max_response_bytes (${maxResponse}) cannot hold the largest job queue_claim may return: [queue] max_payload_bytes (${maxPayload}) plus ${floor - maxPayload} bytes for the job's other fields, its last error and the answer's envelope`,
    `raise [server] max_response_bytes to at least ${floor}, or lower [queue] max_payload_bytes to at most ${Math.max(0, maxResponse - (floor - maxPayload))}`,
  );
}

export function loadConfig(options: LoadConfigOptions = {}): BlufioConfig {
  checkOptions(LoadOptionsSchema, options, 'loadConfig');
  const env = options.env ?? process.env;
  const explicitPath = options.configPath ?? (env.BLUFIO_CONFIG || undefined);
  const configPath = physicalPath(explicitPath ?? defaultConfigPath(env));
  const text = readConfigText(configPath, explicitPath !== undefined);

  let raw: unknown = {};
  if (text !== undefined) {
    try {
      raw = parseToml(text);
    } catch (err) {
      if (err instanceof TomlError) {
        const first = err.message.split('\n')[0] ?? err.message;
        throw invalid(configPath, err.line, `malformed TOML: ${first.replace(/^Invalid TOML document: /, '')}`);
      }
      throw invalid(configPath, undefined, `malformed TOML: ${String(err)}`);
    }
  }

  const parsed = ConfigFileSchema.safeParse(raw);
  if (!parsed.success) {
    const described = parsed.error.issues.flatMap(describeIssue);
    const first = described[0];
    if (first === undefined) throw invalid(configPath, undefined, 'validation failed');
    const line = text === undefined ? undefined : locateKey(text, first.path);
    const more = described.length > 1 ? ` (and ${described.length - 1} more problem(s))` : '';
    throw invalid(
      configPath,
      line,
      `${first.text}${more}`,
      first.text.startsWith('unknown key') ? knownKeysHint(first.path) : undefined,
    );
  }
  const file = parsed.data;
  checkClaimFits(configPath, text, file.server.max_response_bytes, file.queue.max_payload_bytes);

  const configDir = path.dirname(configPath);
  let databasePath: string;
  const dataDirOverride = options.dataDir ?? (env.BLUFIO_DATA_DIR || undefined);
  if (dataDirOverride !== undefined) {
    databasePath = path.join(expandPath(dataDirOverride, process.cwd(), env), DATABASE_FILE_NAME);
  } else if (file.storage.database_path !== undefined) {
    databasePath = expandPath(file.storage.database_path, configDir, env);
  } else {
    databasePath = path.join(defaultDataDir(env), DATABASE_FILE_NAME);
  }

  const config: BlufioConfig = {
    configPath,
    configFileFound: text !== undefined,
    dataDir: path.dirname(databasePath),
    databasePath,
    storage: {
      durability: options.durability ?? file.storage.durability,
      maxMessageBytes: file.storage.max_message_bytes,
      lockTimeoutMs: file.storage.lock_timeout_ms,
    },
    queue: {
      maxPayloadBytes: file.queue.max_payload_bytes,
      defaultMaxAttempts: file.queue.default_max_attempts,
      defaultLeaseMs: file.queue.default_lease_ms,
      retryBaseMs: file.queue.retry_base_ms,
      retryMaxMs: file.queue.retry_max_ms,
      completedRetentionMs: file.queue.completed_retention_ms,
      sweepIntervalMs: file.queue.sweep_interval_ms,
    },
    objects: {
      maxObjectBytes: file.objects.max_object_bytes,
      maxTotalBytes: file.objects.max_total_bytes,
      gcGraceMs: file.objects.gc_grace_ms,
    },
    providers: Object.fromEntries(Object.entries(file.providers).map(([name, p]) => [name, { baseUrl: p.base_url }])),
    channels: Object.keys(file.channels),
    plaintextSecrets: plaintextSecrets(file).map((s) => s.vaultName),
    security: { allowedPrivateIps: file.security.allowed_private_ips, bindAddress: file.security.bind_address.replace(/^\[(.*)\]$/, '$1') },
    server: {
      port: file.server.port,
      tls:
        file.server.tls_cert === undefined || file.server.tls_key === undefined
          ? undefined
          : { cert: expandPath(file.server.tls_cert, configDir, env), key: expandPath(file.server.tls_key, configDir, env) },
      allowedOrigins: file.server.allowed_origins,
      allowedHosts: file.server.allowed_hosts,
      maxBodyBytes: file.server.max_body_bytes,
      maxResponseBytes: file.server.max_response_bytes,
      maxConnections: file.server.max_connections,
      shutdownGraceMs: file.server.shutdown_grace_ms,
    },
    redaction: { extraPatterns: file.redaction.extra_patterns },
    logging: { level: file.logging.level },
  };
  SECRET_VALUES.set(config, plaintextSecrets(file));
  return config;
}

/**
 * The values of the config's plaintext secrets, beside the config rather than in it, so that
 * printing or logging a config never shows them.
 */
const SECRET_VALUES = new WeakMap<BlufioConfig, PlaintextSecret[]>();

/**
 * The plaintext secrets the config file held when `config` was loaded, values included: the
 * app's redactor matches them from the start, moved into the vault or not (without a vault
 * passphrase they stay in the file, and a value the vault holds otherwise stays there too).
 */
export function configSecretValues(config: BlufioConfig): readonly PlaintextSecret[] {
  return SECRET_VALUES.get(config) ?? [];
}
