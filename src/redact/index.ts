/**
 * Redaction: secrets never reach a log line or a stored row. Known secret formats (RULES) and
 * the live set of vault values, matched in one pass; installed in the logger and applied to
 * everything the storage layer writes.
 */
export { Redactor, MIN_SECRET_LENGTH, firedRules, secretForms } from './redactor.js';
export { checkExtraRule } from './extra-rule.js';
export type { ExtraRule } from './extra-rule.js';
export { RULES } from './rules.js';
export { binaryKey, mayHoldBinary, renderBinary } from './binary.js';
export type { Rule } from './rules.js';
