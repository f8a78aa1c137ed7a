import { Command } from 'commander';
import type { JobInfo, QueueStats } from '../../storage/index.js';
import { positiveInt } from '../args.js';
import { withApp } from '../context.js';
import { formatDuration, formatTime, printable, printJson, printLines, table, truncate } from '../output.js';

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
    .action(async (ids: string[], _opts: unknown, cmd: Command) => {
      await withApp(cmd, async (app) => {
        for (const id of ids) {
          await app.queue.requeue(id);
          printLines([`re-queued ${id}`]);
        }
      });
    });

  return queue;
}
