// Llama (LlamaForCausalLM; GGUF llama), and what every family whose graph is models/llama.ts shares: config.json
// and GGUF metadata read into its ModelConfig, one table of where Hugging Face and llama.cpp keep each weight, and
// the definition's RoPE tables and quantized weights. Q/K rows stored in rotate-half order are reordered on load.
import { excerpt, ownField } from '../../src/file-input.js';
import { computedSource, reorderedRows, sourceRows, type TensorSource } from '../../src/weights/source.js';
import { llamaGraph, llamaWeightShapes, type ModelConfig, type RopeScaling } from '../llama.js';
import { ropeTables } from '../llama2c.js';
import type { CheckpointTensors, ConfigFields, Family, FamilyConfig, ModelDefinition } from './family.js';

/** models/llama.ts: RoPE tables computed at the context; every layer's wq … w3 and the classifier quantizable. */
export const llamaDefinition: ModelDefinition = {
  graph: llamaGraph,
  weightShapes: llamaWeightShapes,
  computedWeights: (c) => {
    const half = c.headSize / 2;
    const tables = (which: 'cos' | 'sin') => computedSource([c.seqLen, half], () => ropeTables(2 * half, c.seqLen, c.ropeTheta, c.ropeScaling)[which]);
    return new Map([
      ['rope_cos', tables('cos')],
      ['rope_sin', tables('sin')],
    ]);
  },
  quantized: /^(output|layers\.\d+\.w[qkvo123])$/,
  positionTables: [],
};

/** The graph options a family sets (see ModelConfig). */
export type LlamaOptions = Pick<ModelConfig, 'attentionBias' | 'qkNorm'>;

/**
 * Where Hugging Face (after `model.layers.N.`) and llama.cpp (after `blk.N.`) keep a weight of a layer, and,
 * for a block of a fused tensor, that tensor's row count and where the block starts.
 */
export interface LayerTensor {
  readonly hf: string;
  readonly gguf: string;
  readonly rows?: (c: ModelConfig) => { readonly of: number; readonly start: number };
}

const layerTensors: Readonly<Record<string, LayerTensor>> = {
  attention_norm: { hf: 'input_layernorm.weight', gguf: 'attn_norm.weight' },
  wq: { hf: 'self_attn.q_proj.weight', gguf: 'attn_q.weight' },
  wk: { hf: 'self_attn.k_proj.weight', gguf: 'attn_k.weight' },
  wv: { hf: 'self_attn.v_proj.weight', gguf: 'attn_v.weight' },
  wo: { hf: 'self_attn.o_proj.weight', gguf: 'attn_output.weight' },
  bq: { hf: 'self_attn.q_proj.bias', gguf: 'attn_q.bias' },
  bk: { hf: 'self_attn.k_proj.bias', gguf: 'attn_k.bias' },
  bv: { hf: 'self_attn.v_proj.bias', gguf: 'attn_v.bias' },
  bo: { hf: 'self_attn.o_proj.bias', gguf: 'attn_output.bias' },
  q_norm: { hf: 'self_attn.q_norm.weight', gguf: 'attn_q_norm.weight' },
  k_norm: { hf: 'self_attn.k_norm.weight', gguf: 'attn_k_norm.weight' },
  ffn_norm: { hf: 'post_attention_layernorm.weight', gguf: 'ffn_norm.weight' },
  w1: { hf: 'mlp.gate_proj.weight', gguf: 'ffn_gate.weight' },
  w2: { hf: 'mlp.down_proj.weight', gguf: 'ffn_down.weight' },
  w3: { hf: 'mlp.up_proj.weight', gguf: 'ffn_up.weight' },
};

const modelTensors: Readonly<Record<string, { readonly hf: string; readonly gguf: string }>> = {
  tok_embeddings: { hf: 'model.embed_tokens.weight', gguf: 'token_embd.weight' },
  norm: { hf: 'model.norm.weight', gguf: 'output_norm.weight' },
  output: { hf: 'lm_head.weight', gguf: 'output.weight' },
};

/** What a family whose graph is models/llama.ts adds to Llama's reading of its files. */
export interface LlamaFamily {
  readonly name: string;
  readonly architectures: readonly string[];
  /** the options its config.json sets */
  readonly options: (c: ConfigFields) => LlamaOptions;
  /** the sliding window its config.json declares (default: sliding_window, unless use_sliding_window is false) */
  readonly window?: (c: ConfigFields) => unknown;
  /** llama.cpp's architecture, the options it implies, and whether its converter kept q/k in rotate-half order (llama.cpp's NEOX RoPE) */
  readonly gguf?: { readonly arch: string; readonly options: LlamaOptions; readonly rotateHalf: boolean };
  /** weights kept elsewhere than Llama keeps them (fused projections) */
  readonly tensors?: Readonly<Record<string, LayerTensor>>;
}

/** Llama's q/k/v/o biases: config.json's attention_bias. */
export const attentionBias = (c: ConfigFields): LlamaOptions => (c.get('attention_bias') === true ? { attentionBias: 'qkvo' } : {});

export const llama = llamaFamily({
  name: 'llama',
  architectures: ['LlamaForCausalLM'],
  options: attentionBias,
  gguf: { arch: 'llama', options: {}, rotateHalf: false },
});

export function llamaFamily(f: LlamaFamily): Family {
  const table = { ...layerTensors, ...f.tensors };
  const gguf = f.gguf;
  return {
    name: f.name,
    hf: {
      architectures: f.architectures,
      layers: { key: 'num_hidden_layers', tensor: /^model\.layers\.(\d+)\./ },
      config: (c) => ({ ...hfConfig(c, f.window ?? ((c) => (c.get('use_sliding_window') !== false ? c.get('sliding_window') : undefined))), ...f.options(c) }),
      weights: (config, tensors, fields) => llamaWeights(config, tensors, table, 'hf', { rotateHalf: true, tied: fields.get('tie_word_embeddings') === true }),
    },
    ...(gguf && {
      gguf: {
        arch: gguf.arch,
        layers: { key: `${gguf.arch}.block_count`, tensor: /^blk\.(\d+)\./ },
        config: (m) => ({ ...ggufConfig(gguf.arch, m), ...gguf.options }),
        weights: (config, tensors) => {
          for (const key of ['rope_factors_long.weight', 'rope_factors_short.weight']) {
            if (tensors.has(key)) tensors.fail(`tensor ${key}: LongRoPE frequency factors (Phi-3 128k) are not supported`);
          }
          return llamaWeights(config, tensors, table, 'gguf', { rotateHalf: gguf.rotateHalf, tied: true });
        },
      },
    }),
  };
}

/** config.json's sizes and RoPE (the family's options and window aside). */
function hfConfig(c: ConfigFields, window: (c: ConfigFields) => unknown): FamilyConfig {
  const dim = c.int('hidden_size');
  const nHeads = c.int('num_attention_heads');
  const nKvHeads = c.int('num_key_value_heads', nHeads);
  if (nHeads % nKvHeads !== 0) c.fail(`num_key_value_heads ${nKvHeads} does not divide num_attention_heads ${nHeads}`);
  if (c.get('head_dim') === undefined && dim % nHeads !== 0)
    c.fail(`num_attention_heads ${nHeads} does not divide hidden_size ${dim}, and no head_dim is given`);
  const headSize = c.int('head_dim', dim / nHeads);
  if (headSize % 2 !== 0) c.fail(`head_dim ${headSize} is odd, and RoPE rotates pairs`);
  const partial = c.get('partial_rotary_factor');
  if (partial !== undefined && partial !== 1) c.fail(`partial_rotary_factor ${excerpt(partial)} is not supported (weft rotates whole heads)`);
  if ((c.get('hidden_act') ?? 'silu') !== 'silu') c.fail(`hidden_act ${excerpt(c.get('hidden_act'))} is not supported (silu is)`);
  if (c.get('mlp_bias') === true) c.fail(`MLP biases are not supported (mlp_bias)`);
  const ropeKey = c.get('rope_parameters') !== undefined ? 'rope_parameters' : 'rope_scaling';
  const rope = c.get(ropeKey) ?? {};
  if (typeof rope !== 'object' || Array.isArray(rope)) return c.fail(`${ropeKey} must be an object, is ${excerpt(rope)}`);
  const ropeScaling = ropeScalingOf(rope as Record<string, unknown>, c.fail);
  const theta = ownField(rope, 'rope_theta') ?? c.get('rope_theta') ?? 10000;
  if (typeof theta !== 'number' || !(theta > 0)) c.fail(`rope_theta must be a positive number, is ${excerpt(theta)}`);
  // within its window, sliding-window attention is full attention: cap the context there
  const w = window(c);
  const seqLen = Math.min(c.int('max_position_embeddings'), typeof w === 'number' && w > 0 ? w : Infinity);
  return {
    family: 'llama',
    dim,
    hiddenDim: c.int('intermediate_size'),
    nLayers: c.int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    headSize,
    seqLen,
    normEps: c.num('rms_norm_eps', 1e-6),
    ropeTheta: theta as number,
    ...(ropeScaling ? { ropeScaling } : {}),
  };
}

/** config.json's rope_scaling (or rope_parameters): none, linear or llama3; any other rope type is refused. */
function ropeScalingOf(rope: Record<string, unknown>, fail: (msg: string) => never): RopeScaling | undefined {
  const type = ownField(rope, 'rope_type') ?? ownField(rope, 'type') ?? 'default';
  const positive = (key: string): number => {
    const v = ownField(rope, key);
    return typeof v === 'number' && v > 0 ? v : fail(`rope_scaling.${key} must be a positive number, is ${excerpt(v)}`);
  };
  if (type === 'default') return undefined;
  if (type === 'linear') return { kind: 'linear', factor: positive('factor') };
  if (type === 'llama3') {
    const scaling = {
      kind: 'llama3',
      factor: positive('factor'),
      lowFreqFactor: positive('low_freq_factor'),
      highFreqFactor: positive('high_freq_factor'),
      originalContext: positive('original_max_position_embeddings'),
    } as const;
    if (!(scaling.highFreqFactor > scaling.lowFreqFactor)) fail(`rope_scaling.high_freq_factor must exceed low_freq_factor`);
    return scaling;
  }
  return fail(`RoPE scaling ${excerpt(type)} is not supported (weft supports default, linear and llama3)`);
}

/** GGUF metadata under `{arch}.`: sizes, head size (attention.key_length), RoPE and a sliding window. */
function ggufConfig(arch: string, m: ConfigFields): FamilyConfig {
  const key = (k: string): string => `${arch}.${k}`;
  const scaling = m.get(key('rope.scaling.type')) ?? 'none';
  if (scaling !== 'none' && scaling !== 'linear')
    m.fail(`RoPE scaling ${excerpt(scaling)} is not supported (weft supports none, linear, and frequency factors in rope_freqs.weight)`);
  const ropeScaling: RopeScaling | undefined = scaling === 'linear' ? { kind: 'linear', factor: m.num(key('rope.scaling.factor')) } : undefined;
  const dim = m.int(key('embedding_length'));
  const nHeads = m.int(key('attention.head_count'));
  const nKvHeads = m.int(key('attention.head_count_kv'), nHeads);
  if (nHeads % nKvHeads !== 0) m.fail(`${nKvHeads} kv heads do not divide ${nHeads} heads`);
  if (m.get(key('attention.key_length')) === undefined && dim % nHeads !== 0)
    m.fail(`${nHeads} heads do not divide embedding_length ${dim}, and no ${key('attention.key_length')} is given`);
  const headSize = m.int(key('attention.key_length'), dim / nHeads);
  const valueSize = m.int(key('attention.value_length'), headSize);
  if (valueSize !== headSize) m.fail(`${key('attention.value_length')} ${valueSize} differs from key_length ${headSize}, which weft does not support`);
  const ropeDims = m.int(key('rope.dimension_count'), headSize);
  if (ropeDims !== headSize) m.fail(`${key('rope.dimension_count')} ${ropeDims} differs from the head size ${headSize}, which weft does not support`);
  if (headSize % 2 !== 0) m.fail(`the head size ${headSize} is odd, and RoPE rotates pairs`);
  const window = m.get(key('attention.sliding_window'));
  return {
    family: 'llama',
    dim,
    hiddenDim: m.int(key('feed_forward_length')),
    nLayers: m.int(key('block_count')),
    nHeads,
    nKvHeads,
    headSize,
    // within its window, sliding-window attention is full attention: cap the context there
    seqLen: Math.min(m.int(key('context_length')), typeof window === 'number' && window > 0 ? window : Infinity),
    normEps: m.num(key('attention.layer_norm_rms_epsilon')),
    ropeTheta: m.num(key('rope.freq_base'), 10000),
    ...(ropeScaling ? { ropeScaling } : {}),
  };
}

/**
 * Every weight of models/llama.ts from its place in `table` (or, for the embedding, final norm and classifier,
 * the model's own names; a missing classifier is the embedding when `tied`), q/k reordered where `rotateHalf`.
 */
function llamaWeights(
  config: ModelConfig,
  tensors: CheckpointTensors,
  table: Readonly<Record<string, LayerTensor>>,
  format: 'hf' | 'gguf',
  { rotateHalf, tied }: { rotateHalf: boolean; tied: boolean },
): Map<string, TensorSource> {
  const weights = new Map<string, TensorSource>();
  for (const [name, shape] of llamaWeightShapes(config)) {
    if (name === 'rope_cos' || name === 'rope_sin') continue;
    const layer = /^layers\.(\d+)\.(.+)$/.exec(name);
    let t: TensorSource;
    if (layer) {
      const place = table[layer[2]!]!;
      const key = format === 'hf' ? `model.layers.${layer[1]}.${place.hf}` : `blk.${layer[1]}.${place.gguf}`;
      const rows = place.rows?.(config);
      t = rows ? sourceRows(tensors.get(key, [rows.of, ...shape.slice(1)]), rows.start, shape[0]!) : tensors.get(key, shape);
    } else {
      const key = modelTensors[name]![format];
      t = tensors.get(name === 'output' && tied && !tensors.has(key) ? modelTensors.tok_embeddings![format] : key, shape);
    }
    weights.set(name, rotateHalf ? adjacentPairs(name, t, config) : t);
  }
  return weights;
}

/**
 * A q/k weight (projection rows, bias, per-head norm weight) reordered so each head's rotate-half pairs
 * (j, j+hs/2) become adjacent (2j, 2j+1); attention scores are unchanged, since q and k are permuted alike.
 */
function adjacentPairs(name: string, t: TensorSource, c: ModelConfig): TensorSource {
  const heads = ({ wq: c.nHeads, bq: c.nHeads, wk: c.nKvHeads, bk: c.nKvHeads, q_norm: 1, k_norm: 1 } as Record<string, number>)[
    name.slice(name.lastIndexOf('.') + 1)
  ];
  if (!heads) return t;
  const order: number[] = [];
  const half = c.headSize / 2;
  for (let h = 0; h < heads; h++) for (let j = 0; j < half; j++) order.push(h * c.headSize + j, h * c.headSize + half + j);
  return reorderedRows(t, order);
}
