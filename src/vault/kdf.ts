import { hashRaw } from '@node-rs/argon2';
import { AppError, ErrorCode } from '../errors/index.js';

/**
 * Argon2id through @node-rs/argon2: the fastest of the three implementations measured here
 * (`npm run bench -- vault`), prebuilt for each platform through the npm registry, and run on
 * libuv's thread pool so a derivation never blocks the event loop.
 */
export interface KdfParams {
  memoryKib: number;
  iterations: number;
  parallelism: number;
}

/**
 * RFC 9106's second recommendation, m=64 MiB, t=3, p=4 (OWASP's minimum is m=19 MiB, t=2): 70 ms
 * here with @node-rs/argon2 (115 ms with argon2, 251 ms with hash-wasm; `npm run bench -- vault`),
 * so a Raspberry Pi still unlocks in well under a second, once per start. More memory would cost
 * a small machine more than it gains; the parameters are stored per vault, so they can grow.
 */
export const DEFAULT_KDF: KdfParams = { memoryKib: 64 * 1024, iterations: 3, parallelism: 4 };

/**
 * Parameters read back from a database are held to these bounds: below them a forged row could
 * make the passphrase cheap to guess, above them it could make an unlock exhaust memory or time.
 * Blufio writes the defaults only; the upper bounds are four times them (a forged 1 GiB, 64-pass
 * record took two minutes to say "wrong passphrase" here, and would not fit a small Raspberry Pi).
 * A later version that raises the defaults raises these with them.
 */
export const KDF_BOUNDS = {
  memoryKib: [DEFAULT_KDF.memoryKib, 4 * DEFAULT_KDF.memoryKib],
  iterations: [DEFAULT_KDF.iterations, 4 * DEFAULT_KDF.iterations],
  parallelism: [1, 4 * DEFAULT_KDF.parallelism],
} as const;

export const SALT_BYTES = 16;
export const KEY_BYTES = 32;

export function checkKdfParams(p: KdfParams): KdfParams {
  for (const k of ['memoryKib', 'iterations', 'parallelism'] as const) {
    const [lo, hi] = KDF_BOUNDS[k];
    const v = p[k];
    if (!Number.isSafeInteger(v) || v < lo || v > hi) {
      throw new AppError(ErrorCode.VAULT_TAMPERED, `the vault's key record has ${k} = ${v}, outside ${lo}..${hi}; it was changed or damaged`, {
        hint: 'restore the database from a backup; blufio never writes such parameters',
      });
    }
  }
  return p;
}

/** The 32-byte key for `passphrase`. The caller zeroes it (and the passphrase) when done. */
export async function deriveKey(passphrase: Buffer, salt: Uint8Array, p: KdfParams): Promise<Buffer> {
  checkKdfParams(p);
  const out = await hashRaw(passphrase, {
    salt: Buffer.from(salt),
    memoryCost: p.memoryKib,
    timeCost: p.iterations,
    parallelism: p.parallelism,
    outputLen: KEY_BYTES,
    algorithm: 2, // Argon2id (a const enum in the library's types)
  });
  return out;
}
