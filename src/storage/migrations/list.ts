import { createHash } from 'node:crypto';
import { sql as m001 } from './001_sessions_messages.js';
import { sql as m002 } from './002_queue.js';
import { sql as m003 } from './003_vault.js';
import { sql as m004 } from './004_objects.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The embedded migrations, in order. An applied migration is never edited: its checksum is
 * recorded and a changed text stops every open. Add a new version instead.
 */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'sessions_messages', sql: m001 },
  { version: 2, name: 'queue', sql: m002 },
  { version: 3, name: 'vault', sql: m003 },
  { version: 4, name: 'objects', sql: m004 },
];

export function checksum(m: Migration): string {
  return createHash('sha256').update(m.sql).digest('hex');
}

export function latestVersion(list: readonly Migration[] = MIGRATIONS): number {
  return list.reduce((max, m) => Math.max(max, m.version), 0);
}
