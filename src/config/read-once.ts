import fs from 'node:fs';

/**
 * Opens `file` once and reads what was opened: `check` judges the path's stat before the open,
 * and the opened file's own if that is another file (one swapped in between), then at most
 * `maxBytes + 1` bytes are read whatever size it claims (a /proc file says 0; one byte more shows
 * that it is larger). O_NONBLOCK: a FIFO put there does not hang the open (check refuses it).
 * Errors of the file system are thrown as they are; the caller names them. On any failure the
 * bytes read so far are zeroed: the file may hold a secret.
 */
export function readOnce(file: string, maxBytes: number, check: (st: fs.Stats) => void): { data: Buffer; st: fs.Stats } {
  // Judged by the path first, so that what check refuses (a socket, a device) is never opened:
  // opening one can fail with an error that says less (ENXIO) or do something of its own.
  const before = fs.statSync(file);
  check(before);
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const raw = Buffer.alloc(maxBytes + 1);
  try {
    const st = fs.fstatSync(fd);
    // Then the file opened: the one judged, or judged again if it was swapped meanwhile.
    if (st.dev !== before.dev || st.ino !== before.ino) check(st);
    let n = 0;
    for (let got = -1; got !== 0 && n < raw.length; n += got) got = fs.readSync(fd, raw, n, raw.length - n, n);
    return { data: raw.subarray(0, n), st };
  } catch (err) {
    raw.fill(0);
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}
