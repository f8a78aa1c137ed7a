import { z } from 'zod';

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

const StorageSection = z.strictObject({
  database_path: PathString.optional(),
  durability: z.enum(['full', 'normal']).default('full'),
  max_message_bytes: z
    .int()
    .min(1024, 'must be at least 1024')
    .max(256 * MIB, 'must be at most 268435456 (256 MiB)')
    .default(8 * MIB),
  lock_timeout_ms: z
    .int()
    .min(100, 'must be at least 100')
    .max(3_600_000, 'must be at most 3600000 (one hour)')
    .default(60_000),
});

const LoggingSection = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export const ConfigFileSchema = z.strictObject({
  storage: StorageSection.default(StorageSection.parse({})),
  logging: LoggingSection.default(LoggingSection.parse({})),
});

/** Key names per table, for "did you mean" hints on unknown keys. */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(ConfigFileSchema.shape),
  storage: Object.keys(StorageSection.shape),
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
