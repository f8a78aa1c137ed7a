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

export function seal(key: Buffer, plaintext: Uint8Array, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG });
  cipher.setAAD(Buffer.concat([Buffer.of(VERSION), aad]));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, body, cipher.getAuthTag()]);
}

/** The plaintext, or undefined when the blob does not open with this key and this associated data. */
export function open(key: Buffer, blob: Uint8Array, aad: Buffer): Buffer | undefined {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (b.length < 1 + NONCE + TAG || b[0] !== VERSION) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, b.subarray(1, 1 + NONCE), { authTagLength: TAG });
    decipher.setAAD(Buffer.concat([Buffer.of(VERSION), aad]));
    decipher.setAuthTag(b.subarray(b.length - TAG));
    return Buffer.concat([decipher.update(b.subarray(1 + NONCE, b.length - TAG)), decipher.final()]);
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
