import { Command } from 'commander';
import { startDaemon } from '../../server/index.js';
import { createLogger } from '../../log/index.js';
import { configOptions, globalOptions } from '../context.js';
import { promptPassphrase } from '../prompt.js';
import { VERSION } from '../version.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the daemon: JSON-RPC on POST /rpc at [security] bind_address and [server] port (daemon.json and rpc.token say where and how)')
    .action(async (_opts: unknown, cmd: Command) => {
      // A daemon logs at the config's [logging] level unless --log-level was given.
      const explicitLevel = cmd.optsWithGlobals().logLevel !== undefined && cmd.parent?.getOptionValueSource('logLevel') !== 'default';
      const daemon = await startDaemon({
        ...configOptions(cmd),
        ...(explicitLevel ? { logger: createLogger({ level: globalOptions(cmd).logLevel }) } : {}),
        askPassphrase: promptPassphrase,
        version: VERSION,
      });
      await new Promise<void>((resolve, reject) => {
        const stop = (signal: NodeJS.Signals): void => {
          daemon.app.log.info({ signal }, 'signal received');
          // A second signal cuts the grace period short; the close itself still completes.
          daemon.close().then(resolve, reject);
        };
        // SIGHUP too: a closed terminal must not kill the daemon without a checkpoint.
        for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, stop);
        // A bug must not leave the daemon half-alive or its files behind: log it, stop cleanly, then
        // fail the command (exit 70, KC_INTERNAL).
        const crash = (err: unknown): void => {
          daemon.app.log.fatal({ err }, 'unexpected error in the daemon; stopping');
          daemon.close().then(() => reject(err), reject);
        };
        process.on('uncaughtException', crash);
        process.on('unhandledRejection', crash);
      });
    });
}
