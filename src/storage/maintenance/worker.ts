/** Runs one long maintenance task (check, backup) off the main thread, on its own connection. */
import { parentPort, workerData } from 'node:worker_threads';
import { toAppError } from '../sqlite-errors.js';
import { backupDatabase } from './backup.js';
import { checkDatabase } from './check.js';

const { task, args } = workerData as { task: 'check' | 'backup'; args: never };
try {
  const result = task === 'check' ? checkDatabase(args) : backupDatabase(args);
  parentPort?.postMessage({ ok: true, result });
} catch (err) {
  const e = toAppError(err);
  parentPort?.postMessage({ ok: false, error: { code: e.code, message: e.message, hint: e.hint, details: e.details } });
}
