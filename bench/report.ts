/**
 * Bench results: one record per number, printed as JSON lines with --json (so runs can be
 * compared over time) or as aligned text with ratios against the peers of the same run.
 */
export interface Result {
  bench: string;
  case: string;
  subject: string;
  metric: string;
  value: number;
  unit: string;
}

export class Reporter {
  readonly results: Result[] = [];
  constructor(private readonly json: boolean) {}

  add(r: Result): void {
    this.results.push(r);
    if (this.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  }

  /** Human text only (goes to stderr under --json so stdout stays parseable). */
  say(line: string): void {
    (this.json ? process.stderr : process.stdout).write(`${line}\n`);
  }
}

export function fmt(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  if (n >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
