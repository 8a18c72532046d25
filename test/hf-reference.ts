// A forward pass in transformers' conventions on the CPU (rotate-half RoPE, head_dim, q/k/v/o biases, Qwen3's
// per-head q/k norms, Phi-3's fused qkv_proj and gate_up_proj, tied embeddings), over the Hugging Face tensor
// names of checkpoints the tests build; such checkpoints of random values, and their folders written as Hugging Face's.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ref from './reference.js';

export type HfTensors = Map<string, { shape: number[]; data: Float32Array }>;

/** Qwen3-0.6B's shape in small: a head_dim (24) other than hidden / heads (16), grouped kv heads, tied embeddings. */
export const tinyQwen3 = {
  architectures: ['Qwen3ForCausalLM'],
  model_type: 'qwen3',
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 24,
  intermediate_size: 96,
  num_hidden_layers: 2,
  vocab_size: 128,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  hidden_act: 'silu',
  attention_bias: false,
  tie_word_embeddings: true,
  use_sliding_window: false,
  sliding_window: 32,
  bos_token_id: 1,
  torch_dtype: 'bfloat16',
};

/** Phi-3-mini's shape in small (grouped kv heads here, so the fused rows have three sizes), its sliding window below its context. */
export const tinyPhi3 = {
  architectures: ['Phi3ForCausalLM'],
  model_type: 'phi3',
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 96,
  num_hidden_layers: 2,
  vocab_size: 128,
  max_position_embeddings: 64,
  sliding_window: 47,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  rope_scaling: null,
  hidden_act: 'silu',
  tie_word_embeddings: false,
  bos_token_id: 1,
};

/** Columns start..start+size-1 of each row of x [rows, width]. */
function columns(x: Float32Array, width: number, start: number, size: number): Float32Array {
  const rows = x.length / width;
  const out = new Float32Array(rows * size);
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * width + start, r * width + start + size), r * size);
  return out;
}

/** Logits at every position of `ids` (fed from position 0) under config.json `c`. */
export function hfForward(tensors: HfTensors, c: Record<string, unknown>, ids: readonly number[]): Float32Array {
  const t = (n: string): Float32Array => tensors.get(n)!.data;
  const n = (key: string, fallback?: number): number => (c[key] ?? fallback) as number;
  const [d, H, L, ff] = [n('hidden_size'), n('num_attention_heads'), n('num_hidden_layers'), n('intermediate_size')];
  const KV = n('num_key_value_heads', H);
  const hs = n('head_dim', d / H);
  const [eps, theta] = [n('rms_norm_eps', 1e-6), n('rope_theta', 10000)];
  const T = ids.length;
  const rope = (x: Float32Array, heads: number): Float32Array => {
    const out = x.slice();
    for (let r = 0; r < T; r++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < hs / 2; i++) {
          const angle = r / theta ** ((2 * i) / hs);
          const at = r * heads * hs + h * hs + i;
          const [a, b] = [x[at]!, x[at + hs / 2]!];
          out[at] = a * Math.cos(angle) - b * Math.sin(angle);
          out[at + hs / 2] = b * Math.cos(angle) + a * Math.sin(angle);
        }
    return out;
  };
  const heads = { heads: H, kvHeads: KV, headSize: hs };
  let x = ref.embed(t('model.embed_tokens.weight'), Int32Array.from(ids), d);
  for (let l = 0; l < L; l++) {
    const name = (s: string): string => `model.layers.${l}.${s}`;
    const w = (s: string): Float32Array => t(name(s));
    const linear = (input: Float32Array, proj: string, k: number): Float32Array => {
      const y = ref.matmul(input, w(`${proj}.weight`), k);
      return tensors.has(name(`${proj}.bias`)) ? ref.addBias(y, w(`${proj}.bias`)) : y;
    };
    // a norm weight of head_dim values normalizes each head alone
    const headNorm = (y: Float32Array, norm: string): Float32Array => (tensors.has(name(norm)) ? ref.rmsnorm(y, w(norm), eps) : y);
    const h = ref.rmsnorm(x, w('input_layernorm.weight'), eps);
    let [q, k, v] = tensors.has(name('self_attn.qkv_proj.weight'))
      ? ((qkv) => [
          columns(qkv, (H + 2 * KV) * hs, 0, H * hs),
          columns(qkv, (H + 2 * KV) * hs, H * hs, KV * hs),
          columns(qkv, (H + 2 * KV) * hs, (H + KV) * hs, KV * hs),
        ])(linear(h, 'self_attn.qkv_proj', d))
      : [linear(h, 'self_attn.q_proj', d), linear(h, 'self_attn.k_proj', d), linear(h, 'self_attn.v_proj', d)];
    q = rope(headNorm(q!, 'self_attn.q_norm.weight'), H);
    k = rope(headNorm(k!, 'self_attn.k_norm.weight'), KV);
    const p = ref.softmax(ref.attnScores(q, k, heads, T, T), T, T, true);
    x = ref.add(x, linear(ref.attnMix(p, v!, heads, T, T), 'self_attn.o_proj', H * hs));
    const f = ref.rmsnorm(x, w('post_attention_layernorm.weight'), eps);
    const [gate, up] = tensors.has(name('mlp.gate_up_proj.weight'))
      ? ((gu) => [columns(gu, 2 * ff, 0, ff), columns(gu, 2 * ff, ff, ff)])(linear(f, 'mlp.gate_up_proj', d))
      : [linear(f, 'mlp.gate_proj', d), linear(f, 'mlp.up_proj', d)];
    x = ref.add(x, linear(ref.mul(ref.silu(gate!), up!), 'mlp.down_proj', ff));
  }
  const classifier = tensors.has('lm_head.weight') ? t('lm_head.weight') : t('model.embed_tokens.weight');
  return ref.matmul(ref.rmsnorm(x, t('model.norm.weight'), eps), classifier, d);
}

/**
 * Random tensors of a llama-like checkpoint of config.json `c`: Qwen2's q/k/v biases with `biases`, Qwen3's q/k
 * norms with `qkNorm`, Phi-3's fused projections with `fused`, no lm_head when the config ties it. Matrices in
 * ±0.3, norm weights near 1.
 */
export function randomHfTensors(c: Record<string, unknown>, { biases = false, qkNorm = false, fused = false } = {}): HfTensors {
  const n = (key: string, fallback?: number): number => (c[key] ?? fallback) as number;
  const [d, H, L, ff, V] = [n('hidden_size'), n('num_attention_heads'), n('num_hidden_layers'), n('intermediate_size'), n('vocab_size')];
  const KV = n('num_key_value_heads', H);
  const hs = n('head_dim', d / H);
  const tensors: HfTensors = new Map();
  let seed = 1;
  const add = (name: string, shape: number[], norm = false): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = ref.randomArray(size, seed++, norm ? 0.5 : 0.3);
    if (norm) for (let i = 0; i < size; i++) data[i] = Math.fround(1 + data[i]!);
    tensors.set(name, { shape, data });
  };
  add('model.embed_tokens.weight', [V, d]);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [d], true);
    if (fused) add(`${p}self_attn.qkv_proj.weight`, [(H + 2 * KV) * hs, d]);
    else
      for (const [proj, rows] of [
        ['q', H * hs],
        ['k', KV * hs],
        ['v', KV * hs],
      ] as const)
        add(`${p}self_attn.${proj}_proj.weight`, [rows, d]);
    if (biases)
      for (const [proj, rows] of [
        ['q', H * hs],
        ['k', KV * hs],
        ['v', KV * hs],
      ] as const)
        add(`${p}self_attn.${proj}_proj.bias`, [rows]);
    add(`${p}self_attn.o_proj.weight`, [d, H * hs]);
    if (qkNorm) for (const norm of ['q_norm', 'k_norm']) add(`${p}self_attn.${norm}.weight`, [hs], true);
    add(`${p}post_attention_layernorm.weight`, [d], true);
    if (fused) add(`${p}mlp.gate_up_proj.weight`, [2 * ff, d]);
    else for (const proj of ['gate', 'up']) add(`${p}mlp.${proj}_proj.weight`, [ff, d]);
    add(`${p}mlp.down_proj.weight`, [d, ff]);
  }
  add('model.norm.weight', [d], true);
  if (c.tie_word_embeddings !== true) add('lm_head.weight', [V, d]);
  return tensors;
}

/** A safetensors file from a header object and raw data bytes. */
export function safetensors(header: object, data: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Writes tensors as one safetensors file, every one F32 or (values already bf16) BF16. */
export function writeSafetensors(path: string, tensors: HfTensors, dtype: 'F32' | 'BF16' = 'F32'): void {
  const bytes = [...tensors.values()].map(({ data }) =>
    dtype === 'F32'
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(Uint16Array.from(new Uint32Array(data.slice().buffer), (b) => b >>> 16).buffer),
  );
  const header: Record<string, unknown> = {};
  let offset = 0;
  [...tensors].forEach(([name, t], i) => {
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes[i]!.length] };
    offset += bytes[i]!.length;
  });
  const data = new Uint8Array(offset);
  offset = 0;
  for (const b of bytes) {
    data.set(b, offset);
    offset += b.length;
  }
  writeFileSync(path, safetensors(header, data));
}

/** A Hugging Face folder `dir` of config.json and model.safetensors. */
export function writeHfFolder(dir: string, config: Record<string, unknown>, tensors: HfTensors, dtype: 'F32' | 'BF16' = 'F32'): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), tensors, dtype);
  return dir;
}
