import assert from 'node:assert/strict';
import { it } from 'node:test';
import { openBlufio } from '../src/index.js';
import { memoryLogger } from './helpers/logger.js';
import { silentLogger, startFixture, tmpDir } from './helpers/index.js';

interface Held {
  active: string[];
  paused: string;
}

function hold(dir: string): Promise<{ held: Held; kill: () => Promise<void> }> {
  return new Promise((resolve) => {
    const { child, done } = startFixture('hold-sessions', [dir], (line) => {
      resolve({
        held: JSON.parse(line) as Held,
        kill: async () => {
          child.kill('SIGKILL');
          await done;
        },
      });
    });
  });
}

it('sessions of a live process stay active; after it is SIGKILLed they are marked interrupted and can be resumed', async () => {
  const dir = tmpDir();
  const { held, kill } = await hold(dir);

  // A CLI-like open next to the live owner must not take its sessions away.
  const beside = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
  for (const id of held.active) assert.equal((await beside.sessions.get(id)).state, 'active');
  await beside.close();

  await kill();
  const { logger, lines } = memoryLogger();
  const app = await openBlufio({ dataDir: dir, logger, env: {} });
  try {
    for (const id of held.active) assert.equal((await app.sessions.get(id)).state, 'interrupted');
    assert.equal((await app.sessions.get(held.paused)).state, 'paused');
    assert.ok(lines().some((l) => l.level === 40 && l.count === 2), 'the recovery is logged');
    const resumed = await app.sessions.resume(held.active[0]!);
    assert.equal(resumed.state, 'active');
    assert.deepEqual((await app.messages.list(resumed.id)).map((m) => m.content), ['hello before the crash']);
    await app.messages.append(resumed.id, { role: 'assistant', content: 'welcome back' });
  } finally {
    await app.close();
  }
  // Closed cleanly: the resumed session stays active on the next open.
  const again = await openBlufio({ dataDir: dir, logger: silentLogger(), env: {} });
  assert.equal((await again.sessions.get(held.active[0]!)).state, 'active');
  assert.equal((await again.sessions.get(held.active[1]!)).state, 'interrupted');
  await again.close();
});
