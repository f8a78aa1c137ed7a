import { AppError, ErrorCode } from '../errors/index.js';

/** The variable (or, with _FILE, the file it names) the vault passphrase is taken from. */
export const VAULT_KEY_ENV = 'BLUFIO_VAULT_KEY';

/**
 * A passphrase being chosen (a new vault, a change, a new encrypted database). U+FFFD is what
 * bytes that were not UTF-8 become on the way in (an environment variable, a terminal set to
 * Latin-1), so passphrases that differed in those bytes would all open what it locks. Opening
 * still accepts it: what was made before this check must stay openable.
 */
/**
 * The fewest characters a new passphrase may have. Argon2id (and, for the database, PBKDF2)
 * makes each guess dear, but a copy of the data directory can be guessed at without end, and
 * one to seven characters are within reach of that.
 */
export const MIN_NEW_PASSPHRASE_CHARS = 8;

export function assertNewPassphrase(p: string, what: string): void {
  // A lone surrogate (a JavaScript caller's string) is written as the same three bytes as U+FFFD.
  if (p.includes('\uFFFD') || !p.isWellFormed()) {
    throw new AppError(ErrorCode.INVALID_INPUT, `the new ${what} holds U+FFFD (or a lone surrogate), which stands in for bytes that were not UTF-8; nothing was changed`, {
      hint: 'choose a passphrase of valid UTF-8 text (check that the terminal, or whatever sets the environment variable, uses UTF-8)',
    });
  }
  // A line break or another control character cannot be typed at a prompt (Enter ends the line;
  // the prompt refuses the others, a Tab excepted) and a file loses a trailing one: such a
  // passphrase could only ever be given again through the very variable that set it (a
  // Kubernetes secret or an env file written with echo adds one).
  if (/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(p)) {
    throw new AppError(ErrorCode.INVALID_INPUT, `the new ${what} holds a control character (a line break, perhaps at its end); nothing was changed`, {
      hint: 'choose one of printable characters; where it comes from a file or a variable, check that no line break was added (printf instead of echo)',
    });
  }
  // Characters as typed (code points, NFC), not UTF-16 units. Empty is refused on its own terms.
  if (p.length > 0 && [...p.normalize('NFC')].length < MIN_NEW_PASSPHRASE_CHARS) {
    throw new AppError(ErrorCode.INVALID_INPUT, `the new ${what} is shorter than ${MIN_NEW_PASSPHRASE_CHARS} characters; nothing was changed`, {
      hint: `choose one of at least ${MIN_NEW_PASSPHRASE_CHARS} characters (a few unrelated words are easy to type and hard to guess); a vault or database made before this rule still opens with its own`,
    });
  }
}
