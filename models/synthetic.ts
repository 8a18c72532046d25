// Llama-shaped models with deterministic random weights, for benchmarks: the same name always gives the
// same weights on every machine. Matrices are uniform in ±1/√fan_in (activations keep their scale through
// the layers), norm weights near 1, embeddings uniform in ±1; the RoPE tables are the usual ones.
import type { ModelConfig } from './llama.js';
import { llamaWeightShapes } from './llama.js';
import { ropeTables } from './llama2c.js';
import { computedSource, type TensorSource } from '../src/weights/source.js';

const base = { family: 'llama', vocabSize: 32000, seqLen: 1024, normEps: 1e-5, ropeTheta: 10000, bosId: 1 } as const;

/** The benchmark shapes: `110M` is llama2.c's stories110M, `1B` a Llama 3.2 1B-sized body on a 32000 vocabulary. */
export const syntheticConfigs: Readonly<Record<string, ModelConfig>> = {
  '110M': { ...base, dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, headSize: 64 },
  '1B': { ...base, dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, headSize: 64 },
};

/** FNV-1a of a name: the seed of its tensor */
function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** `count` values uniform in [-scale, scale) from an xorshift32 generator seeded by `name`. */
export function randomTensor(name: string, count: number, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(count);
  let s = seedOf(name);
  const k = (2 * scale) / 4294967296;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = offset - scale + (s >>> 0) * k;
  }
  return out;
}

/** The values of one matrix, norm weight or embedding table of a synthetic model. */
function syntheticTensor(name: string, shape: readonly number[]): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const isNorm = shape.length === 1;
  const scale = isNorm ? 0.1 : name === 'tok_embeddings' ? 1 : 1 / Math.sqrt(shape[1]!);
  return randomTensor(name, count, scale, isNorm ? 1 : 0);
}

/** Weights for every tensor `config`'s llama graphs read. */
export function syntheticWeights(config: ModelConfig): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of llamaWeightShapes(config)) {
    if (name !== 'rope_cos' && name !== 'rope_sin') weights.set(name, syntheticTensor(name, shape));
  }
  const { cos, sin } = ropeTables(config.headSize, config.seqLen, config.ropeTheta, config.ropeScaling);
  weights.set('rope_cos', cos);
  weights.set('rope_sin', sin);
  return weights;
}

/**
 * The most positions a synthetic model's context may be given: Llama 3.2's. Its weights do not depend on the
 * context (its RoPE tables are computed for it), so a benchmark can ask for a long one, as real checkpoints have.
 */
export const SYNTHETIC_MAX_CONTEXT = 131072;

/**
 * A synthetic model by name, each tensor computed when it is read, or undefined when `name` is not one; with
 * `context`, its context is that many positions instead of its default 1024.
 */
export function syntheticModel(name: string, context?: number): { config: ModelConfig; tensors: Map<string, TensorSource> } | undefined {
  if (!Object.hasOwn(syntheticConfigs, name)) return undefined;
  if (context !== undefined && !(Number.isInteger(context) && context >= 1 && context <= SYNTHETIC_MAX_CONTEXT)) {
    throw new Error(`synthetic ${name}: a context of ${context} positions is outside 1..${SYNTHETIC_MAX_CONTEXT}`);
  }
  const config = { ...syntheticConfigs[name]!, ...(context !== undefined ? { seqLen: context } : {}) };
  const rope = (which: 'cos' | 'sin') => ropeTables(config.headSize, config.seqLen, config.ropeTheta, config.ropeScaling)[which];
  const values = (n: string, shape: readonly number[]) => (n === 'rope_cos' ? rope('cos') : n === 'rope_sin' ? rope('sin') : syntheticTensor(n, shape));
  return { config, tensors: new Map([...llamaWeightShapes(config)].map(([n, shape]) => [n, computedSource(shape, () => values(n, shape))])) };
}
