// Reader for llama2.c legacy (version 0) checkpoints: a 7 x int32 header, then float32 tensors in run.c's order.
// Every weight is a source read from its offset in the file, row-major [out, in] as in the file; the file
// size must match the header exactly; the format's entry adds what run.c fixes. Also run.c's RoPE cos/sin tables.
import { BOS } from '../src/runtime/generate.js';
import { weightFormats } from '../src/weights/formats.js';
import { fileSource, readRegion, regularFileSize, type TensorSource } from '../src/weights/source.js';

import type { CheckpointFormat } from './checkpoint.js';
import { powf } from './glibc-powf.js';
import type { RopeScaling } from './llama.js';
import { cosf, sinf } from './glibc-sincosf.js';

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** The classifier reuses the token embedding (a positive vocab_size in the header). */
  sharedClassifier: boolean;
}

const HEADER_BYTES = 7 * 4;
const LIMITS = {
  dim: 65536,
  hidden_dim: 1 << 20,
  n_layers: 1024,
  n_heads: 65536,
  n_kv_heads: 65536,
  vocab_size: 10_000_000,
  seq_len: 1_048_576,
} as const;

/**
 * A llama2.c file as run.c runs it: the llama definition with head size dim / n_heads, RMSNorm epsilon 1e-5,
 * RoPE base 10000 and BOS 1. Its files start with no magic, so it takes any file no other format recognises.
 */
export const llama2cCheckpoint: CheckpointFormat = {
  description: 'a llama2.c checkpoint',
  holds: 'file',
  recognizes: () => true,
  read: (path) => {
    const { config: c, tensors } = readLlama2c(path);
    return {
      checkpoint: { config: { ...c, family: 'llama', headSize: c.dim / c.nHeads, normEps: 1e-5, ropeTheta: 10000, bosId: BOS }, tensors },
      chatTemplate: path,
    };
  },
};

export function readLlama2c(source: string): { config: Llama2cConfig; tensors: Map<string, TensorSource> } {
  const size = regularFileSize(source);
  const config = readHeader(readRegion(source, 0, Math.min(size, HEADER_BYTES)), source);
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier } = config;
  const headSize = dim / nHeads;
  const kvDim = headSize * nKvHeads;

  const expectedBytes = HEADER_BYTES + 4 * checkpointFloats(config);
  if (size !== expectedBytes) {
    const problem = size < expectedBytes ? 'truncated' : 'has trailing bytes';
    throw new Error(`${source}: ${problem}: expected ${expectedBytes} bytes for this header, got ${size}`);
  }

  let offset = HEADER_BYTES;
  const take = (shape: number[]): TensorSource => {
    const tensor = fileSource(source, offset, shape, weightFormats.f32);
    offset += 4 * shape.reduce((p, d) => p * d, 1);
    return tensor;
  };
  const weights = new Map<string, TensorSource>();
  const perLayer = (name: string, shape: number[]): void => {
    for (let l = 0; l < nLayers; l++) weights.set(`layers.${l}.${name}`, take(shape));
  };

  const tokEmbeddings = take([vocabSize, dim]);
  weights.set('tok_embeddings', tokEmbeddings);
  perLayer('attention_norm', [dim]);
  perLayer('wq', [dim, dim]);
  perLayer('wk', [kvDim, dim]);
  perLayer('wv', [kvDim, dim]);
  perLayer('wo', [dim, dim]);
  perLayer('ffn_norm', [dim]);
  perLayer('w1', [hiddenDim, dim]);
  perLayer('w2', [dim, hiddenDim]);
  perLayer('w3', [hiddenDim, dim]);
  weights.set('norm', take([dim]));
  offset += 4 * seqLen * headSize; // freq_cis_real and freq_cis_imag, [seq_len, head_size / 2] each: unused
  weights.set('output', sharedClassifier ? tokEmbeddings : take([vocabSize, dim]));
  return { config, tensors: weights };
}

/**
 * run.c's RoPE rotation for each position and pair j, [seqLen, headSize / 2] row-major:
 * freq = 1 / powf(theta, 2j / headSize), angle = pos * freq, all in float32, with glibc's powf, cosf
 * and sinf so that every entry has the bits run.c gets on x86-64; with `scaling`, the frequencies are
 * scaled first (see ropeFrequencies).
 */
export function ropeTables(headSize: number, seqLen: number, theta = 10000, scaling?: RopeScaling): { cos: Float32Array; sin: Float32Array } {
  if (!Number.isInteger(seqLen) || seqLen <= 0) throw new Error(`ropeTables: seqLen must be a positive integer, got ${seqLen}`);
  const freqs = ropeFrequencies(headSize, theta, scaling);
  const pairs = headSize / 2;
  const f32 = Math.fround;
  const cos = new Float32Array(seqLen * pairs);
  const sin = new Float32Array(seqLen * pairs);
  for (let pos = 0; pos < seqLen; pos++) {
    for (let j = 0; j < pairs; j++) {
      const angle = f32(f32(pos) * freqs[j]!);
      cos[pos * pairs + j] = cosf(angle);
      sin[pos * pairs + j] = sinf(angle);
    }
  }
  return { cos, sin };
}

/**
 * The RoPE frequency of each pair j of a head: 1 / powf(theta, 2j / headSize) in float32, then scaled as
 * transformers' rope types do it, one float32 operation at a time in the order its code writes them.
 */
export function ropeFrequencies(headSize: number, theta: number, scaling?: RopeScaling): Float32Array {
  if (!Number.isInteger(headSize) || headSize <= 0 || headSize % 2 !== 0) {
    throw new Error(`ropeTables: head size must be a positive even integer, got ${headSize}`);
  }
  const f32 = Math.fround;
  const pairs = headSize / 2;
  const freqs = new Float32Array(pairs);
  for (let j = 0; j < pairs; j++) freqs[j] = 1 / powf(f32(theta), f32((2 * j) / headSize));
  if (!scaling) return freqs;
  switch (scaling.kind) {
    case 'linear':
      return freqs.map((f) => f32(f / scaling.factor));
    case 'divisors':
      if (scaling.divisors.length !== pairs) throw new Error(`RoPE scaling: ${scaling.divisors.length} frequency divisors for ${pairs} frequencies`);
      return freqs.map((f, j) => f32(f / scaling.divisors[j]!));
    case 'llama3': {
      const { factor, lowFreqFactor: low, highFreqFactor: high, originalContext: context } = scaling;
      const lowWavelength = f32(context / low);
      const highWavelength = f32(context / high);
      return freqs.map((f) => {
        const wavelength = f32(f32(2 * Math.PI) / f);
        const scaled = wavelength > lowWavelength ? f32(f / factor) : f;
        if (wavelength < highWavelength || wavelength > lowWavelength) return scaled;
        const smooth = f32(f32(f32(f32(context) / wavelength) - low) / f32(high - low));
        return f32(f32(f32(f32(1 - smooth) * scaled) / factor) + f32(smooth * scaled));
      });
    }
  }
}

function readHeader(bytes: Uint8Array, source: string): Llama2cConfig {
  if (bytes.length < HEADER_BYTES) {
    throw new Error(`${source}: too short for a llama2.c header (${bytes.length} bytes, need ${HEADER_BYTES})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const names = Object.keys(LIMITS) as (keyof typeof LIMITS)[];
  const header = Object.fromEntries(names.map((name, i) => [name, view.getInt32(4 * i, true)])) as Record<keyof typeof LIMITS, number>;
  const sharedClassifier = header.vocab_size > 0;
  header.vocab_size = Math.abs(header.vocab_size);
  for (const name of names) {
    const value = header[name];
    if (value <= 0 || value > LIMITS[name]) {
      throw new Error(`${source}: header ${name} = ${value} is out of range (1..${LIMITS[name]})`);
    }
  }
  const { dim, n_heads: nHeads, n_kv_heads: nKvHeads } = header;
  if (dim % nHeads !== 0) throw new Error(`${source}: dim ${dim} is not divisible by n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw new Error(`${source}: n_heads ${nHeads} is not divisible by n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw new Error(`${source}: head size ${dim / nHeads} (dim / n_heads) is odd`);
  return {
    dim,
    hiddenDim: header.hidden_dim,
    nLayers: header.n_layers,
    nHeads,
    nKvHeads,
    vocabSize: header.vocab_size,
    seqLen: header.seq_len,
    sharedClassifier,
  };
}

function checkpointFloats(c: Llama2cConfig): number {
  const headSize = c.dim / c.nHeads;
  const kvDim = headSize * c.nKvHeads;
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kvDim * c.dim + 3 * c.hiddenDim * c.dim;
  const classifier = c.sharedClassifier ? 0 : c.vocabSize * c.dim;
  return c.vocabSize * c.dim + c.nLayers * perLayer + c.dim + c.seqLen * headSize + classifier;
}
