import { AppError, ErrorCode } from '../errors/index.js';
import { printable } from '../log/index.js';
import { Redactor } from '../redact/index.js';

export { printable };

export function truncate(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLines(lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** A span of time for people: `45s`, `3m 20s`, `5h 2m`, `2d 4h`. */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** An ISO time; one outside what a Date holds (a damaged row) is shown as the number it is. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `invalid time (${String(ms)})` : d.toISOString();
}

/** Aligns rows into columns; every cell must already be printable. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - [...c].length)))
      .join('  ');
  return [line(header), ...rows.map(line)];
}

/**
 * Text of an error for stderr: an error can quote what it refused (a config value under the
 * wrong key, an unknown option: a pasted API key), and stderr is a service's journal, so known
 * secret formats are redacted; control characters are escaped.
 */
export function errorText(text: string): string {
  return printable(new Redactor().redact(text));
}

/** Prints an error as `error[CODE]: message` (and its hint) and returns the exit code. */
export function reportError(err: unknown): number {
  const shown = errorText;
  if (err instanceof AppError) {
    process.stderr.write(`error[${err.code}]: ${shown(err.message)}\n`);
    if (err.hint !== undefined) process.stderr.write(`hint: ${shown(err.hint)}\n`);
    return err.code === ErrorCode.INTERNAL ? 70 : err.code === ErrorCode.CLI_USAGE ? 2 : 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error[${ErrorCode.INTERNAL}]: ${shown(message)}\n`);
  process.stderr.write('hint: this is a bug in blufio; run again with BLUFIO_DEBUG=1 for the stack trace and report it\n');
  if (process.env.BLUFIO_DEBUG === '1' && err instanceof Error && err.stack !== undefined) {
    // The stack's first line repeats the message: redacted the same way (newlines kept).
    process.stderr.write(`${err.stack.split('\n').map(shown).join('\n')}\n`);
  }
  return 70;
}
