export { loadConfig } from './load.js';
export type { BlufioConfig, LoadConfigOptions, QueueSettings } from './load.js';
export { defaultConfigPath, defaultDataDir, DATABASE_FILE_NAME } from './paths.js';
export type { Env } from './paths.js';
export type { Durability, LogLevel } from './schema.js';
export { locateKey } from './toml-locate.js';
export { checkOptions } from './options.js';
export { LoadOptionsSchema } from './schema.js';
