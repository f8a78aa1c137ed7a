/** What every bench suite needs: a scratch directory and the disk's own fsync ceiling. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export const RUN_MS = Number(process.env.BLUFIO_BENCH_RUN_MS ?? 2000);

export function benchDir(): string {
  const base = process.env.BLUFIO_BENCH_DIR ?? os.tmpdir();
  return fs.mkdtempSync(path.join(base, 'blufio-bench-'));
}

/** The physical ceiling for "full": how many 4 KiB write+fdatasync pairs the disk does per second. */
export function fsyncRate(dir: string): number {
  const f = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(f, 'w');
  const buf = Buffer.alloc(4096, 7);
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < RUN_MS) {
    fs.writeSync(fd, buf, 0, buf.length, (n % 64) * 4096);
    fs.fdatasyncSync(fd);
    n++;
  }
  const rate = n / ((performance.now() - start) / 1000);
  fs.closeSync(fd);
  fs.rmSync(f);
  return rate;
}

