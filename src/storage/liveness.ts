import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

/**
 * Who holds an active session: `pid:starttime:instance`. The pid says which process, the start
 * time (from /proc on Linux) tells a live owner from an unrelated process that later got the
 * same pid, and the random instance part tells two opens in one process apart so that one
 * clean close releases only its own sessions.
 */
function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19]; // field 22, starttime
  } catch {
    return undefined;
  }
}

export function newOwnerToken(): string {
  return `${process.pid}:${procStartTime(process.pid) ?? ''}:${randomBytes(6).toString('hex')}`;
}

export function isOwnerAlive(token: string): boolean {
  const [pidText, start] = token.split(':');
  const pid = Number(pidText);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (start === undefined || start === '') return true;
  const now = procStartTime(pid);
  return now === undefined || now === start;
}
