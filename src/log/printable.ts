/**
 * Text from a conversation was written by someone else (a model, a stranger on a chat channel).
 * Before it reaches a terminal, control characters and bidirectional overrides are shown as
 * escapes, so no message can move the cursor, retitle the window or reorder what a person reads.
 */
// Bidirectional controls: U+061C (Arabic letter mark), U+200E/F (LRM, RLM), U+202A-202E
// (embeddings and overrides), U+2066-2069 (isolates); line and paragraph separators U+2028/9.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/** Whether text holds a control character, a bidirectional override or a line separator. */
export function hasUnsafeChars(s: string): boolean {
  UNSAFE.lastIndex = 0;
  const found = UNSAFE.test(s);
  UNSAFE.lastIndex = 0;
  return found;
}

export function printable(s: string, keepNewlines = false): string {
  const out = s.replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return keepNewlines ? out : out.replace(/\n/g, '\\n').replace(/\t/g, '\\t');
}

