import { AppError, ErrorCode } from '../errors/index.js';

/** The variable (or, with _FILE, the file it names) the vault passphrase is taken from. */
export const VAULT_KEY_ENV = 'BLUFIO_VAULT_KEY';

/**
 * A passphrase being chosen (a new vault, a change, a new encrypted database). U+FFFD is what
 * bytes that were not UTF-8 become on the way in (an environment variable, a terminal set to
 * Latin-1), so passphrases that differed in those bytes would all open what it locks. Opening
 * still accepts it: what was made before this check must stay openable.
 */
export function assertNewPassphrase(p: string, what: string): void {
  // A lone surrogate (a JavaScript caller's string) is written as the same three bytes as U+FFFD.
  if (p.includes('\uFFFD') || !p.isWellFormed()) {
    throw new AppError(ErrorCode.INVALID_INPUT, `the new ${what} holds U+FFFD (or a lone surrogate), which stands in for bytes that were not UTF-8; nothing was changed`, {
      hint: 'choose a passphrase of valid UTF-8 text (check that the terminal, or whatever sets the environment variable, uses UTF-8)',
    });
  }
}
