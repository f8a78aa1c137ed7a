import fs from 'node:fs';
import tty from 'node:tty';
import { AppError, ErrorCode } from '../errors/index.js';
import type { PassphraseProvider } from '../vault/index.js';

/** After Enter, how long more input may still arrive as part of the same paste. */
const SETTLE_MS = 40;
/** A refused paste is read and dropped until the terminal is this quiet, so none of it reaches the shell. */
const DRAIN_QUIET_MS = 150;
/** However long a paste goes on, the prompt gives up waiting for its end after this. */
const DRAIN_MAX_MS = 3000;
const BRACKETED_PASTE_ON = '\u001b[?2004h';
const BRACKETED_PASTE_OFF = '\u001b[?2004l';

const refused = (message: string, hint: string): AppError => new AppError(ErrorCode.INVALID_INPUT, message, { hint });

/**
 * Asks on the controlling terminal (/dev/tty, so it works when stdin is a pipe) with echo off,
 * and resolves with what was typed; undefined when there is no terminal. Backspace edits, Enter
 * ends, Ctrl-C and Ctrl-D cancel.
 *
 * A paste of several lines (a PEM key, a JSON credential) is refused whole: taking its first line
 * would store a fragment and leave the rest in the terminal for the shell to run as commands (and
 * keep in its history). After Enter the prompt waits a moment for more input, and asks the
 * terminal to mark pastes (bracketed paste) so that a long one is known to be still arriving;
 * anything but blank lines after the first line refuses it, and the rest is read and dropped.
 * Bytes that are not UTF-8 are refused rather than turned into U+FFFD, which would make
 * different passphrases equal.
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
  output.write(BRACKETED_PASTE_ON + question);
  input.setRawMode(true);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      // Inside an escape sequence (arrow keys, Home, bracketed-paste markers): its bytes are keys, not text.
      let escape: 'none' | 'start' | 'csi' = 'none';
      let csi = '';
      let inPaste = false;
      // 'typing' until Enter; then 'ended' for a moment; 'draining' once a second line showed up.
      let state: 'typing' | 'ended' | 'draining' = 'typing';
      let since = 0;
      const decoder = new TextDecoder('utf-8', { fatal: true });
      const cancelled = (): void => reject(new AppError(ErrorCode.CLI_USAGE, 'cancelled at the prompt'));
      const arm = (ms: number, then: () => void): void => {
        clearTimeout(timer);
        timer = setTimeout(then, ms);
      };
      const settle = (): void => {
        // A paste the terminal has not finished sending: wait for its end marker (bounded).
        if (inPaste && Date.now() - since < DRAIN_MAX_MS) return arm(SETTLE_MS, settle);
        resolve(typed);
      };
      const drain = (): void => {
        if (state !== 'draining') {
          state = 'draining';
          since = Date.now();
        }
        const quietFor = Date.now() - since >= DRAIN_MAX_MS ? 0 : DRAIN_QUIET_MS;
        arm(quietFor, () =>
          reject(
            refused('what was typed or pasted has more than one line; nothing was used', 'type it on one line, or pipe a multi-line value on stdin: blufio config set-secret NAME < file'),
          ),
        );
      };
      input.once('error', cancelled);
      input.once('end', cancelled);
      input.on('data', (bytes: Buffer) => {
        if (state === 'draining') return drain();
        let chunk: string;
        try {
          chunk = decoder.decode(bytes, { stream: true });
        } catch {
          reject(refused('the terminal sent bytes that are not UTF-8; nothing was used', 'set the terminal to UTF-8 and type it again'));
          return;
        }
        for (const ch of chunk) {
          if (escape === 'start') {
            escape = ch === '[' || ch === 'O' ? 'csi' : 'none';
            csi = '';
            continue;
          }
          if (escape === 'csi') {
            if (ch >= '@' && ch <= '~' && !(ch >= '0' && ch <= '9') && ch !== ';') {
              escape = 'none';
              if (ch === '~' && csi === '200') inPaste = true;
              if (ch === '~' && csi === '201') inPaste = false;
            } else csi += ch;
            continue;
          }
          if (ch === '\u001b') {
            escape = 'start';
            continue;
          }
          if (state === 'ended') {
            // Blank lines (and the \n of a \r\n) may follow; any other text is a second line.
            if (ch === '\r' || ch === '\n' || ch === ' ' || ch === '\t') continue;
            return drain();
          }
          if (ch === '\r' || ch === '\n') {
            state = 'ended';
            since = Date.now();
            arm(SETTLE_MS, settle);
            continue;
          }
          if (ch === '\u0003' || (ch === '\u0004' && typed === '')) {
            cancelled();
            return;
          }
          if (ch === '\u007f' || ch === '\b') typed = Array.from(typed).slice(0, -1).join('');
          else if (ch >= ' ') typed += ch;
        }
        // A second line that starts in the next read is caught when it arrives (still 'ended').
      });
    });
  } finally {
    clearTimeout(timer);
    input.setRawMode(false);
    output.write(BRACKETED_PASTE_OFF + '\n');
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
