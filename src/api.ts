// The programmatic API: load a checkpoint onto the GPU, generate as an async iterator, release.
// Glue between model definitions (models/), the compiler (ir, codegen) and the runtime.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { llamaGraph, type GraphKind, type LlamaConfig } from '../models/llama.js';
import { readLlama2c, ropeTables } from '../models/llama2c.js';
import { compileGraph } from './codegen/compile.js';
import type { Graph } from './ir/types.js';
import { verifyGraph } from './ir/verify.js';
import { PlanExecutor, ResidentBuffers } from './runtime/executor.js';
import { BOS, generateSteps, type GenerationStep } from './runtime/generate.js';
import { openGpu, type Gpu } from './runtime/gpu.js';
import { Tokenizer } from './runtime/tokenizer.js';

export interface Checkpoint {
  readonly config: LlamaConfig;
  readonly weights: ReadonlyMap<string, Float32Array>;
}

function readBytes(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Reads a llama2.c checkpoint into a model config and named weights (RoPE tables included). */
export function readCheckpoint(path: string): Checkpoint {
  const { config: c, weights } = readLlama2c(readBytes(path, 'checkpoint'), path);
  const config: LlamaConfig = { ...c, normEps: 1e-5 };
  const { cos, sin } = ropeTables(c.dim / c.nHeads, c.seqLen);
  const all = new Map(weights);
  all.set('rope_cos', cos);
  all.set('rope_sin', sin);
  return { config, weights: all };
}

/** The prefill and decode graphs of a model, verified. */
export function buildGraphs(config: LlamaConfig): Record<GraphKind, Graph> {
  const graphs = { prefill: llamaGraph(config, 'prefill'), decode: llamaGraph(config, 'decode') };
  verifyGraph(graphs.prefill);
  verifyGraph(graphs.decode);
  return graphs;
}

export interface LoadOptions {
  /** llama2.c tokenizer file; defaults to tokenizer.bin beside the checkpoint when present */
  readonly tokenizer?: string;
  /** Dawn backend; defaults to the first that works */
  readonly backend?: string;
}

export interface GenerateRequest {
  /** text, encoded with BOS first (needs a tokenizer) */
  readonly prompt?: string;
  /** token ids fed exactly as given */
  readonly promptIds?: readonly number[];
  /** positions to run, prompt included; defaults to the context length */
  readonly steps?: number;
  /** 0 is greedy; default 1 */
  readonly temperature?: number;
  /** nucleus sampling threshold; default 0.9; 0 or 1 samples the whole distribution */
  readonly topp?: number;
  /** seed of the sampler's generator; default: the current time in seconds */
  readonly seed?: number;
  /** attach each position's logits */
  readonly logits?: boolean;
}

export interface GeneratedToken extends GenerationStep {
  /** the bytes run.c prints for `next` (empty for BOS and unprintable bytes) */
  readonly piece: Uint8Array;
}

export class Model {
  private constructor(
    readonly config: LlamaConfig,
    readonly tokenizer: Tokenizer | undefined,
    private readonly gpu: Gpu,
    private readonly resident: ResidentBuffers,
    private readonly prefill: PlanExecutor,
    private readonly decode: PlanExecutor,
  ) {}

  static async load(path: string, options: LoadOptions = {}): Promise<Model> {
    const { config, weights } = readCheckpoint(path);
    const tokPath = options.tokenizer ?? join(dirname(path), 'tokenizer.bin');
    const tokenizer =
      options.tokenizer !== undefined || existsSync(tokPath)
        ? Tokenizer.fromBytes(readBytes(tokPath, 'tokenizer'), config.vocabSize, tokPath)
        : undefined;
    const graphs = buildGraphs(config);
    const gpu = await openGpu({ backend: options.backend });
    try {
      const resident = new ResidentBuffers(gpu, weights);
      const prefill = await PlanExecutor.create(gpu, compileGraph(graphs.prefill), resident);
      const decode = await PlanExecutor.create(gpu, compileGraph(graphs.decode), resident);
      return new Model(config, tokenizer, gpu, resident, prefill, decode);
    } catch (e) {
      gpu.destroy();
      throw e;
    }
  }

  get device(): { backend: string; adapter: string } {
    return { backend: this.gpu.backend, adapter: this.gpu.adapter };
  }

  /** Encodes text as run.c does: BOS, the dummy-prefix space, BPE merges. */
  encode(text: string): number[] {
    if (!this.tokenizer) throw new Error(`a text prompt needs a tokenizer (--tokenizer FILE), or give --prompt-ids`);
    return this.tokenizer.encode(text, true, false);
  }

  async *generate(request: GenerateRequest = {}): AsyncGenerator<GeneratedToken> {
    if (request.prompt !== undefined && request.promptIds !== undefined) throw new Error(`give a prompt or prompt ids, not both`);
    const promptIds = request.promptIds ?? (request.prompt !== undefined ? this.encode(request.prompt) : [BOS]);
    const steps = request.steps ?? this.config.seqLen;
    const steps$ = generateSteps(
      { prefill: this.prefill, decode: this.decode, vocabSize: this.config.vocabSize, contextLength: this.config.seqLen },
      {
        promptIds,
        steps,
        temperature: request.temperature ?? 1,
        topp: request.topp ?? 0.9,
        seed: request.seed ?? Math.floor(Date.now() / 1000),
        logits: request.logits,
      },
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

export function loadModel(path: string, options?: LoadOptions): Promise<Model> {
  return Model.load(path, options);
}
