// What a model family is to weft: how its Hugging Face config.json and its GGUF metadata map onto a
// ModelConfig, and where each weight the model definition reads lives among the checkpoint's tensors.
// The readers (models/huggingface.ts, models/gguf.ts) only read files and look the family up.
import type { TensorSource } from '../../src/weights/source.js';
import type { ModelConfig } from '../llama.js';

/** Typed reads of one configuration (config.json, or a GGUF file's metadata), failing with the key named. */
export interface ConfigFields {
  /** the value as stored (a GGUF integer as a number), undefined when absent or null */
  get(key: string): unknown;
  /** a positive integer; `fallback` when absent */
  int(key: string, fallback?: number): number;
  /** a positive number; `fallback` when absent */
  num(key: string, fallback?: number): number;
  /** a one-line error naming the file */
  fail(msg: string): never;
}

/** A checkpoint's tensors by the file's own names, each checked against the shape the configuration implies. */
export interface CheckpointTensors {
  has(key: string): boolean;
  get(key: string, shape: readonly number[]): TensorSource;
  fail(msg: string): never;
}

/** A ModelConfig as a family reads it: all but the vocabulary and special tokens, which the readers take from the file. */
export type FamilyConfig = Omit<ModelConfig, 'vocabSize' | 'bosId' | 'stop'>;

/** One file format's view of a family. */
export interface FormatMapping {
  config(fields: ConfigFields): FamilyConfig;
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
