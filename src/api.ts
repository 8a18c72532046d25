// The programmatic API: load a checkpoint onto the GPU, generate as an async iterator, release.
// Glue between model definitions and checkpoint formats (models/), the compiler (ir, codegen) and the runtime.
import type { GraphKind, ModelConfig } from '../models/llama.js';
import { checkpointTokenizer, readCheckpointFile, type Checkpoint, type CheckpointFile } from '../models/checkpoint.js';
import { definitions } from '../models/families/index.js';
import * as A from './affine.js';
import { bytesPerElement, graphStats, type GraphStats } from './codegen/stats.js';
import { compileGraph, defaultCodegenOptions, type CodegenOptions } from './codegen/compile.js';
import type { MatmulKind } from './codegen/linear/index.js';
import { int8MatrixDevice } from './codegen/linear/spec.js';
import { defaultPassContext, type Pass, type PassContext } from './passes/pass.js';
import { pipeline } from './passes/pipeline.js';
import { runPipeline, type PipelineChecks } from './passes/run-pipeline.js';
import type { Graph } from './ir/types.js';
import { verifyGraph } from './ir/verify.js';
import { parseModule } from './ir/parse.js';
import { formatType } from './ir/shapes.js';
import { PlanExecutor, ResidentBuffers, type RunCost } from './runtime/executor.js';
import type { Plan } from './runtime/plan.js';
import {
  checkGenerateOptions,
  DEFAULT_DECODE_RUN_MS,
  DEFAULT_PREFILL_CHUNK,
  generateSteps,
  type GenerateOptions,
  type GenerationStep,
} from './runtime/generate.js';
import { openGpu, type Gpu } from './runtime/gpu.js';
import { weightFormats, type FormatName } from './weights/formats.js';
import { bytesSource, sourceRows, sourceValues, type TensorSource } from './weights/source.js';
import { generatorState } from './runtime/sampler.js';
import { concatBytes, type TextTokenizer } from './runtime/tokenizer.js';
import { chatFiles, ChatSession, type ChatOptions, type ChatReply } from './chat.js';
import { findChatTemplate, type ChatMessage, type ChatTemplate } from '../models/chat-template.js';
import { readRegularFile } from './file-input.js';

export { readCheckpoint, type Checkpoint } from '../models/checkpoint.js';

/** A checkpoint with the weights its model definition computes (a llama checkpoint's RoPE tables) at its context, computed when uploaded. */
export function withRopeTables(checkpoint: Checkpoint): Checkpoint {
  const c = checkpoint.config;
  return { ...checkpoint, tensors: new Map([...checkpoint.tensors, ...definitions[c.family].computedWeights(c)]) };
}

/** The prefill and decode graphs of a model as the model definition writes them, verified. */
export function buildGraphs(config: ModelConfig): Record<GraphKind, Graph> {
  const define = definitions[config.family].graph;
  const graphs = { prefill: define(config, 'prefill'), decode: define(config, 'decode') };
  verifyGraph(graphs.prefill);
  verifyGraph(graphs.decode);
  return graphs;
}

/** `f()`; an error it throws is prefixed with `path: `, the file it is about. */
export function aboutFile<T>(path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** The graphs of an IR text file, in order, each verified; errors name the file, and the line where its text is malformed. */
export function readGraphFile(path: string): Graph[] {
  const graphs = parseModule(new TextDecoder().decode(readRegularFile(path, 'IR file')), path);
  if (graphs.length === 0) throw new Error(`${path}: holds no graph`);
  const names = new Set<string>();
  for (const g of graphs) {
    if (names.has(g.name)) {
      throw new Error(
        `${path}: holds two graphs named ${g.name}; give each graph once (--dump-after prints each dump before the final graph: --dump-dir writes them to files of their own)`,
      );
    }
    names.add(g.name);
    aboutFile(path, () => verifyGraph(g));
  }
  return graphs;
}

/** The graphs of these names, in this order. */
export function pickGraphs(graphs: readonly Graph[], names: readonly string[], path: string): Graph[] {
  return names.map((name) => {
    const g = graphs.find((x) => x.name === name);
    if (!g) throw new Error(`${path}: holds no graph named ${name} (its graphs: ${graphs.map((x) => x.name).join(', ')})`);
    return g;
  });
}

/**
 * Checks that a graph can run on a checkpoint in place of the model definition's graph of its name: each weight is
 * built from checkpoint tensors of its shape (stacked ones: their rows add up to its rows), each state and input is one
 * the definition declares, of its type, every input the definition feeds is declared, and the outputs have its types.
 */
function checkDeclarations(g: Graph, tensors: ReadonlyMap<string, TensorSource>, model: Graph): void {
  const fail = (msg: string): never => {
    throw new Error(`graph ${g.name}: ${msg}`);
  };
  const modelDecls = new Map(model.decls.map((d) => [d.name, d]));
  for (const d of g.decls) {
    const what = `${d.kind} %${d.name}`;
    if (d.kind === 'weight') {
      const sources = d.from ?? [d.name];
      const shapes = sources.map((n) => tensors.get(n)?.shape ?? fail(`${what} is built from ${n}, which the checkpoint does not hold`));
      const tensorType = (shape: readonly number[]): string => formatType({ dtype: 'f32', shape: shape.map(A.constant) });
      const rows = (s: readonly number[]): string => tensorType(s.slice(1));
      const odd = shapes.findIndex((s) => s.length !== shapes[0]!.length || rows(s) !== rows(shapes[0]!));
      if (odd >= 0) fail(`${what} stacks the checkpoint's ${sources[0]}, ${tensorType(shapes[0]!)}, and ${sources[odd]}, ${tensorType(shapes[odd]!)}`);
      const stacked = tensorType([shapes.reduce((n, s) => n + (s[0] ?? 1), 0), ...shapes[0]!.slice(1)]);
      if (formatType(d.type) !== stacked) {
        fail(`${what} is ${formatType(d.type)}; the checkpoint's ${sources.join(', ')} ${sources.length === 1 ? 'is' : 'stack to'} ${stacked}`);
      }
      continue;
    }
    const own = modelDecls.get(d.name);
    if (own?.kind !== d.kind) fail(`${what}: the model has no ${d.kind} of that name`);
    if (formatType(own!.type) !== formatType(d.type)) fail(`${what} is ${formatType(d.type)}; the model's is ${formatType(own!.type)}`);
  }
  const declared = new Set(g.decls.map((d) => d.name));
  for (const d of model.decls) if (d.kind === 'input' && !declared.has(d.name)) fail(`declares no input %${d.name}, which every run feeds`);
  const outputTypes = (x: Graph): string => x.outputs.map((o) => formatType([...x.decls, ...x.nodes].find((v) => v.name === o)!.type)).join(', ');
  if (outputTypes(g) !== outputTypes(model)) fail(`its outputs are ${outputTypes(g) || 'none'}; the model's are ${outputTypes(model)}`);
}

/** The graphs LoadOptions.ir names, checked against the checkpoint's tensors and the model definition's graphs. */
function readGraphPair(path: string, tensors: ReadonlyMap<string, TensorSource>, model: Record<GraphKind, Graph>): Record<GraphKind, Graph> {
  const [prefill, decode] = pickGraphs(readGraphFile(path), ['prefill', 'decode'], path) as [Graph, Graph];
  aboutFile(path, () => {
    checkDeclarations(prefill, tensors, model.prefill);
    checkDeclarations(decode, tensors, model.decode);
  });
  return { prefill, decode };
}

/** Both graphs after the passes (default: the whole pipeline), verified as `checks` says (runPipeline). */
export function optimizeGraphs(
  config: ModelConfig,
  passes: readonly Pass[] = pipeline,
  ctx: PassContext = defaultPassContext,
  graphs: Record<GraphKind, Graph> = buildGraphs(config),
  checks: PipelineChecks = 'every-pass',
): Record<GraphKind, Graph> {
  return { prefill: runPipeline(graphs.prefill, passes, ctx, undefined, checks), decode: runPipeline(graphs.decode, passes, ctx, undefined, checks) };
}

/**
 * Dawn toggles a model is loaded with unless the caller names others: every weft kernel guards its own
 * indices, so the bounds clamps Dawn's robustness adds to each access only cost time (1B decode steps
 * 12% faster on OpenGL ES).
 */
export const defaultToggles: readonly string[] = ['disable_robustness'];

/**
 * Toggles added where int8 tiles on subgroup matrices are asked for (kernels.int8Matrix): Dawn offers
 * `chromium-experimental-subgroup-matrix` (the tensor cores) only with unsafe APIs allowed and the Vulkan memory model
 * on; other loads keep the shader code they had.
 */
export const int8Toggles: readonly string[] = ['allow_unsafe_apis', 'use_vulkan_memory_model'];

export interface LoadOptions {
  /** tokenizer file (llama2.c .bin, or Hugging Face .json); defaults to tokenizer.json in a checkpoint folder, else tokenizer.bin beside the checkpoint */
  readonly tokenizer?: string;
  /** chat template file (Jinja); defaults to the checkpoint's own (chat_template.jinja, tokenizer_config.json's, or GGUF's) */
  readonly template?: string;
  /** Dawn backend; defaults to the first that works */
  readonly backend?: string;
  /** the passes to compile with (default: the whole pipeline, or none for `ir`'s graphs; [] runs one kernel per op) */
  readonly passes?: readonly Pass[];
  /**
   * an IR text file holding graphs named prefill and decode (as `weft compile` prints them, edited or not) to run
   * instead of the model definition's: verified, and its declarations checked against the checkpoint's tensors and
   * the definition's states, inputs and outputs; compiled as written unless `passes` names passes
   */
  readonly ir?: string;
  /** Dawn toggles to enable (default: defaultToggles; [] for none) */
  readonly toggles?: readonly string[];
  /** the most positions a generation may use, below the model's own context: a smaller KV cache and position tables */
  readonly context?: number;
  /** the format matmul weights (the classifier included) are converted to on load (default: each kept in its file's format; embedding tables always are) */
  readonly weights?: FormatName;
  /** called as weights reach the device (bytes so far, of how many), then as pipelines compile (pipelines so far, of how many) */
  readonly onProgress?: LoadProgress;
  /** kernel choices (see CodegenOptions): the K from which decode matmuls split K, prefill K splits, the shape of attention tiles, subgroups */
  readonly kernels?: Partial<
    Pick<CodegenOptions, 'splitKFrom' | 'splitK' | 'attentionTile' | 'attentionGroupFrom' | 'attentionRows' | 'subgroups' | 'int8Matrix'>
  >;
  /**
   * how matmuls multiply: int8 quantizes activations per row and 32-wide block (as llama.cpp's q8_1) and multiplies
   * them by the weights' int8 blocks (Q8_0, Q4_0, k-quants), in prefill and decode, float matrices held as Q8_0;
   * float multiplies in float32; auto (the default) is int8 for quantized weights and float32 for float ones
   */
  readonly matmul?: MatmulKind;
  /**
   * the most prompt tokens one prefill run takes (default 512): a longer prompt runs as several, so that prefill's
   * activations (the classifier's logits among them where every row's are asked for) are sized for a chunk
   */
  readonly prefillChunk?: number;
  /**
   * the GPU time, in milliseconds, a run of greedy decode steps may hold (default 8): one command buffer takes
   * up to 8 steps where a step is short (a submit's host cost paid once for them), one where it is long, so that a
   * stop or an abort waits out little GPU work on any device
   */
  readonly decodeRunMs?: number;
}

/**
 * Seconds Model.load spent: reading the checkpoint and building the graphs (`read`), opening the device, running
 * the passes and codegen (`compile`), uploading weights and states (the decode graph's pipelines compile
 * meanwhile), and waiting for the decode pipelines the upload's time did not cover (`pipelines`; the prefill
 * graph's compile after them and are awaited by the first prefill run).
 */
export interface LoadTimes {
  readonly read: number;
  readonly device: number;
  readonly compile: number;
  readonly upload: number;
  readonly pipelines: number;
}

/** What Model.load is doing: uploading weights and states, then compiling each distinct decode kernel's pipeline. */
export type LoadPhase = 'upload' | 'compile';

/** Progress of Model.load: `done` of `total` (bytes while uploading, pipelines while compiling), and the weight or kernel just done. */
export type LoadProgress = (done: number, total: number, name: string, phase: LoadPhase) => void;

/** What compiling for a device needs of it: the limits passes and codegen size kernels by, and its kind of adapter. */
export interface CompileTarget {
  readonly limits: Pick<
    GPUSupportedLimits,
    'maxStorageBuffersPerShaderStage' | 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX' | 'maxComputeWorkgroupStorageSize'
  >;
  readonly fallback: boolean;
  readonly subgroups: boolean;
  /** the device's subgroup matrices (Gpu.subgroupMatrix); none where absent */
  readonly subgroupMatrix?: Gpu['subgroupMatrix'];
}

/** Codegen options for a device: its workgroup limits, and the caller's choices. */
export function codegenOptions(gpu: CompileTarget, options: LoadOptions = {}): CodegenOptions {
  return {
    ...defaultCodegenOptions,
    // a CPU adapter pays for each workgroup barrier: decode matmuls as columns (6× faster on SwiftShader), unless asked otherwise
    ...(gpu.fallback ? { splitKFrom: Number.POSITIVE_INFINITY } : {}),
    ...options.kernels,
    matmul: options.matmul ?? 'auto',
    // subgroup operations where the device has them (in the layout the kernels assume), unless asked not to
    subgroups: gpu.subgroups && options.kernels?.subgroups !== false,
    // int8 tiles on subgroup matrices only when asked for: exact on an H100, but slower there than the dot4 tiles (BENCHMARKS.md)
    int8Matrix:
      options.kernels?.int8Matrix === true &&
      int8MatrixDevice(gpu.subgroupMatrix?.configs ?? [], gpu.subgroupMatrix?.subgroupSize, gpu.subgroupMatrix?.int8Unit),
    int8MatrixUnit: gpu.subgroupMatrix?.int8Unit ?? 'int8',
    maxInvocations: Math.min(gpu.limits.maxComputeInvocationsPerWorkgroup, gpu.limits.maxComputeWorkgroupSizeX),
    maxWorkgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize,
  };
}

/**
 * How graphs compile on a device of these limits, with weights as `tensors` holds them (none: float32, as IR text
 * declares them) unless options.weights converts them: the context the passes see and the codegen options.
 */
export function compileOptions(
  gpu: CompileTarget,
  options: LoadOptions = {},
  tensors: ReadonlyMap<string, TensorSource> = new Map(),
): { context: PassContext; codegen: CodegenOptions } {
  checkMatmul(options);
  // stacking sees the formats matmul weights will have; codegen converts only matmul weights, and keeps
  // embedding tables (read one row per token) as stored
  return {
    context: { maxStorageBuffers: gpu.limits.maxStorageBuffersPerShaderStage, formats: tensorFormats(tensors, options.weights) },
    codegen: { ...codegenOptions(gpu, options), formats: tensorFormats(tensors), ...(options.weights ? { convert: options.weights } : {}) },
  };
}

/** Throws where int8 matmuls are asked for over weights converted to a format without int8 blocks. */
function checkMatmul(options: LoadOptions): void {
  if (options.matmul === 'int8' && options.weights !== undefined && weightFormats[options.weights].wgsl.int8 === undefined) {
    const int8 = Object.values(weightFormats).flatMap((f) => (f.wgsl.int8 ? [f.name] : []));
    throw new Error(`int8 matmuls multiply int8 blocks, and ${options.weights} weights have none (formats with them: ${int8.join(', ')})`);
  }
}

/**
 * The plans Model.load compiles for a configuration, with weights in `formats`, on a device of these limits:
 * both graphs through the passes (fusing within its storage buffers per kernel), then codegen. Graphs read from
 * options.ir compile as written unless options.passes names passes.
 */
export function compilePlans(
  config: ModelConfig,
  tensors: ReadonlyMap<string, TensorSource>,
  gpu: CompileTarget,
  options: LoadOptions = {},
  built: Record<GraphKind, Graph> = buildGraphs(config),
): { graphs: Record<GraphKind, Graph>; plans: Record<GraphKind, Plan>; codegen: CodegenOptions } {
  const { context, codegen } = compileOptions(gpu, options, tensors);
  const graphs = optimizeGraphs(config, options.passes ?? (options.ir !== undefined ? [] : pipeline), context, built, 'ends');
  return { graphs, plans: { prefill: compileGraph(graphs.prefill, codegen), decode: compileGraph(graphs.decode, codegen) }, codegen };
}

/**
 * A checkpoint with its matmul weights (those its model definition quantizes: a llama checkpoint's wq … w3 of every
 * layer, and the classifier; not the embedding table) quantized by ggml's reference quantizer, as llama.cpp's converter
 * would, and held as blocks in memory. Weights whose rows are not whole blocks stay as they are.
 */
export function quantizeCheckpoint<C extends Checkpoint>(checkpoint: C, type: FormatName): C {
  const quantizedWeight = definitions[checkpoint.config.family].quantized;
  if (!quantizedWeight) {
    const quantizable = Object.entries(definitions).flatMap(([family, d]) => (d.quantized ? [`${family}-family`] : []));
    throw new Error(`quantizing: only ${quantizable.join(' and ')} checkpoints, not ${checkpoint.config.family}`);
  }
  const format = weightFormats[type];
  const tensors = new Map(checkpoint.tensors);
  for (const [name, source] of checkpoint.tensors) {
    if (!quantizedWeight.test(name) || source.shape.length !== 2 || source.shape[1]! % format.blockElements !== 0) continue;
    tensors.set(name, bytesSource(format.encode(sourceValues(source)), source.shape, format));
  }
  return { ...checkpoint, tensors };
}

/**
 * Every tensor of a checkpoint as float32 values on the host, RoPE tables included: for engines and references
 * that take float weights (the bench's peers, tests), never for weft's own loading.
 */
export function floatWeights(checkpoint: Checkpoint): Map<string, Float32Array> {
  return new Map([...withRopeTables(checkpoint).tensors].map(([name, t]) => [name, sourceValues(t)]));
}

/**
 * A checkpoint whose context is cut to `context` positions (at most its own), and its definition's position tables
 * to as many rows (GPT-2's learned positions; RoPE tables are computed at the context).
 */
export function withContext<C extends Checkpoint>(checkpoint: C, context: number): C {
  const seqLen = checkpoint.config.seqLen;
  if (!Number.isInteger(context) || context < 1) throw new Error(`context must be a positive whole number, got ${context}`);
  if (context > seqLen) throw new Error(`context ${context} is beyond the model's context of ${seqLen} positions`);
  const tensors = new Map(checkpoint.tensors);
  for (const name of definitions[checkpoint.config.family].positionTables) {
    const table = tensors.get(name);
    if (table) tensors.set(name, sourceRows(table, 0, context));
  }
  return { ...checkpoint, config: { ...checkpoint.config, seqLen: context }, tensors };
}

/**
 * The device format of each matrix (2-D) tensor: the one asked for, else its own. The compiler keeps a weight
 * in it where the kernels reading it decode formats, float32 elsewhere.
 */
export function tensorFormats(tensors: ReadonlyMap<string, TensorSource>, wanted?: FormatName): Map<string, FormatName> {
  const formats = new Map<string, FormatName>();
  for (const [name, t] of tensors) {
    if (t.shape.length !== 2) continue;
    const format = wanted && t.shape[1]! % weightFormats[wanted].blockElements === 0 ? wanted : t.format.name;
    formats.set(name, format);
  }
  return formats;
}

export interface GenerateRequest {
  /** text, encoded with BOS first (needs a tokenizer) */
  readonly prompt?: string;
  /** token ids fed exactly as given */
  readonly promptIds?: readonly number[];
  /** positions to run, prompt included; default 256 (as run.c), capped at the context length; 0 is the whole context */
  readonly steps?: number;
  /** 0 is greedy; default 1 */
  readonly temperature?: number;
  /** nucleus sampling threshold; default 0.9; 0 or 1 samples the whole distribution */
  readonly topp?: number;
  /** run.c's -s: the generator starts from its low 32 bits sign-extended; default (and 0): the current time in seconds */
  readonly seed?: number;
  /** attach each position's logits */
  readonly logits?: boolean;
  /**
   * keep what the KV cache holds from the model's last generation: prefill only the prompt ids after the longest
   * prefix of them it already holds (a conversation's next turn); `steps` still counts from position 0
   */
  readonly reuseCache?: boolean;
  /** ids that end generation, instead of the model's own */
  readonly stop?: readonly number[];
  /** ends the generation between two steps, with the signal's reason as the error */
  readonly signal?: AbortSignal;
}

/** run.c's default -n */
const defaultSteps = 256;

/** A checkpoint and its tokenizer, read and checked on the CPU: what Model.load uploads. */
export interface ModelFiles extends Checkpoint {
  readonly tokenizer: TextTokenizer | undefined;
  /** how a conversation is written as a prompt, where the checkpoint (or LoadOptions.template) has one */
  readonly chatTemplate?: ChatTemplate;
  /** why the checkpoint's own chat template cannot be used */
  readonly chatTemplateError?: string;
}

/**
 * Reads a checkpoint, its tokenizer (options.tokenizer, else a GGUF checkpoint's own, else tokenizer.json inside a checkpoint folder, else
 * tokenizer.bin beside the checkpoint, when present) and its chat template; opens no GPU.
 */
export function readModelFiles(path: string, options: LoadOptions = {}): ModelFiles {
  const file = readCheckpointFile(path);
  return { ...file.checkpoint, tokenizer: checkpointTokenizer(path, file, options.tokenizer), ...readChatTemplate(file.chatTemplate, options.template) };
}

/**
 * A checkpoint's chat template, or a template file's. A checkpoint's own that does not compile stops a chat, not a
 * plain generation: its error is kept for the chat to report.
 */
function readChatTemplate(checkpoint: CheckpointFile['chatTemplate'], file: string | undefined): Pick<ModelFiles, 'chatTemplate' | 'chatTemplateError'> {
  if (file !== undefined) return { chatTemplate: findChatTemplate(checkpoint, { templateFile: file }) };
  try {
    const chatTemplate = findChatTemplate(checkpoint);
    return chatTemplate ? { chatTemplate } : {};
  } catch (e) {
    return { chatTemplateError: (e as Error).message };
  }
}

/** The prompt when none is given: the model's BOS alone, as run.c starts. */
function bosPrompt(config: ModelConfig): number[] {
  if (config.bosId === undefined) throw new Error(`this model has no BOS token to start from: give --prompt or --prompt-ids`);
  return [config.bosId];
}

/** Encodes text as run.c does: BOS, the dummy-prefix space, BPE merges. */
function encodePrompt(tokenizer: TextTokenizer | undefined, text: string): number[] {
  if (!tokenizer) throw new Error(`a text prompt needs a tokenizer (--tokenizer FILE), or give --prompt-ids`);
  return tokenizer.encode(text, true);
}

/** The generation a request asks of a model: the prompt encoded, defaults filled in, every value checked. Opens no GPU. */
export function resolveRequest(
  model: { readonly config: ModelConfig; readonly tokenizer: TextTokenizer | undefined },
  request: GenerateRequest = {},
): GenerateOptions {
  if (request.prompt !== undefined && request.promptIds !== undefined) throw new Error(`give a prompt or prompt ids, not both`);
  const options: GenerateOptions = {
    promptIds: request.promptIds ?? (request.prompt !== undefined ? encodePrompt(model.tokenizer, request.prompt) : bosPrompt(model.config)),
    steps: request.steps === undefined ? Math.min(defaultSteps, model.config.seqLen) : request.steps === 0 ? model.config.seqLen : request.steps,
    temperature: request.temperature ?? 1,
    topp: request.topp ?? 0.9,
    seed:
      request.seed === undefined || (Number.isSafeInteger(request.seed) && generatorState(request.seed) === 0n) ? Math.floor(Date.now() / 1000) : request.seed,
    logits: request.logits,
    ...(request.stop ? { stop: { ids: request.stop, inPrompt: false } } : model.config.stop ? { stop: model.config.stop } : {}),
    ...(request.signal ? { signal: request.signal } : {}),
  };
  checkGenerateOptions(options, model.config.vocabSize, model.config.seqLen);
  return options;
}

export interface GeneratedToken extends GenerationStep {
  /**
   * the bytes `next` makes printable: run.c's for a llama2.c tokenizer (empty for BOS and unprintable bytes);
   * whole UTF-8 sequences for the others, held back until complete (the last step gives what is left)
   */
  readonly piece: Uint8Array;
}

export class Model {
  private constructor(
    readonly config: ModelConfig,
    readonly tokenizer: TextTokenizer | undefined,
    private readonly files: Pick<ModelFiles, 'chatTemplate' | 'chatTemplateError'>,
    private readonly gpu: Gpu,
    private readonly resident: ResidentBuffers,
    /** each graph's plan */
    private readonly plans: Readonly<Record<GraphKind, Plan>>,
    /** each graph's executor, once its pipelines are made (the decode graph's before load returns: see load) */
    private readonly executors: Readonly<Record<GraphKind, Promise<PlanExecutor>>>,
    private readonly graphs: Record<GraphKind, Graph>,
    /** the kernels reduce with subgroup operations */
    readonly subgroups: boolean,
    /** int8 tiles multiply on subgroup matrices (where int8 matmuls were asked for) */
    readonly int8Matrix: boolean,
    /** the most prompt tokens one prefill run takes (LoadOptions.prefillChunk) */
    readonly prefillChunk: number,
    /** the GPU time a run of greedy decode steps may hold (LoadOptions.decodeRunMs) */
    readonly decodeRunMs: number,
    /** where Model.load's time went */
    readonly loadTimes: LoadTimes,
  ) {
    for (const kind of ['prefill', 'decode'] as const) {
      executors[kind].then(
        (exec) => (this.made[kind] = exec),
        () => {},
      );
    }
  }

  /** the executors made so far, to release */
  private readonly made: Partial<Record<GraphKind, PlanExecutor>> = {};

  /**
   * The ids whose keys and values the KV cache holds at positions 0, 1, …: what the last generation fed and
   * read back. Positions a generation ran past its last step (greedy steps run ahead) are not counted.
   */
  private cached: number[] = [];

  /** Uploads a checkpoint (a path, or files already read with readModelFiles) and compiles its plans. */
  static async load(source: string | ModelFiles, options: LoadOptions = {}): Promise<Model> {
    const times = { read: 0, device: 0, compile: 0, upload: 0, pipelines: 0 };
    let lap = performance.now();
    const timed = (phase: keyof LoadTimes): void => {
      const now = performance.now();
      times[phase] += (now - lap) / 1000;
      lap = now;
    };
    const files = typeof source === 'string' ? readModelFiles(source, options) : source;
    const cut = options.context === undefined ? files : withContext(files, options.context);
    const { config, tensors } = withRopeTables(cut);
    // a model the IR rejects, graphs that do not fit the checkpoint, or options that do not fit together fail before the GPU opens
    checkMatmul(options);
    const prefillChunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
    if (!Number.isSafeInteger(prefillChunk) || prefillChunk < 1)
      throw new Error(`the prefill chunk must be a positive whole number of tokens, got ${prefillChunk}`);
    const decodeRunMs = options.decodeRunMs ?? DEFAULT_DECODE_RUN_MS;
    if (!(decodeRunMs > 0) || !Number.isFinite(decodeRunMs))
      throw new Error(`the decode run time must be a positive number of milliseconds, got ${decodeRunMs}`);
    const model = buildGraphs(config);
    const built = options.ir !== undefined ? readGraphPair(options.ir, tensors, model) : model;
    timed('read');
    const gpu = await openGpu({
      backend: options.backend,
      toggles: options.toggles ?? [...defaultToggles, ...(options.kernels?.int8Matrix ? int8Toggles : [])],
    });
    timed('device');
    let resident: ResidentBuffers | undefined;
    try {
      const compile = () => compilePlans(config, tensors, gpu, options, built);
      const { graphs, plans, codegen } = options.ir !== undefined ? aboutFile(options.ir, compile) : compile();
      timed('compile');
      const progress = options.onProgress;
      const pipelines = PlanExecutor.pipelineCount(plans.decode);
      let compiled = 0;
      // pipelines made while the weights upload are reported once the upload's progress ends
      let uploading = true;
      const early: string[] = [];
      const onPipeline = progress && ((name: string) => (uploading ? early.push(name) : progress(++compiled, pipelines, name, 'compile')));
      // Every generation past its first token needs the decode graph, and a one-token prompt needs nothing else
      // (generate runs it as a decode step), so the decode graph's pipelines are asked for first, before the
      // upload: Dawn compiles them on its worker threads while the host uploads, and load returns once they are
      // made. The prefill graph's are asked for after them, to compile while the upload or the first steps run;
      // the first prefill run awaits them (and meets any error in making them). Decode's compile the sooner: GEMVs
      // rather than tiles (the 260K demo's 9 at once: 97 ms on SwiftShader, 200 ms on an H100 with a cold shader
      // cache; prefill's 8: 365 and 547 ms).
      const decodePipelines = PlanExecutor.pipelines(gpu, plans.decode, onPipeline);
      const prefillPipelines = decodePipelines.then(() => PlanExecutor.pipelines(gpu, plans.prefill));
      // rejections are met where the pipelines are awaited below (or not at all where the upload fails first or
      // a model never prefills)
      decodePipelines.catch(() => {});
      prefillPipelines.catch(() => {});
      resident = new ResidentBuffers(gpu, tensors);
      await resident.upload([plans.prefill, plans.decode], progress && ((done, total, name) => progress(done, total, name, 'upload')));
      uploading = false;
      for (const name of early) progress?.(++compiled, pipelines, name, 'compile');
      timed('upload');
      const decode = await PlanExecutor.create(gpu, plans.decode, resident, decodePipelines);
      const prefill = PlanExecutor.create(gpu, plans.prefill, resident, prefillPipelines);
      prefill.catch(() => {});
      timed('pipelines');
      return new Model(
        config,
        cut.tokenizer,
        { chatTemplate: cut.chatTemplate, chatTemplateError: cut.chatTemplateError },
        gpu,
        resident,
        plans,
        { prefill, decode: Promise.resolve(decode) },
        graphs,
        codegen.subgroups,
        codegen.int8Matrix,
        prefillChunk,
        decodeRunMs,
        times,
      );
    } catch (e) {
      resident?.destroy();
      gpu.destroy();
      throw e;
    }
  }

  /** how the matmuls multiply: int8 where any linear kernel of either graph runs an int8 variant (on subgroup matrices where any tile does), else float */
  get matmul(): 'float' | 'int8' | 'int8 on subgroup matrices' {
    const variants = [...this.plans.prefill.kernels, ...this.plans.decode.kernels].map((k) => k.variant ?? '');
    if (variants.some((v) => v.endsWith('int8-matrix'))) return 'int8 on subgroup matrices';
    return variants.some((v) => v.includes('int8')) ? 'int8' : 'float';
  }

  /** dispatches per graph run */
  get dispatches(): { prefill: number; decode: number } {
    return { prefill: this.plans.prefill.kernels.length, decode: this.plans.decode.kernels.length };
  }

  get device(): { backend: string; adapter: string } {
    return { backend: this.gpu.backend, adapter: this.gpu.adapter };
  }

  /** The WebGPU device the model runs on: to watch its errors and its loss, or to share it with other WebGPU work. */
  get gpuDevice(): GPUDevice {
    return this.gpu.device;
  }

  /** The GPU buffers the model holds now (weights, KV cache, per-run and staging buffers) and their bytes. */
  get deviceBuffers(): { readonly buffers: number; readonly bytes: number } {
    return this.gpu.live;
  }

  /**
   * Each dispatch of one graph run, its GPU seconds (see PlanExecutor.profile) and static cost: a prefill
   * of `tokens` positions from 0, or a decode step at position `position`. Leaves the KV cache unusable
   * for the generation in progress; generate starts afresh.
   */
  async profile(kind: GraphKind, tokens: number, position = 0): Promise<{ kernels: ProfiledKernel[]; clock: 'timestamp' | 'host' }> {
    const { exec, env, stats, inputs } = await this.benchmarkRun(kind, tokens, position);
    const { seconds, clock } = await exec.profile(env, inputs);
    const cost = new Map(stats.kernels.flatMap((k) => k.dispatches.map((d, i) => [d, i === 0 ? k : { flops: 0, bytes: 0 }] as const)));
    const kernels = exec.plan.kernels.map((k, i) => ({
      name: k.name,
      kind: k.variant ? `${k.op}:${k.variant}` : k.op,
      seconds: seconds[i]!,
      flops: cost.get(k.name)?.flops ?? 0,
      bytes: cost.get(k.name)?.bytes ?? 0,
    }));
    return { kernels, clock };
  }

  /**
   * Where one graph run's time goes (see PlanExecutor.runCost): the host's recording and submit, and the GPU's
   * time over the run's pass where the adapter has timestamps; `without` leaves those kernels out. Leaves the KV
   * cache as profile does.
   */
  async runCost(kind: GraphKind, tokens: number, position = 0, without: ReadonlySet<string> = new Set()): Promise<RunCost> {
    const { exec, env, inputs } = await this.benchmarkRun(kind, tokens, position);
    return exec.runCost(env, inputs, undefined, without);
  }

  /**
   * What profile and runCost time: the graph's executor (the decode graph's once its pipelines are made), its symbol
   * values and stats, and inputs of token ids spread over the vocabulary. The KV cache's contents are forgotten.
   */
  private async benchmarkRun(
    kind: GraphKind,
    tokens: number,
    position: number,
  ): Promise<{ exec: PlanExecutor; env: Record<string, number>; stats: GraphStats; inputs: Record<string, Int32Array> }> {
    const exec = await this.executors[kind];
    this.cached = [];
    const { env, stats } = this.graphRun(kind, tokens, position);
    const ids = Int32Array.from({ length: kind === 'prefill' ? tokens : 1 }, (_, i) => (i * 7919) % this.config.vocabSize);
    // a prefill returns the last row's logits, as one that generates does
    const rows: Record<string, Int32Array> = kind === 'prefill' ? { logit_rows: Int32Array.of(tokens - 1) } : {};
    return { exec, env, stats, inputs: { tokens: ids, positions: Int32Array.from(ids, (_, i) => position + i), ...rows } };
  }

  /** Static FLOPs and bytes of one prefill of `tokens` positions from 0, or of one decode step at `position`. */
  cost(kind: GraphKind, tokens: number, position = 0): { flops: number; bytes: number } {
    const { stats } = this.graphRun(kind, tokens, position);
    return { flops: stats.flops, bytes: stats.bytes };
  }

  /** The symbol values and static stats of one graph run (see profile). */
  private graphRun(kind: GraphKind, tokens: number, position: number): { env: Record<string, number>; stats: GraphStats } {
    const plan = this.plans[kind];
    const env: Record<string, number> = kind === 'prefill' ? { T: tokens, P: 0, L: 1 } : { P: position };
    return { env, stats: graphStats(this.graphs[kind], plan, { env, layers: this.config.nLayers }) };
  }

  /** Device bytes of the resident buffers: every weight (once per format it is kept in) and the KV cache. */
  get residentBytes(): number {
    return this.resident.bytes;
  }

  /** The device formats of the matrix weights (matmuls, embedding tables), each once. */
  get weightFormats(): string[] {
    const computed = definitions[this.config.family].computedWeights(this.config);
    const formats = this.plans.decode.buffers.filter((b) => b.role === 'weight' && b.shape.length === 2 && !computed.has(b.name)).map((b) => b.dtype);
    return [...new Set(formats)].sort();
  }

  /** Bytes of the weights one decode step reads (an embedding table counts one row). */
  get decodeWeightBytes(): number {
    const plan = this.plans.decode;
    const embedded = new Set(plan.kernels.filter((k) => k.op === 'embed').map((k) => k.bindings[0]!.buffer));
    let total = 0;
    for (const b of plan.buffers) {
      if (b.role !== 'weight' || !plan.kernels.some((k) => k.bindings.some((x) => x.buffer === b.name))) continue;
      const dims = b.shape.map((d) => A.evaluate(d, {}));
      total += (embedded.has(b.name) ? dims.slice(1) : dims).reduce((p, d) => p * d, 1) * bytesPerElement(b.dtype);
    }
    return total;
  }

  /** Encodes text as run.c does: BOS, the dummy-prefix space, BPE merges. */
  encode(text: string): number[] {
    return encodePrompt(this.tokenizer, text);
  }

  /** The positions a generation of `promptIds` with `reuseCache` skips: the prefix the cache holds, all but the last id at most. */
  reusable(promptIds: readonly number[]): number {
    const limit = Math.min(this.cached.length, promptIds.length - 1);
    let n = 0;
    while (n < limit && this.cached[n] === promptIds[n]) n++;
    return n;
  }

  async *generate(request: GenerateRequest = {}): AsyncGenerator<GeneratedToken> {
    const resolved = resolveRequest(this, request);
    const start = request.reuseCache ? this.reusable(resolved.promptIds) : 0;
    const options = { ...resolved, start, promptIds: resolved.promptIds.slice(start), steps: resolved.steps - start };
    const graphs = {
      prefill: () => this.executors.prefill,
      prefillChunk: this.prefillChunk,
      decodeRunMs: this.decodeRunMs,
      decodePlan: this.plans.decode,
      decode: () => this.executors.decode,
      vocabSize: this.config.vocabSize,
      contextLength: this.config.seqLen,
    };
    const steps$ = generateSteps(graphs, options);
    // what the cache holds past `start` is known again once the prefill has run
    this.cached.length = start;
    const stream = this.tokenizer?.stream(resolved.promptIds.slice(0, start + 1));
    let first = true;
    for await (const step of steps$) {
      if (first) this.cached.push(...options.promptIds.slice(0, options.steps));
      first = false;
      if (step.position >= this.cached.length) this.cached[step.position] = step.token;
      // the last step also gives what the stream held back (an incomplete sequence the generation ended in)
      const pushed = step.stop || !stream ? new Uint8Array() : stream.push(step.next);
      const piece = stream && (step.stop || step.position + 1 >= resolved.steps) ? concatBytes([pushed, stream.flush()]) : pushed;
      yield { ...step, piece };
    }
  }

  /**
   * A conversation (see ChatSession): its replies end at the model's stop tokens (generation_config.json's eos ids)
   * and the tokenizer's EOS. Needs a chat template and a tokenizer.
   */
  chatSession(options: { readonly system?: string } = {}): ChatSession {
    const { template, tokenizer } = chatFiles({ ...this.files, tokenizer: this.tokenizer });
    const eos = tokenizer.specials.eos?.id;
    const stops = [...new Set([...(this.config.stop?.ids ?? []), ...(eos !== undefined ? [eos] : [])])];
    return new ChatSession(this, template, tokenizer, stops, options.system);
  }

  /** The reply to a conversation given whole (the last message is the one replied to), as a new session would give it. */
  chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatReply> {
    const session = this.chatSession();
    session.load(messages);
    return session.reply(options);
  }

  release(): void {
    this.made.prefill?.destroy();
    this.made.decode?.destroy();
    this.resident.destroy();
    // an executor still being made goes with the device
    this.gpu.destroy();
  }
}

export interface ProfiledKernel {
  readonly name: string;
  /** the plan kernel's op, and its variant where it has one (linear:tiled, linear:gemv, …) */
  readonly kind: string;
  readonly seconds: number;
  readonly flops: number;
  readonly bytes: number;
}

export function loadModel(source: string | ModelFiles, options?: LoadOptions): Promise<Model> {
  return Model.load(source, options);
}
