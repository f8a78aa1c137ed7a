import { Command, InvalidArgumentError } from 'commander';
import { SESSION_STATES, type Session, type SessionState } from '../../storage/index.js';
import { positiveInt } from '../args.js';
import { withApp } from '../context.js';
import { formatTime, printable, printJson, printLines, table, truncate } from '../output.js';

function stateArg(v: string): SessionState {
  if (!(SESSION_STATES as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`must be one of ${SESSION_STATES.join(', ')}`);
  }
  return v as SessionState;
}

function row(s: Session): string[] {
  return [s.id, s.state, printable(truncate(s.channel, 24)), printable(truncate(s.userId ?? '-', 24)), formatTime(s.updatedAt)];
}

export function sessionsCommand(): Command {
  const sessions = new Command('sessions').description('conversations stored in the database');

  sessions
    .command('list')
    .description('list sessions, newest first')
    .option('--limit <n>', 'how many (1-1000)', positiveInt(1000), 50)
    .option('--state <state>', `only sessions in this state (${SESSION_STATES.join(', ')})`, stateArg)
    .option('--json', 'print JSON')
    .action(async (opts: { limit: number; state?: SessionState; json?: boolean }, cmd: Command) => {
      const list = await withApp(cmd, (app) =>
        app.sessions.list({ limit: opts.limit, ...(opts.state === undefined ? {} : { state: opts.state }) }),
      );
      if (opts.json) return printJson(list);
      if (list.length === 0) return printLines(['no sessions']);
      printLines(table(['ID', 'STATE', 'CHANNEL', 'USER', 'UPDATED'], list.map(row)));
    });

  sessions
    .command('show')
    .description('show one session and its newest messages')
    .argument('<id>', 'session id')
    .option('--messages <n>', 'how many of the newest messages to show (1-1000)', positiveInt(1000), 20)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { messages: number; json?: boolean }, cmd: Command) => {
      const { session, count, messages } = await withApp(cmd, async (app) => {
        const session = await app.sessions.get(id);
        return {
          session,
          count: await app.messages.count(id),
          messages: await app.messages.list(id, { limit: opts.messages }),
        };
      });
      if (opts.json) return printJson({ ...session, messageCount: count, messages });
      const lines = [
        `id         ${session.id}`,
        `state      ${session.state}`,
        `channel    ${printable(session.channel)}`,
        `user       ${printable(session.userId ?? '-')}`,
        `created    ${formatTime(session.createdAt)}`,
        `updated    ${formatTime(session.updatedAt)}`,
        `metadata   ${printable(JSON.stringify(session.metadata))}`,
        `messages   ${count}${count > messages.length ? ` (newest ${messages.length} shown)` : ''}`,
      ];
      for (const m of messages) {
        const tokens = m.tokenCount === null ? '' : ` (${m.tokenCount} tokens)`;
        lines.push('', `[${formatTime(m.createdAt)}] ${m.role}${tokens} ${m.id}`, printable(m.content, true));
      }
      printLines(lines);
    });

  return sessions;
}
