/**
 * A preview of a secret for `list-secrets`: a well-known prefix (which only says what kind of
 * key it is) and the last four characters, like `sk-...4f2b`. A value too short to spare them
 * shows nothing at all. Characters are counted as graphemes, so no emoji or combining sequence is
 * ever cut in half.
 */
const PREFIXES = [
  'sk-ant-api03-',
  'sk-ant-',
  'sk-proj-',
  'sk-or-v1-',
  'sk-',
  'github_pat_',
  'ghp_',
  'gho_',
  'ghs_',
  'glpat-',
  'xoxb-',
  'xoxp-',
  'sk_live_',
  'sk_test_',
  'AKIA',
  'AIza',
];

/** At least this many characters stay hidden between what is shown. */
const HIDDEN_AT_LEAST = 12;
const TAIL = 4;

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

export function maskSecret(value: string): string {
  const chars = Array.from(segmenter.segment(value), (s) => s.segment);
  const prefix = PREFIXES.find((p) => value.startsWith(p)) ?? '';
  const prefixChars = Array.from(segmenter.segment(prefix)).length;
  if (chars.length - prefixChars - TAIL < HIDDEN_AT_LEAST) return prefix.length > 0 && chars.length - prefixChars >= HIDDEN_AT_LEAST ? `${prefix}...` : '****';
  return `${prefix}...${chars.slice(-TAIL).join('')}`;
}
