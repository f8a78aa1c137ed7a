import type { Env } from './paths.js';

/**
 * Secrets passed in this process's environment (BLUFIO_VAULT_KEY, the variable a database key
 * reference names) are taken out of it on first read: a child process the agent starts later
 * must not inherit them. Later reads in the same process get the value taken.
 */
const taken = new Map<string, string>();

/** Drops what was taken (on lock: unlocking again needs the passphrase given anew). */
export function forgetSecretEnv(): void {
  taken.clear();
}

export function takeSecretEnv(env: Env, name: string): string | undefined {
  if (env !== process.env) return env[name] || undefined;
  const v = process.env[name];
  if (v) taken.set(name, v);
  delete process.env[name];
  return taken.get(name);
}
