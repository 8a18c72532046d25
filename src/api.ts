// The programmatic API: load a checkpoint onto the GPU, generate as an async iterator, release.
// Glue between model definitions (models/), the compiler (ir, codegen) and the runtime.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { llamaGraph, type GraphKind, type ModelConfig } from '../models/llama.js';
import { gpt2Graph } from '../models/gpt2.js';
import { isHuggingFaceDir, readHuggingFace } from '../models/huggingface.js';
import { readLlama2c, ropeTables } from '../models/llama2c.js';
import { compileGraph } from './codegen/compile.js';
import { defaultPassContext, type Pass, type PassContext } from './passes/pass.js';
import { pipeline } from './passes/pipeline.js';
import { runPipeline } from './passes/run-pipeline.js';
import type { Graph } from './ir/types.js';
import { verifyGraph } from './ir/verify.js';
import { PlanExecutor, ResidentBuffers } from './runtime/executor.js';
import { BOS, checkGenerateOptions, generateSteps, type GenerateOptions, type GenerationStep } from './runtime/generate.js';
import { openGpu, type Gpu } from './runtime/gpu.js';
import { generatorState } from './runtime/sampler.js';
import { Tokenizer } from './runtime/tokenizer.js';

export interface Checkpoint {
  readonly config: ModelConfig;
  readonly weights: ReadonlyMap<string, Float32Array>;
}

function readBytes(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Reads a checkpoint into a model config and named weights (RoPE tables included): a llama2.c `.bin`,
 * or a Hugging Face folder (config.json and safetensors).
 */
export function readCheckpoint(path: string): Checkpoint {
  let config: ModelConfig;
  let weights: Map<string, Float32Array>;
  if (isDirectory(path)) {
    if (!isHuggingFaceDir(path)) throw new Error(`${path}: a folder must hold a Hugging Face checkpoint (config.json and safetensors)`);
    ({ config, weights } = readHuggingFace(path));
  } else {
    const { config: c, weights: w } = readLlama2c(readBytes(path, 'checkpoint'), path);
    config = { ...c, family: 'llama', normEps: 1e-5, ropeTheta: 10000 };
    weights = w;
  }
  if (config.family === 'gpt2') return { config, weights };
  const { cos, sin } = ropeTables(config.dim / config.nHeads, config.seqLen, config.ropeTheta);
  const all = new Map(weights);
  all.set('rope_cos', cos);
  all.set('rope_sin', sin);
  return { config, weights: all };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The prefill and decode graphs of a model as the model definition writes them, verified. */
export function buildGraphs(config: ModelConfig): Record<GraphKind, Graph> {
  const define = config.family === 'gpt2' ? gpt2Graph : llamaGraph;
  const graphs = { prefill: define(config, 'prefill'), decode: define(config, 'decode') };
  verifyGraph(graphs.prefill);
  verifyGraph(graphs.decode);
  return graphs;
}

/** Both graphs after the passes (default: the whole pipeline), verified after each pass. */
export function optimizeGraphs(config: ModelConfig, passes: readonly Pass[] = pipeline, ctx: PassContext = defaultPassContext): Record<GraphKind, Graph> {
  const graphs = buildGraphs(config);
  return { prefill: runPipeline(graphs.prefill, passes, ctx), decode: runPipeline(graphs.decode, passes, ctx) };
}

export interface LoadOptions {
  /** llama2.c tokenizer file; defaults to tokenizer.bin beside the checkpoint when present */
  readonly tokenizer?: string;
  /** Dawn backend; defaults to the first that works */
  readonly backend?: string;
  /** the passes to compile with (default: the whole pipeline; [] runs one kernel per op) */
  readonly passes?: readonly Pass[];
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
}

/** run.c's default -n */
const defaultSteps = 256;

/** A checkpoint and its tokenizer, read and checked on the CPU: what Model.load uploads. */
export interface ModelFiles extends Checkpoint {
  readonly tokenizer: Tokenizer | undefined;
}

/** Reads a checkpoint and its tokenizer (options.tokenizer, else tokenizer.bin beside it when present); opens no GPU. */
export function readModelFiles(path: string, options: LoadOptions = {}): ModelFiles {
  const checkpoint = readCheckpoint(path);
  const tokPath = options.tokenizer ?? join(dirname(path), 'tokenizer.bin');
  const tokenizer =
    options.tokenizer !== undefined || existsSync(tokPath)
      ? Tokenizer.fromBytes(readBytes(tokPath, 'tokenizer'), checkpoint.config.vocabSize, tokPath)
      : undefined;
  return { ...checkpoint, tokenizer };
}

/** Encodes text as run.c does: BOS, the dummy-prefix space, BPE merges. */
function encodePrompt(tokenizer: Tokenizer | undefined, text: string): number[] {
  if (!tokenizer) throw new Error(`a text prompt needs a tokenizer (--tokenizer FILE), or give --prompt-ids`);
  return tokenizer.encode(text, true, false);
}

/** The generation a request asks of a model: the prompt encoded, defaults filled in, every value checked. Opens no GPU. */
export function resolveRequest(
  model: { readonly config: ModelConfig; readonly tokenizer: Tokenizer | undefined },
  request: GenerateRequest = {},
): GenerateOptions {
  if (request.prompt !== undefined && request.promptIds !== undefined) throw new Error(`give a prompt or prompt ids, not both`);
  const options: GenerateOptions = {
    promptIds: request.promptIds ?? (request.prompt !== undefined ? encodePrompt(model.tokenizer, request.prompt) : [BOS]),
    steps: request.steps === undefined ? Math.min(defaultSteps, model.config.seqLen) : request.steps === 0 ? model.config.seqLen : request.steps,
    temperature: request.temperature ?? 1,
    topp: request.topp ?? 0.9,
    seed: request.seed === undefined || (Number.isSafeInteger(request.seed) && generatorState(request.seed) === 0n) ? Math.floor(Date.now() / 1000) : request.seed,
    logits: request.logits,
  };
  checkGenerateOptions(options, model.config.vocabSize, model.config.seqLen);
  return options;
}

export interface GeneratedToken extends GenerationStep {
  /** the bytes run.c prints for `next` (empty for BOS and unprintable bytes) */
  readonly piece: Uint8Array;
}

export class Model {
  private constructor(
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer | undefined,
    private readonly gpu: Gpu,
    private readonly resident: ResidentBuffers,
    private readonly prefill: PlanExecutor,
    private readonly decode: PlanExecutor,
  ) {}

  /** Uploads a checkpoint (a path, or files already read with readModelFiles) and compiles its plans. */
  static async load(source: string | ModelFiles, options: LoadOptions = {}): Promise<Model> {
    const { config, weights, tokenizer } = typeof source === 'string' ? readModelFiles(source, options) : source;
    buildGraphs(config); // a model the IR rejects fails before the GPU opens
    const gpu = await openGpu({ backend: options.backend });
    try {
      const graphs = optimizeGraphs(config, options.passes, { maxStorageBuffers: gpu.limits.maxStorageBuffersPerShaderStage });
      const resident = new ResidentBuffers(gpu, weights);
      const prefill = await PlanExecutor.create(gpu, compileGraph(graphs.prefill), resident);
      const decode = await PlanExecutor.create(gpu, compileGraph(graphs.decode), resident);
      return new Model(config, tokenizer, gpu, resident, prefill, decode);
    } catch (e) {
      gpu.destroy();
      throw e;
    }
  }

  /** dispatches per graph run */
  get dispatches(): { prefill: number; decode: number } {
    return { prefill: this.prefill.plan.kernels.length, decode: this.decode.plan.kernels.length };
  }

  get device(): { backend: string; adapter: string } {
    return { backend: this.gpu.backend, adapter: this.gpu.adapter };
  }

  /** Encodes text as run.c does: BOS, the dummy-prefix space, BPE merges. */
  encode(text: string): number[] {
    return encodePrompt(this.tokenizer, text);
  }

  async *generate(request: GenerateRequest = {}): AsyncGenerator<GeneratedToken> {
    const steps$ = generateSteps(
      { prefill: this.prefill, decode: this.decode, vocabSize: this.config.vocabSize, contextLength: this.config.seqLen },
      resolveRequest(this, request),
    );
    for await (const step of steps$) {
      const piece =
        step.next === BOS || !this.tokenizer ? new Uint8Array() : Tokenizer.safePiece(this.tokenizer.decodePiece(step.token, step.next));
      yield { ...step, piece };
    }
  }

  release(): void {
    this.prefill.destroy();
    this.decode.destroy();
    this.resident.destroy();
    this.gpu.destroy();
  }
}

export function loadModel(source: string | ModelFiles, options?: LoadOptions): Promise<Model> {
  return Model.load(source, options);
}
