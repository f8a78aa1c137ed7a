import fs from 'node:fs';
import tty from 'node:tty';
import { AppError, ErrorCode } from '../errors/index.js';
import type { PassphraseProvider } from '../vault/index.js';

/**
 * Asks on the controlling terminal (/dev/tty, so it works when stdin is a pipe) with echo off,
 * and resolves with what was typed; undefined when there is no terminal. Backspace edits, Enter
 * ends, Ctrl-C and Ctrl-D cancel.
 */
export async function askHidden(question: string): Promise<string | undefined> {
  let fd: number;
  try {
    fd = fs.openSync('/dev/tty', 'r+');
  } catch {
    return undefined;
  }
  if (!tty.isatty(fd)) {
    fs.closeSync(fd);
    return undefined;
  }
  const input = new tty.ReadStream(fd);
  const output = new tty.WriteStream(fd);
  output.write(question);
  input.setRawMode(true);
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      // Inside an escape sequence (arrow keys, Home, bracketed-paste markers): its bytes are keys, not text.
      let escape: 'none' | 'start' | 'csi' = 'none';
      const cancelled = (): void => reject(new AppError(ErrorCode.CLI_USAGE, 'cancelled at the prompt'));
      input.setEncoding('utf8');
      input.once('error', cancelled);
      input.once('end', cancelled);
      input.on('data', (chunk: string) => {
        for (const ch of chunk) {
          if (escape === 'start') {
            escape = ch === '[' || ch === 'O' ? 'csi' : 'none';
            continue;
          }
          if (escape === 'csi') {
            if (ch >= '@' && ch <= '~' && !(ch >= '0' && ch <= '9') && ch !== ';') escape = 'none';
            continue;
          }
          if (ch === '\u001b') {
            escape = 'start';
            continue;
          }
          if (ch === '\r' || ch === '\n') {
            resolve(typed);
            return;
          }
          if (ch === '\u0003' || (ch === '\u0004' && typed === '')) {
            cancelled();
            return;
          }
          if (ch === '\u007f' || ch === '\b') typed = Array.from(typed).slice(0, -1).join('');
          else if (ch >= ' ') typed += ch;
        }
      });
    });
  } finally {
    input.setRawMode(false);
    output.write('\n');
    input.destroy();
    output.destroy();
  }
}

/** Asked twice; the two must match and must not be empty. */
async function askNew(what: string, note = ''): Promise<string | undefined> {
  const first = await askHidden(`New ${what}${note}: `);
  if (first === undefined) return undefined;
  if (first.length === 0) throw new AppError(ErrorCode.INVALID_INPUT, `the ${what} must not be empty`);
  const again = await askHidden(`Repeat the new ${what}: `);
  if (again !== first) throw new AppError(ErrorCode.INVALID_INPUT, `the two entries of the ${what} do not match; nothing was changed`);
  return first;
}

/** The CLI's passphrase source when BLUFIO_VAULT_KEY / BLUFIO_NEW_VAULT_KEY are not set. */
export const promptPassphrase: PassphraseProvider = async (purpose) => {
  if (purpose === 'unlock') return askHidden('Vault passphrase: ');
  if (purpose === 'database') return askHidden('Database passphrase: ');
  return askNew('vault passphrase', purpose === 'create' ? ' (it cannot be recovered if lost)' : '');
};
