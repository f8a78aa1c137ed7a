import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { parse as parseToml } from 'smol-toml';
import { plaintextSecrets, removeKeys } from '../config/index.js';
import type { Vault } from './vault.js';

/**
 * Moves plaintext secrets out of the config file into the vault: every value is written to the
 * vault first (synced), then the file is rewritten without those lines, every other byte as it
 * was, atomically (a temporary file with the original mode, synced, renamed over it, directory
 * synced). A crash between the two steps leaves the secret in both places; the next run writes
 * the vault again (the file's value wins, as the newer intent) and then cleans the file.
 * Returns the vault names moved; never logs a value.
 */
export async function moveConfigSecrets(configPath: string, vault: Vault, log: Logger): Promise<string[]> {
  let text: string;
  let mode: number;
  try {
    text = fs.readFileSync(configPath, 'utf8');
    mode = fs.statSync(configPath).mode & 0o7777;
  } catch {
    return [];
  }
  const found = plaintextSecrets(parseToml(text));
  if (found.length === 0) return [];
  for (const s of found) await vault.set(s.vaultName, s.value);
  const names = found.map((s) => s.vaultName);
  const cleaned = removeKeys(text, found.map((s) => s.path));
  if (cleaned === undefined) {
    log.warn({ file: configPath, secrets: names }, 'secrets were copied into the vault but could not be cut from the config file safely (inline table?); delete them from the file by hand');
    return names;
  }
  const dir = path.dirname(configPath);
  const tmp = path.join(dir, `.${path.basename(configPath)}.blufio-${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, cleaned);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // Someone edited the file meanwhile: leave their version alone; the next run tries again.
  if (fs.readFileSync(configPath, 'utf8') !== text) {
    fs.rmSync(tmp, { force: true });
    log.warn({ file: configPath }, 'the config file changed while secrets were being moved out of it; it was left as it is');
    return names;
  }
  fs.renameSync(tmp, configPath);
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
  log.warn({ file: configPath, secrets: names }, 'plaintext secrets were moved from the config file into the vault');
  return names;
}
