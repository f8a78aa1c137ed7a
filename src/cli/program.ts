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
    .showHelpAfterError(false);
  program.addCommand(serveCommand());
  program.addCommand(dbCommand());
  program.addCommand(sessionsCommand());
  program.addCommand(queueCommand());
  program.addCommand(objectsCommand());
  program.addCommand(configCommand());
  program.addCommand(vaultCommand());
  configure(program);
  return program;
}

/** Errors are thrown for main to report, never printed by commander; every group gets `help`. */
function configure(cmd: Command): void {
  cmd.exitOverride().configureOutput({ outputError: () => undefined });
  if (cmd.commands.length > 0) cmd.addCommand(helpCommand(cmd));
  for (const sub of cmd.commands) configure(sub);
}

/**
 * `help [command...]` in place of commander's own, which ends the way a group run without its
 * command does (main cannot tell them apart): `blufio help serve` exited 2 where
 * `blufio serve --help` exits 0, and `blufio help nosuch` printed the help with no error line.
 * This one prints what `--help` prints, to stdout, and a name it does not know is a usage error.
 */
function helpCommand(parent: Command): Command {
  return new Command('help')
    .description('display help for command')
    .argument('[command...]', 'the command, and its subcommand, to show help for')
    .action((names: string[]) => {
      let target: Command = parent;
      for (const [i, name] of names.entries()) {
        const next = target.commands.find((c) => c.name() === name || c.aliases().includes(name));
        if (next === undefined) target.error(`unknown command '${names.slice(0, i + 1).join(' ')}'`, { code: 'commander.unknownCommand' });
        target = next;
      }
      target.outputHelp();
    });
}
