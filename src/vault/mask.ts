/**
 * A preview of a secret for `list-secrets`: a well-known prefix (which only says what kind of
 * key it is) and the last four characters, like `sk-...4f2b`. A value too short to spare them
 * shows nothing at all. The tail is whole graphemes (no emoji or combining sequence cut in half)
 * of at most four code points in all; hidden characters are counted in code points.
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
  const prefix = PREFIXES.find((p) => value.startsWith(p)) ?? '';
  const rest = [...value.slice(prefix.length)]; // code points
  // The tail is whole graphemes, but never more than four code points: a grapheme can carry any
  // number of combining marks, and those would show more of the value than four characters.
  const graphemes = Array.from(segmenter.segment(value.slice(prefix.length)), (s) => s.segment);
  let tail = '';
  let shown = 0;
  for (let i = graphemes.length - 1; i >= 0 && graphemes.length - i <= TAIL; i--) {
    const cps = [...graphemes[i]!].length;
    if (shown + cps > TAIL) break;
    tail = graphemes[i]! + tail;
    shown += cps;
  }
  if (rest.length - shown < HIDDEN_AT_LEAST) return '****';
  return `${prefix}...${tail}`;
}
