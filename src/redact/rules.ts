import { isBase64Url } from './chars.js';

/**
 * Known secret formats, each a named rule. No rule starts with \b: in JSON text a secret after a
 * newline follows the two characters \n, and "n" is a word character. Sources are plain regex text (no flags, no
 * backreferences) so they can be joined into one alternation and run in one pass. No rule may
 * match a `"`: the same rules scrub JSON text (log lines), where a match across a quote would
 * eat the JSON's structure. Order matters where prefixes overlap: the specific `sk-` formats
 * come before OpenAI's general one.
 */
export interface Rule {
  name: string;
  source: string;
  /** Text kept from the start of the match (the scheme word of an Authorization value, a URL's user). */
  keep?: RegExp;
  /** Text kept from the end of the match. */
  keepEnd?: RegExp;
  /**
   * Matches of this shape turn up by chance in random base64url (blobs.ts): inside a blob they
   * are data, not keys. Only for formats whose prefix is short enough to occur by chance.
   */
  chance?: RegExp;
  /** For a match that begins inside its secret: where, at or before the match, the secret starts. */
  startsBefore?: (text: string, at: number) => number;
}

/** The Authorization scheme words. */
const SCHEME_WORD = '(?:[Bb]earer|BEARER|[Bb]asic|BASIC)';

/**
 * A character of an Authorization value: not a space, quote, backslash, comma or semicolon; a
 * `\/` is PHP's `/` (cut there, the rest of a Basic credential was left in clear).
 */
const AUTH_CHAR = `(?:[^\\s"'\\\\,;]|\\\\/)`;

/**
 * A backslash pair in a URL password: JSON's `\"` and `\\` (a password with a quote or a
 * backslash, logged), or a backslash before any other character: one rule serves plain text,
 * where `\n` is a backslash and an `n` (a generated password holds such a pair about once in
 * seventy), and JSON text, where it is a line break; a port at a line's end and an address at
 * the next one's start then read as a password (a false positive kept: the leak is worse). Not
 * `\/` (PHP's slash ends it as `/` does), and not a `\"` that JSON's structure (`,` `:` `}` `]`)
 * or code and markup (`)` `;` `>` `<`, Go's `\u003c` `\u003e`) follow: JSON, a call or a tag kept
 * in a string, where a port and a later e-mail address would otherwise pass for a password.
 */
const JSON_PAIR = '\\\\(?:[^\\s/"]|"(?![,:}\\])>;<]|\\\\u003[CcEe]))';

/** A character an encoded URL component holds as it is (RFC 3986's unreserved and sub-delims, but `&` and `+`, a space). */
const URL_CHAR = "[A-Za-z0-9._~!$'()*,;=-]";

/** An encoded URL's scheme mark: `%3A%2F%2F`, or `%3A//` as Python's quote() leaves it. */
const ENCODED_MARK = '%3[Aa](?:%2[Ff]%2[Ff]|//)';

/**
 * What ends an encoded password besides a raw `/` `&` `+`: an encoded `/` `?` `#`; a quote,
 * space, tab or line break (JSON or prose in a parameter: a port and a later e-mail address);
 * a character userinfo never holds raw (`\ | < > [ ] { } ^ \``: in a password encoded once
 * more they are `%255C`...); and an `&` that an outer `key=` follows (`return=http://h:3000&user=bob@x`
 * encoded as a whole). A `,` or `;` does not end it: a password may hold them.
 */
const ENCODED_END = '2[Ff]|3[Ff]|23|22|20|0[9AaDd]|5[BbCcDdEe]|7[BbCcDd]|3[CcEe]|60|26(?=[A-Za-z0-9_.~-]+%3[Dd])';

/** The shortest and longest JWT header the rule takes, in base64url characters after its "eyJ". */
const JWT_HEADER_MIN = 8;
const JWT_HEADER_MAX = 2048;

/**
 * Where the JWT whose payload begins at `dot` (its ".eyJ") starts: the first "eyJ" from which
 * base64url characters run to the dot, 8 to JWT_HEADER_MAX after it, as the rule's lookbehind
 * found it (the longest header, as a left-to-right match of the whole token would take).
 */
function jwtStart(text: string, dot: number): number {
  let r = dot;
  while (r > 0 && dot - r < 3 + JWT_HEADER_MAX && isBase64Url(text.charCodeAt(r - 1))) r--;
  const h = text.indexOf('eyJ', r);
  return h !== -1 && h <= dot - 3 - JWT_HEADER_MIN ? h : dot;
}

export const RULES: readonly Rule[] = [
  // PEM private keys of any kind; in JSON text the newlines are the two characters \n.
  {
    name: 'private-key',
    // Linear: the body is consumed once, up to END, a quote (the end of a JSON string) or the
    // end of the text; a key cut off before its END line is still taken.
    source: '-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[^"-]|-(?!----END ))*(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?',
  },
  // Anthropic: sk-ant-api03-..., sk-ant-admin01-..., OAuth sk-ant-oat01-...
  { name: 'anthropic-key', source: 'sk-ant-[a-z]{2,8}\\d{2}-[A-Za-z0-9_-]{20,512}' },
  // OpenRouter: sk-or-v1- and 64 hex digits.
  { name: 'openrouter-key', source: 'sk-or-v1-[0-9a-f]{64}' },
  // OpenAI: project, service-account and admin keys, and the legacy sk-<48>.
  // The legacy sk-<48> turns up in base64url about once per MB.
  {
    name: 'openai-key',
    source: 'sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,512}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|sk-[A-Za-z0-9]{48}',
    chance: /^sk-[A-Za-z0-9]{48}$/,
  },
  // GitHub: fine-grained PATs, and classic tokens ghp_ gho_ ghu_ ghs_ ghr_.
  { name: 'github-token', source: 'github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}|gh[pousr]_[A-Za-z0-9]{36,255}', chance: /^gh[pousr]_/ },
  // GitLab: personal, deploy, trigger, runner, feed, agent, OAuth ... tokens.
  { name: 'gitlab-token', source: 'gl(?:pat|dt|ptt|rt|cbt|ft|imt|soat|oas|agent|ffct)-[A-Za-z0-9_-]{20,256}' },
  // Slack: bot/user/app-level/config tokens, and incoming-webhook URLs.
  { name: 'slack-token', source: 'xox[abposer]-[A-Za-z0-9-]{10,256}|xapp-\\d-[A-Za-z0-9]{8,64}-\\d{6,32}-[a-f0-9]{32,128}|hooks\\.slack\\.com/services/T[A-Z0-9]{1,32}/B[A-Z0-9]{1,32}/[A-Za-z0-9]{20,64}' },
  // Stripe: secret and restricted keys, webhook signing secrets (publishable pk_ keys are public).
  { name: 'stripe-key', source: '(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,256}|whsec_[A-Za-z0-9]{32,256}' },
  // AWS access key ids (the id half; a secret access key has no format of its own). Not the last
  // 20 characters of a ULID-shaped id (26 Crockford characters, as blufio's object references,
  // message and job ids are): ACCA can fall at its 7th, and the tail would be taken, breaking the
  // reference. Anything else glued in front still counts: upper-case hex of percent-encoding
  // (%3DAKIA...) is where keys are found in URLs.
  // (AKIA, ASIA and ABIA hold an I, which Crockford's alphabet leaves out: only ACCA can.)
  {
    name: 'aws-access-key-id',
    source:
      '(?:(?:AKIA|ASIA|ABIA)[A-Z0-9]{16}|(?!(?<=(?:^|[^A-Za-z0-9])[0-9A-HJKMNP-TV-Z]{6})ACCA[0-9A-HJKMNP-TV-Z]{16}(?![A-Za-z0-9]))ACCA[A-Z0-9]{16})(?![A-Za-z0-9])',
  },
  // Google API keys.
  { name: 'google-api-key', source: 'AIza[0-9A-Za-z_-]{35}', chance: /^AIza/ },
  // JSON Web Tokens: header and payload are base64url JSON objects ("eyJ"). The payload may be
  // long (identity tokens that list a user's groups run to several KB). The match begins at the
  // payload's ".eyJ" and a lookbehind finds the header (up to JWT_HEADER_MAX): begun at every
  // "eyJ", a failed attempt read up to 2,048 characters, and text of repeated "eyJ" cost about
  // 2.5 s a MB; a "." before "eyJ" is rare. The replacement starts at the header (startsBefore).
  {
    name: 'jwt',
    source: `\\.eyJ(?<=eyJ[A-Za-z0-9_-]{${JWT_HEADER_MIN},${JWT_HEADER_MAX}}\\.eyJ)[A-Za-z0-9_-]{8,16384}\\.[A-Za-z0-9_-]{10,1024}`,
    startsBefore: jwtStart,
  },
  // Telegram bot tokens: <bot id>:<35 characters> (the docs' example has 34), also inside /bot<token>/ URLs.
  { name: 'telegram-bot-token', source: '\\d(?<!\\d\\d)\\d{5,11}:[A-Za-z0-9_-]{30,64}' },
  // Discord bot tokens: base64 user id, timestamp, HMAC.
  { name: 'discord-bot-token', source: '[MNO][A-Za-z0-9_-]{23,27}\\.[A-Za-z0-9_-]{6,7}\\.[A-Za-z0-9_-]{27,40}(?![A-Za-z0-9_-])' },
  // Authorization header values, whatever characters the token uses; the scheme word stays. A
  // value has 16 or more characters and a digit or both cases, so that prose ("Bearer
  // authentication", "basic internationalization") is left alone. No upper bound: a bound would
  // leave the rest of a longer token (a JWT of several KB) in clear. Still linear: a value
  // ends at the first space, and the next scheme word needs a space after it.
  //
  // URL- or form-encoded (a query parameter, a WebSocket URL, a form body) the space is `%20` or
  // `+`, and the value is what encodeURIComponent leaves (`A-Z a-z 0-9 - _ . ! ~ * ( )`) and
  // `%` escapes. There the scheme word must not follow such a character: inside an encoded value
  // (`Bearer%20Bearer%20...`) it would be tried again at every repetition, each read to the end.
  {
    name: 'authorization',
    source:
      `${SCHEME_WORD} +(?:(?=${AUTH_CHAR}*\\d)|(?=${AUTH_CHAR}*[A-Z])(?=${AUTH_CHAR}*[a-z]))${AUTH_CHAR}{16,}` +
      `|(?<![A-Za-z0-9%._~!*()+-])${SCHEME_WORD}(?:%20|\\+)(?:(?=[A-Za-z0-9%._~!*()-]*\\d)|(?=[A-Za-z0-9%._~!*()-]*[A-Z])(?=[A-Za-z0-9%._~!*()-]*[a-z]))[A-Za-z0-9%._~!*()-]{16,}` +
      // Right after an Authorization header's name there is no prose to spare: any length. The
      // name as headers are written out: `Authorization: `, `"authorization":"`, Go's
      // `"Authorization":["`, `'Authorization' => '`, print_r's `[Authorization] => `. The
      // scheme word comes first and the lookbehind after it: a lookbehind first was tried at
      // every position of every text and halved the scan's speed.
      `|${SCHEME_WORD}(?<=(?:[Aa]uthorization|AUTHORIZATION)["'\\\\\\]]{0,2}\\s{0,3}(?:=>|[:=])\\s{0,3}\\[?["'\\\\]{0,2}[A-Za-z]{5,6}) +${AUTH_CHAR}+`,
    keep: /^[A-Za-z]+(?: +|%20|\+)/,
  },
  // A password in URL userinfo (scheme://user:password@host); the user name stays. Userinfo
  // ends at the last '@' before the host (as WHATWG URL and urlsplit read it): a user name may
  // be an e-mail address and a password may hold a raw '@', so both may contain one, and the
  // password runs to the last. The password has no upper bound (an OAuth access token as the
  // password, https://oauth2accesstoken:<ya29...>@, has several hundred characters; at 256 it
  // was not redacted at all). Still linear: an attempt starts at a "://" and reads no further
  // than the next '/', so no two attempts read the same text.
  //
  // A password may hold a backslash pair: JSON text writes a `"` or `\` in it as `\"` or `\\`
  // (the pair is never a structural quote, and a match starts past any escape: the user part has
  // no backslash), and PHP writes `/` as `\/`, so its URLs start `:\/\/` and an escaped slash
  // ends the password as a slash does. A raw `"` or space still ends it: no rule matches a quote
  // (see above), and across a space prose (`host:8080 or mail me@x`) would be taken for one.
  // Percent-encoded (a URL in a query parameter or a redirect URI) the marks are `%3A%2F%2F`,
  // `%3A` and `%40`, and an encoded `/`, `?` or `#` (or the outer URL's `&`) ends the password.
  {
    name: 'url-password',
    source:
      `(?::\\/\\/|:\\\\/\\\\/)[^\\s/?#:"\\\\]{0,256}:(?:[^\\s/?#"\\\\]|${JSON_PAIR})+@` +
      `|${ENCODED_MARK}(?:${URL_CHAR}|%(?!3[Aa]|${ENCODED_END})[0-9A-Fa-f]{2}){0,256}%3[Aa](?:${URL_CHAR}|%(?!${ENCODED_END})[0-9A-Fa-f]{2})+%40`,
    keep: /^(?::\/\/|:\\\/\\\/)[^:]*:|^%3[Aa](?:%2[Ff]%2[Ff]|\/\/).*?%3[Aa]/,
    keepEnd: /(?:@|%40)$/,
  },
];
