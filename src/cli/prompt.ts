import fs from 'node:fs';
import tty from 'node:tty';
import { AppError, ErrorCode } from '../errors/index.js';
import type { PassphraseProvider } from '../vault/index.js';

/** After Enter, how long more input may still arrive as part of the same paste. */
const SETTLE_MS = 40;
/** A refused paste is read and dropped until the terminal is this quiet, so none of it reaches the shell. */
const DRAIN_QUIET_MS = 150;
/** However long a paste goes on, the prompt stops waiting for its end marker after this. */
const DRAIN_MAX_MS = 3000;
const BRACKETED_PASTE_ON = '\u001b[?2004h';
const BRACKETED_PASTE_OFF = '\u001b[?2004l';

const refused = (message: string, hint: string): AppError => new AppError(ErrorCode.INVALID_INPUT, message, { hint });

/**
 * Control characters that are not editing keys (Tab is text): kept in the line as typed, so
 * Backspace and Ctrl-U remove them like any other, and the line that still holds one at Enter
 * is refused. Dropping them would store a value other than the one typed, with no word of it.
 */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

function controlRefused(ch: string): AppError {
  const code = `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  const what = ch === '\u001b' ? `${code}, Escape (an Alt key, or a key the prompt does not know)` : code;
  return refused(
    `what was typed holds a control character (${what}); nothing was used`,
    'type it again without it (Tab is kept; Backspace and Ctrl-U edit), or pipe a value that holds one on stdin: blufio config set-secret NAME < file',
  );
}

/** Signals that end the process while a prompt holds the terminal: it is put back first. */
/** What follows ESC O for a key: arrows, Home, End, F1-F4 (keypad keys in application mode are not used here). */
const SS3_KEYS = 'ABCDHFPQRS';
/** Longer than any key's parameters (`\x1b[1;5D`, `\x1b[200~`): a run past it was typed, not sent by a key. */
const CSI_MAX = 16;
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGINT'];

/**
 * Asks on the controlling terminal (/dev/tty, so it works when stdin is a pipe) with echo off,
 * and resolves with what was typed; undefined when there is no terminal. Backspace and Ctrl-U
 * edit, Enter ends, Ctrl-C and Ctrl-D (on an empty line) cancel; Tab is kept as typed, and a line
 * holding any other control character is refused at Enter (see CONTROL).
 *
 * A paste of several lines (a PEM key, a JSON credential) is refused whole: taking its first line
 * would store a fragment and leave the rest in the terminal for the shell to run as commands (and
 * keep in its history). After Enter the prompt waits a moment for more input, and asks the
 * terminal to mark pastes (bracketed paste) so that a long one is known to be still arriving;
 * anything but blank lines after the first line refuses it, and the rest is read and dropped
 * until the paste's end marker and a moment of quiet. A terminal without bracketed paste that
 * sends a later line more than SETTLE_MS after the first is not caught: the first line is taken.
 * Bytes that are not UTF-8 are refused rather than turned into U+FFFD, which would make
 * different passphrases equal, but only at Enter, so the rest of the line is not left for the
 * shell either.
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
  // Killed at the prompt: the terminal gets its echo back and stops marking pastes, then the
  // signal does what it would have done.
  const onSignal = (sig: NodeJS.Signals): void => {
    for (const s of FATAL_SIGNALS) process.off(s, onSignal);
    try {
      input.setRawMode(false);
      fs.writeSync(fd, BRACKETED_PASTE_OFF + '\n');
    } finally {
      process.kill(process.pid, sig);
    }
  };
  for (const s of FATAL_SIGNALS) process.on(s, onSignal);
  // Set once the line's state exists (inside the promise below); removed in `finally`.
  let onStop: (() => void) | undefined;
  let onContinue: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      // Inside an escape sequence (arrow keys, Home, bracketed-paste markers): its bytes are keys, not text.
      let escape: 'none' | 'start' | 'csi' | 'ss3' = 'none';
      let csi = '';
      let inPaste = false;
      // 'typing' until Enter; then 'ended' for a moment; 'draining' once a second line showed up.
      let state: 'typing' | 'ended' | 'draining' = 'typing';
      let since = 0;
      let decoder = new TextDecoder('utf-8', { fatal: true });
      let notUtf8 = false;
      const cancelled = (): void => reject(new AppError(ErrorCode.CLI_USAGE, 'cancelled at the prompt'));
      // Stopped at the prompt (a `kill -TSTP`; Ctrl-Z is a character in raw mode): the terminal
      // is put back before the stop, for the shell. Resumed (after any stop, SIGSTOP included,
      // which cannot be caught): the shell has put back its own settings, echo on, so echo is
      // turned off again before anything more is typed (libuv skips a mode it thinks is set,
      // hence off and then on), and the question is asked again with the line cleared: asked
      // again, people type the whole value again, and what they typed before the stop would
      // have been kept in front of it, a wrong secret stored without a word.
      onStop = (): void => {
        input.setRawMode(false);
        fs.writeSync(fd, BRACKETED_PASTE_OFF + '\n');
        process.kill(process.pid, 'SIGSTOP');
      };
      onContinue = (): void => {
        input.setRawMode(false);
        input.setRawMode(true);
        if (state !== 'typing') return; // Enter came before the stop: the line stands
        typed = '';
        escape = 'none';
        csi = '';
        inPaste = false;
        notUtf8 = false;
        decoder = new TextDecoder('utf-8', { fatal: true });
        output.write(`${BRACKETED_PASTE_ON}(stopped and resumed: the line was cleared)\n${question}`);
      };
      process.on('SIGTSTP', onStop);
      process.on('SIGCONT', onContinue);
      const arm = (ms: number, then: () => void): void => {
        clearTimeout(timer);
        timer = setTimeout(then, ms);
      };
      // Waiting on a paste the terminal has not finished sending (its end marker), within bounds.
      const pasting = (): boolean => inPaste && Date.now() - since < DRAIN_MAX_MS;
      const settle = (): void => {
        if (pasting()) return arm(SETTLE_MS, settle);
        const control = CONTROL.exec(typed);
        if (notUtf8) reject(refused('the terminal sent bytes that are not UTF-8; nothing was used', 'set the terminal to UTF-8 and type it again'));
        else if (control !== null) reject(controlRefused(control[0]));
        else resolve(typed);
      };
      const drained = (): void => {
        if (pasting()) return arm(DRAIN_QUIET_MS, drained);
        reject(refused('what was typed or pasted has more than one line; nothing was used', 'type it on one line, or pipe a multi-line value on stdin: blufio config set-secret NAME < file'));
      };
      input.once('error', cancelled);
      input.once('end', cancelled);
      input.on('data', (bytes: Buffer) => {
        let chunk: string;
        try {
          chunk = decoder.decode(bytes, { stream: true });
        } catch {
          // Refused at Enter; until then the line is read as usual, so none of it reaches the shell.
          notUtf8 = true;
          decoder = new TextDecoder('utf-8');
          chunk = decoder.decode(bytes, { stream: true });
        }
        for (const ch of chunk) {
          if (escape === 'start') {
            escape = 'none';
            if (ch === '[' || ch === 'O') {
              escape = ch === '[' ? 'csi' : 'ss3';
              csi = '';
              continue;
            }
            // A lone ESC (Alt with a key, or Escape itself) starts no sequence the prompt knows:
            // it is kept, so the line is refused at Enter, and the key after it is read as typed
            // rather than silently eaten.
            if (state === 'typing') typed += '\u001b';
          }
          if (escape === 'ss3') {
            // A key (arrows, Home, End, F1-F4) is one letter after ESC O; anything else was typed.
            escape = 'none';
            if (SS3_KEYS.includes(ch)) continue;
            if (state === 'typing') typed += '\u001bO';
          }
          if (escape === 'csi') {
            // A key's sequence: parameters and intermediates (0x20-0x3F), then one final (0x40-0x7E).
            // Anything else (Enter, Ctrl-C, a non-ASCII letter) or a run too long for a key means it
            // was typed: kept, so the line is refused at Enter, and `ch` is read as usual (an Enter
            // or a Ctrl-C in it must not be swallowed).
            if (ch >= '@' && ch <= '~') {
              escape = 'none';
              if (ch === '~' && csi === '200') inPaste = true;
              if (ch === '~' && csi === '201') inPaste = false;
              continue;
            }
            if (ch >= ' ' && ch <= '?' && csi.length < CSI_MAX) {
              csi += ch;
              continue;
            }
            escape = 'none';
            if (state === 'typing') typed += `\u001b[${csi}`;
          }
          if (ch === '\u001b') {
            escape = 'start';
            continue;
          }
          if (state === 'draining') continue;
          if (state === 'ended') {
            // Blank lines (and the \n of a \r\n) may follow; any other text is a second line.
            if (ch === '\r' || ch === '\n' || ch === ' ' || ch === '\t') continue;
            if (ch === '\u0003') return cancelled();
            state = 'draining';
            since = Date.now();
            continue;
          }
          if (ch === '\r' || ch === '\n') {
            state = 'ended';
            since = Date.now();
            arm(SETTLE_MS, settle);
            continue;
          }
          if (ch === '\u0003' || (ch === '\u0004' && typed === '')) return cancelled();
          if (ch === '\u007f' || ch === '\b') typed = Array.from(typed).slice(0, -1).join('');
          else if (ch === '\u0015') typed = ''; // Ctrl-U: the whole line
          else if (ch !== '\u0004') typed += ch; // Ctrl-D on a non-empty line does nothing, as in a shell
        }
        // Every read while draining restarts the wait for quiet.
        if (state === 'draining') arm(DRAIN_QUIET_MS, drained);
      });
    });
  } finally {
    clearTimeout(timer);
    for (const s of FATAL_SIGNALS) process.off(s, onSignal);
    if (onStop !== undefined) process.off('SIGTSTP', onStop);
    if (onContinue !== undefined) process.off('SIGCONT', onContinue);
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
  // A typo in a passphrase typed once would become the key of the new database.
  if (purpose === 'new-database') return askNew('database passphrase', ' (it cannot be recovered if lost)');
  return askNew('vault passphrase', purpose === 'create' ? ' (it cannot be recovered if lost)' : '');
};
