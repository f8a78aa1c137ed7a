import fs from 'node:fs';

/*
 * POSIX locks belong to the process, not to a descriptor: closing any descriptor of a file drops
 * every lock the process holds on it, SQLite's included. SQLite knows and never closes a
 * descriptor of a file while another of its connections in the process holds locks on it; a
 * plain fs read of a database this process has open (its header, for whether it is encrypted)
 * must not close one either, or another process could take the file for unused (the last
 * connection, which checkpoints and deletes the WAL under this one's feet).
 *
 * So: while a Storage of this process has a database file open, a descriptor opened here to
 * read that file is kept (one per file, reused by later reads) and closed only after the last
 * such Storage has closed its connections.
 */

/** dev:ino → how many Storages of this process have the file open. */
const inUse = new Map<string, number>();
/**
 * dev:ino → the descriptors kept while the file is in use: one, reused by every read, unless a
 * race (the path missing at the stat, there at the open) opened a second, which is kept too.
 */
const kept = new Map<string, number[]>();

function keyOf(st: fs.Stats): string {
  return `${st.dev}:${st.ino}`;
}

/** Says that this process now has `file` open through SQLite; call the result once it has closed it. */
export function noteDatabaseOpen(file: string): () => void {
  let key: string;
  try {
    key = keyOf(fs.statSync(file));
  } catch {
    return () => undefined;
  }
  inUse.set(key, (inUse.get(key) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const n = (inUse.get(key) ?? 1) - 1;
    if (n > 0) {
      inUse.set(key, n);
      return;
    }
    inUse.delete(key);
    for (const fd of kept.get(key) ?? []) fs.closeSync(fd);
    kept.delete(key);
  };
}

/**
 * Runs `read` on a descriptor of `file` opened by `open` (which may throw, or return undefined
 * for a missing file), never closing one of a file this process has open through SQLite.
 */
export function withFileDescriptor<T>(file: string, open: () => number | undefined, read: (fd: number) => T): T | undefined {
  let key: string | undefined;
  try {
    key = keyOf(fs.statSync(file));
  } catch {
    key = undefined;
  }
  const reuse = key === undefined ? undefined : kept.get(key)?.[0];
  if (reuse !== undefined) return read(reuse);
  const fd = open();
  if (fd === undefined) return undefined;
  const own = keyOf(fs.fstatSync(fd));
  try {
    return read(fd);
  } finally {
    if ((inUse.get(own) ?? 0) > 0) kept.set(own, [...(kept.get(own) ?? []), fd]);
    else fs.closeSync(fd);
  }
}
