#!/usr/bin/env node
import { CommanderError } from 'commander';
import { ErrorCode } from '../errors/index.js';
import { errorText, reportError } from './output.js';
import { buildProgram } from './program.js';

/** Exit codes: 0 ok, 1 an expected error (error[CODE] on stderr), 2 a usage error, 70 a bug. */
async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // A command group without its subcommand: commander has shown the help on stderr.
      if (err.code === 'commander.help') return 2;
      const [first, ...rest] = err.message.replace(/^error: /, '').split('\n');
      process.stderr.write(`error[${ErrorCode.CLI_USAGE}]: ${errorText(first ?? '')}\n`);
      for (const line of rest) process.stderr.write(`${errorText(line)}\n`);
      process.stderr.write('hint: run blufio --help, or blufio <command> --help\n');
      return 2;
    }
    return reportError(err);
  }
}

process.exitCode = await main(process.argv);
