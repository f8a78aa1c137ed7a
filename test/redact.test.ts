import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { AppError, Redactor, REDACTION_RULES, loadConfig, openBlufio } from '../src/index.js';
import { secretForms } from '../src/redact/index.js';
import { tmpDir } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';
import { ALNUM, B64URL, FORMATS, rand } from './helpers/secrets.js';
import { BLOB_RUN } from '../src/redact/blobs.js';

/** Published examples from providers' documentation, and fixed cases. */
const KNOWN: [string, string, string][] = [
  ['aws-access-key-id', 'aws_access_key_id = AKIAIOSFODNN7EXAMPLE', 'aws_access_key_id = [REDACTED:aws-access-key-id]'],
  ['telegram-bot-token', 'https://api.telegram.org/bot110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe', 'https://api.telegram.org/bot[REDACTED:telegram-bot-token]/getMe'],
  ['jwt', 'token=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c', 'token=[REDACTED:jwt]'],
  ['authorization', 'Authorization: Bearer 0123456789abcdefXYZ', 'Authorization: Bearer [REDACTED:authorization]'],
  ['authorization', 'authorization: basic dXNlcjpwYXNzd29yZA==', 'authorization: basic [REDACTED:authorization]'],
  ['url-password', 'postgres://agent:s3cr3t-P4ss@db.internal:5432/blufio', 'postgres://agent:[REDACTED:url-password]@db.internal:5432/blufio'],
  ['url-password', 'https://:tokenonly@git.example.com/repo.git', 'https://:[REDACTED:url-password]@git.example.com/repo.git'],
  ['slack-token', 'POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX', 'POST https://[REDACTED:slack-token]'],
];

/** Text that looks a little like a secret and must be left exactly as it is. */
const NEAR_MISSES = [
  '550e8400-e29b-41d4-a716-446655440000',
  'commit da39a3ee5e6b4b0d3255bfef95601890afd80709 fixed it',
  'sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'The sk-proj prefix marks project keys; sk- alone is older.',
  'ghp_ tokens are 40 characters; gh_abc is not one',
  'Call me at +1 555-123-4567 or at 12:30:45 on 2026-11-23T14:05:00Z',
  'see https://user@example.com/path?q=1 and mailto:someone@example.com',
  'The AKIA prefix; akiaiosfodnn7example is lower case',
  'Bearer tokens are sent with the Authorization header. Basic auth is weaker.',
  'Bearer authentication and Basic authentication compared',
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'order 1234567890 shipped; ticket #98765432:done',
  'C:\\Users\\agent\\AppData\\Local\\blufio\\blufio.db and /var/lib/blufio/objects/ab/cd',
  'xox is a game; xoxb- needs more',
  'A sentence with eyJ in it, and eyJhbGci alone is not a token.',
  'ed25519 fingerprint SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
  // ULID-shaped ids whose 7th character starts ACCA: an object reference, a message or job id.
  '{"attachments":["obj_01M95AACCA0123456789ABCDEF"]}',
  'job 01M95AACCA0000000000000001 done',
];

test('every rule: generated keys in the documented format are replaced whole and named', () => {
  const r = new Redactor();
  const names = new Set(REDACTION_RULES.map((x) => x.name));
  for (const [rule, make] of Object.entries(FORMATS)) {
    assert.ok(names.has(rule), rule);
    for (let i = 0; i < 50; i++) {
      const key = make();
      for (const [before, after] of [['', ''], ['key: ', '\n'], ['"', '"'], ['(', ').'], ['x=', '&y=1']]) {
        const out = r.redact(`${before}${key}${after}`);
        assert.equal(out, `${before}[REDACTED:${rule}]${after}`, `${rule}: ${key}`);
      }
    }
  }
  for (const [rule, text, expected] of KNOWN) assert.equal(r.redact(text), expected, rule);
});

test('near misses are left untouched: UUIDs, git SHAs, prose, timestamps, base64 image data, public keys', () => {
  const r = new Redactor();
  for (const text of NEAR_MISSES) assert.equal(r.redact(text), text);
});

test('vault values are matched as given, JSON-escaped, URL-encoded and in base64; longer ones win; never half', () => {
  const r = new Redactor();
  const weird = 'pa"ss\\word/with spaces&more=1';
  r.replaceSecrets([['a', weird], ['short', 'abcdefgh12'], ['long', 'abcdefgh1234'], ['pin', '1234']]);
  for (const form of secretForms(weird).forms) assert.equal(r.redact(`<${form}>`), '<[REDACTED:vault]>', form);
  assert.equal(r.redact('x abcdefgh1234 y abcdefgh12 z'), 'x [REDACTED:vault] y [REDACTED:vault] z');
  assert.equal(r.redact('pin 1234 stays'), 'pin 1234 stays', 'values under 8 characters are not matched');
  // A format match that would end inside a vault value takes the whole value.
  r.setSecret('inner', 'xyzsecret-tail');
  assert.equal(r.redact(`key ghp_${'A'.repeat(36)}xyzsecret-tail!`), 'key [REDACTED:github-token]!');
  // JSON text stays JSON: a secret that is a bare number becomes a string; one right after an escape takes its backslash.
  r.setSecret('digits', '987654321098');
  const json = JSON.stringify({ n: 987654321098, s: 'x 987654321098 y', w: weird });
  const scrubbed = r.scrubJson(json);
  assert.deepEqual(JSON.parse(scrubbed), { n: '[REDACTED:vault]', s: 'x [REDACTED:vault] y', w: '[REDACTED:vault]' });
  r.setSecret('after-escape', 'nabcdefgh9');
  const escaped = JSON.stringify({ t: 'line\nabcdefgh9 end', u: '\u0001nabcdefgh9' });
  assert.deepEqual(JSON.parse(r.redactJson(escaped)), { t: 'line[REDACTED:vault] end', u: '\u0001[REDACTED:vault]' });
  r.deleteSecret('digits');
  assert.equal(r.redact('987654321098'), '987654321098');
  r.clearSecrets();
  assert.equal(r.size, 0);
  assert.equal(r.redact(`x ${weird}`), `x ${weird}`);
});

test('redactValue copies only what changed, keys included', () => {
  const r = new Redactor();
  const key = `sk_live_${'a'.repeat(24)}`;
  const same = { a: 1, b: ['x', { c: 'y' }] };
  assert.equal(r.redactValue(same), same);
  const v = { a: { [key]: [key, 2] }, b: same };
  const out = r.redactValue(v);
  assert.deepEqual(out, { a: { '[REDACTED:stripe-key]': ['[REDACTED:stripe-key]', 2] }, b: same });
  assert.equal(out.b, same);
  assert.equal(v.a[key]![0], key, 'the input is not modified');
});

test('extra patterns from the config are validated at load and applied', async () => {
  const dir = tmpDir();
  const configPath = path.join(dir, 'blufio.toml');
  fs.writeFileSync(configPath, '[redaction]\nextra_patterns = [{ name = "internal-token", regex = "itk_[a-z0-9]{16}" }]\n');
  const cfg = loadConfig({ configPath, dataDir: dir });
  assert.deepEqual(cfg.redaction.extraPatterns, [{ name: 'internal-token', regex: 'itk_[a-z0-9]{16}' }]);
  const { logger, lines } = memoryLogger();
  const app = await openBlufio({ configPath, dataDir: dir, logger, env: {} });
  app.log.info({ header: 'itk_0123456789abcdef' }, 'calling with itk_abcdefabcdef0123');
  await app.close();
  const line = lines().find((l) => typeof l.header === 'string')!;
  assert.equal(line.header, '[REDACTED:internal-token]');
  assert.equal(line.msg, 'calling with [REDACTED:internal-token]');

  const bad: [string, RegExp][] = [
    ['extra_patterns = [{ name = "x", regex = "a(" }]', /line 2: .*does not compile/],
    ['extra_patterns = [{ name = "x", regex = "a*" }]', /matches empty text/],
    ['extra_patterns = [{ name = "x", regex = "(a)\\\\1" }]', /backreferences/],
    ['extra_patterns = [{ name = "Bad Name", regex = "abc" }]', /name must be/],
    ['extra_patterns = [{ name = "x", regex = "abc", flags = "i" }]', /unknown key/],
  ];
  for (const [line, why] of bad) {
    fs.writeFileSync(configPath, `[redaction]\n${line}\n`);
    assert.throws(() => loadConfig({ configPath, dataDir: dir }), (e: unknown) => e instanceof AppError && e.code === 'KC_CONFIG_INVALID' && why.test(e.message), line);
  }
});

test('the app logger: child loggers, errors with stacks and objects are redacted; vault values from set to lock', async () => {
  const dir = tmpDir();
  const { logger, lines } = memoryLogger();
  const app = await openBlufio({ dataDir: dir, logger, passphrase: 'correct horse', env: {} });
  const value = `my-own-secret-${crypto.randomBytes(6).toString('hex')}`;
  const gh = FORMATS['github-token']!();
  app.log.info(`before the vault knows it: ${value}`);
  await app.vault.set('providers.x.api_key', value);
  const child = app.log.child({ component: 'agent', token: gh });
  child.warn({ nested: { deep: [{ v: value }], enc: encodeURIComponent(value) } }, 'got %s', value);
  child.error(new Error(`request failed with key ${value} and ${gh}`), 'failed');
  child.info({ err: Object.assign(new Error('x'), { config: { headers: { authorization: `Bearer ${gh}` } } }) }, 'axios-like error');
  app.vault.lock();
  app.log.info(`after lock: ${value}`);
  await app.vault.unlock();
  app.log.info(`after unlock: ${value}`);
  await app.vault.delete('providers.x.api_key');
  app.log.info(`after delete: ${value}`);
  await app.close();

  const out = lines().filter((l) => /before the vault|got |failed|axios|after /.test(String(l.msg))).map((l) => JSON.stringify(l));
  assert.match(out[0]!, new RegExp(value), 'not yet known: only formats are caught');
  for (const line of out.slice(1, 4)) {
    assert.ok(!line.includes(value) && !line.includes(gh) && !line.includes(encodeURIComponent(value)), line);
  }
  assert.ok(out.some((l) => l.includes('"stack":"Error: request failed with key [REDACTED:vault] and [REDACTED:github-token]')));
  assert.match(out.find((l) => l.includes('after lock'))!, new RegExp(value), 'locked: the value is no longer held');
  assert.ok(!out.find((l) => l.includes('after unlock'))!.includes(value), 'unlock feeds the values back');
  assert.match(out.find((l) => l.includes('after delete'))!, new RegExp(value));
});

test('stored data is scrubbed before it is written: messages, metadata, sessions, payloads, error text', async () => {
  const dir = tmpDir();
  const app = await openBlufio({ dataDir: dir, passphrase: 'correct horse', logger: memoryLogger().logger, env: {} });
  const value = `vault-value-${crypto.randomBytes(8).toString('hex')}`;
  await app.vault.set('channels.telegram.bot_token', value);
  const tg = FORMATS['telegram-bot-token']!();
  const s = await app.sessions.create({ channel: 'telegram', metadata: { token: tg, note: `uses ${value}` } });
  const m = await app.messages.append(s.id, { role: 'user', content: `my key is ${value}, and ${tg}`, metadata: { echo: value } });
  assert.equal(m.content, 'my key is [REDACTED:vault], and [REDACTED:telegram-bot-token]');
  assert.deepEqual(m.metadata, { echo: '[REDACTED:vault]' });
  const id = await app.queue.enqueue('out', { text: `send ${value}`, headers: { authorization: `Bearer ${tg}` } });
  const [job] = await app.queue.claim('out');
  assert.deepEqual(job!.payload, { text: 'send [REDACTED:vault]', headers: { authorization: 'Bearer [REDACTED:authorization]' } });
  await app.queue.fail(id, job!.leaseToken, { error: new Error(`upstream refused ${value}`) });
  assert.match((await app.queue.get(id)).lastError ?? '', /upstream refused \[REDACTED:vault\]/);
  assert.deepEqual((await app.sessions.get(s.id)).metadata, { token: '[REDACTED:telegram-bot-token]', note: 'uses [REDACTED:vault]' });
  await app.db.checkpoint();
  const bytes = Buffer.concat(['blufio.db', 'blufio.db-wal'].filter((f) => fs.existsSync(path.join(dir, f))).map((f) => fs.readFileSync(path.join(dir, f))));
  await app.close();
  for (const secret of [value, tg]) assert.equal(bytes.indexOf(secret), -1, `${secret} is in the database bytes`);
});

test('review cases: hostile text stays linear, PEM without END, escapes and bare numbers keep JSON valid', { timeout: 120_000 }, () => {
  const r = new Redactor();
  r.replaceSecrets([['pin', '12345678'], ['hex', '00a1b2c3d4e5'], ['gh', 'xoxb-1234567890']]);
  // Inputs that made the never-half search or the PEM rule quadratic: these must simply finish.
  for (const hostile of ['xoxb-'.repeat(40_000), `${'-----BEGIN PRIVATE KEY-----'.repeat(8_000)}"`, 'eyJ'.repeat(60_000), `${'1'.repeat(100_000)}:`, 'sk-proj-'.repeat(25_000)]) {
    assert.equal(typeof r.redact(hostile), 'string');
    assert.equal(typeof r.redactJson(JSON.stringify({ m: hostile })), 'string');
  }
  // A private key cut off before its END line, in plain text and in JSON; a PGP key block.
  const pem = `-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabc`;
  assert.equal(r.redact(`key: ${pem}`), 'key: [REDACTED:private-key]');
  assert.deepEqual(JSON.parse(r.redactJson(JSON.stringify({ err: `bad ${pem}`, next: 'kept' }))), { err: 'bad [REDACTED:private-key]', next: 'kept' });
  assert.equal(r.redact('-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----'), '[REDACTED:private-key]');
  // Bare numbers: the whole value is a secret (becomes a string); part of a longer number is not.
  assert.equal(r.redactJson('{"n":123456789,"m":12345678}'), '{"n":123456789,"m":"[REDACTED:vault]"}');
  assert.deepEqual(JSON.parse(r.scrubJson('{"pin":12345678,"other":123456789}')), { pin: '[REDACTED:vault]', other: 123456789 });
  // A match starting inside a \uXXXX escape takes the whole escape.
  for (const v of [{ m: '\u0010123456:' + 'A'.repeat(35) }, { m: '\u0000a1b2c3d4e5 tail' }, { m: 'x\n12345678' }]) {
    const out = r.redactJson(JSON.stringify(v));
    assert.doesNotThrow(() => JSON.parse(out), out);
    assert.ok(!out.includes('A'.repeat(35)) && !out.includes('a1b2c3d4e5') && !out.includes('12345678'), out);
  }
  // A vault value that is the start of a longer format token: the whole token goes.
  assert.match(r.redact(`tok xoxb-1234567890-${'a'.repeat(20)} end`), /^tok \[REDACTED:(vault|slack-token)\] end$/);
  // Form-encoded values (URLSearchParams encodes !'() too) and lower-case percent escapes.
  r.setSecret('form', "p@ss(w0rd)!x y");
  assert.equal(r.redact(`a=${new URLSearchParams({ v: "p@ss(w0rd)!x y" }).toString().slice(2)}&b=1`), 'a=[REDACTED:vault]&b=1');
  assert.equal(r.redact(`a=${encodeURIComponent("p@ss(w0rd)!x y").toLowerCase()}`), 'a=[REDACTED:vault]');
  // Prose after Bearer/Basic stays.
  for (const prose of ['basic internationalization matters', 'The bearer 2-factor-token', 'Basic troubleshooting-procedures']) {
    assert.equal(r.redact(prose), prose);
  }
});

test('extra patterns that would break lines or the combined regex are refused', () => {
  for (const [regex, why] of [['"secret"', /double quote/], ['\\b', /empty/], ['(?<v>abc)', /named groups/], ['x*', /empty/]] as const) {
    assert.throws(() => new Redactor([{ name: 'p', regex }]), (e: unknown) => e instanceof AppError && why.test(e.message), regex);
  }
});

test('the vault keeps the redactor current across processes and rotations; a non-pino logger is refused', async () => {
  const dir = tmpDir();
  const a = memoryLogger();
  const appA = await openBlufio({ dataDir: dir, logger: a.logger, passphrase: 'pp one two', env: {} });
  await appA.vault.set('providers.a.api_key', 'first-value-1234');
  const appB = await openBlufio({ dataDir: dir, logger: memoryLogger().logger, passphrase: 'pp one two', env: {} });
  await appB.vault.set('providers.b.api_key', 'from-the-other-process-99');
  await appB.close();
  await appA.vault.get('providers.b.api_key');
  await appA.vault.set('providers.a.api_key', 'second-value-5678');
  appA.log.info('values: from-the-other-process-99 first-value-1234 second-value-5678');
  await appA.close();
  const line = a.lines().find((l) => String(l.msg).startsWith('values:'))!;
  assert.equal(line.msg, 'values: [REDACTED:vault] [REDACTED:vault] [REDACTED:vault]');
  await assert.rejects(
    openBlufio({ dataDir: dir, logger: { info() {}, warn() {}, error() {} } as never, env: {} }),
    (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT',
  );
});

/** The formats that are one unbroken token of base64url characters (no `.`, `:` or space). */
const TOKEN_FORMATS = Object.entries(FORMATS).filter(([rule]) => !['jwt', 'telegram-bot-token', 'discord-bot-token', 'private-key'].includes(rule));

test('encoded data is not a credential: a format matched by chance inside a long base64 run is left alone, keys beside it are not', async () => {
  const digits = (n: number): string => rand('0123456789', n);
  // The longest each format takes, and every generated key: glued into a run one character
  // short of BLOB_RUN they are redacted.
  const keys: [string, string][] = [
    ['anthropic-key', `sk-ant-api03-${rand(B64URL, 512)}`],
    ['openai-key', `sk-proj-${rand(B64URL, 512)}`],
    ...TOKEN_FORMATS.flatMap(([rule, make]) => Array.from({ length: 10 }, (): [string, string] => [rule, make()])),
  ];
  const r = new Redactor();
  for (const [rule, key] of keys) {
    const before = digits(Math.floor((BLOB_RUN - 1 - key.length) / 2));
    // '-' after the key: the AWS rule wants no letter or digit after it.
    const short = `x ${before}${key}-${digits(BLOB_RUN - 2 - key.length - before.length)} y`;
    const out = r.redact(short);
    assert.ok(!out.includes(key) && out.includes('[REDACTED:'), `${rule} in a run of ${BLOB_RUN - 1}: ${out.slice(0, 80)}`);
    // In a run of BLOB_RUN, only the shapes that turn up by chance in base64url are data; a
    // longer prefix never does (sk-proj-, sk-ant-, glpat-, xoxb-, AKIA...): always a key.
    const long = `x ${before}${key}-${digits(BLOB_RUN - 1 - key.length - before.length)} y`;
    if (/^(?:sk-[A-Za-z0-9]{48}$|gh[pousr]_|AIza)/.test(key)) assert.equal(r.redact(long), long, `${rule} in a run of ${BLOB_RUN}`);
    else assert.ok(!r.redact(long).includes(key), `${rule} is a key even in a run of ${BLOB_RUN}`);
    // Beside a blob, not in it: a space, a quote, '=', ':', a newline, a comma.
    for (const [a, b] of [[' ', ' '], ['"', '"'], ['=', '&'], [':', '\n'], [',', ',']]) {
      const text = `${rand(B64URL, 2000)}${a}${key}${b}${rand(B64URL, 2000)}`;
      assert.ok(!r.redact(text).includes(key), `${rule} beside a blob after ${JSON.stringify(a)}`);
    }
  }

  // Base64url data as an API returns it (a Gmail attachment): about one chance match per MB.
  // The shapes that turn up by chance, each with a letter before it (a chance match with none on
  // either side is taken for a key, below). The rest of the blob has no '-', so no other format
  // can turn up in it by chance (Slack's and GitLab's do, about once in 50 MB).
  const planted = [`sk-${rand(ALNUM, 48)}`, `sk-${rand(ALNUM, 20)}T3BlbkFJ${rand(ALNUM, 20)}`, FORMATS['google-api-key']!(), `ghp_${rand(ALNUM, 36)}`, `gho_${rand(ALNUM, 40)}`];
  const filler = (n: number): string => rand(`${ALNUM}_`, n);
  const blob = `${filler(20_000)}Q${planted.join(`${filler(3000)}Q`)}${filler(20_000)}`;
  // A letter before the key: a chance match with none on either side is redacted (below).
  const std = `${crypto.randomBytes(30_000).toString('base64')}Q${FORMATS['google-api-key']!()}/${crypto.randomBytes(30_000).toString('base64')}`;
  // PHP's json_encode writes every '/' of standard base64 as '\/'.
  const php = std.replace(/\//g, '\\/');
  const value = `vault-${rand(B64URL, 24)}`;
  const vaulted = new Redactor([{ name: 'internal-ticket', regex: 'TICKET-[0-9]{8}' }]);
  vaulted.setSecret('k', value);
  for (const red of [r, vaulted]) {
    for (const data of [blob, std]) {
      assert.equal(red.redact(data), data);
      assert.equal(red.redactJson(JSON.stringify({ type: 'base64', data })), JSON.stringify({ type: 'base64', data }));
      assert.equal(red.redact(`data:application/octet-stream;base64,${data}`), `data:application/octet-stream;base64,${data}`);
    }
    assert.equal(red.redact(php), php);
  }
  // What the vault holds, and configured patterns, are still found inside a blob.
  const withValue = `${rand(B64URL, 3000)}${value}${rand(B64URL, 3000)}`;
  assert.ok(!vaulted.redact(withValue).includes(value) && vaulted.redact(withValue).includes('[REDACTED:vault]'));
  assert.ok(vaulted.redact(`${rand(B64URL, 3000)}TICKET-12345678${rand(B64URL, 3000)}`).includes('[REDACTED:internal-ticket]'));

  // Stored as given: message content and metadata come back byte for byte.
  const dir = tmpDir();
  const app = await openBlufio({ dataDir: dir, passphrase: 'correct horse', logger: memoryLogger().logger, env: {} });
  await app.vault.set('k', value);
  const s = await app.sessions.create({ channel: 'mail' });
  const m = await app.messages.append(s.id, { role: 'tool', content: blob, metadata: { attachment: { data: std } } });
  const [back] = await app.messages.list(s.id);
  assert.equal(m.content, blob);
  assert.equal(back!.content, blob);
  assert.deepEqual(back!.metadata, { attachment: { data: std } });
  await app.close();
});

test('encoded data, review cases: secrets glued to a blob, configured patterns inside one, keys set apart in a long run', () => {
  const r = new Redactor();
  // A blob with a chance match, then a multi-part secret glued to its end by '/': the scan must
  // not jump past the blob (it did when the vault was empty).
  const blob = `${rand(B64URL, 600)}Q-sk-${rand(ALNUM, 48)}Q${rand(B64URL, 600)}`;
  const jwt = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.${rand(B64URL, 43)}`;
  const pem = `-----BEGIN PRIVATE KEY-----\n${rand(ALNUM, 64)}\n-----END PRIVATE KEY-----`;
  for (const secret of [jwt, pem, FORMATS['telegram-bot-token']!(), FORMATS['discord-bot-token']!()]) {
    const out = r.redact(`${blob}/${secret} end`);
    assert.ok(!out.includes(secret) && out.startsWith(blob), secret.slice(0, 20));
  }

  // A configured pattern that matches where a built-in one does, inside a blob, is found (the
  // built-in match was exempted and the configured one never tried). Outside blobs the built-in
  // formats still come first: a narrower configured pattern leaves no tail of a key, and what a
  // built-in keeps (the scheme word) stays.
  const wide = new Redactor([{ name: 'any-sk', regex: 'sk-[A-Za-z0-9_-]{30,}' }, { name: 'bearer', regex: 'Bearer [A-Za-z0-9_-]{8,}' }]);
  assert.ok(wide.redact(blob).includes('[REDACTED:any-sk]'));
  const narrow = new Redactor([{ name: 'proj-head', regex: 'sk-proj-[A-Za-z0-9]{4}' }]);
  const key = `sk-proj-${rand(ALNUM, 156)}`;
  assert.equal(narrow.redact(`key ${key} end`), 'key [REDACTED:openai-key] end');
  narrow.setSecret('w', 'prefix-sk-proj-AAAA');
  assert.equal(narrow.redact(`x prefix-sk-proj-AAAA${rand(ALNUM, 150)} y`), 'x [REDACTED:vault] y');
  assert.equal(wide.redact(`Authorization: Bearer ghp_${rand(ALNUM, 36)}`), 'Authorization: Bearer [REDACTED:authorization]');

  // Form encoding writes a space as '+': keys pasted into a chat command, as its webhook posts
  // them, are one run of 1,000+ characters; so are keys joined by '/' in a path.
  const keys = [
    `sk-proj-${rand(B64URL, 156)}`, `sk-ant-api03-${rand(B64URL, 93)}AA`, `ghp_${rand(ALNUM, 36)}`, `glpat-${rand(B64URL, 20)}`,
    `sk_live_${rand(ALNUM, 24)}`, FORMATS['aws-access-key-id']!(), FORMATS['google-api-key']!(),
    `xoxb-123456789012-1234567890123-${rand(ALNUM, 24)}`, `sk-proj-${rand(B64URL, 156)}`, `sk-ant-api03-${rand(B64URL, 93)}AA`,
    `sk-proj-${rand(B64URL, 156)}`, `sk-proj-${rand(B64URL, 156)}`,
  ];
  const command = `/vault-import ${keys.map((k, i) => `key${i} ${k}`).join(' ')}`;
  const body = `token=gIkuvaNzQIHg97ATvDxqgjtO&command=%2Fagent&text=${new URLSearchParams({ t: command }).toString().slice(2)}&user_name=alice`;
  assert.ok(command.length > BLOB_RUN);
  const path = `GET /v1/import/${keys.join('/')}/done HTTP/1.1`;
  // A line break, quote or colon before the list is percent-encoded: %0A's "A" is no part of a blob.
  const escaped = ['\n', '"', '`', ':', '('].map((c) => `text=${new URLSearchParams({ t: `keys${c}${keys.join(' ')}` }).toString().slice(2)}`);
  // Joined by '_' or '-': no letter or digit on either side of each key. (Keys whose alphabet
  // has both, as Anthropic's, joined so, read as one longer token: a documented limit.)
  const alnumKeys = Array.from({ length: 32 }, (_, i) => [`sk-${rand(ALNUM, 48)}`, `ghp_${rand(ALNUM, 36)}`, `sk_live_${rand(ALNUM, 24)}`, FORMATS['aws-access-key-id']!()][i % 4]!);
  const joined = [`KEYS=${alnumKeys.join('_')}`, `KEYS=${alnumKeys.join('-')}`];
  assert.ok(joined[0]!.length > BLOB_RUN);
  for (const text of [body, path, JSON.stringify({ body }), JSON.stringify({ path }).replace(/\//g, '\\/'), ...escaped, ...joined]) {
    const out = r.redact(text);
    assert.deepEqual([...keys, ...alnumKeys].filter((k) => out.includes(k)), [], text.slice(0, 40));
  }
});

test('a JWT is found from its payload and replaced from its header (8 to 2,048 characters), as a match from the header was', () => {
  const r = new Redactor();
  for (const n of [8, 100, 2048]) {
    const jwt = `eyJ${rand(B64URL, n)}.eyJ${rand(B64URL, 60)}.${rand(B64URL, 43)}`;
    for (const [a, b] of [['', ''], ['token=', '&x=1'], ['glued', ' y'], ['"', '"'], ['eyJ.', '.']]) {
      assert.equal(r.redact(`${a}${jwt}${b}`), `${a}[REDACTED:jwt]${b}`, `header ${n} after ${a}`);
    }
    assert.equal(JSON.parse(r.redactJson(JSON.stringify({ t: `Bearer ${jwt}`, id: jwt }))).id, '[REDACTED:jwt]');
  }
  const long = `eyJ${rand(ALNUM, 2049)}.eyJ${rand(ALNUM, 60)}.${rand(ALNUM, 43)}`;
  assert.ok(!r.redact(long).includes('[REDACTED:jwt]'), 'a header longer than the rule takes');
  // A configured pattern that starts at the payload's '.' (where the JWT's match now begins, and
  // wins) still sets the end when it runs further.
  const jwt = `eyJ${rand(B64URL, 30)}.eyJ${rand(B64URL, 60)}.${rand(B64URL, 43)}`;
  const cfg = new Redactor([{ name: 'cfg', regex: '\\.eyJ[A-Za-z0-9_.~-]+' }]);
  assert.equal(cfg.redact(`token ${jwt}~tail-SECRET-9f8e7d end`), 'token [REDACTED:jwt] end');
  assert.deepEqual(JSON.parse(cfg.redactJson(JSON.stringify({ t: `token ${jwt}~tail-SECRET-9f8e7d end` }))), { t: 'token [REDACTED:jwt] end' });
  // A match inside the header (here a vault value) is replaced first; the JWT's replacement then
  // runs from it, and the header before it (a JOSE header: alg, kid, typ) stays.
  const v = new Redactor();
  v.setSecret('k', 'VAULTVALUE-12345');
  const payload = `eyJ${rand(ALNUM, 60)}.${rand(ALNUM, 43)}`;
  assert.equal(v.redact(`x eyJhbGciOiJSUzI1NiJ9VAULTVALUE-12345abc.${payload} y`), 'x eyJhbGciOiJSUzI1NiJ9[REDACTED:vault][REDACTED:jwt] y');
});

/** How many characters every regex execution during `run` matched, together: a measure of work that does not depend on the machine. */
function charsMatched(run: () => void): number {
  const exec = RegExp.prototype.exec;
  let read = 0;
  RegExp.prototype.exec = function (this: RegExp, s: string) {
    const m = exec.call(this, s);
    if (m !== null) read += m[0].length;
    return m;
  };
  try {
    run();
  } finally {
    RegExp.prototype.exec = exec;
  }
  return read;
}

test('a configured open-ended pattern costs linear work: it is not re-run at every position of its own match', () => {
  // Counts the characters every regex execution matched: trying the pattern at each position
  // of a run of n hex characters read about n²/2 of them (20,000: 2e8; 8 MiB: hours).
  const r = new Redactor([{ name: 'hex-secret', regex: '[a-f0-9]{32,}' }]);
  const text = `commit ${'deadbeef'.repeat(2500)} done`;
  let out = '';
  const read = charsMatched(() => (out = r.redact(text)));
  assert.equal(out, 'commit [REDACTED:hex-secret] done');
  assert.ok(read < 10 * text.length, `${read} characters matched for ${text.length}`);
  // Still whole: a configured match that starts inside another secret and runs past it, and one
  // that starts inside a configured match and runs further, extend the replacement.
  assert.equal(r.redact('key sk-proj-0123456789abcdefABCDEFdeadbeefdeadbeefdeadbeefdeadbeef99 x'), 'key [REDACTED:openai-key] x');
  const two = new Redactor([{ name: 'a', regex: 'itk_[a-z0-9]{16}' }, { name: 'b', regex: '[a-z0-9]{8}-tail-[a-z]{4}' }]);
  assert.equal(two.redact('x itk_0123456789abcdef-tail-abcd y'), 'x [REDACTED:a] y');
  const self = new Redactor([{ name: 't', regex: 'tok-[a-z0-9-]{10,20}' }]);
  assert.equal(self.redact('x tok-aaaa-tok-bbbbbbbbbbbbbbbbbbbb y'), 'x [REDACTED:t] y');
});

test('configured patterns: never across JSON structure, never empty however written, and applied to short text', () => {
  // A pattern that matches a quote without writing one (\S, ., [^&]) stops at the end of the
  // string it starts in: the other fields of a log line or a stored document stay.
  const tok = new Redactor([{ name: 'token-param', regex: 'token=\\S+' }]);
  const line = JSON.stringify({ level: 50, url: 'https://h/cb?token=abc', user: 'bob', msg: 'payment failed' });
  assert.deepEqual(JSON.parse(tok.redactJson(line)), { level: 50, url: 'https://h/cb?[REDACTED:token-param]', user: 'bob', msg: 'payment failed' });
  const payload = { callback: 'https://h/cb?token=abc', user: 'bob', amount: 'EUR 12.50', note: 'x \\"y\\" z' };
  assert.deepEqual(JSON.parse(tok.scrubJson(JSON.stringify(payload))), { ...payload, callback: 'https://h/cb?[REDACTED:token-param]' });
  // One that matches the structure itself from the first character covers the whole document:
  // every value and key is replaced, the structure stays (it was left whole before, secrets and all).
  const any = new Redactor([{ name: 'any', regex: '[^&]{4,}' }]);
  const doc = JSON.stringify({ a: 'first value', b: ['second', 12345678], c: { d: 'x' } });
  const all = '{"[REDACTED:any]":"[REDACTED:any]","[REDACTED:any]":["[REDACTED:any]","[REDACTED:any]"],"[REDACTED:any]":{"[REDACTED:any]":"[REDACTED:any]"}}';
  assert.equal(any.scrubJson(doc), all);
  assert.equal(any.redactJson(doc), all);

  for (const regex of ['(?=[0-9]{2})', '(?<=x)', '(?=sk-)', '\\b', '^', '$|abc', '(?:abc)?(?=d)', '(?!x)[a]*']) {
    assert.throws(() => new Redactor([{ name: 'p', regex }]), (e: unknown) => e instanceof AppError && /empty/.test(e.message), regex);
  }
  for (const regex of ['a(?=b)', '[(?=]x', '\\(?=x\\)', '(?<=k=)[0-9]{6}', '\\$[0-9]+']) {
    assert.doesNotThrow(() => new Redactor([{ name: 'p', regex }]), regex);
  }

  // Shorter than the shortest vault value, a configured format is still a secret (a 6-digit code).
  const otp = new Redactor([{ name: 'otp', regex: '\\b[0-9]{6}\\b' }]);
  assert.equal(otp.redact('493817'), '[REDACTED:otp]');
  assert.deepEqual(otp.redactValue({ code: '493817', n: 'x' }), { code: '[REDACTED:otp]', n: 'x' });
  assert.equal(new Redactor().redact('493817'), '493817');
});

/** An app whose config holds `[redaction] extra_patterns = [<patterns>]`, logging to memory. */
async function appWithPatterns(patterns: string) {
  const dir = tmpDir();
  const configPath = path.join(dir, 'blufio.toml');
  fs.writeFileSync(configPath, `[redaction]\nextra_patterns = [${patterns}]\n`);
  const { logger, lines } = memoryLogger();
  return { dir, lines, app: await openBlufio({ configPath, dataDir: dir, logger, env: {} }) };
}

test('text an open-ended configured pattern cannot scan (V8 gives up over MBs) is refused or withheld, never passed on unscanned', async () => {
  const { lines, app } = await appWithPatterns('{ name = "hex", regex = "[a-f0-9]{32,}" }');
  try {
    const hex = 'ab'.repeat(4 * 1024 * 1024); // 8 MiB: one run the pattern matches whole
    assert.throws(() => app.redactor.redact(hex), (e: unknown) => e instanceof AppError && e.code === 'KC_INVALID_INPUT' && /could not be scanned for secrets/.test(e.message) && /\{32,4096\}/.test(e.hint ?? ''));
    const s = await app.sessions.create({});
    await assert.rejects(app.messages.append(s.id, { role: 'user', content: hex }), { code: 'KC_INVALID_INPUT' });
    assert.equal(await app.messages.count(s.id), 0);
    app.log.warn({ body: hex }, 'a huge line');
    app.log.info('the next line is written as usual');
    const out = lines();
    const withheld = out.find((l) => typeof l.msg === 'string' && l.msg.startsWith('[a log line of'));
    assert.ok(withheld !== undefined, 'the line was replaced');
    assert.equal(withheld.level, 40, 'its level kept');
    assert.ok(!JSON.stringify(out).includes('abababababababababababababababababab'), 'nothing of the text written');
    assert.ok(out.some((l) => l.msg === 'the next line is written as usual'));
    // A bounded repetition scans the same text.
    assert.match(new Redactor([{ name: 'hex', regex: '[a-f0-9]{32,4096}' }]).redact(hex).slice(0, 20), /^\[REDACTED:hex\]/);
  } finally {
    await app.close();
  }
});

const R = (name: string): string => `[REDACTED:${name}]`;

/** What a configured pattern replaced in JSON text, as redactJson and scrubJson give it (the same, and still JSON). */
function acrossBoth(r: Redactor, text: string, want: string): void {
  assert.equal(r.redactJson(text), want, text);
  assert.equal(r.scrubJson(text), want, text);
  JSON.parse(want);
}

test('configured patterns across JSON structure: a key and its value are both replaced, the structure kept (the value was left in clear)', () => {
  // The reviewer's case: a pattern over a key and its value. Matched again inside the key alone it
  // no longer matches; it was then dropped, and the password went out in clear.
  const pw = new Redactor([{ name: 'pw-field', regex: 'password\\W{1,4}[A-Za-z0-9]{8,}' }]);
  const cases: [unknown, string][] = [
    [{ password: 'Sup3rSecretXy' }, `{"${R('pw-field')}":"${R('pw-field')}"}`],
    [{ msg: 'login', user: 'bob', password: 'Sup3rSecretXy', n: 1 }, `{"msg":"login","user":"bob","${R('pw-field')}":"${R('pw-field')}","n":1}`],
    // A match within one string keeps its place in it, as before.
    [{ note: 'my password: Sup3rSecretXy ok', password: 'x' }, `{"note":"my ${R('pw-field')} ok","password":"x"}`],
  ];
  for (const [value, want] of cases) acrossBoth(pw, JSON.stringify(value), want);
});

test('configured patterns across JSON structure: in nested objects and arrays, escapes after the match kept', () => {
  const pw = new Redactor([{ name: 'pw-field', regex: 'password\\W{1,4}[A-Za-z0-9]{8,}' }]);
  const cases: [unknown, string][] = [
    [{ outer: { auth: { password: 'Sup3rSecretXy "x" \\ y' } }, list: [{ password: 'An0therSecret1' }, 'k'] }, `{"outer":{"auth":{"${R('pw-field')}":"${R('pw-field')} \\"x\\" \\\\ y"}},"list":[{"${R('pw-field')}":"${R('pw-field')}"},"k"]}`],
  ];
  for (const [value, want] of cases) acrossBoth(pw, JSON.stringify(value), want);
  // A match that starts inside an escape (`\n`) and runs on into the next field: the escape is
  // taken whole. Replaced raw before, it broke the JSON, and scrubJson's value-by-value fallback
  // then stored the secret.
  const nl = new Redactor([{ name: 'nl', regex: 'n\\W{1,6}b\\W{1,4}[A-Za-z0-9]{8,}' }]);
  acrossBoth(nl, JSON.stringify({ a: 'x\n', b: 'Sup3rSecretXy' }), `{"a":"x${R('nl')}","${R('nl')}":"${R('nl')}"}`);
});

test('configured patterns across JSON structure: a match over three fields', () => {
  // Three fields: the part of the first and last strings the match covers, the strings between whole.
  const three = new Redactor([{ name: 'three', regex: 'id\\W+b\\W+ok\\W+c\\W+pin [0-9]{8}' }]);
  const t3 = JSON.stringify({ a: 'x id', b: 'ok', c: 'pin 12345678 end', d: 'kept' });
  acrossBoth(three, t3, `{"a":"x ${R('three')}","${R('three')}":"${R('three')}","${R('three')}":"${R('three')} end","d":"kept"}`);
});

test('configured patterns across JSON structure: a match ending in or inside a number, starting at a quote, through a literal', () => {
  // A match ending in a number, or inside one: the whole number becomes the marker, as a string.
  for (const regex of ['pin\\W{1,4}[0-9]{6,}', 'pin\\W{1,4}[0-9]{4}']) {
    const pin = new Redactor([{ name: 'pin', regex }]);
    const text = '{"pin":12345678,"x":[-1.5e3,true],"y":"z"}';
    acrossBoth(pin, text, `{"${R('pin')}":"${R('pin')}","x":[-1.5e3,true],"y":"z"}`);
  }
  // A match that starts outside any string (at a quote), and one that runs through literals.
  const card = new Redactor([{ name: 'card', regex: '\\W[0-9]{16}\\W' }]);
  acrossBoth(card, JSON.stringify({ card: '4111111111111111', n: 'x' }), `{"card":"${R('card')}","n":"x"}`);
  const lit = new Redactor([{ name: 'lit', regex: 'on\\W+true\\W+k\\W+[a-z]{8,}' }]);
  acrossBoth(lit, '{"on": true, "k": "secretvalue"}', `{"${R('lit')}": "${R('lit')}", "${R('lit')}": "${R('lit')}"}`);
});

test('configured patterns across JSON structure through the app: log lines, message and session metadata, queue payloads', async () => {
  const { dir, lines, app } = await appWithPatterns("{ name = \"pw-field\", regex = 'password\\W{1,4}[A-Za-z0-9]{8,}' }");
  const secret = 'Sup3rSecretXy';
  app.log.info({ user: 'bob', password: secret }, 'login');
  app.log.info({ req: { body: { password: secret } } }, 'nested');
  const s = await app.sessions.create({ channel: 'cli', metadata: { password: secret } });
  const m = await app.messages.append(s.id, { role: 'user', content: 'hi', metadata: { user: 'bob', password: secret, nested: { password: secret } } });
  const id = await app.queue.enqueue('out', { password: secret, n: 1 });
  const [job] = await app.queue.claim('out');
  const read = [m.metadata, job!.payload, (await app.sessions.get(s.id)).metadata, (await app.messages.list(s.id))[0]!.metadata];
  await app.db.checkpoint();
  const bytes = Buffer.concat(['blufio.db', 'blufio.db-wal'].filter((f) => fs.existsSync(path.join(dir, f))).map((f) => fs.readFileSync(path.join(dir, f))));
  await app.close();
  assert.ok(id);
  const logged = lines().filter((l) => l.msg === 'login' || l.msg === 'nested');
  assert.equal(logged.length, 2);
  assert.deepEqual(logged[0]!.user, 'bob');
  assert.ok(!JSON.stringify(lines()).includes(secret), 'the secret is in a log line');
  for (const v of read) assert.ok(!JSON.stringify(v).includes(secret), `read back: ${JSON.stringify(v)}`);
  assert.deepEqual(job!.payload, { [R('pw-field')]: R('pw-field'), n: 1 });
  assert.equal(bytes.indexOf(secret), -1, 'the secret is in the database bytes');
});

test('configured patterns that look ahead are measured on the whole text, and one that runs on only across the quote still extends a match (second and third reviews: the rest of a secret stayed in clear)', () => {
  const cases: [string, string, unknown, string?][] = [
    ['token=[\\w.-]+(?=\\W)', JSON.stringify({ msg: 'call', q: 'token=a-SECRETSECRETSECRET' }), { msg: 'call', q: '[REDACTED:p]' }],
    ['sess_[A-Za-z0-9]+(?!$)', JSON.stringify({ m: 'sess_ABCDEFGHIJ' }), { m: '[REDACTED:p]' }],
    // Extending a built-in format's match, and a vault value's.
    ['sk-[^\\s,]+(?=\\x22)', JSON.stringify({ m: `sk-proj-${'A'.repeat(30)}.SECRETTAIL` }), { m: '[REDACTED:openai-key]' }],
    ['tok=[\\w.-]+(?=\\W)', JSON.stringify({ m: 'VAULTsecret1tok=ab-cdSECRET' }), { m: '[REDACTED:vault]' }, 'VAULTsecret1tok'],
    // A repeat that matches the quote too, cut back to the string: the lookahead at its end
    // sees the quote (".BCDEF" stayed in clear before this change as well).
    ['secret\\S+(?=\\W)', JSON.stringify({ m: 'secret_a.BCDEF', n: 'x secret_b.C y' }), { m: '[REDACTED:p]', n: 'x [REDACTED:p] y' }],
    // Third review: the quote seen by a lookahead that reads up to it must not make a short
    // alternative win; a pattern matching only across the quote still extends a vault value.
    ['secret\\w+(?=[^\\x22]*\\x22$)|secret\\S+', JSON.stringify({ a: 'secret_a.BCDEF', b: 1 }), { a: '[REDACTED:p]', b: 1 }],
    ['secret1[^&]+&', JSON.stringify({ a: 'VAULTsecret1-TAIL', b: 'x&y' }), { a: '[REDACTED:vault]', b: 'x&y' }, 'VAULTsecret1'],
    // One that needs the quote and reads on into the next value is replaced through it (as before).
    ['key[=:].{3,}(?=\\x22)', JSON.stringify({ 'key=a,b': 'tok=ab-cd.ef' }), { '[REDACTED:p]': '[REDACTED:p]' }],
    // Fourth review: one whose start an earlier match of the same pattern swallowed.
    ['secret1[\\s\\S]{3,8}', '{"k":"ghp_secret1secret1secret1secret1secret1z,"}', { k: '[REDACTED:github-token]' }],
  ];
  for (const [regex, text, want, vault] of cases) {
    const r = new Redactor([{ name: 'p', regex }]);
    if (vault !== undefined) r.setSecret('v', vault);
    assert.deepEqual(JSON.parse(r.redactJson(text)), want, regex);
    assert.deepEqual(JSON.parse(r.scrubJson(text)), want, regex);
  }
});

test('configured patterns with unbounded repeats cost linear work in JSON text (each match read to the end of the line was quadratic)', () => {
  // Searched greedily over the whole text, `secret.*` or `token=\S+` ran to the end of the line
  // at each of its matches before being cut back to its string: 700 KB of JSON took minutes.
  const many = (make: (i: number) => unknown): string => JSON.stringify(Array.from({ length: 1500 }, (_, i) => make(i)));
  const cases: [string, string, (out: unknown) => void][] = [
    ['token=\\S+', many((i) => ({ url: `https://h/cb?token=abc${i}`, n: 'x'.repeat(40) })), (o) => assert.deepEqual((o as { url: string }[])[7], { url: 'https://h/cb?[REDACTED:p]', n: 'x'.repeat(40) })],
    ['token=\\S+', JSON.stringify({ m: 'token=abc,'.repeat(10000), after: 'kept' }), (o) => assert.deepEqual(o, { m: '[REDACTED:p]', after: 'kept' })],
    ['secret.*', many((i) => `my secret ${i} here`), (o) => assert.equal((o as string[])[3], 'my [REDACTED:p]')],
    ['password\\W{1,4}[A-Za-z0-9]{8,}', many((i) => ({ password: `Sup3rSecretXy${i}`, n: 'kept' })), (o) => assert.deepEqual((o as unknown[])[5], { '[REDACTED:p]': '[REDACTED:p]', n: 'kept' })],
  ];
  for (const [regex, text, check] of cases) {
    const r = new Redactor([{ name: 'p', regex }]);
    for (const f of ['redactJson', 'scrubJson'] as const) {
      let out = '';
      const read = charsMatched(() => (out = r[f](text)));
      check(JSON.parse(out));
      assert.ok(read < 10 * text.length, `${regex} ${f}: ${read} characters matched for ${text.length}`);
    }
  }
});
