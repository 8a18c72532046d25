// GGUF files for tests, in memory: models/gguf-writer.ts's layout with every tensor's bytes given, tensors encoded by
// the weight-format table with the values each stands for, and Hugging Face checkpoints as llama.cpp's converter writes them.
import { weightFormats, type FormatName } from '../src/weights/formats.js';
import type { HfTensors } from './hf-reference.js';
import { ggufLayout, type GgufMeta } from '../models/gguf-writer.js';

export interface GgufTensor {
  readonly name: string;
  /** ne: the fastest-varying dimension first */
  readonly dims: readonly number[];
  readonly type: number;
  readonly data: Uint8Array;
}

export interface EncodedTensor {
  readonly type: number;
  readonly data: Uint8Array;
  /** the values a reader must decode from data, computed from the encoder's own scales and integers */
  readonly values: Float32Array;
}

/** A GGUF file: header (version 3 unless given), metadata in order, tensor infos, data aligned to general.alignment (32). */
export function writeGguf(metadata: ReadonlyMap<string, GgufMeta> | [string, GgufMeta][], tensors: readonly GgufTensor[], version = 3): Uint8Array {
  const layout = ggufLayout(
    metadata,
    tensors.map((t) => ({ ...t, byteLength: t.data.length })),
    version,
  );
  const out = new Uint8Array(layout.size);
  out.set(layout.header);
  tensors.forEach((t, i) => out.set(t.data, layout.header.length + layout.offsets[i]!));
  return out;
}

/**
 * A tensor in a format GGUF stores: the table's encoder gives the bytes (ggml's reference quantizer for blocks),
 * the table's dequantizer the values a reader must decode from them.
 */
export function encodeTensor(name: FormatName, x: Float32Array): EncodedTensor {
  const format = weightFormats[name];
  if (format.ggmlType === undefined) throw new Error(`GGUF does not store ${name}`);
  const data = format.encode(x);
  return { type: format.ggmlType, data, values: format.dequantize(data, x.length) };
}

/** llama.cpp's name for a Hugging Face tensor of a llama-like model (its converter's table, for the tensors tests build). */
function ggufNameOfHf(name: string): string {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[name]) return fixed[name];
  const [, l, part, kind] = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name)!;
  const parts: Record<string, string> = {
    input_layernorm: 'attn_norm',
    'self_attn.q_proj': 'attn_q',
    'self_attn.k_proj': 'attn_k',
    'self_attn.v_proj': 'attn_v',
    'self_attn.o_proj': 'attn_output',
    'self_attn.qkv_proj': 'attn_qkv',
    'self_attn.q_norm': 'attn_q_norm',
    'self_attn.k_norm': 'attn_k_norm',
    post_attention_layernorm: 'ffn_norm',
    'mlp.gate_proj': 'ffn_gate',
    'mlp.up_proj': 'ffn_up',
    'mlp.gate_up_proj': 'ffn_up',
    'mlp.down_proj': 'ffn_down',
  };
  return `blk.${l}.${parts[part!]}.${kind}`;
}

/**
 * A llama-like Hugging Face checkpoint (config.json's values `c`, tensors by their names) as llama.cpp's converter
 * writes it for `arch`: `{arch}.` metadata (the head size as attention.key_length), its tensor names, rows as
 * stored (its qwen2, qwen3 and phi3 keep q/k in rotate-half order), each tensor encoded by `encode`.
 */
export function hfAsGguf(
  arch: string,
  c: Record<string, unknown>,
  tensors: HfTensors,
  extra: readonly (readonly [string, GgufMeta])[],
  encode: (name: string, t: { shape: number[]; data: Float32Array }) => EncodedTensor,
): Uint8Array {
  const n = (key: string, fallback?: number): number => (c[key] ?? fallback) as number;
  const headSize = n('head_dim', n('hidden_size') / n('num_attention_heads'));
  const u32 = (key: string, value: number): [string, GgufMeta] => [`${arch}.${key}`, { type: 'u32', value }];
  const metadata: [string, GgufMeta][] = [
    ['general.architecture', { type: 'string', value: arch }],
    u32('context_length', n('max_position_embeddings')),
    u32('embedding_length', n('hidden_size')),
    u32('feed_forward_length', n('intermediate_size')),
    u32('block_count', n('num_hidden_layers')),
    u32('attention.head_count', n('num_attention_heads')),
    u32('attention.head_count_kv', n('num_key_value_heads', n('num_attention_heads'))),
    u32('attention.key_length', headSize),
    u32('attention.value_length', headSize),
    u32('rope.dimension_count', headSize),
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: n('rms_norm_eps') }],
    [`${arch}.rope.freq_base`, { type: 'f32', value: n('rope_theta', 10000) }],
    ...extra.map(([k, v]): [string, GgufMeta] => [k, v]),
  ];
  const out = [...tensors].map(([name, t]): GgufTensor => {
    const e = encode(name, t);
    return { name: ggufNameOfHf(name), dims: [...t.shape].reverse(), type: e.type, data: e.data };
  });
  return writeGguf(metadata, out);
}
