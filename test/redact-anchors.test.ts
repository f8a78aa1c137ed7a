/**
 * The redactor skips text where no rule can start (anchors.ts) and where no vault value can be
 * (grams.ts). Both are shortcuts that must never change a result: every output here is
 * compared with a redactor that scans every position (one with a configured extra rule, which
 * turns the anchors off), on texts full of secrets, their fragments and their anchors.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Redactor, secretForms } from '../src/redact/index.js';
import { GramFilter } from '../src/redact/grams.js';
import pino from 'pino';
import { createLogger, pinoPrefix, withRedaction } from '../src/log/index.js';
import { tmpDir } from './helpers/index.js';
import { ALNUM, FORMATS, rand } from './helpers/secrets.js';

const ROUNDS = Number(process.env.BLUFIO_TEST_FUZZ_ROUNDS ?? 10_000);
const pick = <T>(xs: readonly T[]): T => xs[crypto.randomInt(xs.length)]!;

/** Pieces that look like the start of a secret, or sit where an anchor is looked for. */
const LOOKALIKES = [
  'sk-', 'sk_', 'rk_', 'gl', 'glpat-', 'glagent-', 'xox', 'xoxb-', 'xapp-', 'github_', 'gho_', 'whsec_', 'A', 'AK', 'AKIA', 'AIza',
  'ey', 'eyJ', '.eyJ', '.', '..', '@', '://', ':\\/\\/', '\\', '\\"', '%3A%2F%2F', '%3a%2f%2f', '%3A', '%40', '%2F', 'Authorization: ', '"authorization":"', ':', '1:', '123456:', '1234567890123:', '12:30', 'Bearer ', 'bearer  ', 'BASIC ', 'Basic',
  '-----BEGIN ', '-----BEGIN PRIVATE KEY-----', 'hooks.slack.com/services/', '-', '_', '\\n', '\\u0041', '"', 'M', 'N', 'O',
];

/** FORMATS, and the shapes it has no generator for: URL userinfo, Authorization values, 7-character Discord middles. */
const MORE: (() => string)[] = [
  ...Object.values(FORMATS),
  () => `${pick(['https', 'postgres', 'x'])}://${rand(ALNUM, crypto.randomInt(12))}:${rand(`${ALNUM}%!`, 1 + crypto.randomInt(20))}@${pick(['db', 'example.com', ''])}`,
  // The same, JSON-escaped with `\/` and a `\"` or `\\` in the password, and percent-encoded (QA r11).
  () => `${pick(['https', 'x'])}:\\/\\/${rand(ALNUM, crypto.randomInt(12))}:${rand(ALNUM, crypto.randomInt(8))}${pick(['\\"', '\\\\', ''])}${rand(ALNUM, 1 + crypto.randomInt(8))}@${pick(['db', 'example.com', ''])}`,
  () => `${pick(['https', 'x'])}${pick(['%3A%2F%2F', '%3a%2f%2f'])}${rand(ALNUM, crypto.randomInt(12))}${pick(['%3A', '%3a'])}${rand(`${ALNUM}%!`, 1 + crypto.randomInt(20))}%40${pick(['db', 'example.com%2F', ''])}`,
  () => `${pick(['Authorization: ', 'authorization=', '"Authorization":"', 'AUTHORIZATION:'])}${pick(['Bearer', 'Basic'])} ${rand(ALNUM, 1 + crypto.randomInt(20))}`,
  () => `${pick(['Bearer', 'bearer', 'BEARER', 'Basic', 'basic', 'BASIC'])}${' '.repeat(1 + crypto.randomInt(2))}${rand(`${ALNUM}+/=._~-`, 10 + crypto.randomInt(40))}`,
  () => `${pick(['M', 'N', 'O'])}${rand(ALNUM, 23 + crypto.randomInt(5))}.${rand(ALNUM, 6 + crypto.randomInt(2))}.${rand(ALNUM, 27 + crypto.randomInt(14))}`,
];

function piece(): string {
  switch (crypto.randomInt(6)) {
    case 0:
      return pick(MORE)();
    case 1: {
      const s = pick(MORE)(); // a secret cut short or started late: a near miss
      const a = crypto.randomInt(s.length);
      return crypto.randomInt(2) === 0 ? s.slice(0, a) : s.slice(a);
    }
    case 2:
      return pick(LOOKALIKES);
    case 3:
      return rand(`${ALNUM}_-.:`, 1 + crypto.randomInt(40));
    case 4:
      return pick([' ', '\n', '"', ',', '/', '=', '&', '日本', '🦊']);
    default:
      return rand('0123456789', 1 + crypto.randomInt(14));
  }
}

const text = (): string => Array.from({ length: 1 + crypto.randomInt(12) }, piece).join('');

test(`anchors: ${ROUNDS} texts redact exactly as a scan of every position does`, () => {
  const vault: [string, string][] = Array.from({ length: 6 }, (_, i) => [`v${i}`, rand(`${ALNUM}:.-`, 8 + crypto.randomInt(30))]);
  const fast = new Redactor();
  const full = new Redactor([{ name: 'never', regex: '\\u0000never\\u0000' }]);
  for (const r of [fast, full]) r.replaceSecrets(vault);
  let redacted = 0;
  for (let i = 0; i < ROUNDS; i++) {
    let t = text();
    if (i % 4 === 0) t = t.replace(/^/, pick(vault)[1]);
    const expected = full.redact(t);
    assert.equal(fast.redact(t), expected, `plain text: ${JSON.stringify(t)}`);
    const json = JSON.stringify({ level: 30, msg: t, n: i });
    assert.equal(fast.redactJson(json), full.redactJson(json), `JSON text: ${json}`);
    if (expected !== t) redacted++;
  }
  assert.ok(redacted > ROUNDS / 3, `the texts hold secrets: ${redacted} of ${ROUNDS} redacted`);
});

test('anchors: every rule is found alone, at the very start and the very end of the text', () => {
  const r = new Redactor();
  for (const [name, make] of Object.entries(FORMATS)) {
    for (let k = 0; k < 20; k++) {
      const s = make();
      for (const t of [s, `x${s}`, `${s} `, `"${s}"`]) {
        assert.ok(r.redact(t).includes(`[REDACTED:${name}]`), `${name}: ${t}`);
        assert.ok(!r.redact(t).includes(s), `${name} leaked: ${t}`);
      }
    }
  }
});

test('vault filter: no form is ever missed, and the hit is never past where it starts', () => {
  for (let round = 0; round < 300; round++) {
    const forms = Array.from({ length: 1 + crypto.randomInt(8) }, () =>
      rand(pick([ALNUM, `${ALNUM}%+/=`, 'äöü日本🦊ab', '\u0100\u0141A:']), 8 + crypto.randomInt(60)),
    ).flatMap((v) => secretForms(v).forms);
    const filter = new GramFilter(forms);
    const form = pick(forms);
    const before = rand(`${ALNUM} `, crypto.randomInt(200));
    const t = `${before}${form}${rand(ALNUM, crypto.randomInt(50))}`;
    const hit = filter.firstHit(t);
    assert.notEqual(hit, -1, `missed ${JSON.stringify(form)} in ${JSON.stringify(t)}`);
    assert.ok(hit - (form.length - 4) <= before.length, `hit ${hit} is past the start of the form at ${before.length}`);
    const from = crypto.randomInt(before.length + 1);
    const later = filter.firstHit(t, from);
    assert.ok(later !== -1 && later - (form.length - 4) <= before.length, `from ${from}: hit ${later}`);
  }
  // The shortest form decides the stride: at every offset it is still found.
  for (let round = 0; round < 20; round++) {
    const forms = [rand(ALNUM, 8 + crypto.randomInt(40)), rand(ALNUM, 60)];
    const filter = new GramFilter(forms);
    for (let at = 0; at < 70; at++) {
      const t = `${rand(' .', at)}${forms[0]} `;
      const hit = filter.firstHit(t);
      assert.ok(hit !== -1 && hit - (forms[0]!.length - 4) <= at, `offset ${at}: hit ${hit}`);
    }
  }
  // Text that shares no 4 characters with any form: no hit.
  assert.equal(new GramFilter(['abcdefghij']).firstHit('the quick brown fox jumps over the lazy dog'), -1);
});

test("logger: pino's own prefix is skipped, nothing after it", () => {
  const line = (o: object) => JSON.stringify(o);
  assert.equal(pinoPrefix(line({ level: 30, time: '2026-11-23T14:05:00.000Z', pid: 42, msg: 'x' })), 45);
  assert.equal(pinoPrefix(line({ level: 30, time: '2026-11-23T14:05:00.000Z', msg: 'x' })), 45);
  assert.equal(pinoPrefix(line({ level: 100, time: '2026-11-23T14:05:00.000Z' })), 0);
  assert.equal(pinoPrefix(line({ msg: 'sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxx', time: 1 })), 0);
  assert.equal(pinoPrefix('short'), 0);
  // Through the real logger: secrets in the first field after the prefix, and in the binding.
  const redactor = new Redactor();
  redactor.setSecret('s', 'hunter2hunter2');
  const file = path.join(tmpDir(), 'log.jsonl');
  const fd = fs.openSync(file, 'w');
  const secret = FORMATS['telegram-bot-token']!();
  createLogger({ fd, redactor }).child({ token: 'hunter2hunter2' }).info({ a: secret }, 'm');
  fs.closeSync(fd);
  const written = fs.readFileSync(file, 'utf8');
  assert.ok(!written.includes(secret) && !written.includes('hunter2hunter2'), written);
  assert.match(written, /^\{"level":30,"time":"[^"]+","pid":\d+,"token":"\[REDACTED:vault\]","a":"\[REDACTED:telegram-bot-token\]"/);
  // A logger wrapped by withRedaction has no base: its first key is the caller's, a numeric
  // vault value under "pid" included.
  redactor.setSecret('pin', '1234567890');
  const file2 = path.join(tmpDir(), 'log.jsonl');
  const fd2 = fs.openSync(file2, 'w');
  withRedaction(pino({ base: null }, pino.destination({ fd: fd2, sync: true })), redactor).info({ pid: 1234567890 }, 'hi');
  withRedaction(pino({}, pino.destination({ fd: fd2, sync: true })), redactor).child({ pid: 1234567890 }).info('hi');
  fs.closeSync(fd2);
  const lines = fs.readFileSync(file2, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2);
  for (const l of lines) assert.match(l, /"pid":"\[REDACTED:vault\]"/, l);
});

test('redactJson: a from that is not a usable number means from the start', () => {
  const r = new Redactor();
  r.setSecret('pw', 'hunter2hunter2');
  for (const from of [Number.NaN, -5, Infinity, -Infinity, 3.7]) {
    assert.equal(r.redactJson('{"msg":"pw hunter2hunter2"}', from), '{"msg":"pw [REDACTED:vault]"}', String(from));
  }
  // A lone surrogate in a vault value (no URL encoding exists for it) is still matched raw.
  r.setSecret('odd', 'abc\ud800defghij');
  assert.equal(r.redact('x abc\ud800defghij y'), 'x [REDACTED:vault] y');
});

test('anchors: hostile lines take linear time (a child process with a 60 s budget)', () => {
  // A synchronous scan cannot be interrupted by a test timeout, so it runs in a child that is
  // killed if it takes a minute; linear, all of this takes well under a second. The quadratic
  // version of the '@' anchor (a search back from every '@') took about 3 minutes here.
  const redactor = new URL('../src/redact/index.js', import.meta.url).href;
  const script = `
    const { Redactor } = await import(${JSON.stringify(redactor)});
    const r = new Redactor();
    r.setSecret('v', 'abcdefgh12345678');
    // A long value that repeats itself: following it from every position inside a match of it
    // was quadratic (a 64 KiB value in 1 MB of text: about 100 s).
    r.setSecret('rep', 'ab'.repeat(32768));
    // A vault value that starts like a private key, repeated inside one key's span: the formats
    // tried where a vault value starts must not run the key rule at each (quadratic).
    r.setSecret('pemlike', '-----BEGIN PRIVATE KEY-----QUJD');
    const emails = Array.from({ length: 20000 }, (_, i) => 'user' + i + '@example.com').join(', ');
    for (const t of ['@'.repeat(400000), 'a@'.repeat(400000), emails, 'https://' + emails, '1234567:'.repeat(50000),
      '.eyJ'.repeat(50000), 'gl-'.repeat(100000), 'B'.repeat(200000), 'a.bcdefgh.'.repeat(30000), '_'.repeat(300000), 'abcd'.repeat(100000),
      // One private key whose body holds 70,000 more BEGIN lines (2 MB): the never-half search
      // tried the key rule at each of them, each reading to the end (about 90 s here).
      '-----BEGIN PRIVATE KEY-----'.repeat(70000), 'ab'.repeat(500000), '-----BEGIN PRIVATE KEY-----QUJD'.repeat(60000), 'Bearer ' + 'A1b2'.repeat(250000), ('://' + 'a:'.repeat(100) + '@').repeat(5000),
      // Many scheme marks of one kind before one '@': a search for the other kind from every
      // mark read to the end each time (review, QA r11: 40,000 took 12.6 s, 80,000 45 s).
      '://'.repeat(80000) + '@', 'see https://example.com/page '.repeat(80000) + 'me@example.com', 'https:\\\\/\\\\/x '.repeat(80000) + 'me@x',
      '%3A%2F%2F'.repeat(80000) + '%40', 'Authorization: Bearer '.repeat(100000)]) {
      r.redact(t);
      r.redactJson(JSON.stringify({ m: t }));
    }
    process.stdout.write('done');`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000, encoding: 'utf8' });
  assert.equal(child.stdout, 'done', `killed after 60 s or failed: ${child.signal ?? ''} ${child.stderr}`);
});

test('a JWT attempt is not made at every "eyJ": 8 MB of them after a match is scanned at once (a child with a 60 s budget)', () => {
  // The rule began at "eyJ" and read up to 2,048 characters for the header before failing, at
  // every "eyJ" once a scan had started (any match or anchor before it, or configured
  // patterns): about 2.5 s a MB, so an 8 MiB message (the default limit) held the event loop
  // 20 s. Now the match begins at ".eyJ" and looks back: these take well under a second.
  const redactor = new URL('../src/redact/index.js', import.meta.url).href;
  const script = `
    const { Redactor } = await import(${JSON.stringify(redactor)});
    const storm = 'eyJ'.repeat(2_800_000);
    for (const r of [new Redactor(), new Redactor([{ name: 'ticket', regex: 'TICKET-[0-9]{8}' }])]) {
      for (const t of ['AK ' + storm, 'sk-' + 'a'.repeat(48) + ' ' + storm, ('eyJ'.repeat(700) + '.').repeat(4000)]) {
        r.redact(t);
        r.redactJson(JSON.stringify({ m: t }));
      }
    }
    process.stdout.write('done');`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000, encoding: 'utf8' });
  assert.equal(child.stdout, 'done', `killed after 60 s or failed: ${child.signal ?? ''} ${child.stderr}`);
});
