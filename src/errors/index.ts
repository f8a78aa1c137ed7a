export { AppError, isAppError } from './app-error.js';
export type { AppErrorOptions } from './app-error.js';
export { ErrorCode } from './codes.js';
export type { ErrorCodeValue } from './codes.js';
export { checkInt, invalidInput, shown, shownText } from './input.js';
