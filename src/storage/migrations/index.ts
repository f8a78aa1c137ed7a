export { MIGRATIONS, checksum, latestVersion } from './list.js';
export type { Migration } from './list.js';
export { runMigrations, schemaVersion, verifyApplied } from './runner.js';
export type { MigrationResult } from './runner.js';
