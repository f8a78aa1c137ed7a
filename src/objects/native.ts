import { createCipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * The optional native sealer (native/objseal.c, built at install by scripts/build-native.mjs):
 * AES-256-GCM of one chunk into a buffer of ours. node:crypto's cipher.update allocates its
 * output, zero-fills a second buffer and copies into it, which for 256 KiB chunks doubled the
 * CPU a chunk costs (0.65-0.72 ms per MiB against 0.37, cold data, on the bench machine).
 */
export interface NativeSealer {
  /** Writes AES-256-GCM(key, iv, aad) of `src` into `dst` (exactly src.length) and its tag into `tag` (16). */
  sealInto(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, src: Uint8Array, dst: Uint8Array, tag: Uint8Array): void;
}

/** dist/src/objects/ → the package root, where node-gyp puts build/. */
const ADDON = '../../../build/Release/blufio_objseal.node';

let loaded: NativeSealer | undefined | null = null;
let why = '';

/**
 * Sealing through the addon must give the bytes node:crypto gives, or it is not used: a build
 * against other headers, a broken toolchain or an OpenSSL that behaves otherwise falls back to
 * node:crypto rather than writing files nobody can open. Checked once per process, on a chunk
 * with a partial last block and associated data that is not a whole block either.
 */
function selfTest(s: NativeSealer): boolean {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const aad = randomBytes(45);
  const src = randomBytes(1000 + 7);
  const dst = Buffer.alloc(src.length);
  const tag = Buffer.alloc(16);
  s.sealInto(key, iv, aad, src, dst, tag);
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  c.setAAD(aad);
  const want = Buffer.concat([c.update(src), c.final()]);
  return want.equals(dst) && c.getAuthTag().equals(tag);
}

/**
 * What a loaded module offers, checked: the sealer when it has sealInto and passes the self-test,
 * else why not. Exported for the tests, which give it modules that fail in each way.
 */
export function checkedSealer(mod: unknown): { sealer: NativeSealer } | { reason: string } {
  try {
    const s = mod as NativeSealer | null | undefined;
    if (typeof s?.sealInto === 'function' && selfTest(s)) return { sealer: s };
  } catch {
    // A sealer that throws on a valid chunk is as unusable as one that gives the wrong bytes.
  }
  return { reason: 'failing its self-test' };
}

/** The native sealer, or undefined when it was not built or failed its self-test (nativeSealerStatus says which). */
export function nativeSealer(): NativeSealer | undefined {
  if (loaded !== null) return loaded;
  loaded = undefined;
  if (process.env.BLUFIO_SKIP_NATIVE === '1') {
    why = 'turned off (BLUFIO_SKIP_NATIVE=1)';
    return loaded;
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(ADDON);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Missing (no compiler at install), or there but not loadable here (another architecture or
    // libc, an OpenSSL symbol this node does not export: the build binds every symbol at load).
    why = code === 'MODULE_NOT_FOUND' ? 'not built (no build/Release/blufio_objseal.node)' : `not loadable (${code ?? 'load failed'})`;
    return loaded;
  }
  const r = checkedSealer(mod);
  if ('reason' in r) why = r.reason;
  else loaded = r.sealer;
  return loaded;
}

/** For `objects stats`: which sealer this process's puts use, and why not the native one. */
export function nativeSealerStatus(): { native: boolean; reason?: string } {
  return nativeSealer() !== undefined ? { native: true } : { native: false, reason: why };
}
