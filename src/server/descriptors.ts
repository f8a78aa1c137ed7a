import fs from 'node:fs';
import type { Logger } from 'pino';

/**
 * Descriptors kept free for the daemon's own files beyond those open when it starts: the
 * database's WAL and shared memory being reopened, attachments being written, DNS sockets,
 * worker threads, a backup.
 */
export const DESCRIPTOR_RESERVE = 64;

/** The soft limit on open files (`ulimit -n`, systemd's LimitNOFILE); undefined when unknown or unlimited. */
function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

function openDescriptors(): number | undefined {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

/**
 * [server] max_connections as far as this process's descriptors allow. Past its open-file limit
 * the kernel refuses the accept itself, before the server sees a connection it could make room
 * for by closing an idle one: 1,100 silent sockets under the common limit of 1,024 (with the
 * default max_connections of 1,024) shut every new client out. So the limit in effect stays
 * below the descriptors left, with a warning saying how to raise it.
 */
export function connectionLimit(configured: number, log: Logger): number {
  const limit = openFileLimit();
  const open = openDescriptors();
  if (limit === undefined || open === undefined) return configured;
  const room = Math.max(1, limit - open - DESCRIPTOR_RESERVE);
  if (room >= configured) return configured;
  log.warn(
    { maxConnections: configured, effective: room, openFileLimit: limit },
    `[server] max_connections is ${configured} but this process may open only ${limit} files (ulimit -n): at most ${room} connections are kept open at once; raise the limit (systemd: LimitNOFILE) or lower max_connections`,
  );
  return room;
}
