// GGUF checkpoints written from the llama-gqa fixture: F32 logits equal the safetensors path's; F16, Q8_0 and
// Q4_0 logits equal a model built from the values the encoders chose; metadata of every type, the tokenizer,
// the dequantizers, and one-line errors on malformed files.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  floatWeights,
  loadModel,
  optimizeGraphs,
  quantizeCheckpoint,
  readCheckpoint,
  readModelFiles,
  tensorFormats,
  type Checkpoint,
  type ModelFiles,
} from '../src/api.js';
import { compileGraph, defaultCodegenOptions } from '../src/codegen/compile.js';
import { parseGguf, readGguf } from '../models/gguf.js';
import { llamaWeightShapes } from '../models/llama.js';
import { defaultPassContext } from '../src/passes/pass.js';
import { weightFormats, type FormatName } from '../src/weights/formats.js';
import { sourceValues, valuesSource } from '../src/weights/source.js';
import { llamaForward, maxAbsDiff } from './reference.js';
import { hfForward, randomHfTensors, tinyPhi3, tinyQwen3, type HfTensors } from './hf-reference.js';
import { llamaGgufName, llamaMetadata, type GgufMeta } from '../models/gguf-writer.js';
import { encodeTensor, hfAsGguf, writeGguf, type GgufTensor } from './gguf-writer.js';
import { ropeTables } from '../models/llama2c.js';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { byteChar, llama3PreTokenizer, tokenizerJson } from './bpe-fixture.js';

const fixture = new URL('../../shared/fixtures/hf/llama-gqa/', import.meta.url).pathname;
const reference = JSON.parse(readFileSync(join(fixture, 'reference.json'), 'utf8')) as { prompt: number[] };
const base = readCheckpoint(fixture);
/** the fixture's values, RoPE tables included */
const baseWeights = floatWeights(base);
/** the fixture's config as GGUF stores it: the norm epsilon is an f32 there */
const baseConfig = { ...base.config, normEps: Math.fround(base.config.normEps) };
const scratch = mkdtempSync(join(tmpdir(), 'weft-gguf-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A checkpoint of float32 values held in memory: `values` by name, each in the shape `like` gives it. */
function floatCheckpoint(like: Checkpoint, values: ReadonlyMap<string, Float32Array> = floatWeights(like)): ModelFiles {
  const tensors = new Map([...like.tensors].map(([name, t]) => [name, valuesSource(values.get(name)!, t.shape)]));
  return { config: like.config, tensors, tokenizer: undefined };
}

/** A SentencePiece-style vocabulary of 512: specials, byte pieces, '▁', letters, the merges of "hello", fillers. */
function vocabulary(): { tokens: string[]; scores: number[] } {
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), '\u2581'];
  const scores = tokens.map(() => 0);
  for (let c = 97; c <= 122; c++) (tokens.push(String.fromCharCode(c)), scores.push(0));
  [
    ['he', -1],
    ['ll', -2],
    ['llo', -3],
    ['hello', -4],
    ['\u2581hello', -5],
  ].forEach(([t, s]) => (tokens.push(t as string), scores.push(s as number)));
  while (tokens.length < 512) (tokens.push(`<extra_${tokens.length}>`), scores.push(-100));
  return { tokens, scores };
}

interface Built {
  bytes: Uint8Array;
  /** the weights a reader must return: the encoders' values */
  expected: Map<string, Float32Array>;
}

/** The fixture as a GGUF file: 2-D weights in `format`, norms F32; `meta` overrides or adds metadata. */
function build(
  format: FormatName,
  meta: [string, GgufMeta][] = [],
  edit: { retype?: { name: string; type: number }; omit?: string; extra?: readonly GgufTensor[] } = {},
): Built {
  const { retype, omit, extra = [] } = edit;
  const c = base.config;
  const { tokens, scores } = vocabulary();
  const metadata = new Map<string, GgufMeta>([
    ...llamaMetadata(c, 'llama-gqa fixture'),
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: tokens.map((_, i) => (i < 3 ? 3 : i < 259 ? 6 : 1)) }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
  ]);
  for (const [k, v] of meta) metadata.set(k, v);
  const expected = new Map<string, Float32Array>();
  const tensors = [...llamaWeightShapes(c)]
    .filter(([name]) => name !== 'rope_cos' && name !== 'rope_sin')
    .map(([name, shape]) => {
      // norms stay F32; rows that blocks do not divide fall back to F16, as llama.cpp's quantizer does
      const blocked = shape[1]! % weightFormats[format].blockElements !== 0;
      const e = encodeTensor(shape.length === 1 ? 'f32' : blocked ? 'f16' : format, baseWeights.get(name)!);
      expected.set(name, e.values);
      const type = retype?.name === llamaGgufName(name) ? retype.type : e.type;
      return { name: llamaGgufName(name), dims: [...shape].reverse(), type, data: e.data };
    })
    .filter((t) => t.name !== omit);
  return { bytes: writeGguf(metadata, [...tensors, ...extra]), expected };
}

function save(name: string, bytes: Uint8Array): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

/** Every position's logits: the reference prompt, then 4 greedy steps. */
async function logits(source: string | ModelFiles): Promise<Float32Array[]> {
  // float32 matmuls, as the references compute (quantized weights default to int8 ones)
  const model = await loadModel(source, { matmul: 'float' });
  try {
    const out: Float32Array[] = [];
    for await (const s of model.generate({ promptIds: reference.prompt, steps: reference.prompt.length + 4, temperature: 0, logits: true }))
      out.push(s.logits!);
    return out;
  } finally {
    model.release();
  }
}

/** The ids fed at every position of that run. */
async function fedIds(source: string): Promise<number[]> {
  const model = await loadModel(source, { matmul: 'float' });
  try {
    const ids: number[] = [];
    for await (const s of model.generate({ promptIds: reference.prompt, steps: reference.prompt.length + 4, temperature: 0 })) ids.push(s.token);
    return ids;
  } finally {
    model.release();
  }
}

const worst = (a: Float32Array[], b: Float32Array[]): number => {
  expect(a.length).toBe(b.length);
  return Math.max(...a.map((x, i) => maxAbsDiff(x, b[i]!)));
};

describe('GGUF llama checkpoints', () => {
  it('F32: the config and weights of the safetensors checkpoint, and the same logits', async () => {
    const path = save('f32.gguf', build('f32').bytes);
    const ckpt = readCheckpoint(path);
    expect(ckpt.config).toEqual(baseConfig);
    const weights = floatWeights(ckpt);
    for (const [name, w] of baseWeights) expect(maxAbsDiff(weights.get(name)!, w), name).toBe(0);
    expect(worst(await logits(path), await logits(fixture))).toBeLessThan(1e-5);
  });

  it.each([
    ['F16', 'f16'],
    ['Q8_0', 'q8_0'],
    ['Q4_0', 'q4_0'],
  ] as const)(
    '%s: dequantized weights equal the encoded values; logits equal a model built from them and a CPU dequantize-then-compute forward pass',
    async (kind, format) => {
      const { bytes, expected } = build(format, kind === 'Q4_0' ? [['general.alignment', { type: 'u32', value: 64 }]] : []);
      const path = save(`${kind}.gguf`, bytes);
      const ckpt = readCheckpoint(path);
      for (const [name, w] of expected) expect(maxAbsDiff(sourceValues(ckpt.tensors.get(name)!), w), name).toBe(0);
      const weights = new Map(baseWeights);
      for (const [name, w] of expected) weights.set(name, w);
      const got = await logits(path);
      expect(worst(got, await logits(floatCheckpoint(base, weights)))).toBeLessThan(1e-4);
      // the CPU's dequantize-then-compute forward pass over the ids fed, at every position
      const ids = await fedIds(path);
      const cpu = llamaForward(ckpt.config, floatWeights(ckpt), ids);
      const V = ckpt.config.vocabSize;
      expect(
        worst(
          got,
          ids.map((_, p) => cpu.subarray(p * V, (p + 1) * V)),
        ),
      ).toBeLessThan(1e-4);
      // a sanity bound: quantization moves this small random model's logits (0.002 F16, 0.04 Q8_0, 1.8 Q4_0)
      expect(worst(got, await logits(fixture))).toBeLessThan(kind === 'Q4_0' ? 3 : 0.1);
    },
  );

  it.each([
    ['Q8_0', 'q8_0'],
    ['Q4_0', 'q4_0'],
  ] as const)('%s matmul weights and the embedding table stay quantized on the device; F16 fallbacks stay F16', async (kind, dtype) => {
    const path = save(`${kind}-plan.gguf`, build(dtype).bytes);
    const ckpt = readCheckpoint(path);
    const formats = tensorFormats(ckpt.tensors);
    expect(formats.get('layers.0.wq')).toBe(dtype);
    const plan = compileGraph(optimizeGraphs(ckpt.config, undefined, { ...defaultPassContext, formats }).decode, { ...defaultCodegenOptions, formats });
    const dtypeOf = (source: string): string | undefined => plan.buffers.find((b) => b.role === 'weight' && (b.sources ?? [b.name]).includes(source))?.dtype;
    for (const name of ['layers.0.wq', 'layers.0.wv', 'layers.0.wo', 'layers.1.w1', 'layers.1.w3', 'output']) expect(dtypeOf(name), name).toBe(dtype);
    // the embed kernel decodes the table's format; w2's rows of 344 are not whole blocks, so the file holds them as F16
    expect(dtypeOf('tok_embeddings')).toBe(dtype);
    expect(dtypeOf('layers.0.w2')).toBe('f16');
    const model = await loadModel(path);
    const plain = await loadModel(floatCheckpoint(ckpt));
    try {
      // by default quantized weights multiply as int8 blocks, float ones in float32
      expect([model.matmul, plain.matmul]).toEqual(['int8', 'float']);
      expect(model.decodeWeightBytes).toBeLessThan(plain.decodeWeightBytes * (kind === 'Q8_0' ? 0.6 : 0.5));
    } finally {
      model.release();
      plain.release();
    }
  });

  it('routes a file by its magic whatever its name, and output.weight absent ties it to token_embd', () => {
    const path = save('tied.bin', build('f32', [], { omit: 'output.weight' }).bytes);
    const ckpt = readCheckpoint(path);
    expect(ckpt.config).toEqual(baseConfig);
    expect(sourceValues(ckpt.tensors.get('output')!)).toEqual(baseWeights.get('tok_embeddings'));
  });

  it('carries its SentencePiece tokenizer: ▁ read as a space, merges by score, byte pieces', () => {
    const files = readModelFiles(save('tok.gguf', build('f32').bytes));
    const tok = files.tokenizer!;
    const ids = tok.encode('hello', true);
    expect(ids).toEqual([1, vocabulary().tokens.indexOf('\u2581hello')]);
    // the space prefix is stripped at the start of the text only, not after BOS (llama.cpp's and Hugging Face's decode)
    expect(new TextDecoder().decode(tok.stream().push(ids[1]!))).toBe('hello');
    expect(new TextDecoder().decode(tok.stream([1]).push(ids[1]!))).toBe(' hello');
    expect(new TextDecoder().decode(tok.stream([5]).push(ids[1]!))).toBe(' hello');
    expect([...tok.stream([5]).push(3 + 10)]).toEqual([10]);
    expect(tok.specials).toEqual({ bos: { id: 1, text: '<s>' }, eos: { id: 2, text: '</s>' } });
  });
});

describe('GGUF metadata and blocks', () => {
  it('reads metadata values of every type, arrays nested', () => {
    const meta: [string, GgufMeta][] = [
      ['u8', { type: 'u8', value: 250 }],
      ['i8', { type: 'i8', value: -5 }],
      ['u16', { type: 'u16', value: 65000 }],
      ['i16', { type: 'i16', value: -300 }],
      ['u32', { type: 'u32', value: 4e9 }],
      ['i32', { type: 'i32', value: -2e9 }],
      ['f32', { type: 'f32', value: 1.5 }],
      ['bool', { type: 'bool', value: true }],
      ['string', { type: 'string', value: 'héllo ▁' }],
      ['u64', { type: 'u64', value: 2n ** 63n + 1n }],
      ['i64', { type: 'i64', value: -(2n ** 40n) }],
      ['f64', { type: 'f64', value: 0.1 }],
      [
        'array',
        {
          type: 'array',
          of: 'array',
          value: [
            { type: 'array', of: 'u32', value: [1, 2] },
            { type: 'array', of: 'string', value: ['a'] },
          ],
        },
      ],
    ];
    const file = parseGguf(save('x.gguf', writeGguf(meta, [])));
    expect(file.version).toBe(3);
    expect(Object.fromEntries(file.metadata)).toEqual({
      u8: 250,
      i8: -5,
      u16: 65000,
      i16: -300,
      u32: 4e9,
      i32: -2e9,
      f32: 1.5,
      bool: true,
      string: 'héllo ▁',
      u64: 2n ** 63n + 1n,
      i64: -(2n ** 40n),
      f64: 0.1,
      array: [[1, 2], ['a']],
    });
  });

  it('dequantizes Q8_0 and Q4_0 blocks', () => {
    const q8 = new Uint8Array(34);
    q8.set([0x00, 0x34]); // d = 0.25
    q8[2] = 0x80; // -128
    q8[3] = 127;
    q8[4] = 0xff; // -1
    expect([...weightFormats.q8_0.dequantize(q8, 32).subarray(0, 4)]).toEqual([-32, 31.75, -0.25, 0]);
    const q4 = new Uint8Array(18);
    q4.set([0x00, 0x38]); // d = 0.5
    q4[2] = 0x1f; // element 0: 15 → 3.5, element 16: 1 → -3.5
    q4.fill(0x88, 3); // nibble 8 → 0
    const v = weightFormats.q4_0.dequantize(q4, 32);
    expect([v[0], v[16], v[1], v[17]]).toEqual([3.5, -3.5, 0, 0]);
  });
});

/** llama.cpp's rope_freqs.weight: one F32 divisor per RoPE frequency. */
function ropeFreqs(divisors: Float32Array): GgufTensor {
  return { name: 'rope_freqs.weight', dims: [divisors.length], type: 0, data: new Uint8Array(divisors.buffer.slice(0)) };
}

describe('quantizeCheckpoint (weft bench --weights q8_0,q4_0)', () => {
  it.each(['q8_0', 'q4_0'] as const)('%s: matmul weights held as blocks of the values it gives; the same logits as those values in float32', async (type) => {
    const q = quantizeCheckpoint(base, type);
    const quantized = [...q.tensors].filter(([name, t]) => t !== base.tensors.get(name)).map(([name]) => name);
    expect(quantized.sort()).toEqual([...base.tensors.keys()].filter((n) => n === 'output' || /^layers\.\d+\.w[qkvo13]$/.test(n)).sort());
    for (const name of quantized) {
      const t = q.tensors.get(name)!;
      expect(t.format.name).toBe(type);
      expect(t.shape).toEqual(base.tensors.get(name)!.shape);
      // the blocks ggml's reference quantizer makes of the checkpoint's values
      expect(t.read()).toEqual(weightFormats[type].encode(baseWeights.get(name)!));
    }
    // w2's rows of 344 are not whole blocks; the embedding table is read by row
    expect(q.tensors.get('layers.0.w2')).toBe(base.tensors.get('layers.0.w2'));
    expect(q.tensors.get('tok_embeddings')).toBe(base.tensors.get('tok_embeddings'));
    const files = { ...q, tokenizer: undefined };
    expect(worst(await logits(files), await logits(floatCheckpoint(q)))).toBeLessThan(1e-5);
  });

  it('refuses a model definition that names no weights to quantize', () => {
    const gpt2 = readCheckpoint(new URL('../../shared/fixtures/hf/gpt2/', import.meta.url).pathname);
    expect(() => quantizeCheckpoint(gpt2, 'q8_0')).toThrow(/^quantizing: only llama-family checkpoints, not gpt2$/);
  });
});

describe('GGUF RoPE scaling', () => {
  const c = base.config;
  const hs = c.dim / c.nHeads;
  it('linear scaling from the metadata', () => {
    const ckpt = readCheckpoint(
      save(
        'linear.gguf',
        build('f32', [
          ['llama.rope.scaling.type', { type: 'string', value: 'linear' }],
          ['llama.rope.scaling.factor', { type: 'f32', value: 4 }],
        ]).bytes,
      ),
    );
    expect(ckpt.config.ropeScaling).toEqual({ kind: 'linear', factor: 4 });
    expect(floatWeights(ckpt).get('rope_cos')).toEqual(ropeTables(hs, c.seqLen, c.ropeTheta, { kind: 'linear', factor: 4 }).cos);
  });

  it("Llama 3's frequency divisors from rope_freqs.weight", () => {
    const divisors = Float32Array.from({ length: hs / 2 }, (_, j) => 1 + j / 2);
    const ckpt = readCheckpoint(save('freqs.gguf', build('f32', [], { extra: [ropeFreqs(divisors)] }).bytes));
    const weights = floatWeights(ckpt);
    expect(ckpt.config.ropeScaling).toEqual({ kind: 'divisors', divisors: Array.from(divisors) });
    const scaled = ropeTables(hs, c.seqLen, c.ropeTheta, { kind: 'divisors', divisors: Array.from(divisors) });
    expect(weights.get('rope_sin')).toEqual(scaled.sin);
    expect(weights.get('rope_sin')).not.toEqual(ropeTables(hs, c.seqLen, c.ropeTheta).sin);
  });
});

describe('GGUF qwen2, qwen3 and phi3 (q/k in rotate-half order, as llama.cpp keeps them for its NEOX RoPE)', () => {
  const tinyQwen2 = { ...tinyQwen3, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', head_dim: 16 };
  const cases = [
    ['qwen2', tinyQwen2, { biases: true }, [], ['f32']],
    ['qwen3', tinyQwen3, { qkNorm: true }, [], ['f32', 'q8_0']],
    ['phi3', tinyPhi3, { fused: true }, [['phi3.attention.sliding_window', { type: 'u32', value: 47 }]], ['f32', 'q8_0']],
  ] as const;
  it.each(cases.flatMap(([arch, c, shape, extra, formats]) => formats.map((format) => [arch, format, c, shape, extra] as const)))(
    '%s, %s matrices: the logits of a transformers-convention forward pass over the values stored',
    async (arch, format, c, shape, extra) => {
      const tensors: HfTensors = new Map();
      const bytes = hfAsGguf(arch, c, randomHfTensors(c, shape), extra, (name, t) => {
        const e = encodeTensor(t.shape.length === 2 ? format : 'f32', t.data);
        tensors.set(name, { shape: t.shape, data: e.values });
        return e;
      });
      const path = save(`${arch}-${format}.gguf`, bytes);
      const ckpt = readCheckpoint(path);
      expect(ckpt.config).toMatchObject(
        { qwen2: { headSize: 16, attentionBias: 'qkv' }, qwen3: { headSize: 24, qkNorm: true, seqLen: 64 }, phi3: { headSize: 16, seqLen: 47 } }[arch],
      );
      const model = await loadModel(path, { matmul: 'float' });
      try {
        const fed: number[] = [];
        const got: Float32Array[] = [];
        for await (const s of model.generate({ promptIds: [1, 45, 100, 7, 99, 120], steps: 12, temperature: 0, logits: true })) {
          fed.push(s.token);
          got.push(s.logits!);
        }
        const V = c.vocab_size;
        const expected = hfForward(tensors, { ...c, rms_norm_eps: Math.fround(c.rms_norm_eps) }, fed);
        expect(
          worst(
            got,
            fed.map((_, p) => expected.subarray(p * V, (p + 1) * V)),
          ),
        ).toBeLessThan(1e-4);
      } finally {
        model.release();
      }
    },
  );

  it('refuses LongRoPE factors by name', () => {
    const t = (name: string, dims: number[]): GgufTensor => ({ name, dims, type: 0, data: new Uint8Array(4 * dims.reduce((a, b) => a * b, 1)) });
    const meta: [string, GgufMeta][] = [
      ['general.architecture', { type: 'string', value: 'phi3' }],
      ...(['context_length', 'embedding_length', 'feed_forward_length', 'block_count', 'attention.head_count'] as const).map((key): [string, GgufMeta] => [
        `phi3.${key}`,
        { type: 'u32', value: key === 'block_count' ? 1 : key === 'attention.head_count' ? 2 : 8 },
      ]),
      ['phi3.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ];
    const path = save('longrope.gguf', writeGguf(meta, [t('token_embd.weight', [8, 4]), t('blk.0.attn_norm.weight', [8]), t('rope_factors_long.weight', [4])]));
    expect(() => readGguf(path)).toThrow(/tensor rope_factors_long\.weight: LongRoPE frequency factors \(Phi-3 128k\) are not supported$/);
  });
});

/**
 * A byte-level (gpt2-kind) vocabulary of 512 as llama.cpp's converter writes one: GPT-2's byte characters,
 * merged tokens, Llama 3's two specials (control tokens), fillers; with tokenizer.ggml.pre `pre`.
 */
const gpt2Merges = ['Ġ t', 'h e', 'Ġt h', 'Ġth e', '1 2', '12 3', 'i n', 'in g'];
function gpt2Vocabulary(): { tokens: string[]; types: number[] } {
  const tokens = [...byteChar];
  for (const m of gpt2Merges) if (!tokens.includes(m.replace(' ', ''))) tokens.push(m.replace(' ', ''));
  tokens.push('<|begin_of_text|>', '<|end_of_text|>');
  while (tokens.length < 512) tokens.push(`<extra_${tokens.length}>`);
  return { tokens, types: tokens.map((t) => (t === '<|begin_of_text|>' || t === '<|end_of_text|>' ? 3 : 1)) };
}
function gpt2Meta(pre: string): [string, GgufMeta][] {
  const { tokens, types } = gpt2Vocabulary();
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: pre }],
    ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types }],
    ['tokenizer.ggml.merges', { type: 'array', of: 'string', value: gpt2Merges }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: tokens.indexOf('<|begin_of_text|>') }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: tokens.indexOf('<|end_of_text|>') }],
  ];
}

describe('GGUF gpt2-kind (byte-level BPE) tokenizer', () => {
  // the tokenizer.json the GGUF vocabulary stands for, read by the Hugging Face tokenizer
  const { tokens } = gpt2Vocabulary();
  const json = JSON.parse(
    tokenizerJson({ merges: gpt2Merges, preTokenizer: llama3PreTokenizer, model: { ignore_merges: true }, added: ['<|begin_of_text|>', '<|end_of_text|>'] }),
  );
  const bos = tokens.indexOf('<|begin_of_text|>');
  // the fillers after the two added tokens
  tokens.forEach((t, id) => {
    if (id > bos + 1) json.model.vocab[t] = id;
  });
  json.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [bos], tokens: ['<|begin_of_text|>'] } },
  };
  const hf = HfTokenizer.fromJson(JSON.stringify(json), 512, 'tokenizer.json', { config: { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' } });
  const texts = ['the theme', ' the 12345 things', "it's THE thing's\n\n  end", 'naïve café 日本語 🙂', '<|begin_of_text|>the<|end_of_text|> 1234567'];

  it('llama-bpe: encodes and decodes as the tokenizer.json it was converted from (Llama 3 split, ignore_merges, BOS)', () => {
    const files = readModelFiles(save('llama-bpe.gguf', build('f32', gpt2Meta('llama-bpe')).bytes));
    const tok = files.tokenizer as HfTokenizer;
    expect(tok).toBeInstanceOf(HfTokenizer);
    for (const text of texts) {
      expect(tok.encode(text, true)).toEqual(hf.encode(text, true));
      expect(tok.encode(text, true)[0]).toBe(bos);
      expect(tok.decode(tok.encode(text, false))).toBe(text);
    }
    expect(tok.encode(' the 12345', false)).toEqual([
      tokens.indexOf('Ġthe'),
      byteChar.indexOf('Ġ'),
      tokens.indexOf('123'),
      ...'45'.split('').map((c) => c.charCodeAt(0)),
    ]);
    for (let id = 0; id < 512; id++) expect(tok.decode([id])).toEqual(hf.decode([id]));
    expect(tok.specials).toEqual(hf.specials);
    expect(files.config.stop).toEqual({ ids: [tokens.indexOf('<|end_of_text|>')], inPrompt: false });
  });

  it("gpt-2: GPT-2's own split, no BOS unless the file asks for one", () => {
    const gpt2Json = JSON.parse(JSON.stringify(json));
    gpt2Json.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false, use_regex: true };
    gpt2Json.model.ignore_merges = false;
    const plain = HfTokenizer.fromJson(JSON.stringify(gpt2Json), 512);
    const tok = readModelFiles(save('gpt-2.gguf', build('f32', gpt2Meta('gpt-2')).bytes)).tokenizer!;
    for (const text of texts) expect(tok.encode(text, true)).toEqual(plain.encode(text, false));
    const withBos = readModelFiles(
      save('gpt-2-bos.gguf', build('f32', [...gpt2Meta('gpt-2'), ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }]]).bytes),
    ).tokenizer!;
    expect(withBos.encode('the', true)).toEqual([bos, ...plain.encode('the', false)]);
  });
});

/** A regex source matching `text` literally. */
const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('GGUF errors', () => {
  const good = build('f32').bytes;
  const patched = (at: number, value: number): Uint8Array => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(at, value, true);
    return b;
  };
  it.each([
    [
      'a file truncated in its data',
      () => good.subarray(0, good.length - 100),
      /tensor "output\.weight": bytes .* are outside the \d+ data bytes \(truncated\?\)$/,
    ],
    ['a file truncated in its header', () => good.subarray(0, 40), /truncated/],
    ['a bad magic', () => patched(0, 0x46554746), /not a GGUF file/],
    ['version 1', () => patched(4, 1), /GGUF version 1 is not supported/],
    ['a tensor count past the file', () => patched(8, 1e9), /truncated: 1000000000 tensors/],
    [
      'an unknown metadata type',
      () => patched(24 + 8 + 'general.architecture'.length, 13),
      /metadata "general\.architecture": unknown metadata value type 13$/,
    ],
    [
      'an unsupported tensor type',
      () => build('f32', [], { retype: { name: 'blk.0.attn_q.weight', type: 10 } }).bytes,
      /tensor "blk\.0\.attn_q\.weight" has type Q2_K, which weft does not read \(F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K\)/,
    ],
    [
      'a shape disagreeing with the metadata',
      () => build('f32', [['llama.feed_forward_length', { type: 'u32', value: 340 }]]).bytes,
      /tensor blk\.0\.ffn_gate\.weight has shape \[344, 128\] \(ne \[128, 344\]\), the metadata implies \[340, 128\]$/,
    ],
    [
      'an unknown architecture',
      () => build('f32', [['general.architecture', { type: 'string', value: 'gpt2' }]]).bytes,
      /architecture "gpt2" is not supported/,
    ],
    ['RoPE scaling', () => build('f32', [['llama.rope.scaling.type', { type: 'string', value: 'yarn' }]]).bytes, /RoPE scaling "yarn" is not supported/],
    [
      'a rope_freqs tensor of the wrong length',
      () => build('f32', [], { extra: [ropeFreqs(new Float32Array(5).fill(2))] }).bytes,
      /tensor rope_freqs\.weight has ne \[5\], the head size implies \[8\]$/,
    ],
    // sizes are checked against sane bounds and the tensors before anything is sized or looped over by them
    [
      'a context of 1e8 positions',
      () => build('f32', [['llama.context_length', { type: 'u32', value: 1e8 }]]).bytes,
      /llama\.context_length is 100000000, beyond the 16777216 weft reads$/,
    ],
    [
      'a context of 3681791530 positions',
      () => build('f32', [['llama.context_length', { type: 'u32', value: 3681791530 }]]).bytes,
      /llama\.context_length is 3681791530, beyond the 16777216 weft reads$/,
    ],
    [
      'a block count of 1e8',
      () => build('f32', [['llama.block_count', { type: 'u32', value: 1e8 }]]).bytes,
      /llama\.block_count is 100000000, beyond the 16777216 weft reads$/,
    ],
    [
      'more blocks than the tensors hold',
      () => build('f32', [['llama.block_count', { type: 'u64', value: 1_000_000n }]]).bytes,
      /llama\.block_count is 1000000, but the tensors hold layers 0 to 2$/,
    ],
    // names from the file are quoted escaped and cut
    [
      'a tensor name of NUL, ESC and 60,000 characters',
      () => build('f32', [], { extra: [{ name: `\u0000\u001b[2J${'n'.repeat(60_000)}`, dims: [1], type: 0, data: new Uint8Array(4) }] }).bytes,
      /tensor "\\u0000\\u001b\[2Jn+… \(60017 characters\) is not part of weft's llama$/,
    ],
  ])('%s', (_, bytes, message) => {
    const path = save('m.gguf', bytes());
    const read = () => readGguf(path);
    expect(read).toThrow(new RegExp(`^${escapeRegExp(path)}: ${message.source}`));
    try {
      read();
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('refuses metadata arrays nested more than 64 deep (10,000 here), naming the key escaped and cut', () => {
    const key = `\u0000\u001b${'k'.repeat(60_000)}`;
    const depth = 10_000;
    const keyBytes = new TextEncoder().encode(key);
    const bytes = new Uint8Array(24 + 8 + keyBytes.length + 4 + depth * 12 + 4 + 8);
    const v = new DataView(bytes.buffer);
    bytes.set(new TextEncoder().encode('GGUF'));
    v.setUint32(4, 3, true);
    v.setBigUint64(8, 0n, true); // tensors
    v.setBigUint64(16, 1n, true); // metadata entries
    v.setBigUint64(24, BigInt(keyBytes.length), true);
    bytes.set(keyBytes, 32);
    let at = 32 + keyBytes.length;
    v.setUint32(at, 9, true); // an array …
    at += 4;
    for (let i = 0; i < depth; i++, at += 12) {
      v.setUint32(at, 9, true); // … of arrays …
      v.setBigUint64(at + 4, 1n, true); // … of one element
    }
    v.setUint32(at, 0, true); // the innermost: u8, empty
    const path = save('deep.gguf', bytes);
    expect(() => parseGguf(path)).toThrow(
      new RegExp(`^${escapeRegExp(path)}: metadata "\\\\u0000\\\\u001bk+… \\(60014 characters\\): arrays nested more than 64 levels deep$`),
    );
  });

  it('stops at EOS, end of turn and end of message (tokenizer.ggml.eos/eot/eom_token_id)', () => {
    const ids = (meta: [string, GgufMeta][]) => readCheckpoint(save('stops.gguf', build('f32', meta).bytes)).config.stop?.ids;
    const eot: [string, GgufMeta] = ['tokenizer.ggml.eot_token_id', { type: 'u32', value: 300 }];
    const eom: [string, GgufMeta] = ['tokenizer.ggml.eom_token_id', { type: 'u32', value: 301 }];
    expect(ids([])).toEqual([2]);
    expect(ids([eot, eom])).toEqual([2, 300, 301]);
    expect(ids([eot, ['tokenizer.ggml.eom_token_id', { type: 'u32', value: 2 }]])).toEqual([2, 300]);
  });

  it('refuses a tokenizer.ggml.pre it does not know, in one line', () => {
    const path = save('pre.gguf', build('f32', gpt2Meta('falcon')).bytes);
    expect(() => readModelFiles(path)).toThrow(/^.*pre\.gguf: tokenizer\.ggml\.pre "falcon" is not supported \(weft reads llama-bpe, qwen2, gpt-2, default\)$/);
    const { tokens } = gpt2Vocabulary();
    expect(readCheckpoint(path).config).toEqual({
      ...baseConfig,
      bosId: tokens.indexOf('<|begin_of_text|>'),
      stop: { ids: [tokens.indexOf('<|end_of_text|>')], inPrompt: false },
    });
  });
});
