import fs from 'node:fs';
import { shellWord } from '../errors/index.js';
import { walkPath } from './path-walk.js';

/** Writable by anyone, and without the sticky bit that keeps others to their own entries (/tmp). */
const anyoneMayChange = (mode: number): boolean => (mode & 0o002) !== 0 && (mode & 0o1000) === 0;

/**
 * On a read-only mount (a Kubernetes ConfigMap volume, whose directory shows mode 777) nobody
 * changes anything here. A read-only bind mount of a directory that others can write at its
 * source is not seen through: the source is not visible from here.
 */
function onReadOnlyMount(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.W_OK);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EROFS';
  }
}

/**
 * A file whose content decides something that matters (the config, a passphrase file) must not
 * be one any user can change, or replace through any directory on the way to it (links
 * followed) that any user can write without the sticky bit /tmp has. Refused, not warned about:
 * a warning in a service's log is read after the harm is done. Group-writable is accepted:
 * under a umask of 002 every file is, and the group is the user's own. `refuse` throws.
 */
export function refuseReplaceableByAnyone(file: string, st: fs.Stats, refuse: (what: string, hint: string) => never): void {
  if (process.platform === 'win32') return; // no POSIX modes to read
  // The file's own bit counts even on a read-only mount: a bind mount is read-only only here,
  // and a 666 file is as writable as ever through its source.
  if ((st.mode & 0o002) !== 0) {
    refuse(`the file can be written by any user (mode ${(st.mode & 0o777).toString(8)})`, `chmod o-w ${shellWord(file)}`);
  }
  const real = walkPath(file, {
    dir: (d) => {
      if (anyoneMayChange(fs.statSync(d).mode) && !onReadOnlyMount(d)) {
        refuse(`${d}, on the way to it, can be written by any user, who could replace it`, `chmod o-w ${shellWord(d)} (or chmod +t ${shellWord(d)}), or move the file to a directory of your own`);
      }
    },
    link: () => {},
  });
  // The walk must have described the file that was opened (or stat'ed), not another one.
  const now = fs.statSync(real);
  if (now.dev !== st.dev || now.ino !== st.ino) {
    refuse(`the path leads to ${real}, not to the file that was opened (it changed meanwhile?)`, 'try again; if it persists, point at the file by a path without symbolic links');
  }
}
