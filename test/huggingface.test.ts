// Hugging Face checkpoints (Llama, GPT-2) against transformers' own outputs (../shared/fixtures/hf):
// prefill logits at every prompt position, decode logits at every step, greedy tokens; and the
// safetensors reader and config mapping on malformed input.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, readCheckpoint } from '../src/api.js';
import { readSafetensors } from '../models/safetensors.js';
import { maxAbsDiff } from './reference.js';

const hf = new URL('../../shared/fixtures/hf/', import.meta.url).pathname;
const TOLERANCE = 1e-4;
const scratch = mkdtempSync(join(tmpdir(), 'weft-hf-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const floats = (path: string): Float32Array => new Float32Array(readFileSync(path).buffer.slice(0));

/** A safetensors file from a header object and raw data bytes. */
function safetensors(header: object, data: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe.each([
  ['llama-gqa', 'LlamaForCausalLM: 8 heads, 2 kv heads, untied classifier, RoPE'],
  ['gpt2', 'GPT2LMHeadModel: learned positions, LayerNorm, gelu_new, Conv1D weights, biases'],
])('%s (%s)', (name) => {
  it('matches transformers: prefill logits, decode logits and greedy tokens', async () => {
    const dir = join(hf, name);
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
    const prefill = floats(join(dir, 'logits.f32'));
    const decode = floats(join(dir, 'decode_logits.f32'));
    const model = await loadModel(dir);
    try {
      const V = model.config.vocabSize;
      const steps = [];
      for await (const s of model.generate({ promptIds: ref.prompt, steps: ref.prompt.length + ref.greedy.length, temperature: 0, logits: true })) steps.push(s);
      expect(steps.slice(ref.prompt.length).map((s) => s.token)).toEqual(ref.greedy);
      steps.forEach((s, p) => {
        if (p < ref.prompt.length) expect(maxAbsDiff(s.logits!, prefill.subarray(p * V, (p + 1) * V)), `prefill position ${p}`).toBeLessThan(TOLERANCE);
        const d = p - (ref.prompt.length - 1);
        if (d >= 0 && d < ref.greedy.length) expect(maxAbsDiff(s.logits!, decode.subarray(d * V, (d + 1) * V)), `decode step ${d}`).toBeLessThan(TOLERANCE);
      });
    } finally {
      model.release();
    }
  });
});

describe('safetensors', () => {
  it('reads F32, F16 and BF16 tensors as float32', () => {
    const data = new Uint8Array(4 * 2 + 2 * 2 + 2 * 2);
    const v = new DataView(data.buffer);
    v.setFloat32(0, 1.5, true);
    v.setFloat32(4, -2.25, true);
    v.setUint16(8, 0x3c00, true); // 1.0 in f16
    v.setUint16(10, 0xc500, true); // -5.0 in f16
    v.setUint16(12, 0x4049, true); // bf16 of 3.140625
    v.setUint16(14, 0xbf80, true); // -1.0 in bf16
    const t = readSafetensors(
      safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] }, c: { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] } }, data),
      'x.safetensors',
    );
    expect([...t.get('a')!.data]).toEqual([1.5, -2.25]);
    expect([...t.get('b')!.data]).toEqual([1, -5]);
    expect([...t.get('c')!.data]).toEqual([3.140625, -1]);
  });

  it.each([
    ['a truncated file', new Uint8Array(5), /x\.safetensors: truncated/],
    ['a header longer than the file', safetensors({}, new Uint8Array()).subarray(0, 9), /truncated: the header claims/],
    ['offsets past the data', safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(8)), /tensor a: data offsets \[0, 16\] are outside the 8 data bytes/],
    ['a size that disagrees with the shape', safetensors({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor a: 8 bytes do not hold 3 F32 values/],
    ['an unsupported dtype', safetensors({ a: { dtype: 'I8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), /tensor a has dtype I8/],
  ])('rejects %s with one line', (_, bytes, message) => {
    expect(() => readSafetensors(bytes, 'x.safetensors')).toThrow(message);
  });
});

describe('config.json mapping', () => {
  /** A copy of llama-gqa with config.json edited. */
  function variant(name: string, edit: (c: Record<string, unknown>) => void): string {
    const dir = join(scratch, name);
    cpSync(join(hf, 'llama-gqa'), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    edit(config);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }

  it('refuses what it cannot run, naming the setting', () => {
    expect(() => readCheckpoint(variant('qwen2', (c) => (c.architectures = ['Qwen2ForCausalLM'])))).toThrow(/config\.json: architecture Qwen2ForCausalLM is not supported/);
    expect(() => readCheckpoint(variant('llama3', (c) => (c.rope_parameters = { rope_type: 'llama3', rope_theta: 500000 })))).toThrow(/RoPE scaling 'llama3' is not supported/);
    expect(() => readCheckpoint(variant('bias', (c) => (c.attention_bias = true)))).toThrow(/biases are not supported/);
  });

  it('names a tensor whose shape disagrees with config.json', () => {
    expect(() => readCheckpoint(variant('wide', (c) => (c.intermediate_size = 400)))).toThrow(/tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[344, 128\], config\.json implies \[400, 128\]/);
  });

  it('caps the context at a sliding window', () => {
    const dir = variant('mistral', (c) => {
      c.architectures = ['MistralForCausalLM'];
      c.sliding_window = 64;
    });
    expect(readCheckpoint(dir).config.seqLen).toBe(64);
  });
});
