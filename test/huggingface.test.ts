// Hugging Face checkpoints (Llama, GPT-2) against transformers' own outputs (../shared/fixtures/hf):
// prefill logits at every prompt position, decode logits at every step, greedy tokens; Qwen2, Qwen3 and Phi-3
// checkpoints built here against a CPU forward pass in transformers' conventions; and the safetensors reader
// and config mapping on malformed input.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ropeTables } from '../models/llama2c.js';
import { afterAll, describe, expect, it } from 'vitest';
import { floatWeights, loadModel, optimizeGraphs, readCheckpoint, withContext } from '../src/api.js';
import { readSafetensors } from '../models/safetensors.js';
import { sourceValues } from '../src/weights/source.js';
import { hfForward, randomHfTensors, safetensors, tinyPhi3, tinyQwen3, writeHfFolder, type HfTensors } from './hf-reference.js';
import { maxAbsDiff, randomArray } from './reference.js';
import { runWeft } from './weft-process.js';

const hf = new URL('../../shared/fixtures/hf/', import.meta.url).pathname;
const TOLERANCE = 1e-4;
const scratch = mkdtempSync(join(tmpdir(), 'weft-hf-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const floats = (path: string): Float32Array => new Float32Array(readFileSync(path).buffer.slice(0));

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
      for await (const s of model.generate({ promptIds: ref.prompt, steps: ref.prompt.length + ref.greedy.length, temperature: 0, logits: true }))
        steps.push(s);
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
  // the prompt in one prefill run, and in runs of 3 tokens (GPT-2's learned positions and the cache rows continue across them)
  it.each([
    { runs: 'one prefill run', chunk: [] as string[] },
    { runs: 'prefill runs of 3 tokens', chunk: ['--prefill-chunk', '3'] },
  ])('prints the prompt and transformers greedy tokens, and dumps logits within 1e-4 of its prefill and decode logits: $runs', ({ chunk }) => {
    const dir = join(hf, name);
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { prompt: number[]; greedy: number[] };
    expect(ref.prompt.length).toBeGreaterThan(3);
    const dump = join(scratch, `${name}-cli${chunk.length}.f32`);
    const steps = ref.prompt.length + ref.greedy.length;
    const r = runWeft(
      ['run', dir, '--prompt-ids', ref.prompt.join(','), '--steps', String(steps), '--temperature', '0', '--json', '--dump-logits', dump, ...chunk],
      120_000,
    );
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
    const r = runWeft(
      ['run', dir, '--prompt-ids', ref.prompt.join(','), '--steps', String(steps + 1), '--context', String(steps), '--temperature', '0'],
      60_000,
    );
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
    writeFileSync(
      path,
      safetensors(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
          c: { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] },
        },
        data,
      ),
    );
    const t = readSafetensors(path);
    expect([...sourceValues(t.get('a')!)]).toEqual([1.5, -2.25]);
    expect([...sourceValues(t.get('b')!)]).toEqual([1, -5]);
    expect([...sourceValues(t.get('c')!)]).toEqual([3.140625, -1]);
    expect(t.get('c')!.format.name).toBe('bf16');
  });

  it.each([
    ['a truncated file', new Uint8Array(5), /x\.safetensors: truncated/],
    ['a header longer than the file', safetensors({}, new Uint8Array()).subarray(0, 9), /truncated: the header claims/],
    [
      'offsets past the data',
      safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(8)),
      /tensor "a": data offsets \[0, 16\] are outside the 8 data bytes/,
    ],
    [
      'a size that disagrees with the shape',
      safetensors({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "a": 8 bytes do not hold 3 F32 values/,
    ],
    ['an unsupported dtype', safetensors({ a: { dtype: 'I8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), /tensor "a" has dtype "I8"/],
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
    expect(() => readCheckpoint(variant('phi', (c) => (c.architectures = ['PhiForCausalLM'])))).toThrow(
      /config\.json: architecture "PhiForCausalLM" is not supported/,
    );
    expect(() => readCheckpoint(variant('yarn', (c) => (c.rope_parameters = { rope_type: 'yarn', factor: 4, rope_theta: 500000 })))).toThrow(
      /config\.json: RoPE scaling "yarn" is not supported \(weft supports default, linear and llama3\)/,
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
      const tables = ropeTables(config.headSize, config.seqLen, config.ropeTheta, scaling);
      expect(weights.get('rope_cos')).toEqual(tables.cos);
      expect(weights.get('rope_cos')).not.toEqual(ropeTables(config.headSize, config.seqLen, config.ropeTheta).cos);
    }
    const { config } = readCheckpoint(variant('linear', (c) => ((c.rope_parameters = undefined), (c.rope_scaling = { type: 'linear', factor: 2 }))));
    expect(config.ropeScaling).toEqual({ kind: 'linear', factor: 2 });
  });

  it('names a tensor whose shape disagrees with config.json', () => {
    expect(() => readCheckpoint(variant('wide', (c) => (c.intermediate_size = 400)))).toThrow(
      /tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[344, 128\], config\.json implies \[400, 128\]/,
    );
  });

  it('caps the context at a sliding window', () => {
    const dir = variant('mistral', (c) => {
      c.architectures = ['MistralForCausalLM'];
      c.sliding_window = 64;
    });
    expect(readCheckpoint(dir).config.seqLen).toBe(64);
  });
});

/** Values rounded to the nearest bfloat16 (ties to even), as a bf16 checkpoint holds them. */
function bf16Values(values: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = ((bits[i]! + 0x7fff + ((bits[i]! >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(bits.buffer);
}

/** weft's logits at every position of a 6-token prefill and 6 greedy decode steps equal hfForward's over the ids fed. */
async function expectTransformersLogits(dir: string, tensors: HfTensors, config: Record<string, unknown>): Promise<void> {
  const model = await loadModel(dir);
  try {
    const V = model.config.vocabSize;
    const fed: number[] = [];
    const got: Float32Array[] = [];
    for await (const s of model.generate({ promptIds: [1, 45, 100, 7, 99, 120], steps: 12, temperature: 0, logits: true })) {
      fed.push(s.token);
      got.push(s.logits!);
    }
    expect(fed).toHaveLength(12);
    const expected = hfForward(tensors, config, fed);
    got.forEach((row, p) => expect(maxAbsDiff(row, expected.subarray(p * V, (p + 1) * V)), `position ${p}`).toBeLessThan(TOLERANCE));
  } finally {
    model.release();
  }
}

describe('Qwen2ForCausalLM (q/k/v biases)', () => {
  it('matches a transformers-convention CPU forward pass with random biases', async () => {
    const config = JSON.parse(readFileSync(join(hf, 'llama-gqa', 'config.json'), 'utf8'));
    config.architectures = ['Qwen2ForCausalLM'];
    config.model_type = 'qwen2';
    const tensors: HfTensors = new Map(
      [...readSafetensors(join(hf, 'llama-gqa', 'model.safetensors'))].map(([k, v]) => [k, { shape: [...v.shape], data: sourceValues(v) }]),
    );
    const hs = config.hidden_size / config.num_attention_heads;
    for (let l = 0; l < config.num_hidden_layers; l++) {
      for (const [n, size] of [
        ['q', config.num_attention_heads * hs],
        ['k', config.num_key_value_heads * hs],
        ['v', config.num_key_value_heads * hs],
      ] as const) {
        tensors.set(`model.layers.${l}.self_attn.${n}_proj.bias`, { shape: [size], data: randomArray(size, 100 + l * 3 + n.charCodeAt(0), 0.5) });
      }
    }
    // both graphs carry the biases
    await expectTransformersLogits(writeHfFolder(join(scratch, 'qwen2'), config, tensors), tensors, config);
  });
});

describe('Qwen3ForCausalLM (per-head q/k RMSNorm, head_dim, bf16, tied embeddings)', () => {
  const tensors = new Map([...randomHfTensors(tinyQwen3, { qkNorm: true })].map(([k, t]) => [k, { ...t, data: bf16Values(t.data) }]));
  const dir = writeHfFolder(join(scratch, 'qwen3'), tinyQwen3, tensors, 'BF16');

  it('reads head_dim: q [H·head_dim, hidden], o [hidden, H·head_dim], norms of head_dim, bf16 kept, no sliding window', () => {
    const { config, tensors: weights } = readCheckpoint(dir);
    expect(config).toMatchObject({ dim: 64, nHeads: 4, nKvHeads: 2, headSize: 24, qkNorm: true, seqLen: 64, normEps: 1e-6, ropeTheta: 1000000 });
    expect(config.attentionBias).toBeUndefined();
    expect(weights.get('layers.0.wq')!.shape).toEqual([96, 64]);
    expect(weights.get('layers.0.wk')!.shape).toEqual([48, 64]);
    expect(weights.get('layers.0.wo')!.shape).toEqual([64, 96]);
    expect(weights.get('layers.1.k_norm')!.shape).toEqual([24]);
    expect(weights.get('layers.0.wq')!.format.name).toBe('bf16');
    // the norm weights follow q/k into adjacent-pair order: element 2j is j, 2j+1 is j + head_dim/2
    const qNorm = tensors.get('model.layers.0.self_attn.q_norm.weight')!.data;
    expect([...sourceValues(weights.get('layers.0.q_norm')!).subarray(0, 4)]).toEqual([qNorm[0], qNorm[12], qNorm[1], qNorm[13]]);
    expect(sourceValues(weights.get('output')!)).toEqual(sourceValues(weights.get('tok_embeddings')!));
  });

  it('matches a transformers-convention CPU forward pass at every prefill and decode position', async () => {
    await expectTransformersLogits(dir, tensors, tinyQwen3);
  });

  it('compiles: the per-head norms sit between the q/k/v matmul and RoPE, so fuse-linear keeps the norm and matmul and leaves RoPE to its own kernels', () => {
    const { prefill } = optimizeGraphs(readCheckpoint(dir).config);
    const kernels = prefill.schedule!.filter((i) => i.item === 'kernel');
    expect(kernels.find((k) => k.members.includes('l0.q_k_v'))).toMatchObject({
      kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'store' },
      members: ['l0.attn_in', 'l0.q_k_v'],
    });
    expect(kernels.find((k) => k.members.includes('l0.q_norm'))).toMatchObject({ kind: { kind: 'op', op: 'head_rmsnorm' }, members: ['l0.q_norm'] });
    const barrier = prefill.schedule!.find((i) => i.item === 'barrier' && i.consumers.includes('l0.q_norm'));
    expect(barrier).toMatchObject({ reason: expect.stringMatching(/^row-reduction: head_rmsnorm reads whole heads of %l0\.q, written by/) });
  });
});

describe('Phi3ForCausalLM (fused qkv_proj and gate_up_proj)', () => {
  const tensors = randomHfTensors(tinyPhi3, { fused: true });
  const dir = writeHfFolder(join(scratch, 'phi3'), tinyPhi3, tensors);

  it('splits the fused projections into q, k, v and gate, up; caps the context at the sliding window', () => {
    const { config, tensors: weights } = readCheckpoint(dir);
    expect(config).toMatchObject({ headSize: 16, seqLen: 47, hiddenDim: 96 });
    const gateUp = tensors.get('model.layers.1.mlp.gate_up_proj.weight')!.data;
    expect(sourceValues(weights.get('layers.1.w1')!)).toEqual(gateUp.subarray(0, 96 * 64));
    expect(sourceValues(weights.get('layers.1.w3')!)).toEqual(gateUp.subarray(96 * 64));
    const qkv = tensors.get('model.layers.0.self_attn.qkv_proj.weight')!.data;
    expect(sourceValues(weights.get('layers.0.wv')!)).toEqual(qkv.subarray(96 * 64));
  });

  it('matches a transformers-convention CPU forward pass at every prefill and decode position', async () => {
    await expectTransformersLogits(dir, tensors, tinyPhi3);
  });

  it.each([
    ['longrope', { rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [2] } }, /RoPE scaling "longrope" is not supported/],
    ['su', { rope_scaling: { type: 'su', short_factor: [1], long_factor: [2] } }, /RoPE scaling "su" is not supported/],
    ['partial rotary', { partial_rotary_factor: 0.75 }, /partial_rotary_factor 0\.75 is not supported \(weft rotates whole heads\)/],
  ])('refuses %s RoPE by name', (name, edit, message) => {
    const variant = join(scratch, `phi3-${name.replace(' ', '-')}`);
    mkdirSync(variant, { recursive: true });
    writeFileSync(join(variant, 'config.json'), JSON.stringify({ ...tinyPhi3, ...edit }));
    expect(() => readCheckpoint(variant)).toThrow(message);
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
