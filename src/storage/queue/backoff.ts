/**
 * The wait before retry number `attempts` (1 for the first failure): exponential, capped, with
 * "equal jitter": a random point in the upper half of the window. Full jitter would spread
 * retries more, but could retry a tenth failure sooner than a first; with the upper half, until
 * the window reaches the cap every wait is at least as long as the one before it.
 */
export function retryDelay(attempts: number, baseMs: number, maxMs: number, random: number = Math.random()): number {
  const window = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 60));
  return Math.round(window / 2 + (random * window) / 2);
}
