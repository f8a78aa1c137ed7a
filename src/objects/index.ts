export { ObjectStore, OBJECTS_KEY_LABEL } from './store.js';
export type { ObjectInfo, ObjectStats, PutOptions, PutResult, ObjectStoreDeps } from './store.js';
export type { ObjectSource } from './source.js';
export type { GcReport } from './gc.js';
export type { VerifyReport, VerifyProblem } from './verify.js';
