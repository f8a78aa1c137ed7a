import type { z } from 'zod';
import { AppError, ErrorCode, inspected } from '../errors/index.js';

/**
 * Validates the options object of a public function. TypeScript checks callers at compile
 * time, but JavaScript callers and values from JSON exist: a misspelt durability must not
 * silently become the weaker setting.
 */
export function checkOptions<T>(schema: z.ZodType<T>, value: unknown, fn: string): T {
  // Absent options are every default; null is refused, as by every other function (optionsObject).
  const r = inspected(`${fn}() options`, () => schema.safeParse(value === undefined ? {} : value));
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'options' : `option ${issue.path.map(String).join('.')}`;
  const what = issue?.code === 'unrecognized_keys' ? `unknown key ${issue.keys.join(', ')}` : issue?.message ?? 'is invalid';
  throw new AppError(ErrorCode.INVALID_INPUT, `${fn}(): ${where}: ${what}`);
}
