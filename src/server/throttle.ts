/** The wait after the first failure; each further failure doubles it. */
const BASE_MS = 500;
const MAX_MS = 5 * 60_000;

/**
 * Repeated failed vault_unlock attempts slow down exponentially: after n failures in a row the
 * next attempt is refused until 500 ms x 2^(n-1) (at most five minutes) have passed, and only one
 * attempt runs at a time, so parallel guesses gain nothing. A success starts over.
 */
export class UnlockThrottle {
  private failures = 0;
  private notBefore = 0;
  private running = false;

  /** undefined: go ahead (and call end()); otherwise refused: try again after `waitMs`. */
  begin(now = Date.now()): { waitMs: number; busy: boolean } | undefined {
    if (this.running) return { waitMs: Math.max(BASE_MS, this.notBefore - now), busy: true };
    if (now < this.notBefore) return { waitMs: this.notBefore - now, busy: false };
    this.running = true;
    return undefined;
  }

  /** ok: the passphrase fitted; false: it did not; undefined: the attempt failed for another reason (counts neither way). */
  end(ok: boolean | undefined, now = Date.now()): void {
    this.running = false;
    if (ok === undefined) return;
    if (ok) {
      this.failures = 0;
      this.notBefore = 0;
      return;
    }
    this.failures++;
    this.notBefore = now + Math.min(MAX_MS, BASE_MS * 2 ** Math.min(this.failures - 1, 30));
  }

  get failedAttempts(): number {
    return this.failures;
  }
}
