export { openBlufio } from './open.js';
export type { BlufioApp, OpenOptions } from './open.js';
