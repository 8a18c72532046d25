// The GGUF files weft bench writes for weft and llama.cpp alike: streamed files read back in weft as the model and
// file type they were written from; written once and reused while whole, written again when truncated or stale;
// llama.cpp's Q4_K_M mix; a model a file type cannot hold refused with its reason.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureBenchGguf, planBenchGguf, type GgufOrigin } from '../src/bench-gguf.js';
import { ggufFileTypes, ggufLayout, placeholderVocabulary, writeGgufFile } from '../models/gguf-writer.js';
import { readGguf } from '../models/gguf.js';
import { llamaWeightShapes, type ModelConfig } from '../models/llama.js';
import { readCheckpoint } from '../models/checkpoint.js';
import { randomTensor, SYNTHETIC_MAX_CONTEXT, syntheticModel } from '../models/synthetic.js';
import type { Checkpoint } from '../src/api.js';
import { weightFormats } from '../src/weights/formats.js';
import { sourceValues, valuesSource } from '../src/weights/source.js';

const scratch = mkdtempSync(join(tmpdir(), 'weft-bench-gguf-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const stories = new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url).pathname;

/** A llama whose rows are whole k-quant blocks, in two layers: random values as models/synthetic.ts draws them. */
const config: ModelConfig = {
  family: 'llama',
  dim: 256,
  hiddenDim: 512,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headSize: 64,
  vocabSize: 300,
  seqLen: 64,
  normEps: 1e-5,
  ropeTheta: 10000,
};
const checkpoint: Checkpoint = {
  config,
  tensors: new Map(
    [...llamaWeightShapes(config)]
      .filter(([name]) => !name.startsWith('rope_'))
      .map(([name, shape]) => [
        name,
        valuesSource(randomTensor(name, shape[0]! * (shape[1] ?? 1), shape.length === 1 ? 0.1 : 0.06, shape.length === 1 ? 1 : 0), shape),
      ]),
  ),
};
const origin: GgufOrigin = { stem: 'tiny', title: 'tiny llama', source: 'test' };

describe('GGUF files for weft and llama.cpp', () => {
  it.each(['f32', 'q8_0', 'q4_k_m'] as const)(
    '%s: the streamed file reads back as the model, each weight in its format and the values its encoder stands for',
    async (type) => {
      const dir = join(scratch, `roundtrip-${type}`);
      const plan = planBenchGguf('tiny', checkpoint, type, dir, origin);
      expect(plan.path).toBe(join(dir, `tiny-${type}.gguf`));
      expect(await ensureBenchGguf(plan)).toBe(true);
      expect(statSync(plan.path).size).toBe(ggufLayout(plan.write!.metadata, plan.write!.tensors).size);
      const read = readGguf(plan.path);
      // GGUF stores ε as a float32
      expect(read.config).toMatchObject({ ...config, normEps: Math.fround(config.normEps), bosId: 1 });
      expect([...read.tensors.keys()].sort()).toEqual([...checkpoint.tensors.keys()].sort());
      for (const [name, written] of checkpoint.tensors) {
        const format = weightFormats[ggufFileTypes[type]({ name, shape: written.shape, layers: config.nLayers, stored: 'f32' })];
        const t = read.tensors.get(name)!;
        expect(t.format, name).toBe(format);
        const values = sourceValues(written);
        const bits = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
        expect(bits(sourceValues(t)).equals(bits(format.dequantize(format.encode(values), values.length))), name).toBe(true);
      }
      expect(readdirSync(dir)).toEqual([`tiny-${type}.gguf`]);
    },
  );

  it("q4_k_m is llama.cpp's Q4_K_M: Q6_K for the classifier, and for attn_v and ffn_down in the layers use_more_bits picks", () => {
    const rule = ggufFileTypes.q4_k_m;
    const format = (name: string, shape = [64, 256]) => rule({ name, shape, layers: 16, stored: 'f32' });
    // a 16-layer model (Llama 3.2 1B's depth): the first and last two, and every third from layer 4
    const more = [0, 1, 4, 7, 10, 13, 14, 15];
    for (let l = 0; l < 16; l++) {
      for (const w of ['wv', 'w2']) expect(format(`layers.${l}.${w}`), `layer ${l} ${w}`).toBe(more.includes(l) ? 'q6_k' : 'q4_k');
      for (const w of ['wq', 'wk', 'wo', 'w1', 'w3']) expect(format(`layers.${l}.${w}`)).toBe('q4_k');
      expect(format(`layers.${l}.attention_norm`, [256])).toBe('f32');
    }
    expect(format('output')).toBe('q6_k');
    expect(format('tok_embeddings')).toBe('q4_k');
  });

  it('is written once and reused; a truncated or stale file is written again, and no part is left', async () => {
    const dir = join(scratch, 'cache');
    const plan = planBenchGguf('tiny', checkpoint, 'q8_0', dir, origin);
    expect(await ensureBenchGguf(plan)).toBe(true);
    const whole = readFileSync(plan.path);
    const written = statSync(plan.path).mtimeMs;
    expect(await ensureBenchGguf(plan)).toBe(false);
    expect(statSync(plan.path).mtimeMs).toBe(written);

    truncateSync(plan.path, whole.length - 1000);
    expect(await ensureBenchGguf(plan)).toBe(true);
    expect(readFileSync(plan.path).equals(whole)).toBe(true);

    // the same name written from another source: its header differs, so it is stale
    const other = planBenchGguf('tiny', checkpoint, 'q8_0', dir, { ...origin, source: 'another test' });
    expect(await ensureBenchGguf(other)).toBe(true);
    expect(await ensureBenchGguf(plan)).toBe(true);
    expect(readFileSync(plan.path).equals(whole)).toBe(true);
    expect(readdirSync(dir)).toEqual(['tiny-q8_0.gguf']);
  });

  it('a failure while writing leaves neither the file nor its part, however far ahead tensors are made', async () => {
    const dir = mkdtempSync(join(scratch, 'failed-'));
    const path = join(dir, 'x.gguf');
    const tensor = (name: string, data: () => Uint8Array | Promise<Uint8Array>) => ({ name, dims: [4], type: 0, byteLength: 16, data });
    for (const ahead of [1, 3]) {
      await expect(
        writeGgufFile(
          path,
          placeholderVocabulary(8),
          [
            tensor('a', () => new Uint8Array(16)),
            tensor('b', async () => {
              throw new Error('no values');
            }),
            tensor('c', () => new Uint8Array(16)),
          ],
          { ahead },
        ),
      ).rejects.toThrow('no values');
    }
    await expect(writeGgufFile(path, [], [tensor('a', () => new Uint8Array(12))])).rejects.toThrow('tensor a: 12 bytes made, its entry says 16');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('tensors made ahead, out of order, are written in order: the same bytes as one at a time', async () => {
    const dir = mkdtempSync(join(scratch, 'ahead-'));
    const bytes = (i: number) => new Uint8Array(16).fill(i + 1);
    const tensors = (delay: (i: number) => number) =>
      [0, 1, 2, 3, 4].map((i) => ({
        name: `t${i}`,
        dims: [4],
        type: 0,
        byteLength: 16,
        data: () => new Promise<Uint8Array>((resolve) => setTimeout(() => resolve(bytes(i)), delay(i))),
      }));
    await writeGgufFile(
      join(dir, 'one.gguf'),
      [],
      tensors(() => 0),
    );
    await writeGgufFile(
      join(dir, 'ahead.gguf'),
      [],
      tensors((i) => 20 - 4 * i),
      { ahead: 4 },
    );
    expect(readFileSync(join(dir, 'ahead.gguf')).equals(readFileSync(join(dir, 'one.gguf')))).toBe(true);
  });

  it('encoded on worker threads (the built encode pool), a file has the same bytes as encoded one tensor at a time', async () => {
    // the pool starts workers from the built encode-worker.js
    const { EncodePool } = (await import(
      new URL('../dist/src/weights/encode-pool.js', import.meta.url).href
    )) as typeof import('../src/weights/encode-pool.js');
    const pool = new EncodePool(2);
    try {
      for (const type of ['q8_0', 'q4_k_m'] as const) {
        const one = planBenchGguf('tiny', checkpoint, type, join(scratch, `one-${type}`), origin);
        const workers = planBenchGguf('tiny', checkpoint, type, join(scratch, `workers-${type}`), origin);
        expect(await ensureBenchGguf(one)).toBe(true);
        expect(await ensureBenchGguf(workers, undefined, () => pool)).toBe(true);
        expect(readFileSync(workers.path).equals(readFileSync(one.path)), type).toBe(true);
      }
      // a view of a larger buffer is copied before its buffer moves
      const values = new Float32Array(96).map((_, i) => Math.sin(i));
      const view = values.subarray(32, 64);
      expect(Buffer.from(await pool.encode('q8_0', view)).equals(Buffer.from(weightFormats.q8_0.encode(values.subarray(32, 64))))).toBe(true);
      expect(values[40]).toBe(Math.fround(Math.sin(40)));
    } finally {
      await pool.close();
    }
  });

  it("a checkpoint's file is named by the checkpoint and a hash of its path, and records its files' sizes and times", () => {
    const folder = new URL('../../shared/fixtures/hf/llama-gqa', import.meta.url).pathname;
    const plan = planBenchGguf(folder, readCheckpoint(folder), 'stored', join(scratch, 'folder'));
    expect(plan.path).toMatch(/llama-gqa-[0-9a-f]{8}-stored\.gguf$/);
    const source = plan.write!.metadata.find(([key]) => key === 'weft.source')![1].value;
    expect(source).toMatch(/llama-gqa \(.*config\.json: \d+ bytes, modified [\dT:.Z-]+;.*model\.safetensors: \d+ bytes, modified /);
  });

  it("a synthetic model's file at a context other than its default is a file of its own, which records that context", () => {
    const meta = (plan: ReturnType<typeof planBenchGguf>, key: string) => plan.write!.metadata.find(([k]) => k === key)![1].value;
    const dir = join(scratch, 'synthetic');
    const plain = planBenchGguf('110M', syntheticModel('110M')!, 'f32', dir);
    expect(plain.path).toBe(join(dir, 'synthetic-110M-f32.gguf'));
    expect(meta(plain, 'llama.context_length')).toBe(1024);
    const long = planBenchGguf('110M', syntheticModel('110M', 8192)!, 'f32', dir);
    expect(long.path).toBe(join(dir, 'synthetic-110M-ctx8192-f32.gguf'));
    expect(meta(long, 'llama.context_length')).toBe(8192);
    expect(meta(long, 'weft.source')).toBe('synthetic 110M, context 8192');
    // the default context asked for is the default file
    expect(planBenchGguf('110M', syntheticModel('110M', 1024)!, 'f32', dir).path).toBe(plain.path);
    expect(() => syntheticModel('1B', SYNTHETIC_MAX_CONTEXT + 1)).toThrow(/^synthetic 1B: a context of 131073 positions is outside 1\.\.131072$/);
  });

  it('a GGUF checkpoint kept as stored is its own file', async () => {
    const dir = join(scratch, 'own');
    const q8 = planBenchGguf('tiny', checkpoint, 'q8_0', dir, origin);
    await ensureBenchGguf(q8);
    expect(planBenchGguf(q8.path, readCheckpoint(q8.path), 'stored', dir)).toEqual({ path: q8.path });
  });

  it('refuses a file type whose blocks do not fit the rows, and a model that is not a plain llama, with the reason', () => {
    const dir = join(scratch, 'refused');
    const c260K = readCheckpoint(stories);
    expect(() => planBenchGguf(stories, c260K, 'q8_0', dir)).toThrow(
      /^--weights q8_0: .*stories260K\.bin: layers\.0\.w2's rows of 172 values are not whole q8_0 blocks of 32 \(the file type stores it in q8_0\)$/,
    );
    expect(planBenchGguf(stories, c260K, 'f16', dir).path).toMatch(/stories260K-[0-9a-f]{8}-f16\.gguf$/);
    const biased: Checkpoint = { ...checkpoint, config: { ...config, attentionBias: 'qkv' } };
    expect(() => planBenchGguf('tiny', biased, 'f32', dir, origin)).toThrow(
      '--weights f32: tiny: weft writes GGUF files of plain llama models, and this one has attention biases',
    );
  });
});
