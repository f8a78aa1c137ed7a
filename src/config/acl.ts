import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** Where coreutils' ls is: by its path, not looked up on PATH. */
const LS = ['/usr/bin/ls', '/bin/ls'];

/**
 * Whether `file` has a POSIX ACL beyond its mode bits (an access or a default ACL). With an
 * access ACL, the group bits of the mode are the ACL's mask, the most any user or group named
 * in it may do, and no longer what the owning group alone may do; a copy made with the mode
 * alone gives the owning group those bits and the named entries nothing. Node cannot read
 * extended attributes, so ls is asked: GNU ls marks such a file with `+` after its mode. An ls
 * that marks nothing (BusyBox), or none at all, says no (README, limits).
 */
export function hasAcl(file: string): boolean {
  const ls = LS.find((p) => fs.existsSync(p));
  if (ls === undefined) return false;
  const r = spawnSync(ls, ['-ld', '--', file], { encoding: 'utf8', env: { LC_ALL: 'C' }, timeout: 5000 });
  const perms = typeof r.stdout === 'string' ? (r.stdout.split(' ', 1)[0] ?? '') : '';
  return /^[-dlbcps][-rwxsStT]{9}\+$/.test(perms);
}
