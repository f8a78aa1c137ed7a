import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
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

/** Where coreutils' ls is: by its path, not looked up on PATH. */
const LS = ['/usr/bin/ls', '/bin/ls'];

/**
 * Whether `d` has a POSIX ACL beyond its mode bits: then the group bits of its mode are the
 * ACL's mask, the most that any user or group named in the ACL may do, and no longer what the
 * owning group alone may do. Node cannot read extended attributes, so ls is asked: GNU ls marks
 * such a directory with `+` after its mode. An ls that marks nothing (BusyBox) or none at all
 * says no: the check is then what it was before ACLs were looked at (README, limits).
 */
function hasAcl(d: string): boolean {
  const ls = LS.find((p) => fs.existsSync(p));
  if (ls === undefined) return false;
  const r = spawnSync(ls, ['-ld', '--', d], { encoding: 'utf8', env: { LC_ALL: 'C' }, timeout: 5000 });
  const perms = typeof r.stdout === 'string' ? (r.stdout.split(' ', 1)[0] ?? '') : '';
  return /^[-dlbcps][-rwxsStT]{9}\+$/.test(perms);
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
  if (hasAcl(d)) {
    throw unsafe(`${d}, on the way to the data directory ${dir}, has an access control list (ACL) whose mask lets the users and groups it names write there (mode ${modeOf(st)})`, `chmod g-w ${shellWord(d)} (which narrows the mask), or give blufio serve another --data-dir`);
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
