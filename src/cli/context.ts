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

/**
 * Opens the app for one command and always closes it (checkpoint, zero keys) afterwards. The
 * command's own outcome is what it reports: a close that fails after the work is done (a full
 * disk refusing the last checkpoint) is logged, never turned into a failure of that work or
 * put in place of the work's own error.
 */
export async function withApp<T>(cmd: Command, fn: (app: BlufioApp) => Promise<T>): Promise<T> {
  // Errors in log lines as `KC_CODE: message`, like the error[CODE] line; their stacks only
  // for BLUFIO_DEBUG=1, as for a bug's (see reportError).
  const logger = createLogger({ level: globalOptions(cmd).logLevel, format: 'text', stacks: process.env.BLUFIO_DEBUG === '1' });
  const app = await openBlufio({ ...configOptions(cmd), logger, askPassphrase: promptPassphrase });
  try {
    return await fn(app);
  } finally {
    await app.close().catch((err: unknown) => {
      // The app's logger: it redacts (the one made here does not).
      app.log.warn({ err }, 'closing the database failed after the command ended');
    });
  }
}
