import fs from 'node:fs';
import path from 'node:path';
import { hasAcl } from '../config/index.js';
import { walkPath } from '../config/path-walk.js';
import { AppError, ErrorCode, shellWord } from '../errors/index.js';

const WHY = 'who could swap daemon.json for one naming their own port and collect the RPC token from the next client';

function unsafe(message: string, hint: string): AppError {
  return new AppError(ErrorCode.SERVER_DIR_UNSAFE, `${message}, ${WHY}`, { hint });
}

function modeOf(st: fs.Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(3, '0');
}

/**
 * Whether `gid` is a group of this user alone: the user's primary group, no other account in
 * /etc/passwd has it as theirs, and /etc/group lists no other member. That is the user private
 * group most distributions give each user (under a umask of 002 every directory the user makes
 * is group-writable), and a Kubernetes pod whose runAsGroup is its fsGroup. Groups known only
 * to a directory service (LDAP) are not looked up: their members are unknown, so not private.
 */
function isPrivateGroup(gid: number, uid: number): boolean {
  if (process.getgid?.() !== gid) return false;
  try {
    const names: string[] = [];
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , u, g] = line.split(':');
      if (name === undefined || u === undefined || g === undefined) continue;
      if (Number(u) === uid) names.push(name);
      else if (Number(g) === gid) return false;
    }
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const [, , g, members] = line.split(':');
      if (g === undefined || Number(g) !== gid) continue;
      if ((members ?? '').split(',').some((m) => m.trim() !== '' && !names.includes(m.trim()))) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * A directory a name on the way is looked up in. Whoever can rename entries in it can replace
 * everything below it, the data directory included: it must be root's or yours, and not
 * writable by group (unless the group is yours alone) or others, unless its sticky bit keeps
 * them to their own entries (/tmp).
 */
function checkOnTheWay(d: string, dir: string, uid: number): void {
  const st = fs.statSync(d);
  if (st.uid !== uid && st.uid !== 0) {
    throw unsafe(`${d}, on the way to the data directory ${dir}, belongs to uid ${st.uid} (neither you nor root)`, 'give blufio serve a data directory whose every parent is yours or root\'s (--data-dir)');
  }
  if ((st.mode & 0o022) === 0 || (st.mode & 0o1000) !== 0) return;
  const hint = `chmod go-w ${shellWord(d)} (or chmod +t ${shellWord(d)}), or give blufio serve another --data-dir`;
  if ((st.mode & 0o002) !== 0 || !isPrivateGroup(st.gid, uid)) {
    throw unsafe(`${d}, on the way to the data directory ${dir}, can be written by other users (mode ${modeOf(st)}, no sticky bit)`, hint);
  }
  // Group-writable, and the group is yours alone: safe, unless those bits are an ACL's mask.
  // Which entries the ACL has is not read (see hasAcl), so any ACL here is refused.
  if (hasAcl(d)) {
    throw unsafe(
      `${d}, on the way to the data directory ${dir}, is group-writable (mode ${modeOf(st)}) and has an access control list (ACL): those group bits may be the ACL's mask, which lets the users and groups it names write there`,
      `chmod g-w ${shellWord(d)} (which narrows any mask), or remove the ACL (setfacl -b ${shellWord(d)}), or give blufio serve another --data-dir`,
    );
  }
}

/**
 * Clients find the daemon through daemon.json and rpc.token in the data directory: anyone who
 * can change the directory, or any directory or symbolic link on the way to it, can redirect
 * them. So the path is walked from / as the kernel resolves it, following each link: every
 * directory a name is looked up in passes checkOnTheWay, every link must be yours or root's
 * (in a sticky /tmp its owner may replace it), and the directory reached must be yours (root's
 * when running as root) and writable by you alone.
 */
export function checkDirSafe(dir: string): void {
  const uid = process.getuid?.();
  // No POSIX owners to compare (Windows): the directory's ACL is the user's business.
  if (uid === undefined) return;
  let cur: string;
  try {
    cur = walkPath(dir, {
      dir: (d) => checkOnTheWay(d, dir, uid),
      link: (link, st) => {
        if (st.uid !== uid && st.uid !== 0) {
          throw unsafe(`the symbolic link ${link}, on the way to the data directory ${dir}, belongs to uid ${st.uid} (neither you nor root)`, 'point --data-dir at the real directory');
        }
      },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(`too many symbolic links on the way to the data directory ${dir}`, 'point --data-dir at the real directory');
    throw err;
  }
  const st = fs.statSync(cur);
  const shown = cur === path.resolve(dir) ? dir : `${dir} (${cur})`;
  if (st.uid !== uid) {
    throw unsafe(`the data directory ${shown} belongs to uid ${st.uid}, not to you (uid ${uid})`, 'give blufio serve a data directory of its own (--data-dir)');
  }
  if ((st.mode & 0o022) !== 0) {
    throw unsafe(`the data directory ${shown} can be written by other users (mode ${modeOf(st)})`, `chmod 700 ${shellWord(cur)}, or give blufio serve a directory of its own (--data-dir)`);
  }
}
