// The tfjs peer runs the model weft runs: on a small llama whose sizes are not powers of two (grouped
// heads included), its logits after a prefill and each decode step match a CPU forward pass and weft's.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { tinyLlama, tinyLlamaWeights } from './tiny-llama.js';
import { Model } from '../src/api.js';
import { tfjsBench, tfjsLogits } from '../src/peers/tfjs.js';
import * as ref from './reference.js';
import { valuesSource } from '../src/weights/source.js';

const TOLERANCE = 1e-4;
/** both engines compile their shaders in each test: minutes on SwiftShader when the CPU is shared */
const GPU_TEST_TIMEOUT = 300_000;

const config = tinyLlama;
const weights = tinyLlamaWeights;
const prompt = [1, 40, 7, 96, 23, 0, 58];
const decodeSteps = 6;

/** Token ids weft fed and its logits at every position of a greedy run after `prompt`. */
async function weftRun(): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const model = await Model.load({ config, tensors: new Map([...weights].map(([n, v]) => [n, valuesSource(v)])), tokenizer: undefined }, {});
  try {
    const ids: number[] = [];
    const logits: Float32Array[] = [];
    for await (const s of model.generate({ promptIds: prompt, steps: prompt.length + decodeSteps, temperature: 0, logits: true })) {
      ids.push(s.token);
      logits.push(s.logits!);
    }
    return { ids, logits };
  } finally {
    model.release();
  }
}

describe('tfjs peer', () => {
  it(
    'matches a CPU forward pass and weft at every prefill and decode position',
    async () => {
      const weft = await weftRun();
      expect(weft.ids).toHaveLength(prompt.length + decodeSteps);
      const tensorsBefore = tf.engine().state.numTensors;
      const peer = await tfjsLogits(config, weights, prompt, weft.ids.slice(prompt.length));
      expect(tf.engine().state.numTensors, 'tensors left behind').toBe(tensorsBefore);

      const V = config.vocabSize;
      expect(peer.prefill).toHaveLength(prompt.length * V);
      expect(peer.decode).toHaveLength(decodeSteps);
      const rows = [...Array.from({ length: prompt.length }, (_, p) => peer.prefill.subarray(p * V, (p + 1) * V)), ...peer.decode];
      const expected = ref.llamaForward(config, weights, weft.ids);
      rows.forEach((row, p) => {
        expect(ref.maxAbsDiff(row, expected.subarray(p * V, (p + 1) * V)), `max |Δlogit| against the CPU at position ${p}`).toBeLessThan(TOLERANCE);
        expect(ref.maxAbsDiff(row, weft.logits[p]!), `max |Δlogit| against weft at position ${p}`).toBeLessThan(TOLERANCE);
      });
    },
    GPU_TEST_TIMEOUT,
  );

  it(
    'reports prefill and decode throughput on the device weft picks',
    async () => {
      // decode after a one-token prompt and after one that fills the context but for the timed steps
      const row = await tfjsBench('tiny', config, weights, { promptTokens: [5, 17], decodeTokens: 3, decodeAfter: [1, 29], runs: 1 });
      expect(row.engine).toBe('tfjs-webgpu');
      expect(row.model).toBe('tiny');
      expect(row.device).toMatch(/: /);
      expect(Object.keys(row.prefill_tokens_per_s)).toEqual(['5', '17']);
      expect(Object.keys(row.decode_after_tokens_per_s)).toEqual(['1', '29']);
      expect(row.decode_tokens_per_s).toBe(row.decode_after_tokens_per_s['1']);
      for (const v of [...Object.values(row.prefill_tokens_per_s), ...Object.values(row.decode_after_tokens_per_s)]) expect(v).toBeGreaterThan(0);
    },
    GPU_TEST_TIMEOUT,
  );

  it('refuses a prompt longer than the context before opening the device', async () => {
    await expect(tfjsBench('tiny', config, weights, { promptTokens: [33], decodeTokens: 1, runs: 1 })).rejects.toThrow(/outside 1\.\.32/);
    await expect(tfjsBench('tiny', config, weights, { promptTokens: [5], decodeTokens: 3, decodeAfter: [30], runs: 1 })).rejects.toThrow(
      /^--decode-after 30 is outside 1\.\.29 \(the context less --decode-tokens 3\)$/,
    );
  });
});
