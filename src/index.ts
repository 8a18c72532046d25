// The package's public API: load a model and generate; compile model definitions and read their IR.
export { Model, loadModel, readCheckpoint, buildGraphs, defaultToggles, withContext, floatWeights, tensorFormats } from './api.js';
export type { Checkpoint, LoadOptions, LoadPhase, LoadProgress, LoadTimes, GenerateRequest, GeneratedToken } from './api.js';
export { memoryPlan, planAdapter, webgpuDefaultLimits, type MemoryPlan, type MemoryPlanOptions } from './memory-plan.js';
export type { GenerationStep, StopRule } from './runtime/generate.js';
export { Tokenizer, type SpecialTokens, type TextTokenizer, type TokenStream } from './runtime/tokenizer.js';
export { HfTokenizer } from './runtime/hf-tokenizer.js';
export { Sampler } from './runtime/sampler.js';
export { openAdapter, openGpu, type Adapter, type Gpu, type GpuOptions } from './runtime/gpu.js';
export { compileGraph } from './codegen/compile.js';
export type { Plan } from './runtime/plan.js';
export { llamaGraph, type ModelConfig, type GraphKind } from '../models/llama.js';
export { readLlama2c } from '../models/llama2c.js';
export * as ir from './ir/index.js';
