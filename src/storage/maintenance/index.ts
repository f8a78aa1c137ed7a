import { Worker } from 'node:worker_threads';
import { AppError, ErrorCode } from '../../errors/index.js';
import type { BackupArgs, BackupReport } from './backup.js';
import type { CheckArgs, CheckReport } from './check.js';

export type { BackupArgs, BackupReport } from './backup.js';
export type { CheckArgs, CheckReport } from './check.js';

type Outcome<T> = { ok: true; result: T } | { ok: false; error: { code: string; message: string; hint?: string; details?: Record<string, unknown> } };

function runTask<T>(task: string, args: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    // No copy of the environment (it may still hold a passphrase): the task reads none.
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { task, args }, env: {} });
    let settled = false;
    worker.once('message', (m: Outcome<T>) => {
      settled = true;
      if (m.ok) resolve(m.result);
      else {
        const { code, message, hint, details } = m.error;
        reject(new AppError(code, message, { ...(hint === undefined ? {} : { hint }), ...(details === undefined ? {} : { details }) }));
      }
    });
    worker.once('error', (err) => {
      settled = true;
      reject(new AppError(ErrorCode.INTERNAL, `${task} failed: ${err.message}`, { cause: err }));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new AppError(ErrorCode.INTERNAL, `${task} stopped unexpectedly (exit code ${code})`));
    });
  });
}

export const runCheck = (a: CheckArgs): Promise<Omit<CheckReport, 'writer'>> => runTask('check', a);
export const runBackup = (a: BackupArgs): Promise<BackupReport> => runTask('backup', a);
