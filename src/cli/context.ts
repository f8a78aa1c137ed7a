import type { Command } from 'commander';
import { openBlufio, type BlufioApp } from '../app/index.js';
import type { LoadConfigOptions, LogLevel } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { promptPassphrase } from './prompt.js';

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  logLevel: LogLevel;
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** The config and data directory the global options name. */
export function configOptions(cmd: Command): LoadConfigOptions {
  const g = globalOptions(cmd);
  return { ...(g.config === undefined ? {} : { configPath: g.config }), ...(g.dataDir === undefined ? {} : { dataDir: g.dataDir }) };
}

/** Opens the app for one command and always closes it (checkpoint, zero keys) afterwards. */
export async function withApp<T>(cmd: Command, fn: (app: BlufioApp) => Promise<T>): Promise<T> {
  const app = await openBlufio({
    ...configOptions(cmd),
    logger: createLogger({ level: globalOptions(cmd).logLevel, format: 'text' }),
    askPassphrase: promptPassphrase,
  });
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}
