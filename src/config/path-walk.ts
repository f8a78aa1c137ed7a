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
 * The absolute path of the file the kernel opens for `p`: path.resolve takes `..` by the text,
 * which after a symbolic link names another file (`dir/link/../x` is `x` beside where the link
 * leads). Only a path with a `..` in it is resolved through the file system (its directory, so
 * a file yet to be made is fine; realpathSync.native, as the JS one takes `..` by the text
 * too); others are as path.resolve makes them.
 */
export function physicalPath(p: string): string {
  if (!p.split('/').includes('..')) return path.resolve(p);
  const abs = path.isAbsolute(p) ? p : `${process.cwd()}/${p}`;
  const cut = abs.replace(/\/+$/, '');
  try {
    return path.join(fs.realpathSync.native(cut.slice(0, cut.lastIndexOf('/')) || '/'), cut.slice(cut.lastIndexOf('/') + 1));
  } catch {
    return path.resolve(p); // a directory that does not exist: the open fails the same either way
  }
}

/**
 * Walks `target` from `/` as the kernel resolves it, following each symbolic link, and shows the
 * visitor every directory a name is looked up in and every link followed: whoever can change one
 * of them can change what the path names. Returns where the path leads. A path that does not
 * resolve fails first, with the file system's own error (ENOENT, ELOOP).
 */
export function walkPath(target: string, visit: PathVisitor): string {
  // Not path.resolve: it removes `..` by the text, and `dir/link/../file` is then checked as
  // dir/file while the kernel opens the file beside where the link leads. Here `..` is taken
  // from the directory the walk has reached, links followed (getcwd() has none in it).
  const abs = path.isAbsolute(target) ? target : `${process.cwd()}/${target}`;
  fs.realpathSync.native(abs); // .native: the JS one also takes `..` by the text
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
