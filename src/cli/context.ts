import type { Command } from 'commander';
import { openBlufio, type BlufioApp } from '../app/index.js';
import type { LogLevel } from '../config/index.js';
import { createLogger } from '../log/index.js';

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  logLevel: LogLevel;
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Opens the app for one command and always closes it (checkpoint, zero keys) afterwards. */
export async function withApp<T>(cmd: Command, fn: (app: BlufioApp) => Promise<T>): Promise<T> {
  const g = globalOptions(cmd);
  const app = await openBlufio({
    ...(g.config === undefined ? {} : { configPath: g.config }),
    ...(g.dataDir === undefined ? {} : { dataDir: g.dataDir }),
    logger: createLogger({ level: g.logLevel }),
  });
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}
