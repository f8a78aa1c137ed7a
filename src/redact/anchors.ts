/**
 * Where could a match of RULES start? Running the rules' one big alternation over every line
 * costs about 3 ns a character (the engine tries every rule at every position); most lines hold
 * no secret at all. Every rule has an anchor, a character that is rare in ordinary text at a
 * fixed place in its match: `-` in sk-/glpat-/xoxb-/-----BEGIN, `_` in ghp_/sk_live_/whsec_, `.`
 * in Discord tokens, JWTs and Slack webhooks, `@` in URL passwords, `A` in AWS and Google keys,
 * a digit then `:` in Telegram tokens, the Authorization scheme words. Finding those with
 * indexOf is an order of magnitude cheaper, and tells where the alternation needs to start.
 *
 * The contract is one-sided: the position returned is never after the start of a match of any
 * rule (a false alarm costs only the full scan). Keep it in step with rules.ts: ANCHORED names
 * the rules covered here, and a redactor with any other rule scans from the start.
 */
export const ANCHORED = new Set([
  'private-key',
  'anthropic-key',
  'openrouter-key',
  'openai-key',
  'github-token',
  'gitlab-token',
  'slack-token',
  'stripe-key',
  'aws-access-key-id',
  'google-api-key',
  'jwt',
  'telegram-bot-token',
  'discord-bot-token',
  'authorization',
  'url-password',
]);

const at = (s: string, i: number): number => s.charCodeAt(i);
/** startsWith, but false before the start of the text (startsWith would clamp to 0). */
const has = (s: string, word: string, i: number): boolean => i >= 0 && s.startsWith(word, i);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

// Lengths from rules.ts: how far before its anchor a match may start.
const HYPHEN_BACK = 7; // "glagent-": gl + the longest GitLab prefix word
const UNDERSCORE_BACK = 6; // "github_"
const DISCORD_BACK = 28; // the first part of a Discord token: 24 to 28 characters (a JWT's match begins at its ".eyJ")
const DIGITS_BACK = 12; // a Telegram bot id: 6 to 12 digits

const SCHEME = /[Bb](?:earer|asic)|BEARER|BASIC/g;

/** Finds the next mark of one kind at or after `from` in `s`, or -1. */
type Find = (s: string, from: number) => number;

const literal =
  (mark: string): Find =>
  (s, from) =>
    s.indexOf(mark, from);

const ENCODED_SCHEME = /%3[Aa](?:%2[Ff]%2[Ff]|\/\/)/g;

/** "%3A%2F%2F" (either case), or "%3A//" as Python's quote() leaves it. */
const encodedScheme: Find = (s, from) => {
  ENCODED_SCHEME.lastIndex = from;
  return ENCODED_SCHEME.exec(s)?.index ?? -1;
};

/**
 * The next mark of any of the kinds, walked forward: each kind's last find is kept until it is
 * passed, and a kind that has none left is never searched again. (Searched afresh at every
 * step, an absent kind read to the end of the text each time: quadratic in a text of many
 * "://" before one '@'.)
 */
function marks(s: string, kinds: readonly Find[]): (from: number) => number {
  const found = kinds.map(() => -2); // -2: not searched yet; -1: none left
  return (from) => {
    let best = -1;
    for (let k = 0; k < kinds.length; k++) {
      if (found[k] !== -1 && found[k]! < from) found[k] = kinds[k]!(s, from);
      const f = found[k]!;
      if (f !== -1 && (best === -1 || f < best)) best = f;
    }
    return best;
  };
}

const SCHEMES: readonly Find[] = [literal('://'), literal(':\\/\\/')];
const ENCODED_SCHEMES: readonly Find[] = [encodedScheme];

/**
 * Where a URL password's match could start: the last scheme mark before the first `at` (the
 * end of userinfo) that has one, or Infinity.
 */
function urlStart(s: string, from: number, at: string, kinds: readonly Find[]): number {
  let next: ((from: number) => number) | undefined; // made at the first `at` (most lines have none)
  let scheme = -1; // the next scheme mark not yet passed
  let lastScheme = -1; // the last scheme mark before the current `at`
  for (let i = s.indexOf(at, from); i !== -1; i = s.indexOf(at, i + 1)) {
    if (next === undefined) {
      next = marks(s, kinds);
      scheme = next(from);
    }
    while (scheme !== -1 && scheme < i) {
      lastScheme = scheme;
      scheme = next(scheme + 1);
    }
    if (lastScheme !== -1) return lastScheme;
    if (scheme === -1) break; // no scheme mark after from
  }
  return Infinity;
}

/**
 * The earliest position at or after `from` at which some rule could match `s`, or -1 when none
 * can (the caller vouches that nothing before `from` is part of a secret).
 */
export function firstRuleStart(s: string, from = 0): number {
  let best = Infinity;
  // '-': -----BEGIN, sk-, xox?-, xapp-, gl<word>-
  for (let i = s.indexOf('-', from); i !== -1 && i - HYPHEN_BACK < best; i = s.indexOf('-', i + 1)) {
    if (at(s, i + 1) === 0x2d && s.startsWith('----BEGIN ', i + 1)) best = Math.min(best, i);
    if (at(s, i - 1) === 0x6b && at(s, i - 2) === 0x73) best = Math.min(best, i - 2);
    if (has(s, 'xox', i - 4) || has(s, 'xapp', i - 4)) best = Math.min(best, i - 4);
    for (let k = HYPHEN_BACK; k >= 4; k--) {
      if (at(s, i - k) === 0x67 && at(s, i - k + 1) === 0x6c) {
        best = Math.min(best, i - k);
        break;
      }
    }
  }
  // '_': github_ (fine-grained), whsec_, gh?_ (classic), sk_ rk_ (Stripe)
  for (let i = s.indexOf('_', from); i !== -1 && i - UNDERSCORE_BACK < best; i = s.indexOf('_', i + 1)) {
    if (has(s, 'github', i - 6)) best = Math.min(best, i - 6);
    if (has(s, 'whsec', i - 5)) best = Math.min(best, i - 5);
    if (at(s, i - 3) === 0x67 && at(s, i - 2) === 0x68) best = Math.min(best, i - 3);
    if (at(s, i - 1) === 0x6b && (at(s, i - 2) === 0x73 || at(s, i - 2) === 0x72)) best = Math.min(best, i - 2);
  }
  // '.': JWT (header.eyJ), Discord (<24-28>.<6-7>.), hooks.slack.com
  for (let i = s.indexOf('.', from); i !== -1 && i - DISCORD_BACK < best; i = s.indexOf('.', i + 1)) {
    if (at(s, i + 1) === 0x65 && at(s, i + 2) === 0x79 && at(s, i + 3) === 0x4a) best = Math.min(best, i);
    if (at(s, i + 7) === 0x2e || at(s, i + 8) === 0x2e) best = Math.min(best, Math.max(0, i - DISCORD_BACK));
    if (has(s, 'hooks', i - 5)) best = Math.min(best, i - 5);
  }
  // '@': the end of URL userinfo. The match starts at the "://" before it, and no '/' stands
  // in between, so that is the last "://" before the '@'. The "://"s are walked forward once,
  // alongside the '@'s: searching back from every '@' would be quadratic in a line of '@'s.
  // The password has no length limit, so the first '@' with a "://" before it decides: a later
  // '@' has the same "://" before it or a later one.
  // The same for ":\/\/" (JSON with escaped slashes), and for "%3A%2F%2F" with "%40" (encoded).
  best = Math.min(best, urlStart(s, from, '@', SCHEMES));
  // Most lines hold no '%' at all: one search for the character is cheaper than for "%40".
  const pct = s.indexOf('%', from);
  if (pct !== -1 && pct < best) best = Math.min(best, urlStart(s, pct, '%40', ENCODED_SCHEMES));
  // 'A': AKIA ASIA ABIA ACCA (AWS), AIza (Google)
  for (let i = s.indexOf('A', from); i !== -1 && i < best; i = s.indexOf('A', i + 1)) {
    const n = at(s, i + 1);
    if (n === 0x4b || n === 0x53 || n === 0x42 || n === 0x43 || n === 0x49) {
      best = i;
      break;
    }
  }
  // ':' after a digit: a Telegram bot id is a whole run of 6 to 12 digits. (A JSON line has a
  // ':' after every key, each preceded by '"'; looking at each costs less than a regex's scan.)
  for (let i = s.indexOf(':', from); i !== -1 && i - DIGITS_BACK < best; i = s.indexOf(':', i + 1)) {
    if (!isDigit(at(s, i - 1))) continue;
    let j = i - 1;
    while (j > 0 && i - j <= DIGITS_BACK && isDigit(at(s, j - 1))) j--;
    if (i - j >= 6 && i - j <= DIGITS_BACK) best = Math.min(best, j);
  }
  // The Authorization scheme words (test, not exec: no match object for every line).
  SCHEME.lastIndex = from;
  if (SCHEME.test(s)) {
    const end = SCHEME.lastIndex;
    const last = at(s, end - 1);
    best = Math.min(best, end - (last === 0x72 || last === 0x52 ? 6 : 5)); // Bearer / Basic
  }
  return best === Infinity ? -1 : Math.max(best, from);
}
