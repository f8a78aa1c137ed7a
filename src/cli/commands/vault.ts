import { Command } from 'commander';
import { withApp } from '../context.js';
import { dbEncryptCommand, vaultInspectCommands } from './dbcrypt.js';
import { formatBytes, formatTime, printJson, printLines } from '../output.js';

export function vaultCommand(): Command {
  const vault = new Command('vault').description('the secret vault: status, passphrase');

  vault
    .command('status')
    .description('whether a vault exists, how many secrets it holds, its key-derivation parameters (needs no passphrase)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const s = await withApp(cmd, (app) => app.vault.status());
      if (opts.json) return printJson(s);
      if (!s.exists) return printLines(['vault      none yet (blufio config set-secret <name> creates it)']);
      printLines([
        `vault      exists, ${s.entries} secret(s)`,
        `kdf        argon2id, ${formatBytes(s.kdf!.memoryKib * 1024)}, ${s.kdf!.iterations} iterations, ${s.kdf!.parallelism} lanes`,
        `created    ${formatTime(s.createdAt!)}`,
        `passphrase last set ${formatTime(s.passphraseChangedAt!)}`,
      ]);
    });

  vault
    .command('change-passphrase')
    .description('re-wrap the vault key under a new passphrase (BLUFIO_NEW_VAULT_KEY, or asked twice); no secret is re-encrypted')
    .action(async (_opts: unknown, cmd: Command) => {
      await withApp(cmd, (app) => app.vault.changePassphrase());
      printLines(['vault passphrase changed']);
    });

  vault.addCommand(dbEncryptCommand());
  vaultInspectCommands(vault);
  return vault;
}
