import { Command } from 'commander';
import { AppError, ErrorCode } from '../../errors/index.js';
import { withApp } from '../context.js';
import { formatTime, printable, printJson, printLines, table } from '../output.js';
import { askHidden } from '../prompt.js';
import { checkNewSecretName, MAX_VALUE_BYTES, noSuchSecret } from '../../vault/index.js';

const CLI_NAME_EXAMPLE = 'e.g. blufio config set-secret providers.openai.api_key';

/**
 * Everything on stdin as UTF-8 text, with the one trailing newline that `echo` adds taken off.
 * Reading stops just past the vault's limit (a value that size is refused anyway, and a huge
 * pipe must not fill memory first); bytes that are not UTF-8 are refused, not replaced.
 */
async function readStdin(name: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > MAX_VALUE_BYTES + 2) break;
  }
  const all = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  try {
    if (size > MAX_VALUE_BYTES + 2) {
      throw new AppError(ErrorCode.INVALID_INPUT, `the value for ${name} on stdin is larger than the limit of ${MAX_VALUE_BYTES} bytes; nothing was stored`, {
        hint: 'a secret is a key or a token; store a large file with blufio objects put instead',
      });
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(all);
    } catch {
      throw new AppError(ErrorCode.INVALID_INPUT, `the value for ${name} on stdin is not UTF-8 text; nothing was stored`, {
        hint: 'secrets are text: encode binary data first, e.g. base64 < key.bin | blufio config set-secret NAME',
      });
    }
    return text.replace(/\r?\n$/, '');
  } finally {
    all.fill(0);
  }
}

async function secretValue(name: string): Promise<string> {
  const value = process.stdin.isTTY ? await askHidden(`Value for ${name}: `) : await readStdin(name);
  if (value === undefined || value.length === 0) {
    throw new AppError(ErrorCode.INVALID_INPUT, `no value for ${name}: it was empty`, {
      hint: 'type it at the prompt, or pipe it in: printf %s "$VALUE" | blufio config set-secret NAME',
    });
  }
  return value;
}

export function configCommand(): Command {
  const config = new Command('config').description('secrets in the vault (names and masked previews only are ever shown)');

  config
    .command('set-secret')
    .description('store a secret: asked with no echo on a terminal, else read from stdin (creates the vault on first use)')
    .argument('<name>', 'secret name: letters, digits and . _ : / -')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      // Before the value is asked for: no one should type a secret only to learn the name is wrong
      // (or that it looks like a secret itself, which set() refuses).
      checkNewSecretName(name, CLI_NAME_EXAMPLE);
      const value = await secretValue(name);
      await withApp(cmd, (app) => app.vault.set(name, value));
      printLines([`stored ${name}`]);
    });

  config
    .command('list-secrets')
    .description('secret names with masked previews (a known prefix and the last 4 characters at most)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = await withApp(cmd, (app) => app.vault.list());
      if (opts.json) return printJson(list);
      if (list.length === 0) return printLines(['no secrets']);
      printLines(
        table(
          ['NAME', 'PREVIEW', 'UPDATED'],
          // A name is checked when stored; a row written by other means may hold anything.
          list.map((s) => [printable(s.name), s.tampered ? 'TAMPERED' : printable(s.preview ?? ''), formatTime(s.updatedAt)]),
        ),
      );
    });

  config
    .command('delete-secret')
    .description('remove a secret from the vault')
    .argument('<name>', 'secret name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      // Not checked here: a name stored by other means (a damaged or forged row) that the check
      // refuses can still be deleted, and delete() checks any other.
      const gone = await withApp(cmd, (app) => app.vault.delete(name));
      if (!gone) throw noSuchSecret(name);
      printLines([`deleted ${printable(name)}`]);
    });

  return config;
}
