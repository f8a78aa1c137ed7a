import os from 'node:os';
import path from 'node:path';

/** The environment variables this package reads, in one place so tests can pass their own. */
export type Env = Readonly<Record<string, string | undefined>>;

/** XDG base directories; a relative value is ignored, as the XDG spec requires. */
function xdgDir(env: Env, name: 'XDG_CONFIG_HOME' | 'XDG_DATA_HOME', fallback: string[]): string {
  const v = env[name];
  if (v !== undefined && v !== '' && path.isAbsolute(v)) return v;
  return path.join(homeDir(env), ...fallback);
}

export function homeDir(env: Env): string {
  const h = env.HOME;
  return h !== undefined && h !== '' ? h : os.homedir();
}

export function defaultConfigPath(env: Env): string {
  return path.join(xdgDir(env, 'XDG_CONFIG_HOME', ['.config']), 'blufio', 'blufio.toml');
}

export function defaultDataDir(env: Env): string {
  return path.join(xdgDir(env, 'XDG_DATA_HOME', ['.local', 'share']), 'blufio');
}

export const DATABASE_FILE_NAME = 'blufio.db';

/** `~` and `~/x` expand to the home directory; other relative paths are taken from `base`. */
export function expandPath(p: string, base: string, env: Env): string {
  if (p === '~') return homeDir(env);
  if (p.startsWith('~/')) return path.join(homeDir(env), p.slice(2));
  return path.resolve(base, p);
}
