// Hugging Face checkpoints (Llama, GPT-2) against transformers' own outputs (../shared/fixtures/hf):
// prefill logits at every prompt position, decode logits at every step, greedy tokens; and the
// safetensors reader and config mapping on malformed input.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ropeTables } from '../models/llama2c.js';
import { afterAll, describe, expect, it } from 'vitest';
import { floatWeights, loadModel, readCheckpoint, withContext } from '../src/api.js';
import { readSafetensors } from '../models/safetensors.js';
import { sourceValues } from '../src/weights/source.js';
import * as ref from './reference.js';
import { maxAbsDiff, randomArray } from './reference.js';
import { runWeft } from './weft-process.js';

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

describe.each(['llama-gqa', 'gpt2'])('weft run %s --prompt-ids … --temperature 0 --dump-logits (the built CLI)', (name) => {
  it('prints the prompt and transformers greedy tokens, and dumps logits within 1e-4 of its prefill and decode logits', () => {
    const dir = join(hf, name);
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
    const dump = join(scratch, `${name}-cli.f32`);
    const steps = ref.prompt.length + ref.greedy.length;
    const r = runWeft(['run', dir, '--prompt-ids', ref.prompt.join(','), '--steps', String(steps), '--temperature', '0', '--json', '--dump-logits', dump], 120_000);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).tokens).toEqual([...ref.prompt, ...ref.greedy]);
    const logits = floats(dump);
    const prefill = floats(join(dir, 'logits.f32'));
    const decode = floats(join(dir, 'decode_logits.f32'));
    const V = logits.length / steps;
    for (let p = 0; p < steps; p++) {
      const row = logits.subarray(p * V, (p + 1) * V);
      if (p < ref.prompt.length) expect(maxAbsDiff(row, prefill.subarray(p * V, (p + 1) * V)), `prefill position ${p}`).toBeLessThan(TOLERANCE);
      const d = p - (ref.prompt.length - 1);
      if (d >= 0 && d < ref.greedy.length) expect(maxAbsDiff(row, decode.subarray(d * V, (d + 1) * V)), `decode step ${d}`).toBeLessThan(TOLERANCE);
    }
  });
});

describe('a shorter context (LoadOptions.context, weft run --context)', () => {
  it.each(['llama-gqa', 'gpt2'])('%s: the same logits in fewer positions, and steps beyond it refused', async (name) => {
    const dir = join(hf, name);
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
    const steps = ref.prompt.length + 3;
    const run = async (context?: number): Promise<Float32Array[]> => {
      const model = await loadModel(dir, context === undefined ? {} : { context });
      try {
        if (context !== undefined) expect(model.config.seqLen).toBe(context);
        const out: Float32Array[] = [];
        for await (const st of model.generate({ promptIds: ref.prompt, steps, temperature: 0, logits: true })) out.push(st.logits!);
        return out;
      } finally {
        model.release();
      }
    };
    const full = await run();
    const short = await run(steps);
    short.forEach((row, p) => expect(maxAbsDiff(row, full[p]!), `position ${p}`).toBe(0));
    const cut = withContext(readCheckpoint(dir), steps);
    expect(cut.config.seqLen).toBe(steps);
    const r = runWeft(['run', dir, '--prompt-ids', ref.prompt.join(','), '--steps', String(steps + 1), '--context', String(steps), '--temperature', '0'], 60_000);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toBe(`weft: steps ${steps + 1} is beyond the model's context of ${steps} positions\n`);
    expect(() => withContext(readCheckpoint(dir), 100_000)).toThrow(/^context 100000 is beyond the model's context of \d+ positions$/);
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
    const path = join(scratch, 'x.safetensors');
    writeFileSync(path, safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] }, c: { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] } }, data));
    const t = readSafetensors(path);
    expect([...sourceValues(t.get('a')!)]).toEqual([1.5, -2.25]);
    expect([...sourceValues(t.get('b')!)]).toEqual([1, -5]);
    expect([...sourceValues(t.get('c')!)]).toEqual([3.140625, -1]);
    expect(t.get('c')!.format.name).toBe('bf16');
  });

  it.each([
    ['a truncated file', new Uint8Array(5), /x\.safetensors: truncated/],
    ['a header longer than the file', safetensors({}, new Uint8Array()).subarray(0, 9), /truncated: the header claims/],
    ['offsets past the data', safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(8)), /tensor a: data offsets \[0, 16\] are outside the 8 data bytes/],
    ['a size that disagrees with the shape', safetensors({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor a: 8 bytes do not hold 3 F32 values/],
    ['an unsupported dtype', safetensors({ a: { dtype: 'I8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), /tensor a has dtype I8/],
  ])('rejects %s with one line', (_, bytes, message) => {
    const path = join(scratch, 'x.safetensors');
    writeFileSync(path, bytes);
    expect(() => readSafetensors(path)).toThrow(message);
    expect(() => readSafetensors(path)).toThrow(/^[^\n]+$/);
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
    expect(() => readCheckpoint(variant('phi', (c) => (c.architectures = ['PhiForCausalLM'])))).toThrow(/config\.json: architecture PhiForCausalLM is not supported/);
    expect(() => readCheckpoint(variant('yarn', (c) => (c.rope_parameters = { rope_type: 'yarn', factor: 4, rope_theta: 500000 })))).toThrow(
      /config\.json: RoPE scaling 'yarn' is not supported \(weft supports default, linear and llama3\)/,
    );
    expect(() => readCheckpoint(variant('llama3-partial', (c) => (c.rope_parameters = { rope_type: 'llama3', factor: 8, rope_theta: 500000 })))).toThrow(
      /rope_scaling\.low_freq_factor must be a positive number, is undefined/,
    );
    expect(() => readCheckpoint(variant('bias', (c) => (c.mlp_bias = true)))).toThrow(/MLP biases are not supported/);
  });

  it('honours llama3 and linear RoPE scaling, from rope_scaling or rope_parameters', () => {
    const llama3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const scaling = { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 64 } as const;
    // a transformers 4 config.json (rope_scaling beside rope_theta), and a transformers 5 one (rope_parameters)
    const v4 = (c: Record<string, unknown>): void => {
      delete c.rope_parameters;
      c.rope_theta = 500000;
      c.rope_scaling = llama3;
    };
    for (const edit of [v4, (c: Record<string, unknown>) => (c.rope_parameters = { ...llama3, rope_theta: 500000 })]) {
      const checkpoint = readCheckpoint(variant('llama3', edit));
      const { config } = checkpoint;
      const weights = floatWeights(checkpoint);
      expect(config.ropeScaling).toEqual(scaling);
      const tables = ropeTables(config.dim / config.nHeads, config.seqLen, config.ropeTheta, scaling);
      expect(weights.get('rope_cos')).toEqual(tables.cos);
      expect(weights.get('rope_cos')).not.toEqual(ropeTables(config.dim / config.nHeads, config.seqLen, config.ropeTheta).cos);
    }
    const { config } = readCheckpoint(variant('linear', (c) => ((c.rope_parameters = undefined), (c.rope_scaling = { type: 'linear', factor: 2 }))));
    expect(config.ropeScaling).toEqual({ kind: 'linear', factor: 2 });
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

/** Writes tensors (all F32) as one safetensors file. */
function writeSafetensors(path: string, tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const data = new Uint8Array(offset);
  offset = 0;
  for (const t of tensors.values()) {
    data.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), offset);
    offset += t.data.byteLength;
  }
  writeFileSync(path, safetensors(header, data));
}

/** A transformers-convention forward pass (rotate-half RoPE, q/k/v biases) on the CPU, logits at every position. */
function hfForward(tensors: Map<string, { shape: number[]; data: Float32Array }>, c: Record<string, number>, ids: number[]): Float32Array {
  const t = (n: string): Float32Array => tensors.get(n)!.data;
  const [d, H, KV, L] = [c.hidden_size!, c.num_attention_heads!, c.num_key_value_heads!, c.num_hidden_layers!];
  const hs = d / H;
  const T = ids.length;
  const rope = (x: Float32Array, heads: number): Float32Array => {
    const out = x.slice();
    for (let r = 0; r < T; r++)
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < hs / 2; i++) {
          const angle = r / 10000 ** ((2 * i) / hs);
          const [a, b] = [x[r * heads * hs + h * hs + i]!, x[r * heads * hs + h * hs + i + hs / 2]!];
          out[r * heads * hs + h * hs + i] = a * Math.cos(angle) - b * Math.sin(angle);
          out[r * heads * hs + h * hs + i + hs / 2] = b * Math.cos(angle) + a * Math.sin(angle);
        }
    return out;
  };
  const heads = { heads: H, kvHeads: KV, headSize: hs };
  let x = ref.embed(t('model.embed_tokens.weight'), Int32Array.from(ids), d);
  for (let l = 0; l < L; l++) {
    const w = (n: string): Float32Array => t(`model.layers.${l}.${n}`);
    const h = ref.rmsnorm(x, w('input_layernorm.weight'), 1e-5);
    const q = rope(ref.addBias(ref.matmul(h, w('self_attn.q_proj.weight'), d), w('self_attn.q_proj.bias')), H);
    const k = rope(ref.addBias(ref.matmul(h, w('self_attn.k_proj.weight'), d), w('self_attn.k_proj.bias')), KV);
    const v = ref.addBias(ref.matmul(h, w('self_attn.v_proj.weight'), d), w('self_attn.v_proj.bias'));
    const p = ref.softmax(ref.attnScores(q, k, heads, T, T), T, T, true);
    x = ref.add(x, ref.matmul(ref.attnMix(p, v, heads, T, T), w('self_attn.o_proj.weight'), d));
    const f = ref.rmsnorm(x, w('post_attention_layernorm.weight'), 1e-5);
    const g = ref.mul(ref.silu(ref.matmul(f, w('mlp.gate_proj.weight'), d)), ref.matmul(f, w('mlp.up_proj.weight'), d));
    x = ref.add(x, ref.matmul(g, w('mlp.down_proj.weight'), c.intermediate_size!));
  }
  return ref.matmul(ref.rmsnorm(x, t('model.norm.weight'), 1e-5), t('lm_head.weight'), d);
}

describe('Qwen2ForCausalLM (q/k/v biases)', () => {
  it('matches a transformers-convention CPU forward pass with random biases', async () => {
    const dir = join(scratch, 'qwen2');
    cpSync(join(hf, 'llama-gqa'), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    config.architectures = ['Qwen2ForCausalLM'];
    config.model_type = 'qwen2';
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const tensors = new Map([...readSafetensors(join(hf, 'llama-gqa', 'model.safetensors'))].map(([k, v]) => [k, { shape: [...v.shape], data: sourceValues(v) }]));
    const hs = config.hidden_size / config.num_attention_heads;
    for (let l = 0; l < config.num_hidden_layers; l++) {
      for (const [n, size] of [['q', config.num_attention_heads * hs], ['k', config.num_key_value_heads * hs], ['v', config.num_key_value_heads * hs]] as const) {
        tensors.set(`model.layers.${l}.self_attn.${n}_proj.bias`, { shape: [size], data: randomArray(size, 100 + l * 3 + n.charCodeAt(0), 0.5) });
      }
    }
    writeSafetensors(join(dir, 'model.safetensors'), tensors);

    const model = await loadModel(dir);
    try {
      const V = model.config.vocabSize;
      const fed: number[] = [];
      const got: Float32Array[] = [];
      // a 6-token prefill, then 6 greedy decode steps: both graphs carry the biases
      for await (const s of model.generate({ promptIds: [1, 45, 300, 7, 99, 250], steps: 12, temperature: 0, logits: true })) {
        fed.push(s.token);
        got.push(s.logits!);
      }
      expect(fed).toHaveLength(12);
      const expected = hfForward(tensors, config, fed);
      got.forEach((row, p) => expect(maxAbsDiff(row, expected.subarray(p * V, (p + 1) * V)), `position ${p}`).toBeLessThan(TOLERANCE));
    } finally {
      model.release();
    }
  });
});

describe('special tokens from config.json and generation_config.json', () => {
  it('takes BOS and the end-of-sequence ids that are in the vocabulary', () => {
    expect(readCheckpoint(join(hf, 'llama-gqa')).config).toMatchObject({ bosId: 1, stop: { ids: [2], inPrompt: false } });
    // the fixture GPT-2's special id 50256 is beyond its 500-token vocabulary
    const gpt2 = readCheckpoint(join(hf, 'gpt2')).config;
    expect(gpt2.bosId).toBeUndefined();
    expect(gpt2.stop).toEqual({ ids: [], inPrompt: false });
  });

  it('feeds the whole prompt, stop ids included, and needs a prompt when the model has no BOS', async () => {
    const model = await loadModel(join(hf, 'gpt2'));
    try {
      const fed: number[] = [];
      for await (const s of model.generate({ promptIds: [180, 1, 496], steps: 6, temperature: 0 })) fed.push(s.token);
      expect(fed.slice(0, 3)).toEqual([180, 1, 496]);
      expect(fed).toHaveLength(6);
      await expect(model.generate({ steps: 4 }).next()).rejects.toThrow(/no BOS token to start from/);
    } finally {
      model.release();
    }
  });
});
