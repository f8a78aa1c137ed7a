import { inspect } from 'node:util';
import { privateBytes } from './seal.js';

const REDACTED = '[REDACTED]';

/**
 * A secret value that prints, logs and serialises as `[REDACTED]`. Only `expose()` gives the
 * value, so every place that uses one is easy to find. The bytes live in a Buffer that `wipe()`
 * zeroes; the string `expose()` returns is an ordinary JavaScript string, which no one can wipe
 * (see the README on what JavaScript cannot guarantee).
 */
export class Secret {
  readonly #bytes: Buffer;
  #wiped = false;

  constructor(value: Buffer | string) {
    this.#bytes = typeof value === 'string' ? privateBytes(value) : value;
  }

  expose(): string {
    if (this.#wiped) throw new Error('this secret was wiped');
    return this.#bytes.toString('utf8');
  }

  /** The bytes themselves (not a copy): zeroed by wipe(). */
  exposeBytes(): Buffer {
    if (this.#wiped) throw new Error('this secret was wiped');
    return this.#bytes;
  }

  wipe(): void {
    this.#bytes.fill(0);
    this.#wiped = true;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
