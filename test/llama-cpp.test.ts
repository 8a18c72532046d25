// llama.cpp as the outside reference for GGUF files: a small random llama written once per file type, and small
// qwen3 and phi3 files, decoded greedily for 64 steps by llama.cpp (test/llama-cpp.ts) and by weft from the same
// file and prompt ids.
// The tokens must be the same, and every step's logits and probabilities close: within float32 rounding of
// llama.cpp's run over the values the file stands for, and within its activation rounding of its run of the file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type LoadOptions } from '../src/api.js';
import { llamaWeightShapes, type ModelConfig } from '../models/llama.js';
import { randomTensor } from '../models/synthetic.js';
import { ggufFileTypes, llamaGgufName, llamaMetadata, placeholderVocabulary, type GgufFileType, type GgufMeta } from '../models/gguf-writer.js';
import { encodeTensor, hfAsGguf, writeGguf, type EncodedTensor } from './gguf-writer.js';
import type { FormatName } from '../src/weights/formats.js';
import { llamaCppGreedy, type LlamaCppStep } from './llama-cpp.js';
import { randomHfTensors, tinyPhi3, tinyQwen3 } from './hf-reference.js';

/** How a file type stores each weight (by weft name and shape). */
type Encoding = (name: string, shape: readonly number[]) => (x: Float32Array) => EncodedTensor;

const encoder =
  (format: FormatName) =>
  (x: Float32Array): EncodedTensor =>
    encodeTensor(format, x);
const encodeF32 = encoder('f32');

/** As the GGUF file type stores each weight (models/gguf-writer.ts's table: llama.cpp's Q4_K_M mix among them). */
const fileType =
  (type: GgufFileType): Encoding =>
  (name, shape) =>
    encoder(ggufFileTypes[type]({ name, shape, layers: config.nLayers, stored: 'f32' }));

/**
 * How llama.cpp's CPU matmuls round the activations they read: not at all against F32 weights, to halves
 * against F16, to blocks of 8-bit integers (Q8_0, or Q8_K beside k-quants) against quantized weights.
 */
type Activations = 'f32' | 'f16' | 'q8';

/**
 * The largest differences allowed between weft's and llama.cpp's logits (each step's less its largest) and
 * probabilities over 64 steps, from what llama.cpp's rounding of activations moves; measured in brackets.
 */
const tolerance: Record<Activations, { logit: number; probability: number }> = {
  // float32 sums in another order, and llama.cpp's float32 softmax (1.6e-5, 2.3e-6)
  f32: { logit: 1e-4, probability: 1e-5 },
  // activations rounded to halves (4.8e-3, 5.5e-4)
  f16: { logit: 0.02, probability: 2e-3 },
  // activations rounded to Q8_0 blocks: 0.5% of each block's largest, through every layer (Q8_0 0.099, 0.010; Q4_0 0.106, 0.012)
  q8: { logit: 0.3, probability: 0.03 },
};

/** The file types, one line each; `int8`: weft's int8 matmuls read them too (by default; float32 ones are asked for). */
const cases: readonly { name: string; encoding: Encoding; activations: Activations; int8?: true }[] = [
  { name: 'F32', encoding: fileType('f32'), activations: 'f32' },
  { name: 'F16', encoding: fileType('f16'), activations: 'f16' },
  { name: 'Q8_0', encoding: fileType('q8_0'), activations: 'q8', int8: true },
  { name: 'Q4_0', encoding: fileType('q4_0'), activations: 'q8', int8: true },
  { name: 'Q4_K', encoding: fileType('q4_k'), activations: 'q8', int8: true },
  { name: 'Q5_K', encoding: fileType('q5_k'), activations: 'q8', int8: true },
  { name: 'Q6_K', encoding: fileType('q6_k'), activations: 'q8', int8: true },
  // Q6_K for the classifier and for attn_v and ffn_down in layer 1 (use_more_bits' last eighth), so layer 1 mixes formats in its Q/K/V
  { name: 'Q4_K_M', encoding: fileType('q4_k_m'), activations: 'q8', int8: true },
];

/** Every weight as the F32 values its encoding stands for. */
const asValues =
  (encoding: Encoding): Encoding =>
  (name, shape) =>
  (x) =>
    encodeF32(encoding(name, shape)(x).values);

const config: ModelConfig = {
  family: 'llama',
  dim: 256,
  hiddenDim: 512,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headSize: 64,
  vocabSize: 768,
  seqLen: 256,
  normEps: 1e-5,
  ropeTheta: 10000,
};
const prompt = [1, 300, 301, 302, 303, 304, 305, 306];
const steps = 64;
const scratch = mkdtempSync(join(tmpdir(), 'weft-llama-cpp-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Random weights as models/synthetic.ts draws them (matrices in ±1/√fan_in, norms 1 ± 0.1, the embedding
 * ±1), the classifier 6× larger so that the next-token distributions are neither flat nor one-hot (the top
 * probability ranges 0.1–0.99 over the steps), and zero in the rows of <unk>, <s> and </s>, so that greedy
 * decoding never picks the token that ends weft's generation.
 */
function randomWeights(c: ModelConfig): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of llamaWeightShapes(c)) {
    if (name === 'rope_cos' || name === 'rope_sin') continue;
    const norm = shape.length === 1;
    const scale = norm ? 0.1 : name === 'tok_embeddings' ? 1 : (name === 'output' ? 6 : 1) / Math.sqrt(shape[1]!);
    out.set(
      name,
      randomTensor(
        name,
        shape.reduce((a, b) => a * b, 1),
        scale,
        norm ? 1 : 0,
      ),
    );
  }
  out.get('output')!.fill(0, 0, 3 * c.dim);
  return out;
}

/** The model as a GGUF llama file in the scratch folder, each weight stored as `encoding` says. */
function writeModel(file: string, c: ModelConfig, weights: ReadonlyMap<string, Float32Array>, encoding: Encoding): string {
  const metadata: [string, GgufMeta][] = [...llamaMetadata(c, 'random llama'), ...placeholderVocabulary(c.vocabSize)];
  const shapes = llamaWeightShapes(c);
  const tensors = [...weights].map(([name, x]) => {
    const shape = shapes.get(name)!;
    const e = encoding(name, shape)(x);
    return { name: llamaGgufName(name), dims: [...shape].reverse(), type: e.type, data: e.data };
  });
  const path = join(scratch, file);
  writeFileSync(path, writeGguf(metadata, tensors));
  return path;
}

/** weft's greedy run of a file: the token and logits of each step from the last prompt token on. */
/** weft's run of a file: its greedy steps, and its logits along each given llama.cpp generation (those tokens fed as the prompt). */
async function weftRuns(
  path: string,
  along: readonly (readonly LlamaCppStep[])[] = [],
  options: LoadOptions = {},
): Promise<{ greedy: WeftStep[]; along: WeftStep[][] }> {
  const model = await loadModel(path, options);
  try {
    const greedy: WeftStep[] = [];
    for await (const s of model.generate({ promptIds: prompt, steps: prompt.length + steps - 1, temperature: 0, logits: true })) {
      if (s.sampled) greedy.push({ token: s.next, logits: s.logits! });
    }
    const forced: WeftStep[][] = [];
    for (const ref of along) {
      const ids = [...prompt, ...ref.slice(0, -1).map((r) => r.token)];
      const out: WeftStep[] = [];
      for await (const s of model.generate({ promptIds: ids, steps: ids.length, temperature: 0, logits: true })) {
        if (s.position >= prompt.length - 1) out.push({ token: s.logits!.reduce((best, x, i, a) => (x > a[best]! ? i : best), 0), logits: s.logits! });
      }
      forced.push(out);
    }
    return { greedy, along: forced };
  } finally {
    model.release();
  }
}

const weftGreedy = async (path: string): Promise<WeftStep[]> => (await weftRuns(path)).greedy;

interface WeftStep {
  readonly token: number;
  readonly logits: Float32Array;
}

/** Float64 softmax. */
function softmax(logits: Float32Array): Float64Array {
  const max = logits.reduce((a, b) => Math.max(a, b), -Infinity);
  const e = Float64Array.from(logits, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** weft's step against llama.cpp's: the largest |Δ logit| (each less its largest) and |Δ probability|. */
function stepDifference(weft: Float32Array, ref: LlamaCppStep): { logit: number; probability: number } {
  const max = weft.reduce((a, b) => Math.max(a, b), -Infinity);
  const p = softmax(weft);
  let logit = 0;
  let probability = 0;
  for (let i = 0; i < weft.length; i++) {
    // a token whose probability underflowed in llama.cpp's float32 softmax has no logit to compare
    if (Number.isFinite(ref.logits[i]!)) logit = Math.max(logit, Math.abs(weft[i]! - max - ref.logits[i]!));
    probability = Math.max(probability, Math.abs(p[i]! - ref.probabilities[i]!));
  }
  return { logit, probability };
}

/** llama.cpp's gap between its best and second-best logits: how far apart the two engines may be before greedy choices can differ. */
function margin(ref: LlamaCppStep): number {
  return -ref.logits.reduce((second, x, i) => (i === ref.token ? second : Math.max(second, x)), -Infinity);
}

/**
 * Along llama.cpp's own generation (weft fed its tokens): at every step the distributions agree within
 * `allowed`, and weft's largest logit is llama.cpp's token unless llama.cpp's top two are closer than twice the
 * allowed logit difference. Returns the near ties.
 */
function expectAlong(weft: readonly WeftStep[], ref: readonly LlamaCppStep[], allowed: { logit: number; probability: number }): number {
  expect(weft.length).toBe(ref.length);
  let ties = 0;
  weft.forEach((w, s) => {
    const d = stepDifference(w.logits, ref[s]!);
    const at = `step ${s} along llama.cpp's tokens (its top two logits ${margin(ref[s]!).toExponential(2)} apart)`;
    expect(d.logit, at).toBeLessThan(allowed.logit);
    expect(d.probability, at).toBeLessThan(allowed.probability);
    if (margin(ref[s]!) < 2 * allowed.logit) ties++;
    else expect(w.token, at).toBe(ref[s]!.token);
  });
  return ties;
}

/**
 * Every step's distributions agree within `allowed`, and the greedy tokens are the same, up to a step where
 * llama.cpp's top two logits are closer than twice the allowed logit difference: there either choice is right
 * for the rounding allowed, and the two generations part, so the comparison ends. Returns the steps compared.
 */
function expectAgreement(
  weft: readonly { token: number; logits: Float32Array }[],
  ref: readonly LlamaCppStep[],
  allowed: { logit: number; probability: number },
): number {
  expect(weft.length).toBe(ref.length);
  for (let s = 0; s < weft.length; s++) {
    const d = stepDifference(weft[s]!.logits, ref[s]!);
    const at = `step ${s} (llama.cpp's top two logits ${margin(ref[s]!).toExponential(2)} apart)`;
    expect(d.logit, at).toBeLessThan(allowed.logit);
    expect(d.probability, at).toBeLessThan(allowed.probability);
    if (weft[s]!.token !== ref[s]!.token) {
      expect(margin(ref[s]!), `${at}: weft chose ${weft[s]!.token}, llama.cpp ${ref[s]!.token}`).toBeLessThan(2 * allowed.logit);
      return s + 1;
    }
  }
  return weft.length;
}

describe('weft against llama.cpp on the same GGUF file', () => {
  const weights = randomWeights(config);

  it.each(cases)(
    '$name: the same greedy tokens over 64 steps but at near ties, the same distributions at every step; logits as llama.cpp computes them from the values the file stands for',
    async ({ name, encoding, activations, int8 }) => {
      const path = writeModel(`${name}.gguf`, config, weights, encoding);
      const values = writeModel(`${name}-values.gguf`, config, weights, asValues(encoding));
      const [file, exact] = await llamaCppGreedy([path, values], prompt, steps);
      const tokens = file!.map((s) => s.token);
      // decoding that is not stuck on one or two tokens (the fewest over the cases: 11 distinct, Q4_0)
      expect(new Set(tokens).size).toBeGreaterThan(8);
      const weft = await weftRuns(path, [exact!, file!], { matmul: 'float' });
      // with float32 matmuls weft reads the file's weights as the values they stand for, as llama.cpp does over F32 weights
      const exactSteps = expectAgreement(weft.greedy, exact!, tolerance.f32);
      const exactTies = expectAlong(weft.along[0]!, exact!, tolerance.f32);
      // llama.cpp's own kernels for the file's types, which round the activations they read
      const fileSteps = expectAgreement(weft.greedy, file!, tolerance[activations]);
      const fileTies = expectAlong(weft.along[1]!, file!, tolerance[activations]);
      console.log(
        `${name}: greedy runs agree for ${exactSteps} steps with llama.cpp on the values, ${fileSteps} on the file; ` +
          `along llama.cpp's 64 tokens every step agrees but ${exactTies} and ${fileTies} near ties`,
      );
      if (int8) {
        // int8 matmuls (the default for quantized weights) round activations to blocks of 8-bit integers, as llama.cpp's
        // kernels for the file do: along llama.cpp's tokens (fed as one prompt, so every position runs through the prefill
        // tiles) and in greedy decode (every step through the int8 GEMVs, which the fallback adapter would otherwise leave
        // to columns) within that rounding
        const int8Run = await weftRuns(path, [file!], { kernels: { splitKFrom: config.dim } });
        const int8Ties = expectAlong(int8Run.along[0]!, file!, tolerance[activations]);
        const int8Steps = expectAgreement(int8Run.greedy, file!, tolerance[activations]);
        const worst = Math.max(...int8Run.along[0]!.map((w, s) => stepDifference(w.logits, file![s]!).logit));
        console.log(
          `${name}, int8 matmuls: along llama.cpp's 64 tokens every step agrees but ${int8Ties} near ties; largest logit difference ` +
            `${worst.toExponential(2)}; greedy decode agrees for ${int8Steps} steps`,
        );
      }
    },
  );
});

describe('qwen3 and phi3 files against llama.cpp (q/k in rotate-half order, per-head q/k norms, a head size of its own, fused projections)', () => {
  const families = [
    ['qwen3', { ...tinyQwen3, vocab_size: 384, max_position_embeddings: 128, tie_word_embeddings: false }, { qkNorm: true }],
    ['phi3', { ...tinyPhi3, vocab_size: 384, max_position_embeddings: 128, sliding_window: null }, { fused: true }],
  ] as const;

  it.each(families)("%s, F32: the same 64 greedy tokens (up to a near tie); logits within float32 rounding of llama.cpp's", async (arch, c, shape) => {
    const tensors = randomHfTensors(c, shape);
    // no greedy step picks <unk>, <s> or </s>
    tensors.get('lm_head.weight')!.data.fill(0, 0, 3 * c.hidden_size);
    const path = join(scratch, `${arch}.gguf`);
    writeFileSync(
      path,
      hfAsGguf(arch, c, tensors, placeholderVocabulary(c.vocab_size), (_, t) => encodeF32(t.data)),
    );
    const [ref] = await llamaCppGreedy([path], prompt, steps);
    expect(new Set(ref!.map((s) => s.token)).size).toBeGreaterThan(8);
    const agreed = expectAgreement(await weftGreedy(path), ref!, tolerance.f32);
    console.log(`${arch}: ${agreed} steps agree with llama.cpp`);
  });
});
