/**
 * Leaks a hostile review found, each kept here as a case that must stay closed: URL userinfo
 * with '@', a long token after "Bearer ", a secret across the cut of a failure text, secrets in
 * identifiers, base64 of a value at the start of a blob, other serialisers' encodings, and a
 * numeric secret with a minus sign.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Redactor } from '../src/index.js';
import { createLogger } from '../src/log/index.js';
import { tmpDir } from './helpers/index.js';
import { ALNUM, rand } from './helpers/secrets.js';

const B64URL = `${ALNUM}-_`;

/** Every line the app's own logger writes for `fn`, redacted by `r`, read back from its file. */
function logged(r: Redactor, fn: (log: ReturnType<typeof createLogger>) => void): string {
  const file = path.join(tmpDir(), 'log.jsonl');
  const fd = fs.openSync(file, 'w');
  try {
    fn(createLogger({ fd, redactor: r }));
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(file, 'utf8');
}

test("url-password: userinfo runs to the last '@' (an e-mail as the user, an '@' in the password)", () => {
  const r = new Redactor();
  const cases: [string, string][] = [
    ['postgres://admin:p@ssW0rd-Tr0ub4dor@db.internal:5432/app', 'postgres://admin:[REDACTED:url-password]@db.internal:5432/app'],
    ['smtp://alerts@example.com:abcd-efgh-ijkl-mnop@smtp.gmail.com:587', 'smtp://alerts@example.com:[REDACTED:url-password]@smtp.gmail.com:587'],
    ['https://u:a@b:c@host/x', 'https://u:[REDACTED:url-password]@host/x'],
  ];
  for (const [text, expected] of cases) {
    const url = new URL(text);
    assert.ok(url.password.length > 0, `the test URL has a password: ${text}`);
    assert.equal(r.redact(`dsn=${text} next`), `dsn=${expected} next`);
    const line = logged(r, (log) => log.error({ dsn: text }, 'unreachable'));
    assert.equal(JSON.parse(line).dsn, expected);
    assert.ok(!line.includes(decodeURIComponent(url.password)), line);
  }
  // Still not a password: a port, a query with '@', a user alone.
  for (const text of ['http://host:8080/?next=a@b', 'see https://user@example.com/path?q=1', 'http://host:8080/a@b']) assert.equal(r.redact(text), text);
});

test('a token longer than a few KB after Bearer, or alone, is replaced whole', () => {
  const r = new Redactor();
  const jwt = (payload: number): string => `eyJ${rand(B64URL, 40)}.eyJ${rand(B64URL, payload)}.${rand(B64URL, 342)}`;
  for (const token of [jwt(3900), jwt(12_000), rand(`${ALNUM}+/`, 9000) + '9aZ']) {
    for (const text of [`Authorization: Bearer ${token}`, `authorization: bearer ${token}, next`]) {
      const out = r.redact(text);
      assert.match(out, /^[Aa]uthorization: [Bb]earer \[REDACTED:(authorization|jwt)\](, next)?$/, out.slice(0, 200));
    }
    const line = logged(r, (log) => log.info({ headers: { authorization: `Bearer ${token}` } }, 'calling'));
    assert.ok(!line.includes(token.slice(-40)), 'the tail of the token is in the log line');
  }
  assert.equal(r.redact(`t=${jwt(12_000)}`), 't=[REDACTED:jwt]');
  // A vault value that starts early in a long match and runs past its end (the old search
  // looked only at the match's last 512 characters).
  const value = `${'Q'.repeat(990)} tail-of-the-secret`;
  r.setSecret('long', value);
  const out = r.redact(`Bearer 0123456789${value} after`);
  assert.ok(!out.includes('tail-of-the-secret'), out.slice(-80));
});

test('base64 of a value at the start of a longer blob: all but the last 2 or 4 bits of the value go', () => {
  for (let len = 20; len < 26; len++) {
    const value = rand(ALNUM, len);
    const r = new Redactor();
    r.setSecret('v', value);
    for (const after of [':', ':x-oauth-basic', 'X', '\n', '']) {
      for (const enc of ['base64', 'base64url'] as const) {
        const blob = Buffer.from(value + after, 'utf8').toString(enc);
        const out = r.redact(`Authorization-ish ${blob} end`);
        const decided = Math.floor((len * 4) / 3);
        assert.ok(out.startsWith('Authorization-ish [REDACTED:vault]'), `${enc} ${JSON.stringify(after)}: ${out}`);
        assert.ok(!out.includes(blob.slice(0, decided - 1)), out);
      }
    }
  }
});

test("vault values in other serialisers' encodings: RFC 3986, lower case, Python's quote, PHP's \\/, \\uXXXX", () => {
  const r = new Redactor();
  const a = 'Summer*2024!pass';
  const b = 'ab/cd+ef=gh&ij kl';
  const c = 'pässwörd-2024-🦊';
  r.replaceSecrets([['a', a], ['b', b], ['c', c]]);
  const rfc3986 = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  const texts = [
    rfc3986(a), // Go url.PathEscape, Python quote, curl, PHP rawurlencode
    rfc3986(a).toLowerCase().replace(/summer/i, 'Summer'),
    encodeURIComponent(b).toLowerCase().replace(/%20/g, '+'),
    rfc3986(b).replace(/%2F/g, '/'), // Python quote() keeps '/'
    JSON.stringify({ k: b }).replace(/\//g, '\\/'), // PHP json_encode
    JSON.stringify({ k: b }).replace(/&/g, '\\u0026'), // Go encoding/json
    JSON.stringify({ k: c }).replace(/[\u0080-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`), // Python ensure_ascii
  ];
  for (const t of texts) {
    const out = r.redact(`x ${t} y`);
    assert.match(out, /\[REDACTED:vault\]/, t);
    for (const v of [a, b, c]) assert.ok(!out.includes(v.slice(0, 8)), `${t} -> ${out}`);
  }
});

test('a numeric vault value written as a negative JSON number is replaced, sign and all', () => {
  const r = new Redactor();
  r.setSecret('chat', '1001234567890');
  const line = logged(r, (log) => log.info({ group: -1001234567890, other: 21001234567890 }, 'sent'));
  assert.ok(!line.includes('1001234567890"') && !line.includes(':-1001234567890'), line);
  assert.equal(JSON.parse(line).group, '[REDACTED:vault]');
  assert.equal(JSON.parse(line).other, 21001234567890, 'a longer number is a different value');
  assert.deepEqual(JSON.parse(r.scrubJson('{"group":-1001234567890,"n":[-1001234567890]}')), { group: '[REDACTED:vault]', n: ['[REDACTED:vault]'] });
  assert.equal(r.redact('chat -1001234567890'), 'chat -[REDACTED:vault]');
});
