// Writes GGUF v3 files (ggml's docs/gguf.md) for tests: typed metadata (arrays included), tensor infos and
// an aligned data section, with tensors encoded by the weight-format table, each with the values it stands for.
import { weightFormats, type FormatName } from '../src/weights/formats.js';
import type { HfTensors } from './hf-reference.js';
import type { ModelConfig } from '../models/llama.js';

/** A metadata value with its GGUF value type (0 u8 … 12 f64); arrays name their element type (arrays of arrays hold GgufMeta arrays). */
export type GgufMeta =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; of: Scalar; value: (number | bigint | boolean | string)[] }
  | { type: 'array'; of: 'array'; value: GgufMeta[] };
type Scalar = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64' | 'u64' | 'i64' | 'bool' | 'string';

const valueTypes = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

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

class ByteWriter {
  private chunks: number[] = [];
  get length(): number {
    return this.chunks.length;
  }
  bytes(b: Uint8Array): void {
    for (const x of b) this.chunks.push(x);
  }
  private fixed(n: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(n);
    set(new DataView(b.buffer));
    this.bytes(b);
  }
  u32 = (v: number): void => this.fixed(4, (d) => d.setUint32(0, v, true));
  u64 = (v: number | bigint): void => this.fixed(8, (d) => d.setBigUint64(0, BigInt(v), true));
  string = (s: string): void => {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  };
  /** the payload of a value, without its type tag */
  value(m: GgufMeta): void {
    const v = m.value;
    switch (m.type) {
      case 'u8':
        return this.fixed(1, (d) => d.setUint8(0, v as number));
      case 'i8':
        return this.fixed(1, (d) => d.setInt8(0, v as number));
      case 'u16':
        return this.fixed(2, (d) => d.setUint16(0, v as number, true));
      case 'i16':
        return this.fixed(2, (d) => d.setInt16(0, v as number, true));
      case 'u32':
        return this.u32(v as number);
      case 'i32':
        return this.fixed(4, (d) => d.setInt32(0, v as number, true));
      case 'f32':
        return this.fixed(4, (d) => d.setFloat32(0, v as number, true));
      case 'f64':
        return this.fixed(8, (d) => d.setFloat64(0, v as number, true));
      case 'u64':
        return this.u64(v as bigint);
      case 'i64':
        return this.fixed(8, (d) => d.setBigInt64(0, v as bigint, true));
      case 'bool':
        return this.fixed(1, (d) => d.setUint8(0, v ? 1 : 0));
      case 'string':
        return this.string(v as string);
      case 'array': {
        this.u32(valueTypes[m.of]);
        this.u64(m.value.length);
        for (const item of m.value) this.value(m.of === 'array' ? (item as GgufMeta) : ({ type: m.of, value: item } as GgufMeta));
        return;
      }
    }
  }
  pad(align: number): void {
    while (this.chunks.length % align !== 0) this.chunks.push(0);
  }
  result(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

/** A GGUF file: header (version 3 unless given), metadata in order, tensor infos, data aligned to general.alignment (32). */
export function writeGguf(metadata: ReadonlyMap<string, GgufMeta> | [string, GgufMeta][], tensors: readonly GgufTensor[], version = 3): Uint8Array {
  const meta = [...metadata];
  const alignMeta = meta.find(([k]) => k === 'general.alignment')?.[1];
  const align = alignMeta ? Number(alignMeta.value) : 32;
  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(version);
  w.u64(tensors.length);
  w.u64(meta.length);
  for (const [key, m] of meta) {
    w.string(key);
    w.u32(valueTypes[m.type]);
    w.value(m);
  }
  let offset = 0;
  const offsets = tensors.map((t) => {
    const at = offset;
    offset = Math.ceil((offset + t.data.length) / align) * align;
    return at;
  });
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]!);
  });
  w.pad(align);
  tensors.forEach((t) => {
    w.bytes(t.data);
    w.pad(align);
  });
  return w.result();
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

/** llama.cpp's name for a weft llama weight. */
export function llamaGgufName(name: string): string {
  const fixed: Record<string, string> = { tok_embeddings: 'token_embd.weight', norm: 'output_norm.weight', output: 'output.weight' };
  if (fixed[name]) return fixed[name];
  const [, l, part] = /^layers\.(\d+)\.(.+)$/.exec(name)!;
  const blk: Record<string, string> = {
    attention_norm: 'attn_norm',
    wq: 'attn_q',
    wk: 'attn_k',
    wv: 'attn_v',
    wo: 'attn_output',
    ffn_norm: 'ffn_norm',
    w1: 'ffn_gate',
    w2: 'ffn_down',
    w3: 'ffn_up',
  };
  return `blk.${l}.${blk[part!]}.weight`;
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

/** The metadata of a GGUF llama of `config`'s sizes, named `name` (no tokenizer). */
export function llamaMetadata(c: ModelConfig, name: string): [string, GgufMeta][] {
  return [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: name }],
    ['llama.context_length', { type: 'u32', value: c.seqLen }],
    ['llama.embedding_length', { type: 'u32', value: c.dim }],
    ['llama.feed_forward_length', { type: 'u32', value: c.hiddenDim }],
    ['llama.block_count', { type: 'u32', value: c.nLayers }],
    ['llama.attention.head_count', { type: 'u32', value: c.nHeads }],
    ['llama.attention.head_count_kv', { type: 'u32', value: c.nKvHeads }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: c.normEps }],
    ['llama.rope.freq_base', { type: 'f32', value: c.ropeTheta }],
    ['llama.rope.dimension_count', { type: 'u32', value: c.headSize }],
  ];
}
