import { createHash } from 'node:crypto';
import { invalidInput } from '../errors/index.js';
import { firedRules } from '../redact/index.js';
import { refsIn } from './objects/layout.js';

/**
 * What the storage layer runs over text before it is written: message content, metadata,
 * queue payloads and error text. The app passes the redactor; alone, storage stores as given.
 */
export interface Scrubber {
  /** Plain text (message content, an error message). */
  text(s: string): string;
  /** JSON text; must stay valid JSON. */
  json(s: string): string;
}

export const NO_SCRUB: Scrubber = { text: (s) => s, json: (s) => s };

/**
 * An identifier (a session's channel or user id, a queue's name) is stored as given or not at
 * all: redacted it would no longer identify anything (two names holding two different secrets
 * would become the same name), so one that holds a secret is refused. The message names the
 * rules that fired, never the value. (Idempotency keys: see opaqueKey.)
 */
export function checkNoSecret(scrub: Scrubber, value: string, field: string): string {
  const scrubbed = scrub.text(value);
  if (scrubbed === value) return value;
  throw invalidInput(
    `${field} holds what looks like a secret (${firedRules(scrubbed).join(', ') || 'redacted'}); nothing was stored`,
    `identifiers are stored as given: use a ${field} that is not a credential, and keep the secret in the vault`,
  );
}

/**
 * JSON that is stored (metadata, a payload), scrubbed, with every object reference it held
 * still whole. The links that keep an object from gc are read out of the stored text, so a
 * reference the redactor altered (a vault value, or a format, that happens to fall inside one)
 * would leave its object unreferenced, and gc would delete it. Such a text is refused instead;
 * the message names neither the reference nor the value (the one could hold the other).
 */
export function scrubJson(scrub: Scrubber, text: string, field: string): string {
  const out = scrub.json(text);
  if (out === text || !text.includes('"obj_')) return out;
  // As a reader will see it: keys that redaction made equal (two tokens as keys) are one key
  // once parsed, and the references under all but the last are gone from what is read back.
  const kept = refsIn(JSON.stringify(JSON.parse(out)));
  for (const ref of refsIn(text)) {
    if (kept.has(ref)) continue;
    throw invalidInput(
      `${field} holds an object reference that redaction would alter (${firedRules(out).join(', ') || 'redacted'}); nothing was stored`,
      'put the object again (a new put gets a new reference) and refer to that one, or take the value that matches out of the vault',
    );
  }
  return out;
}

/**
 * An idempotency key is opaque: one shaped like a token (`<unix time>:<uuid>` has a Telegram
 * bot token's shape; formats cannot tell look-alikes from keys) is stored as its SHA-256, which
 * deduplicates exactly as the key would and reveals nothing of a real token (formats are long
 * random strings). One that holds a vault value is refused: a password can be low in entropy,
 * and its hash could be guessed.
 */
export function opaqueKey(scrub: Scrubber, key: string): string {
  const scrubbed = scrub.text(key);
  if (scrubbed === key) return key;
  if (firedRules(scrubbed).includes('vault')) checkNoSecret(scrub, key, 'idempotencyKey');
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}
