import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cleanEnv, fixture, tmpDir } from './helpers/index.js';

const haveStrace = spawnSync('strace', ['-V']).status === 0;

/**
 * Counts the fsync/fdatasync calls a child makes while it does 20 sequential writes, by tracing
 * it with strace: what "durability" promises is a sync before each answer, and only the system
 * calls show whether it happened.
 */
function syncsDuring(durability: string, kind: string): number {
  const dir = tmpDir();
  const log = path.join(dir, 'strace.log');
  const r = spawnSync(
    'strace',
    ['-f', '-qq', '-e', 'trace=fsync,fdatasync,write', '-e', 'signal=none', '-o', log, process.execPath, fixture('sync-probe'), path.join(dir, 'data'), durability, kind],
    { env: cleanEnv(), encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, `strace or the probe failed: ${r.stderr}`);
  const lines = fs.readFileSync(log, 'utf8').split('\n');
  const begin = lines.findIndex((l) => l.includes('"BEGIN\\n"'));
  const end = lines.findIndex((l) => l.includes('"END\\n"'));
  assert.ok(begin >= 0 && end > begin, 'the probe markers are in the trace');
  return lines.slice(begin, end).filter((l) => /\b(fsync|fdatasync)\(/.test(l)).length;
}

describe('durability, seen in the system calls', { skip: haveStrace ? false : 'strace is not installed (.ci/run installs it)' }, () => {
  it('at "normal" each sequential enqueue is synced before it is acknowledged; message appends are not', () => {
    assert.ok(syncsDuring('normal', 'enqueue') >= 20);
    assert.equal(syncsDuring('normal', 'append'), 0);
  });

  it('at "full" each sequential append is synced before it is acknowledged', () => {
    assert.ok(syncsDuring('full', 'append') >= 20);
  });
});
