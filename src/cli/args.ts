import { InvalidArgumentError } from 'commander';

/** A commander argument parser for a whole number from 1 to `max`. */
export function positiveInt(max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > max) throw new InvalidArgumentError(`must be an integer from 1 to ${max}`);
    return n;
  };
}
