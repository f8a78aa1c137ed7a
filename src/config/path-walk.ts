import fs from 'node:fs';
import path from 'node:path';

/** Symbolic links followed on the way before giving up, as the kernel does (ELOOP). */
const MAX_LINKS = 40;

export interface PathVisitor {
  /** A directory a name on the way is looked up in (`/` first). */
  dir(d: string): void;
  /** A symbolic link followed on the way, with its own (lstat) details. */
  link(link: string, st: fs.Stats): void;
}

/**
 * Walks `target` from `/` as the kernel resolves it, following each symbolic link, and shows the
 * visitor every directory a name is looked up in and every link followed: whoever can change one
 * of them can change what the path names. Returns where the path leads. A path that does not
 * resolve fails first, with the file system's own error (ENOENT, ELOOP).
 */
export function walkPath(target: string, visit: PathVisitor): string {
  const abs = path.resolve(target);
  fs.realpathSync(abs);
  const todo = abs.split('/').filter((p) => p !== '' && p !== '.');
  let cur = '/';
  let links = 0;
  while (todo.length > 0) {
    visit.dir(cur);
    const name = todo.shift()!;
    if (name === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, name);
    const st = fs.lstatSync(next);
    if (!st.isSymbolicLink()) {
      cur = next;
      continue;
    }
    visit.link(next, st);
    if (++links > MAX_LINKS) throw Object.assign(new Error(`too many symbolic links on the way to ${target}`), { code: 'ELOOP' });
    const to = fs.readlinkSync(next);
    if (path.isAbsolute(to)) cur = '/';
    todo.unshift(...to.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return cur;
}
