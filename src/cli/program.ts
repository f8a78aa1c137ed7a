import { Command, Option } from 'commander';
import { configCommand } from './commands/config.js';
import { dbCommand } from './commands/db.js';
import { objectsCommand } from './commands/objects.js';
import { queueCommand } from './commands/queue.js';
import { sessionsCommand } from './commands/sessions.js';
import { serveCommand } from './commands/serve.js';
import { vaultCommand } from './commands/vault.js';
import { VERSION } from './version.js';

export { VERSION } from './version.js';

export function buildProgram(): Command {
  const program = new Command('blufio')
    .description('Blufio core: the persistence and security heart of a personal AI agent')
    .version(VERSION)
    .option('--config <path>', 'config file (default: BLUFIO_CONFIG, then ~/.config/blufio/blufio.toml)')
    .option('--data-dir <dir>', 'data directory (default: BLUFIO_DATA_DIR, storage.database_path, then ~/.local/share/blufio)')
    .addOption(
      new Option('--log-level <level>', 'log level for this command (logs go to stderr)')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('warn'),
    )
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  program.addCommand(serveCommand());
  program.addCommand(dbCommand());
  program.addCommand(sessionsCommand());
  program.addCommand(queueCommand());
  program.addCommand(objectsCommand());
  program.addCommand(configCommand());
  program.addCommand(vaultCommand());
  for (const c of program.commands) {
    c.exitOverride().configureOutput({ outputError: () => undefined });
    for (const sub of c.commands) {
      sub.exitOverride().configureOutput({ outputError: () => undefined });
      for (const leaf of sub.commands) leaf.exitOverride().configureOutput({ outputError: () => undefined });
    }
  }
  return program;
}
