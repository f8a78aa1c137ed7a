import { Command } from 'commander';
import { AppError, ErrorCode, isAppError, shownText } from '../../errors/index.js';
import { ID_CHARS, type JobInfo, type QueueStats } from '../../storage/index.js';
import { positiveInt } from '../args.js';
import { withApp } from '../context.js';
import { formatDuration, formatTime, printable, printJson, printLines, reportError, table, truncate } from '../output.js';

function statsRow(s: QueueStats): string[] {
  return [
    s.queue,
    String(s.pending),
    String(s.delayed),
    String(s.running),
    String(s.dead),
    String(s.completed),
    s.pending === 0 ? '-' : formatDuration(s.oldestPendingAgeMs),
  ];
}

function firstLine(text: string | null): string {
  if (text === null) return '-';
  return printable(truncate(text.split('\n')[0] ?? '', 70));
}

/**
 * Refusals that concern one id only (malformed, no such job, not dead): the next id may well be
 * re-queued, so requeue goes on. Anything else (the database cannot be written, a lock held too
 * long, a bug) would refuse every later id the same way, and ends the command.
 */
const ID_REFUSALS: ReadonlySet<string> = new Set([ErrorCode.QUEUE_NOT_DEAD, ErrorCode.NOT_FOUND, ErrorCode.INVALID_INPUT]);

/** One id's outcome in `queue requeue --json`: `error` is the refusal as RPC would send it. */
interface RequeueOutcome {
  id: string;
  requeued: boolean;
  error?: Record<string, unknown>;
}

/** Why a requeue of several ids exits 1: which were refused, under the first refusal's code. */
function requeueRefused(ids: string[], refused: { id: string; err: AppError }[]): AppError {
  const done = ids.length - refused.length;
  const others = done === 0 ? 'none was' : done === 1 ? 'the other one was' : `the other ${done} were`;
  return new AppError(
    refused[0]!.err.code,
    `${refused.length} of ${ids.length} job(s) not re-queued: ${refused.map((r) => shownText(r.id, ID_CHARS)).join(', ')}`,
    { hint: `${others} re-queued; blufio queue dead <queue> lists the jobs that can be` },
  );
}

function deadRow(j: JobInfo): string[] {
  return [j.id, `${j.attempts}/${j.maxAttempts}`, j.finishedAt === null ? '-' : formatTime(j.finishedAt), firstLine(j.lastError)];
}

export function queueCommand(): Command {
  const queue = new Command('queue').description('the job queue: counts, dead jobs, re-queueing');

  queue
    .command('stats')
    .description('jobs per state and how long the oldest due job has waited, for one queue or all of them')
    .argument('[queue]', 'one queue (default: every queue)')
    .option('--json', 'print JSON (an object for one queue, an array for all)')
    .action(async (name: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const stats = await withApp(cmd, async (app) => {
        if (name !== undefined) return [await app.queue.stats(name)];
        const all: QueueStats[] = [];
        for (const n of await app.queue.names()) all.push(await app.queue.stats(n));
        return all;
      });
      if (opts.json) return printJson(name === undefined ? stats : stats[0]);
      if (stats.length === 0) return printLines(['no queues yet']);
      printLines(table(['QUEUE', 'PENDING', 'DELAYED', 'RUNNING', 'DEAD', 'COMPLETED', 'OLDEST WAITING'], stats.map(statsRow)));
    });

  queue
    .command('dead')
    .description("list a queue's dead jobs (out of attempts, or failed as not retryable), most recent first")
    .argument('<queue>', 'queue name')
    .option('--limit <n>', 'how many (1-1000)', positiveInt(1000), 50)
    .option('--json', 'print JSON, payloads and full errors included')
    .action(async (name: string, opts: { limit: number; json?: boolean }, cmd: Command) => {
      const dead = await withApp(cmd, (app) => app.queue.listDead(name, { limit: opts.limit }));
      if (opts.json) return printJson(dead);
      if (dead.length === 0) return printLines([`no dead jobs in ${name}`]);
      printLines(table(['ID', 'ATTEMPTS', 'DIED', 'LAST ERROR'], dead.map(deadRow)));
    });

  queue
    .command('requeue')
    .description('send dead jobs back to pending, with their attempts reset')
    .argument('<id...>', 'ids of dead jobs')
    .option('--json', 'print JSON: one { id, requeued, error? } per id, in the order given')
    .action(async (ids: string[], opts: { json?: boolean }, cmd: Command) => {
      // Every id is tried, whatever happened to the ones before it: stopping at the first refusal
      // left the later ids untouched without a word about them.
      const outcomes: RequeueOutcome[] = [];
      const refused: { id: string; err: AppError }[] = [];
      // Printed whatever ends the run: an error that is not about one id (the database cannot
      // be written) stops it after some ids may have been re-queued, and a script must learn which.
      let finished = false;
      await withApp(cmd, async (app) => {
        for (const id of ids) {
          try {
            await app.queue.requeue(id);
          } catch (err) {
            if (!isAppError(err) || !ID_REFUSALS.has(err.code)) throw err;
            // An id as given, unless it is longer than any id: a token pasted by mistake is named by its length.
            outcomes.push({ id: shownText(id, ID_CHARS), requeued: false, error: err.toJSON() });
            refused.push({ id, err });
            // Said as it happens, beside the ids re-queued; a single id's refusal is the error itself.
            if (!opts.json && ids.length > 1) reportError(err);
            continue;
          }
          outcomes.push({ id, requeued: true });
          if (!opts.json) printLines([`re-queued ${id}`]);
        }
        finished = true;
      }).finally(() => {
        if (opts.json && (finished || outcomes.length > 0)) printJson(outcomes);
      });
      if (refused.length === 0) return;
      throw ids.length === 1 ? refused[0]!.err : requeueRefused(ids, refused);
    });

  return queue;
}
