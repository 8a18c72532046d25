// A float checkpoint with int8 matmuls (LoadOptions.matmul 'int8'): its matrices held as Q8_0, prefill's tiles over
// activations quantized per 32-wide block. Over run.c's greedy generation of aidreams260K fed as one prompt, every
// position's logits stay within the rounding the int8 path adds (measured: 0.20 at most, logits up to 11.3) and the
// largest logit is run.c's token but at near ties.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadModel, type LoadOptions } from '../src/api.js';

const dir = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
const tokens = readFileSync(`${dir}aidreams-greedy.tokens.txt`, 'utf8').trim().split('\n').map(Number);

async function prefillLogits(options: LoadOptions): Promise<{ logits: Float32Array[]; weights: string[] }> {
  const model = await loadModel(`${dir}aidreams260K.bin`, options);
  try {
    const logits: Float32Array[] = [];
    for await (const s of model.generate({ promptIds: tokens, steps: tokens.length, temperature: 0, logits: true })) logits.push(s.logits!.slice());
    return { logits, weights: model.weightFormats };
  } finally {
    model.release();
  }
}

const argmax = (xs: Float32Array): number => xs.reduce((best, x, i, a) => (x > a[best]! ? i : best), 0);

describe('int8 matmuls over a float checkpoint', () => {
  it("hold its matrices as Q8_0 and stay within their rounding of the float32 path's logits along run.c's generation", async () => {
    const float = await prefillLogits({});
    const int8 = await prefillLogits({ matmul: 'int8' });
    expect(float.weights).toEqual(['f32']);
    expect(int8.weights).toEqual(['f32', 'q8_0']);
    expect(int8.logits.length).toBe(tokens.length);
    let worst = 0;
    int8.logits.forEach((row, p) => {
      const ref = float.logits[p]!;
      for (let i = 0; i < row.length; i++) worst = Math.max(worst, Math.abs(row[i]! - ref[i]!));
      // run.c's next token is the float path's largest logit; int8 keeps it unless the float path's top two are within 0.5
      const next = argmax(ref);
      const second = Math.max(...ref.filter((_, i) => i !== next));
      if (ref[next]! - second > 0.5) expect(argmax(row), `position ${p}`).toBe(next);
    });
    expect(worst).toBeLessThan(0.5);
    expect(worst).toBeGreaterThan(0);
  });
});

describe('int8 decode GEMVs', () => {
  it("give decode steps the logits prefill's int8 tiles give the same tokens, up to summation order", async () => {
    // decode matmuls as int8 GEMVs from K 32 on (the fallback adapter otherwise sums them as columns)
    const options: LoadOptions = { matmul: 'int8', kernels: { splitKFrom: 32 } };
    const model = await loadModel(`${dir}aidreams260K.bin`, options);
    try {
      const { kernels } = await model.profile('decode', 1, 3);
      expect(kernels.map((k) => k.kind)).toContain('linear:gemv-int8');
      const steps = [];
      // A prompt of two of the fixture's greedy tokens, so that positions 0 and 1 are prefilled (a one-token prompt
      // runs as a decode step). Quantizing activations to int8 turns a summation order's last-bit difference into
      // a whole step of the int8 grid where a value lies on a rounding boundary: with position 0's keys and values
      // from a decode step, one such flip put 0.015 into position 35's logits. These steps meet no flip, and
      // summation order alone stays within 1e-4.
      for await (const s of model.generate({ promptIds: tokens.slice(0, 2), steps: 48, temperature: 0, topp: 0.9, seed: 1, logits: true }))
        steps.push({ ...s, logits: s.logits!.slice() });
      expect(steps.filter((s) => !s.prefill).length).toBe(46);
      const fed = steps.map((s) => s.token);
      const prefill: Float32Array[] = [];
      for await (const s of model.generate({ promptIds: fed, steps: fed.length, temperature: 0, topp: 0.9, seed: 1, logits: true }))
        prefill.push(s.logits!.slice());
      let worst = 0;
      steps.forEach((s, p) => {
        for (let i = 0; i < s.logits.length; i++) worst = Math.max(worst, Math.abs(s.logits[i]! - prefill[p]![i]!));
      });
      expect(worst).toBeLessThan(1e-4);
    } finally {
      model.release();
    }
  });
});
