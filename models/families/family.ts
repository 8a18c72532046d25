// What a model family is to weft: how its Hugging Face config.json and its GGUF metadata map onto a
// ModelConfig, where each weight the model definition reads lives among the checkpoint's tensors, and what
// loading needs of that definition. The readers (models/huggingface.ts, models/gguf.ts) only read files.
import type { Graph } from '../../src/ir/types.js';
import type { TensorSource } from '../../src/weights/source.js';
import type { GraphKind, ModelConfig } from '../llama.js';

/**
 * The largest size (a dimension, a head count, a vocabulary, a context) weft reads from a configuration: products
 * of two stay exact (2^48), and a context beyond it is refused before anything is sized by it.
 */
export const MAX_SIZE = 2 ** 24;

/** Typed reads of one configuration (config.json, or a GGUF file's metadata), failing with the key named. */
export interface ConfigFields {
  /** the value as stored (a GGUF integer as a number), undefined when absent or null */
  get(key: string): unknown;
  /** a positive integer of at most MAX_SIZE; `fallback` when absent */
  int(key: string, fallback?: number): number;
  /** a positive number; `fallback` when absent */
  num(key: string, fallback?: number): number;
  /** a one-line error naming the file */
  fail(msg: string): never;
}

/** A checkpoint's tensors by the file's own names, each checked against the shape the configuration implies. */
export interface CheckpointTensors {
  /** every tensor name the file holds */
  names(): Iterable<string>;
  has(key: string): boolean;
  get(key: string, shape: readonly number[]): TensorSource;
  fail(msg: string): never;
}

/** A ModelConfig as a family reads it: all but the vocabulary and special tokens, which the readers take from the file. */
export type FamilyConfig = Omit<ModelConfig, 'vocabSize' | 'bosId' | 'stop'>;

/** One file format's view of a family. */
export interface FormatMapping {
  config(fields: ConfigFields): FamilyConfig;
  /** the key that counts the layers, and the tensor names of a layer (its index the first group) */
  readonly layers: { readonly key: string; readonly tensor: RegExp };
  /** every weight the model definition reads (the RoPE tables aside, which weft computes), by weft's name */
  weights(config: ModelConfig, tensors: CheckpointTensors, fields: ConfigFields): Map<string, TensorSource>;
}

export interface Family {
  readonly name: string;
  /** config.json's `architectures` entries it reads */
  readonly hf: FormatMapping & { readonly architectures: readonly string[] };
  /** GGUF's `general.architecture`, where llama.cpp has the family */
  readonly gguf?: FormatMapping & { readonly arch: string };
}

/**
 * A model definition (models/llama.ts, models/gpt2.ts), the one a ModelConfig's `family` picks, as loading uses it:
 * its graphs, the weights they read, and which of those weft computes, may quantize, or cuts to a shorter context.
 */
export interface ModelDefinition {
  graph(config: ModelConfig, kind: GraphKind): Graph;
  /** names and shapes of every weight the graphs read */
  weightShapes(config: ModelConfig): Map<string, number[]>;
  /** the weights weft computes at the configuration's context rather than reads from a checkpoint, each when it is uploaded */
  computedWeights(config: ModelConfig): Map<string, TensorSource>;
  /** the matmul weights a quantizer converts to blocks (not an embedding table); absent where quantizing is not supported */
  readonly quantized?: RegExp;
  /** tensors indexed by position, whose rows a shorter context cuts */
  readonly positionTables: readonly string[];
}
