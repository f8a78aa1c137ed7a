import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { parse as parseToml } from 'smol-toml';
import { hasAcl, plaintextSecrets, removeKeys, type PlaintextSecret } from '../config/index.js';
import { nameLooksLikeSecret, type Vault } from './vault.js';

/**
 * Moves plaintext secrets out of the config file into the vault: every value is written to the
 * vault first (synced), then the file is rewritten without those lines, every other byte as it
 * was, atomically (a temporary file with the original mode and owner, synced, renamed over it,
 * directory synced). A crash between the two steps leaves the secret in both places; the next
 * run finds the same value in the vault and cleans the file. A value the vault holds otherwise
 * is left in the file, and the vault's kept, with an error saying how to choose: nothing is ever
 * cut from the file that the vault does not hold.
 *
 * A file that cannot be rewritten safely (a value inside an inline table, a hard link, a file
 * this user does not own, a file without write permission, a read-only mount or a directory
 * this user cannot write) is left as it is with a warning; secrets missing from the vault are
 * still copied. Whether the
 * file can be replaced is found out by writing its replacement before the vault is touched, so a
 * mount that refuses writes is known before any value is copied. Returns the vault names
 * written; never logs a value.
 */
export async function moveConfigSecrets(configPath: string, vault: Vault, log: Logger): Promise<string[]> {
  let file: string;
  let text: string;
  let st: fs.Stats;
  try {
    // A symlinked config (a Kubernetes ConfigMap, a dotfiles repo) is rewritten where it lives;
    // .native, as the kernel resolves it (the JS one takes `..` after a link by the text).
    file = fs.realpathSync.native(configPath);
    text = fs.readFileSync(file, 'utf8');
    st = fs.statSync(file);
  } catch {
    return [];
  }
  let parsed: unknown;
  try {
    parsed = parseToml(text);
  } catch {
    // Validated a moment ago, so someone is editing it; the parser's message quotes the file
    // (secrets included), so it is not passed on. The next start tries again.
    log.warn({ file }, 'the config file changed while it was being read and no longer parses; no secrets were moved out of it');
    return [];
  }
  const all = plaintextSecrets(parsed);
  // A provider or channel named like a token (`[channels.xoxo-gossip-girl]`, a Slack token's
  // shape) gives a vault name the vault refuses (names are stored in the clear): its secret
  // stays in the file, and every command goes on (before, every one of them failed).
  const odd = all.filter((s) => nameLooksLikeSecret(s.vaultName).length > 0);
  if (odd.length > 0) {
    log.warn(
      { file, formats: [...new Set(odd.flatMap((s) => nameLooksLikeSecret(s.vaultName)))] },
      `${odd.length} plaintext secret(s) in the config file stay there: their provider or channel is named like a secret itself, and such a name cannot be a vault name (names are stored in the clear); rename the table`,
    );
  }
  const found = all.filter((s) => !odd.includes(s));
  if (found.length === 0) return [];
  // A line is cut only when the vault ends up holding exactly its value. A vault entry with
  // another value is not overwritten, and the file's line is not cut: neither the file's mtime
  // nor the order of events says which is the key in use (cp -p, rsync -t and tar x keep an old
  // mtime on a new key; an unrelated edit gives a stale one a new mtime), and guessing wrong
  // deleted a key that was nowhere else.
  const held = new Map((await vault.list()).map((e) => [e.name, e]));
  const toWrite: PlaintextSecret[] = [];
  const toCut: PlaintextSecret[] = [];
  const differ: string[] = [];
  for (const s of found) {
    const have = held.get(s.vaultName);
    if (have === undefined || have.tampered) toWrite.push(s);
    else if ((await vault.get(s.vaultName)).expose() !== s.value) {
      differ.push(s.vaultName);
      continue;
    }
    toCut.push(s);
  }
  if (differ.length > 0) {
    log.error(
      { file, secrets: differ },
      'the config file and the vault hold different values for these secrets: the vault\'s are used, and the file\'s are left in the file. ' +
        'To use the file\'s, delete the vault\'s (blufio config delete-secret <name>) and the next start moves it; to keep the vault\'s, delete the line from the file',
    );
  }
  const cleaned = toCut.length === 0 ? text : removeKeys(text, toCut.map((s) => s.path), toCut.map((s) => s.value));
  const uid = process.getuid?.();
  let why =
    toCut.length === 0
      ? 'nothing to cut'
      : cleaned === undefined
        ? 'a secret is written where its line cannot be cut alone (an inline table?), or also elsewhere in the file (a comment?)'
        : st.nlink > 1
          ? 'the file has other hard links, which a rewrite would leave holding the secrets'
          : uid !== undefined && uid !== 0 && uid !== st.uid
            ? 'the file belongs to another user'
            : (st.mode & 0o200) === 0
              ? 'the file is read-only'
              : hasAcl(file)
                ? 'the file has an access control list (ACL), which a rewrite would not carry over (its group bits would become the group\'s own, and the users it names would lose their access)'
                : undefined;
  removeStaleTemps(file);
  let staged: string | undefined;
  if (why === undefined) {
    try {
      staged = stage(file, cleaned!, st);
    } catch (err) {
      why =
        err instanceof NotReplaced
          ? err.message
          : `it cannot be replaced (${(err as NodeJS.ErrnoException).code ?? 'error'}: a read-only mount, or a directory this user cannot write)`;
    }
  }
  const written: string[] = [];
  try {
    for (const s of toWrite) {
      await vault.set(s.vaultName, s.value);
      written.push(s.vaultName);
    }
  } catch (err) {
    if (staged !== undefined) fs.rmSync(staged, { force: true });
    throw err;
  }
  const names = toCut.map((s) => s.vaultName);
  if (toCut.length === 0) return written;
  if (why !== undefined) {
    log.warn({ file, secrets: names }, `plaintext secrets are in the config file and were not cut from it: ${why}; they are in the vault, delete them from the file by hand`);
    return written;
  }
  try {
    if (!replaceWith(staged!, file, text)) {
      log.warn({ file }, 'the config file changed while secrets were being moved out of it; it was left as it is');
      return written;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    log.warn({ file, secrets: names, code }, 'plaintext secrets were copied into the vault, but the config file could not be rewritten; delete them from it by hand');
    return written;
  }
  log.warn({ file, secrets: names }, 'plaintext secrets were moved from the config file into the vault');
  return written;
}

const tempName = (file: string, tag: string): string => `.${path.basename(file)}.blufio-${tag}.tmp`;
/** A staged replacement older than this was left by a process killed before it renamed it. */
const STALE_TEMP_MS = 60_000;

/** Removes replacements a killed run staged beside `file` (never one a running process may still rename). */
function removeStaleTemps(file: string): void {
  const dir = path.dirname(file);
  const [before, after] = tempName(file, '\0').split('\0') as [string, string];
  const ours = (name: string): boolean =>
    name.startsWith(before) && name.endsWith(after) && /^[0-9a-f]{12}$/.test(name.slice(before.length, name.length - after.length));
  try {
    for (const name of fs.readdirSync(dir)) {
      if (!ours(name)) continue;
      const p = path.join(dir, name);
      const lst = fs.lstatSync(p);
      if (lst.isFile() && Date.now() - lst.mtimeMs > STALE_TEMP_MS) fs.rmSync(p, { force: true });
    }
  } catch {
    // Best effort: an unreadable directory is reported by what comes next.
  }
}

/** Why a file was left as it is, when staging its replacement found a reason not to replace it. */
class NotReplaced extends Error {}

/**
 * The file's group on the new file (a member of a group may give it to a file of theirs). A
 * rewrite must not change it: a config of mode 640 in a service's group would be taken from that
 * service, which could no longer read it, and given to this user's primary group.
 */
function keepGroup(fd: number, gid: number): void {
  try {
    fs.fchownSync(fd, -1, gid);
  } catch (err) {
    throw new NotReplaced(`its group (gid ${gid}) is not one of this user's, and a rewrite would change it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Writes `next` to a new file beside `file`, with its mode, owner and group, synced; returns its path. */
function stage(file: string, next: string, st: fs.Stats): string {
  const tmp = path.join(path.dirname(file), tempName(file, randomBytes(6).toString('hex')));
  const mode = st.mode & 0o7777;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    try {
      if (process.getuid?.() === 0) fs.fchownSync(fd, st.uid, st.gid);
      else if (fs.fstatSync(fd).gid !== st.gid) keepGroup(fd, st.gid);
      fs.fchmodSync(fd, mode);
      // The directory's default ACL is given to every new file: users it names would gain the
      // access to the file that the old one, without an ACL, did not give them.
      if (hasAcl(tmp)) throw new NotReplaced('its directory has a default access control list (ACL), which the rewritten file would get, giving the users it names access');
      fs.writeFileSync(fd, next);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return tmp;
}

/** Renames the staged `tmp` over `file` and syncs the directory, unless `file` no longer holds `expected`. */
function replaceWith(tmp: string, file: string, expected: string): boolean {
  try {
    // Someone edited the file meanwhile: leave their version alone; the next run tries again.
    if (fs.readFileSync(file, 'utf8') !== expected) {
      fs.rmSync(tmp, { force: true });
      return false;
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  const dfd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
  return true;
}
