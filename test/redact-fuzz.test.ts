/**
 * Fuzz: 10,000 random nested log objects and 10,000 message bodies (plus queue payloads) with
 * vault values and format secrets embedded at random places and in the forms they take in the
 * wild; then the log output and the raw database bytes are searched for every one of them.
 * BLUFIO_TEST_FUZZ_ROUNDS changes the count.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { openBlufio } from '../src/index.js';
import { tmpDir } from './helpers/index.js';
import { memoryLogger } from './helpers/logger.js';
import { ALNUM, FORMATS, rand } from './helpers/secrets.js';

const ROUNDS = Number(process.env.BLUFIO_TEST_FUZZ_ROUNDS ?? 10_000);
const pick = <T>(xs: readonly T[]): T => xs[crypto.randomInt(xs.length)]!;
const WORDS = ['the', 'agent', 'called', 'tool', 'result', 'ok', 'user', 'said', 'hello', 'error', 'retry', 'déjà', 'vu', '日本', '🦊', 'x=1', 'a/b', '"q"', "it's", 'tab\there', 'line\nbreak'];
const SEPARATORS = [' ', '\n', '"', "'", '(', ')', ',', ';', '=', '&', '<', '>', '[', ']', '{', '}', '\t'];

/** Vault values of every shape: ASCII punctuation, quotes, backslashes, spaces, Unicode. */
function vaultValue(i: number): string {
  const alphabets = [
    `${ALNUM}`,
    `${ALNUM}!#$%&()*+,-./:;<=>?@[]^_{|}~`,
    `${ALNUM}"\\' \t`,
    'äöüßéèêçñ日本語中文한국어🦊🔑αβγδ',
    `${ALNUM}\u2028\u2029\u0000\u001f\u007f`,
  ];
  return rand(alphabets[i % alphabets.length]!, 8 + crypto.randomInt(60));
}

/** Every form a secret must not appear in (shorter than 8 characters is not matched, so not checked). */
function leakForms(secret: string, vault: boolean): string[] {
  const forms = new Set([secret, JSON.stringify(secret).slice(1, -1)]);
  if (vault) {
    forms.add(encodeURIComponent(secret));
    forms.add(Buffer.from(secret).toString('base64'));
  }
  return [...forms].filter((f) => f.length >= 8);
}

test(`fuzz: ${ROUNDS} log objects and ${ROUNDS} message bodies leak no secret to the log or the database`, async () => {
  const dir = tmpDir();
  const { logger, lines } = memoryLogger('info');
  const app = await openBlufio({ dataDir: dir, passphrase: 'fuzz passphrase', logger, env: {} });
  const vault = Array.from({ length: 40 }, (_, i) => vaultValue(i));
  for (const [i, v] of vault.entries()) await app.vault.set(`fuzz.secret_${i}`, v);
  const formats: string[] = [];
  for (const make of Object.values(FORMATS)) for (let i = 0; i < 8; i++) formats.push(make());

  /** A secret in one of its forms; format secrets stand between separators as they do in text. */
  const embedded = (): string => {
    if (crypto.randomInt(2) === 0) {
      const v = pick(vault);
      return pick([v, v, encodeURIComponent(v), Buffer.from(v).toString('base64')]);
    }
    return `${pick(SEPARATORS)}${pick(formats)}${pick(SEPARATORS)}`;
  };
  const sentence = (): string => {
    const parts: string[] = [];
    const n = 1 + crypto.randomInt(12);
    for (let i = 0; i < n; i++) parts.push(crypto.randomInt(4) === 0 ? embedded() : pick(WORDS));
    return parts.join(pick([' ', '', '\n']));
  };
  const nested = (depth: number): unknown => {
    const r = crypto.randomInt(depth > 3 ? 3 : 6);
    if (r === 0) return sentence();
    if (r === 1) return crypto.randomInt(1e9);
    if (r === 2) return crypto.randomInt(2) === 0 ? null : true;
    if (r === 3) return Array.from({ length: crypto.randomInt(4) }, () => nested(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = crypto.randomInt(5); i > 0; i--) o[crypto.randomInt(8) === 0 ? embedded() : pick(WORDS)] = nested(depth + 1);
    return o;
  };

  const child = app.log.child({ component: 'fuzz', session: embedded() });
  for (let i = 0; i < ROUNDS; i++) {
    switch (i % 4) {
      case 0:
        app.log.info(nested(0) as object, sentence());
        break;
      case 1:
        child.warn({ payload: nested(0), list: [sentence(), nested(1)] }, sentence());
        break;
      case 2:
        app.log.error(Object.assign(new Error(sentence()), { details: nested(1) }), sentence());
        break;
      default:
        (child.info as (...a: unknown[]) => void)(`${sentence()} %s and %j`, sentence(), nested(1));
    }
  }

  const session = await app.sessions.create({ channel: 'fuzz', metadata: { seed: nested(1) } as never });
  for (let i = 0; i < ROUNDS; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, ROUNDS - i) }, () =>
        app.messages.append(session.id, { role: 'user', content: sentence() || 'x', metadata: { n: nested(0), s: sentence() } }),
      ),
    );
  }
  const ids = await Promise.all(Array.from({ length: Math.min(1000, ROUNDS) }, () => app.queue.enqueue('fuzz', nested(0))));
  const claimed = await app.queue.claim('fuzz', { limit: 100 });
  for (const job of claimed) await app.queue.fail(job.id, job.leaseToken, { error: new Error(sentence()), retryable: false });
  assert.equal(ids.length, Math.min(1000, ROUNDS));
  await app.close();

  const logText = lines().map((l) => JSON.stringify(l)).join('\n');
  const db = Buffer.concat(['blufio.db', 'blufio.db-wal'].filter((f) => fs.existsSync(path.join(dir, f))).map((f) => fs.readFileSync(path.join(dir, f))));
  const leaks: string[] = [];
  for (const [secrets, isVault] of [[vault, true], [formats, false]] as const) {
    for (const s of secrets) {
      for (const form of leakForms(s, isVault)) {
        if (logText.includes(form)) leaks.push(`log: ${JSON.stringify(form)}`);
        if (db.includes(Buffer.from(form, 'utf8'))) leaks.push(`db: ${JSON.stringify(form)}`);
      }
    }
  }
  assert.deepEqual(leaks.slice(0, 20), [], `${leaks.length} leaks`);
  assert.ok(lines().length >= ROUNDS);
  assert.ok(logText.includes('[REDACTED:vault]') && /\[REDACTED:[a-z-]+-(key|token)\]/.test(logText));
});
