import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AppError, ErrorCode } from '../errors/index.js';
import type { KdfParams } from './kdf.js';

/**
 * The one sealed format, for entries and for the wrapped master key:
 *   version (1 byte, 0x01) | nonce (12 random bytes) | AES-256-GCM ciphertext | tag (16 bytes)
 * The version byte is also part of the associated data, so it cannot be changed either.
 */
const VERSION = 0x01;
const NONCE = 12;
const TAG = 16;

/**
 * Returns the sealed blob in a buffer of its own (not a slice of Node's shared pool), so that
 * handing it to the writer thread copies only these bytes.
 */
export function seal(key: Buffer, plaintext: Uint8Array, aad: Buffer): Uint8Array {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG });
  cipher.setAAD(Buffer.concat([Buffer.of(VERSION), aad]));
  const body = cipher.update(plaintext);
  cipher.final(); // GCM adds nothing here; the tag comes next
  const out = new Uint8Array(1 + NONCE + body.length + TAG);
  out[0] = VERSION;
  out.set(nonce, 1);
  out.set(body, 1 + NONCE);
  out.set(cipher.getAuthTag(), 1 + NONCE + body.length);
  return out;
}

/** A buffer for secret bytes that is never a slice of Node's shared pool (whose other users may be copied anywhere). */
export function privateBytes(text: string): Buffer {
  const b = Buffer.alloc(Buffer.byteLength(text, 'utf8'));
  b.write(text, 'utf8');
  return b;
}

/** The plaintext, or undefined when the blob does not open with this key and this associated data. */
export function open(key: Buffer, blob: Uint8Array, aad: Buffer): Buffer | undefined {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (b.length < 1 + NONCE + TAG || b[0] !== VERSION) return undefined;
  return gcmOpen(key, b.subarray(1, 1 + NONCE), Buffer.concat([Buffer.of(VERSION), aad]), b.subarray(1 + NONCE));
}

/**
 * AES-256-GCM decryption of `sealed` (ciphertext, then its 16-byte tag): the plaintext, or
 * undefined when the tag does not check. update() gives the plaintext in a buffer of its own
 * (never a view of `sealed`: the object reader reuses the buffer `sealed` lies in);
 * final() only checks the tag. On a failed check the unauthenticated bytes are wiped, never
 * returned or left behind.
 */
export function gcmOpen(key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < TAG) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    const plain = decipher.update(sealed.subarray(0, sealed.length - TAG));
    try {
      decipher.final();
    } catch {
      plain.fill(0);
      return undefined;
    }
    return plain;
  } catch {
    return undefined;
  }
}

function lengthPrefixed(...parts: Uint8Array[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(p.length);
    out.push(len, Buffer.from(p));
  }
  return Buffer.concat(out);
}

/** An entry is bound to its name and to this vault: moved to another name or vault, it does not open. */
export function entryAad(vaultId: Uint8Array, name: string): Buffer {
  return lengthPrefixed(Buffer.from('blufio/vault/entry/v1'), vaultId, Buffer.from(name, 'utf8'));
}

/** The wrapped key is bound to the vault and to the KDF parameters and salt stored beside it. */
export function wrapAad(vaultId: Uint8Array, p: KdfParams, salt: Uint8Array): Buffer {
  const params = Buffer.alloc(12);
  params.writeUInt32BE(p.memoryKib, 0);
  params.writeUInt32BE(p.iterations, 4);
  params.writeUInt32BE(p.parallelism, 8);
  return lengthPrefixed(Buffer.from('blufio/vault/wrap/v1'), vaultId, params, salt);
}

export function tampered(what: string): AppError {
  return new AppError(ErrorCode.VAULT_TAMPERED, `${what} fails authentication: it was changed, moved or damaged`, {
    hint: 'set it again with blufio config set-secret, or restore the database from a backup',
  });
}
