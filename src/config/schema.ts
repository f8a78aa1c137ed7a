import { isIP } from 'node:net';
import { z } from 'zod';
import { parseAllowEntry } from '../net/allowlist.js';
import { checkExtraRule } from '../redact/extra-rule.js';

/**
 * The TOML file's shape. Every table is strict: a misspelt key is an error naming it, never a
 * silently ignored setting (a user who writes `durabilty = "full"` must not get "normal").
 */
export const MIB = 1024 * 1024;

/** A file system path as a setting: non-empty, and without the NUL no path can contain. */
export const PathString = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain a NUL character');

/** A bounded integer setting (bytes, milliseconds), with the bounds in the message a user reads. */
function bounded(min: number, max: number, def: number, maxText: string) {
  return z.int().min(min, `must be at least ${min}`).max(max, `must be at most ${max} (${maxText})`).default(def);
}

const DAY_MS = 86_400_000;

const StorageSection = z.strictObject({
  database_path: PathString.optional(),
  durability: z.enum(['full', 'normal']).default('full'),
  max_message_bytes: bounded(1024, 256 * MIB, 8 * MIB, '256 MiB'),
  lock_timeout_ms: bounded(100, 3_600_000, 60_000, 'one hour'),
});

const QueueSection = z
  .strictObject({
    max_payload_bytes: bounded(1024, 256 * MIB, MIB, '256 MiB'),
    default_max_attempts: z.int().min(1, 'must be at least 1').max(1000, 'must be at most 1000').default(5),
    default_lease_ms: bounded(100, DAY_MS, 30_000, 'one day'),
    retry_base_ms: bounded(1, DAY_MS, 1000, 'one day'),
    retry_max_ms: bounded(1, 7 * DAY_MS, 3_600_000, 'seven days'),
    completed_retention_ms: bounded(0, 365 * DAY_MS, DAY_MS, 'one year'),
    sweep_interval_ms: bounded(10, 60_000, 1000, 'one minute'),
  })
  .refine((q) => q.retry_base_ms <= q.retry_max_ms, {
    path: ['retry_base_ms'],
    message: 'must not be larger than retry_max_ms',
  });

const GIB = 1024 * MIB;
const PIB = 1024 * 1024 * GIB;

/** The object store (attachments): how big, and how long an unreferenced object is kept. */
const ObjectsSection = z.strictObject({
  max_object_bytes: bounded(1, PIB, 4 * GIB, '1 PiB'),
  /** All objects together, as stored on disk; 0 = no limit but the disk's. */
  max_total_bytes: bounded(0, PIB, 0, '1 PiB'),
  /** An object no message references is removed by gc once it is this old (time to attach it). */
  gc_grace_ms: bounded(0, 365 * DAY_MS, DAY_MS, 'one year'),
});

/** Names of providers and channels: they become part of vault entry names. */
const ENTRY_NAME_RULE = 'must be 1-64 characters: lowercase letters a-z, digits, _ or -, starting with a letter or digit';
const EntryName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, ENTRY_NAME_RULE);

/**
 * Named tables (`[providers.<name>]`). zod's record passes over a key named `__proto__` without a
 * word (it guards its output's prototype), so `[providers.__proto__]` and the plaintext secret in
 * it were neither read nor moved into the vault, and nothing said so: refused here like any other
 * name that breaks the rule (reported as an invalid name: see describeIssue in load.ts).
 */
function namedTables<T extends z.ZodType>(value: T) {
  return z
    .preprocess((input, ctx) => {
      if (input !== null && typeof input === 'object' && Object.hasOwn(input, '__proto__')) {
        ctx.addIssue({ code: 'custom', path: ['__proto__'], message: ENTRY_NAME_RULE, params: { invalidName: true } });
      }
      return input;
    }, z.record(EntryName, value))
    .default({});
}
/** The largest secret value, in UTF-8 bytes: the vault's limit, so a value in this file can always be moved into it. */
export const MAX_SECRET_BYTES = 64 * 1024;
const SecretString = z
  .string()
  .min(1, 'must not be empty')
  // Checked here, not first by the vault: there a value too large failed every open with
  // KC_INVALID_INPUT, naming neither the file nor the line.
  .refine((v) => v.length <= MAX_SECRET_BYTES && Buffer.byteLength(v, 'utf8') <= MAX_SECRET_BYTES, `must be at most ${MAX_SECRET_BYTES} bytes (64 KiB) as UTF-8, the vault's limit for a value`);

/**
 * Secret fields (marked `secret` in SECRET_FIELDS) may be written here in plaintext once; on
 * the next start they are moved into the vault and deleted from this file.
 */
const ProviderSection = z.strictObject({
  api_key: SecretString.optional(),
  base_url: z.url().optional(),
});
const ChannelSection = z.strictObject({
  bot_token: SecretString.optional(),
  app_token: SecretString.optional(),
  signing_secret: SecretString.optional(),
  password: SecretString.optional(),
});

/** Which config keys hold secrets: [table, key] under a named entry, e.g. providers.openai.api_key. */
export const SECRET_FIELDS: readonly (readonly [string, string])[] = [
  ['providers', 'api_key'],
  ['channels', 'bot_token'],
  ['channels', 'app_token'],
  ['channels', 'signing_secret'],
  ['channels', 'password'],
];

/** An allowlist entry is checked here, at load, so a typo is an error and never a silently open or shut door. */
const AllowedIp = z.string().transform((raw, ctx) => {
  const entry = parseAllowEntry(raw);
  if (typeof entry === 'string') {
    ctx.addIssue({ code: 'custom', message: entry });
    return z.NEVER;
  }
  return entry.text;
});

/** An IP literal (the daemon binds exactly this); names are refused, a resolver must not decide where it listens. */
const BindAddress = z.string().refine((s) => isIP(s.replace(/^\[(.*)\]$/, '$1')) !== 0, 'must be an IP address such as 127.0.0.1 or ::1 (not a host name)');

const SecuritySection = z.strictObject({
  /** Non-public addresses the safe fetch may reach anyway (a local model server, a NAS). */
  allowed_private_ips: z.array(AllowedIp).max(1024, 'must list at most 1024 entries').default([]),
  /** Where `blufio serve` listens; anything but loopback requires [server] tls_cert and tls_key. */
  bind_address: BindAddress.default('127.0.0.1'),
});

/** A browser origin as it appears in an Origin header: scheme, host and port only. */
const OriginString = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === s;
  } catch {
    return false;
  }
}, 'must be an origin such as https://app.example:8443 (scheme, host and port, no path or trailing slash)');

/** A Host header value the daemon also answers to: a name with an optional port. */
const HostString = z.string().regex(/^[a-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9a-f:.]+\](:[0-9]{1,5})?$/, 'must be a host name or address, optionally with :port, in lowercase');

const ServerSection = z
  .strictObject({
    /** 0 = any free port (daemon.json says which). */
    port: z.int().min(0, 'must be 0-65535').max(65535, 'must be 0-65535').default(0),
    tls_cert: PathString.optional(),
    tls_key: PathString.optional(),
    /** Browser origins allowed to call the daemon; empty = any request with an Origin header is refused. */
    allowed_origins: z.array(OriginString).max(64, 'must list at most 64 origins').default([]),
    /** Host header values accepted besides the address the connection arrived on (and localhost on loopback). */
    allowed_hosts: z.array(HostString).max(64, 'must list at most 64 hosts').default([]),
    max_body_bytes: bounded(1024, 512 * MIB, 16 * MIB, '512 MiB'),
    max_response_bytes: bounded(MIB, 1024 * MIB, 64 * MIB, '1 GiB'),
    max_connections: z.int().min(1, 'must be at least 1').max(100_000, 'must be at most 100000').default(1024),
    /** How long SIGTERM waits for calls in flight before closing their connections. */
    shutdown_grace_ms: bounded(0, 600_000, 10_000, 'ten minutes'),
  })
  .refine((s) => (s.tls_cert === undefined) === (s.tls_key === undefined), {
    path: ['tls_cert'],
    message: 'and tls_key must be set together',
  });

/** An extra secret format: checked here (compiles, cannot match empty text, no backreferences). */
const ExtraPattern = z
  .strictObject({ name: z.string(), regex: z.string() })
  .superRefine((rule, ctx) => {
    const problem = checkExtraRule(rule);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

const RedactionSection = z.strictObject({
  /** More secret formats to redact, besides the built-in rules and the vault's values. */
  extra_patterns: z.array(ExtraPattern).max(100, 'must list at most 100 patterns').default([]),
});

const LoggingSection = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export const ConfigFileSchema = z.strictObject({
  storage: StorageSection.default(StorageSection.parse({})),
  queue: QueueSection.default(QueueSection.parse({})),
  objects: ObjectsSection.default(ObjectsSection.parse({})),
  providers: namedTables(ProviderSection),
  channels: namedTables(ChannelSection),
  security: SecuritySection.default(SecuritySection.parse({})),
  server: ServerSection.default(ServerSection.parse({})),
  redaction: RedactionSection.default(RedactionSection.parse({})),
  logging: LoggingSection.default(LoggingSection.parse({})),
});

/** Key names per table, for "did you mean" hints on unknown keys. */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(ConfigFileSchema.shape),
  storage: Object.keys(StorageSection.shape),
  queue: Object.keys(QueueSection.shape),
  objects: Object.keys(ObjectsSection.shape),
  security: Object.keys(SecuritySection.shape),
  server: ['port', 'tls_cert', 'tls_key', 'allowed_origins', 'allowed_hosts', 'max_body_bytes', 'max_response_bytes', 'max_connections', 'shutdown_grace_ms'],
  redaction: Object.keys(RedactionSection.shape),
  logging: Object.keys(LoggingSection.shape),
};

export type ConfigFile = z.infer<typeof ConfigFileSchema>;

/** What a program may pass to loadConfig()/openBlufio(); checked, since JavaScript callers exist. */
export const LoadOptionsSchema = z.strictObject({
  configPath: PathString.optional(),
  dataDir: PathString.optional(),
  durability: z.enum(['full', 'normal']).optional(),
  env: z.record(z.string(), z.string().optional()).optional(),
});
export type Durability = ConfigFile['storage']['durability'];
export type LogLevel = ConfigFile['logging']['level'];
export type QueueFileSettings = ConfigFile['queue'];
