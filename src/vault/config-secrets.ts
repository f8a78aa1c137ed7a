import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { parse as parseToml } from 'smol-toml';
import { plaintextSecrets, removeKeys } from '../config/index.js';
import type { Vault } from './vault.js';

/**
 * Moves plaintext secrets out of the config file into the vault: every value is written to the
 * vault first (synced), then the file is rewritten without those lines, every other byte as it
 * was, atomically (a temporary file with the original mode and owner, synced, renamed over it,
 * directory synced). A crash between the two steps leaves the secret in both places; the next
 * run writes the vault again (the file's value wins, as the newer intent) and cleans the file.
 *
 * A file that cannot be rewritten safely (a value inside an inline table, a hard link, a file
 * this user does not own, a read-only mount) is left as it is with a warning; then only secrets
 * missing from the vault are copied, so a key rotated with set-secret is not undone on every
 * start. Returns the vault names written; never logs a value.
 */
export async function moveConfigSecrets(configPath: string, vault: Vault, log: Logger): Promise<string[]> {
  let file: string;
  let text: string;
  let st: fs.Stats;
  try {
    // A symlinked config (a Kubernetes ConfigMap, a dotfiles repo) is rewritten where it lives.
    file = fs.realpathSync(configPath);
    text = fs.readFileSync(file, 'utf8');
    st = fs.statSync(file);
  } catch {
    return [];
  }
  const found = plaintextSecrets(parseToml(text));
  if (found.length === 0) return [];
  const cleaned = removeKeys(text, found.map((s) => s.path));
  const uid = process.getuid?.();
  const why =
    cleaned === undefined
      ? 'a secret is written where its line cannot be cut alone (an inline table?)'
      : st.nlink > 1
        ? 'the file has other hard links, which a rewrite would leave holding the secrets'
        : uid !== undefined && uid !== 0 && uid !== st.uid
          ? 'the file belongs to another user'
          : undefined;
  const written: string[] = [];
  for (const s of found) {
    if (why !== undefined && vault.has(s.vaultName)) continue;
    await vault.set(s.vaultName, s.value);
    written.push(s.vaultName);
  }
  const names = found.map((s) => s.vaultName);
  if (why !== undefined) {
    log.warn({ file, secrets: names }, `plaintext secrets are in the config file and were not cut from it: ${why}; they are in the vault, delete them from the file by hand`);
    return written;
  }
  try {
    if (!replaceFile(file, cleaned!, text, st)) {
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

/** Writes `next` over `file` atomically, unless the file no longer holds `expected`. */
function replaceFile(file: string, next: string, expected: string, st: fs.Stats): boolean {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.blufio-${randomBytes(6).toString('hex')}.tmp`);
  const mode = st.mode & 0o7777;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    try {
      if (process.getuid?.() === 0) fs.fchownSync(fd, st.uid, st.gid);
      fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, next);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
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
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
  return true;
}
