// Writes GGUF v3 files (ggml's docs/gguf.md) as llama.cpp reads them: typed metadata, tensor infos, then an aligned
// data section streamed to the file one tensor at a time (no tensor is held after it is written), into NAME.part,
// synced and renamed to NAME only once whole. The file types (which format each weight of a llama is stored in)
// are one table.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { ModelConfig } from './llama.js';
import { type FormatName } from '../src/weights/formats.js';

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

/** A tensor's entry in the header: its data is byteLength bytes of ggml type `type`. */
export interface GgufTensorEntry {
  readonly name: string;
  /** ne: the fastest-varying dimension first */
  readonly dims: readonly number[];
  readonly type: number;
  readonly byteLength: number;
}

/** Little-endian fields appended to chunks, joined once at the end. */
class ByteWriter {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  get length(): number {
    return this.size;
  }
  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.size += b.length;
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
    const n = (align - (this.size % align)) % align;
    if (n > 0) this.bytes(new Uint8Array(n));
  }
  result(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** Where everything of a GGUF file goes: the header through the padding before the data, each tensor's data offset, the file's size. */
export interface GgufLayout {
  /** magic, version, counts, metadata and tensor infos, padded to the alignment: the file's first bytes */
  readonly header: Uint8Array;
  readonly alignment: number;
  /** each tensor's data offset from the start of the data section */
  readonly offsets: readonly number[];
  /** the whole file: the header, then each tensor's data padded to the alignment */
  readonly size: number;
}

/** The layout of a GGUF file (version 3 unless given): metadata in order, tensor infos, data aligned to general.alignment (32). */
export function ggufLayout(metadata: Iterable<readonly [string, GgufMeta]>, tensors: readonly GgufTensorEntry[], version = 3): GgufLayout {
  const meta = [...metadata];
  const alignMeta = meta.find(([k]) => k === 'general.alignment')?.[1];
  const alignment = alignMeta ? Number(alignMeta.value) : 32;
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
    offset = Math.ceil((offset + t.byteLength) / alignment) * alignment;
    return at;
  });
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]!);
  });
  w.pad(alignment);
  return { header: w.result(), alignment, offsets, size: w.length + offset };
}

/** A tensor to stream: its header entry, and its data, made when it is written. */
export interface GgufTensorWriter extends GgufTensorEntry {
  /** the tensor's bytes, now or once made (by a worker) */
  data(): Uint8Array | Promise<Uint8Array>;
}

export interface GgufWriteOptions {
  /** tensors whose data() runs before the one being written is done (their bytes held meanwhile); default 1 */
  readonly ahead?: number;
  /** hears of each tensor written */
  readonly onTensor?: (done: number, total: number, name: string) => void;
}

/**
 * Writes a GGUF file: the header, then each tensor's data as `data()` makes it, in order, into `path`.part, synced
 * and renamed to `path` once whole (a failure removes the part). Returns the file's size.
 */
export async function writeGgufFile(
  path: string,
  metadata: Iterable<readonly [string, GgufMeta]>,
  tensors: readonly GgufTensorWriter[],
  options: GgufWriteOptions = {},
): Promise<number> {
  const layout = ggufLayout(metadata, tensors);
  const ahead = Math.max(1, options.ahead ?? 1);
  const part = `${path}.part`;
  let fd: number | undefined;
  const made: Promise<Uint8Array>[] = [];
  // a tensor's data is asked for once the `ahead` before it are asked for; a failure is thrown where it is written
  const start = (i: number): void => {
    if (i < tensors.length) made[i] = Promise.resolve().then(() => tensors[i]!.data());
    made[i]?.catch(() => undefined);
  };
  try {
    fd = openSync(part, 'w');
    const write = (b: Uint8Array): void => {
      for (let at = 0; at < b.length;) at += writeSync(fd!, b, at, b.length - at);
    };
    write(layout.header);
    let written = layout.header.length;
    for (let i = 0; i < Math.min(ahead, tensors.length); i++) start(i);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      const data = await made[i]!;
      delete made[i];
      start(i + ahead);
      if (data.length !== t.byteLength) throw new Error(`tensor ${t.name}: ${data.length} bytes made, its entry says ${t.byteLength}`);
      write(data);
      written += data.length;
      const pad = (layout.alignment - (written % layout.alignment)) % layout.alignment;
      if (pad > 0) write(new Uint8Array(pad));
      written += pad;
      options.onTensor?.(i + 1, tensors.length, t.name);
    }
    // on disk before the name says whole: a crash after the rename must not leave a file of the right size whose
    // data never reached the disk (a later run takes a file of the right layout as written); and a benchmark that
    // writes its file times nothing while the kernel still writes it back
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(part, path);
    return written;
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(part, { force: true });
    throw e;
  }
}

/** llama.cpp's name for a weft llama weight; throws for one llama.cpp's llama architecture has no tensor for (biases, q/k norms). */
export function llamaGgufName(name: string): string {
  const fixed: Record<string, string> = { tok_embeddings: 'token_embd.weight', norm: 'output_norm.weight', output: 'output.weight' };
  if (Object.hasOwn(fixed, name)) return fixed[name]!;
  const m = /^layers\.(\d+)\.(.+)$/.exec(name);
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
  if (!m || !Object.hasOwn(blk, m[2]!)) throw new Error(`${name} has no tensor in llama.cpp's llama architecture`);
  return `blk.${m[1]}.${blk[m[2]!]}.weight`;
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

/**
 * A SentencePiece vocabulary of `size` tokens for a model that has no tokenizer, as llama.cpp loads one: <unk>, <s>
 * (BOS) and </s> (EOS), the 256 byte pieces, ▁ (so text round-trips through llama.cpp's tokenizer: every other
 * character is spelled in bytes), then plain pieces ▁p260, ▁p261, … (a smaller vocabulary keeps the first `size`).
 * Token ids are all a benchmark feeds; the pieces only have to make a vocabulary llama.cpp accepts.
 */
export function placeholderVocabulary(size: number): [string, GgufMeta][] {
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const tokens = ['<unk>', '<s>', '</s>', ...bytes, '\u2581'].slice(0, size);
  while (tokens.length < size) tokens.push(`\u2581p${tokens.length}`);
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: tokens.map((_, i) => -i) }],
    // unknown, control, byte, normal
    ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)) }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
  ];
}

/** A weight of a llama as a file type sees it: its weft name, row-major shape, the model's layer count, and its format as stored. */
export interface FileTypeWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly layers: number;
  readonly stored: FormatName;
}

/** llama.cpp's use_more_bits (llama-quant.cpp): the layers its _M mixes give more bits: the first and last eighth, and every third between. */
function usesMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.floor(layers / 8);
  return layer < eighth || layer >= Math.floor((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}

/** Norm weights stay F32, as llama.cpp's converter and quantizer keep every 1-D tensor. */
const norm = (w: FileTypeWeight): boolean => w.shape.length === 1;

/**
 * The GGUF file types weft writes: the format of each weight. Every weight format stores every matrix (the
 * embedding and the classifier included) in itself; `stored` keeps each matrix as its checkpoint stores it;
 * `q4_k_m` is llama.cpp's Q4_K_M: Q4_K matrices, Q6_K for the classifier, and for attn_v and ffn_down in the
 * layers use_more_bits picks.
 */
export const ggufFileTypes: Readonly<Record<FormatName | 'stored' | 'q4_k_m', (w: FileTypeWeight) => FormatName>> = {
  stored: (w) => (norm(w) ? 'f32' : w.stored),
  f32: () => 'f32',
  f16: (w) => (norm(w) ? 'f32' : 'f16'),
  bf16: (w) => (norm(w) ? 'f32' : 'bf16'),
  q8_0: (w) => (norm(w) ? 'f32' : 'q8_0'),
  q4_0: (w) => (norm(w) ? 'f32' : 'q4_0'),
  q4_k: (w) => (norm(w) ? 'f32' : 'q4_k'),
  q5_k: (w) => (norm(w) ? 'f32' : 'q5_k'),
  q6_k: (w) => (norm(w) ? 'f32' : 'q6_k'),
  q4_k_m: (w) => {
    if (norm(w)) return 'f32';
    const vOrDown = /^layers\.(\d+)\.w[v2]$/.exec(w.name);
    return w.name === 'output' || (vOrDown && usesMoreBits(Number(vOrDown[1]), w.layers)) ? 'q6_k' : 'q4_k';
  },
};

export type GgufFileType = keyof typeof ggufFileTypes;
