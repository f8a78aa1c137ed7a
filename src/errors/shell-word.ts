/**
 * A path or other word for a command a hint tells the user to run: as it is when the shell would
 * read it back unchanged, else in single quotes (a `'` inside written as `'\''`). A data directory
 * with a space, `$` or `;` in its name must paste as one word, and never as a second command.
 */
export function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
