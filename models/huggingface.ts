// Hugging Face checkpoints (LlamaForCausalLM, MistralForCausalLM, GPT2LMHeadModel): config.json and
// safetensors (one file, or shards listed in model.safetensors.index.json) mapped onto the names and
// layouts of models/llama.ts and models/gpt2.ts: llama Q/K projections permuted from rotate-half RoPE
// to adjacent pairs, GPT-2's Conv1D weights transposed to [out, in] and its fused QKV split.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { reorderedRows, sourceRows, transposedSource, type TensorSource } from '../src/weights/source.js';
import { gpt2WeightShapes } from './gpt2.js';
import type { ModelConfig, RopeScaling } from './llama.js';
import { llamaWeightShapes } from './llama.js';
import { readSafetensors } from './safetensors.js';

const supported = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPT2LMHeadModel'];

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    return v as Record<string, unknown>;
  } catch {
    throw new Error(`${path}: not a JSON object`);
  }
}

function configOf(dir: string, c: Record<string, unknown>): ModelConfig {
  const path = join(dir, 'config.json');
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  const arch = Array.isArray(c.architectures) ? String(c.architectures[0]) : String(c.model_type);
  if (!supported.includes(arch)) fail(`architecture ${arch} is not supported (weft runs ${supported.join(', ')})`);
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) return fail(`${key} must be a positive integer, is ${JSON.stringify(v)}`);
    return v;
  };
  if (arch === 'GPT2LMHeadModel') {
    const dim = int('n_embd');
    const nHeads = int('n_head');
    if (dim % nHeads !== 0) fail(`n_head ${nHeads} does not divide n_embd ${dim}`);
    if (!['gelu_new', 'gelu_pytorch_tanh'].includes(String(c.activation_function ?? 'gelu_new'))) {
      fail(`activation_function ${String(c.activation_function)} is not supported (gelu_new is)`);
    }
    if (c.scale_attn_weights === false || c.scale_attn_by_inverse_layer_idx === true) fail(`only attention scaled by 1/sqrt(head size) is supported`);
    const eps = (c.layer_norm_epsilon ?? 1e-5) as number;
    if (typeof eps !== 'number' || !(eps > 0)) fail(`layer_norm_epsilon must be a positive number`);
    return {
      family: 'gpt2',
      dim,
      hiddenDim: c.n_inner === null || c.n_inner === undefined ? 4 * dim : int('n_inner'),
      nLayers: int('n_layer'),
      nHeads,
      nKvHeads: nHeads,
      vocabSize: int('vocab_size'),
      seqLen: int('n_positions'),
      normEps: eps,
      ropeTheta: 0,
    };
  }
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nKvHeads = int('num_key_value_heads', nHeads);
  if (dim % nHeads !== 0 || nHeads % nKvHeads !== 0) fail(`${nHeads} heads and ${nKvHeads} kv heads do not divide hidden_size ${dim}`);
  const headDim = int('head_dim', dim / nHeads);
  if (headDim !== dim / nHeads) fail(`head_dim ${headDim} differs from hidden_size / num_attention_heads = ${dim / nHeads}, which weft does not support`);
  if ((c.hidden_act ?? 'silu') !== 'silu') fail(`hidden_act ${String(c.hidden_act)} is not supported (silu is)`);
  if (c.mlp_bias === true) fail(`MLP biases are not supported for ${arch}`);
  // Qwen2 always has q/k/v biases; Llama's attention_bias adds them to q/k/v and the output projection
  const attentionBias = arch === 'Qwen2ForCausalLM' ? 'qkv' : c.attention_bias === true ? 'qkvo' : undefined;
  const rope = (c.rope_parameters ?? c.rope_scaling ?? {}) as Record<string, unknown>;
  const ropeScaling = ropeScalingOf(rope, fail);
  const theta = (rope.rope_theta ?? c.rope_theta ?? 10000) as number;
  if (typeof theta !== 'number' || !(theta > 0)) fail(`rope_theta must be a positive number, is ${JSON.stringify(theta)}`);
  const eps = (c.rms_norm_eps ?? 1e-6) as number;
  if (typeof eps !== 'number' || !(eps > 0)) fail(`rms_norm_eps must be a positive number`);
  let seqLen = int('max_position_embeddings');
  // within its window, sliding-window attention is full attention: cap the context there
  if (typeof c.sliding_window === 'number' && c.sliding_window > 0 && c.use_sliding_window !== false) seqLen = Math.min(seqLen, c.sliding_window);
  return {
    family: 'llama',
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    vocabSize: int('vocab_size'),
    seqLen,
    normEps: eps,
    ropeTheta: theta,
    ...(ropeScaling ? { ropeScaling } : {}),
    ...(attentionBias ? { attentionBias } : {}),
  };
}

/** config.json's rope_scaling (or rope_parameters): none, linear or llama3; any other rope type is refused. */
function ropeScalingOf(rope: Record<string, unknown>, fail: (msg: string) => never): RopeScaling | undefined {
  const type = rope.rope_type ?? rope.type ?? 'default';
  const positive = (key: string): number => {
    const v = rope[key];
    return typeof v === 'number' && v > 0 ? v : fail(`rope_scaling.${key} must be a positive number, is ${JSON.stringify(v)}`);
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
  return fail(`RoPE scaling '${String(type)}' is not supported (weft supports default, linear and llama3)`);
}

/** All tensors of the checkpoint: model.safetensors, or the shards its index names (each inside the folder, each tensor once). */
function readTensors(dir: string): Map<string, TensorSource> {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const map = readJson(index).weight_map;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${index}: weight_map must be an object of tensor names to shard files`);
    const shards = new Set<string>();
    for (const [name, shard] of Object.entries(map)) {
      if (typeof shard !== 'string' || shard === '' || resolve(dir, shard).slice(0, resolve(dir).length + 1) !== resolve(dir) + sep) {
        throw new Error(`${index}: tensor ${JSON.stringify(name).slice(0, 60)} names ${JSON.stringify(shard)?.slice(0, 60)}, not a file inside the folder`);
      }
      shards.add(shard);
    }
    const tensors = new Map<string, TensorSource>();
    for (const shard of shards) {
      for (const [k, v] of readSafetensors(join(dir, shard))) {
        if (tensors.has(k)) throw new Error(`${join(dir, shard)}: tensor ${k} is also in another shard`);
        tensors.set(k, v);
      }
    }
    return tensors;
  }
  if (existsSync(single)) return readSafetensors(single);
  throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

/** Rows of a q/k projection reordered so each head's rotate-half pairs (j, j+hs/2) become adjacent (2j, 2j+1). */
function interleaveHeads(w: TensorSource, heads: number, headSize: number): TensorSource {
  const order: number[] = [];
  const half = headSize / 2;
  for (let h = 0; h < heads; h++) for (let j = 0; j < half; j++) order.push(h * headSize + j, h * headSize + half + j);
  return reorderedRows(w, order);
}

export function isHuggingFaceDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json'));
}

/** GPT-2's tensors under gpt2.ts's names: Conv1D weights ([in, out]) transposed, c_attn split into q, k, v. */
function gpt2Weights(dir: string, config: ModelConfig, tensors: Map<string, TensorSource>): Map<string, TensorSource> {
  const d = config.dim;
  const get = (key: string, shape: readonly number[]): TensorSource => {
    const t = tensors.get(key) ?? tensors.get(key.replace(/^transformer\./, ''));
    if (!t) throw new Error(`${dir}: tensor ${key} is missing`);
    if (t.shape.length !== shape.length || t.shape.some((x, i) => x !== shape[i])) {
      throw new Error(`${dir}: tensor ${key} has shape [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
    }
    return t;
  };
  const out = new Map<string, TensorSource>([
    ['wte', get('transformer.wte.weight', [config.vocabSize, d])],
    ['wpe', get('transformer.wpe.weight', [config.seqLen, d])],
    ['ln_f.weight', get('transformer.ln_f.weight', [d])],
    ['ln_f.bias', get('transformer.ln_f.bias', [d])],
  ]);
  for (let l = 0; l < config.nLayers; l++) {
    const h = `transformer.h.${l}.`;
    const p = `layers.${l}.`;
    const qkv = transposedSource(get(`${h}attn.c_attn.weight`, [d, 3 * d]));
    const qkvBias = get(`${h}attn.c_attn.bias`, [3 * d]);
    ['q', 'k', 'v'].forEach((n, i) => {
      out.set(`${p}w${n}`, sourceRows(qkv, i * d, d));
      out.set(`${p}b${n}`, sourceRows(qkvBias, i * d, d));
    });
    out.set(`${p}wo`, transposedSource(get(`${h}attn.c_proj.weight`, [d, d])));
    out.set(`${p}bo`, get(`${h}attn.c_proj.bias`, [d]));
    out.set(`${p}w_fc`, transposedSource(get(`${h}mlp.c_fc.weight`, [d, config.hiddenDim])));
    out.set(`${p}b_fc`, get(`${h}mlp.c_fc.bias`, [config.hiddenDim]));
    out.set(`${p}w_proj`, transposedSource(get(`${h}mlp.c_proj.weight`, [config.hiddenDim, d])));
    out.set(`${p}b_proj`, get(`${h}mlp.c_proj.bias`, [d]));
    for (const n of ['ln_1', 'ln_2']) {
      out.set(`${p}${n}.weight`, get(`${h}${n}.weight`, [d]));
      out.set(`${p}${n}.bias`, get(`${h}${n}.bias`, [d]));
    }
  }
  for (const name of gpt2WeightShapes(config).keys()) if (!out.has(name)) throw new Error(`${dir}: no tensor for ${name}`);
  return out;
}

/** BOS and the end-of-sequence ids (generation_config.json's, else config.json's) that are in the vocabulary. */
function specialTokens(dir: string, c: Record<string, unknown>, vocab: number): Pick<ModelConfig, 'bosId' | 'stop'> {
  const generation = join(dir, 'generation_config.json');
  const g = existsSync(generation) ? readJson(generation) : {};
  const ids = (v: unknown): number[] => (Array.isArray(v) ? v : [v]).filter((x): x is number => Number.isInteger(x) && x >= 0 && x < vocab);
  const [bos] = ids(g.bos_token_id ?? c.bos_token_id);
  return { ...(bos !== undefined ? { bosId: bos } : {}), stop: { ids: ids(g.eos_token_id ?? c.eos_token_id), inPrompt: false } };
}

export function readHuggingFace(dir: string): { config: ModelConfig; tensors: Map<string, TensorSource> } {
  const raw = readJson(join(dir, 'config.json'));
  const sized = configOf(dir, raw);
  const config: ModelConfig = { ...sized, ...specialTokens(dir, raw, sized.vocabSize) };
  const tensors = readTensors(dir);
  if (config.family === 'gpt2') return { config, tensors: gpt2Weights(dir, config, tensors) };
  const hs = config.dim / config.nHeads;
  const tied = raw.tie_word_embeddings === true;
  const source = (name: string): string | undefined => {
    if (name === 'tok_embeddings') return 'model.embed_tokens.weight';
    if (name === 'norm') return 'model.norm.weight';
    if (name === 'output') return tied && !tensors.has('lm_head.weight') ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const m = /^layers\.(\d+)\.(.+)$/.exec(name);
    if (!m) return undefined;
    const part = {
      attention_norm: 'input_layernorm',
      wq: 'self_attn.q_proj',
      wk: 'self_attn.k_proj',
      wv: 'self_attn.v_proj',
      wo: 'self_attn.o_proj',
      bq: 'self_attn.q_proj',
      bk: 'self_attn.k_proj',
      bv: 'self_attn.v_proj',
      bo: 'self_attn.o_proj',
      ffn_norm: 'post_attention_layernorm',
      w1: 'mlp.gate_proj',
      w2: 'mlp.down_proj',
      w3: 'mlp.up_proj',
    }[m[2]!];
    return part && `model.layers.${m[1]}.${part}.${/^b[qkvo]$/.test(m[2]!) ? 'bias' : 'weight'}`;
  };
  const weights = new Map<string, TensorSource>();
  for (const [name, shape] of llamaWeightShapes(config)) {
    if (name === 'rope_cos' || name === 'rope_sin') continue;
    const key = source(name)!;
    const t = tensors.get(key);
    if (!t) throw new Error(`${dir}: tensor ${key} is missing`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${dir}: tensor ${key} has shape [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
    }
    // q/k rows (and their biases) follow the rotate-half layout: reorder them to adjacent pairs
    const heads = /\.[wb]q$/.test(name) ? config.nHeads : /\.[wb]k$/.test(name) ? config.nKvHeads : 0;
    weights.set(name, heads ? interleaveHeads(t, heads, hs) : t);
  }
  return { config, tensors: weights };
}
