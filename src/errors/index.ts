export { AppError, isAppError } from './app-error.js';
export type { AppErrorOptions } from './app-error.js';
export { ErrorCode } from './codes.js';
export type { ErrorCodeValue } from './codes.js';
export { shellWord } from './shell-word.js';
export { checkInt, inspected, invalidInput, optionsObject, shown, shownText, thrownText } from './input.js';
export type { OptionNames } from './input.js';
