// The IR in one import: node types and op signatures, shape rules, text printer and parser, verifier.
export * from './types.js';
export * from './shapes.js';
export * from './print.js';
export * from './parse.js';
export * from './verify.js';
export { GraphBuilder, type Dim } from './builder.js';
export * from './parallelism.js';
export * from './schedule.js';
export * from './formats.js';
