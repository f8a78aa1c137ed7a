import { unlink } from 'node:fs/promises';

/**
 * Removes a file off the event loop (unlinking a multi-gigabyte file can take a while), quietly
 * when it is already gone; says whether it was there.
 */
export async function unlinkQuietly(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
