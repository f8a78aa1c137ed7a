import pino from 'pino';

export function silentLogger(): pino.Logger {
  return pino({ level: 'silent' });
}

/** A logger that keeps every line in memory, for tests that assert on what was logged. */
export function memoryLogger(level: pino.Level = 'trace'): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const logger = pino({ level }, { write: (s: string) => void out.push(s) });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}
