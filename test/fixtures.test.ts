// Every llama2.c fixture case reproduced through the API on the GPU: token ids identical, logits at
// every position within 1e-4 of run.c's, and for the aidreams cases the printed text byte for byte.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type GeneratedToken, type Model } from '../src/api.js';
import { argmax } from '../src/runtime/sampler.js';
import { maxAbsDiff } from './reference.js';

const dir = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
const LOGIT_TOLERANCE = 1e-4;
/** run.c's logits of a fixture case, every position's row one after another */
const referenceLogits = (name: string): Float32Array => new Float32Array(readFileSync(`${dir}${name}.logits.f32`).buffer.slice(0));

interface Case {
  name: string;
  model: 'aidreams260K' | 'stories260K';
  request: { prompt?: string; steps: number; temperature: number; topp?: number; seed?: number };
  text: boolean;
}

const cases: Case[] = [
  { name: 'aidreams-greedy', model: 'aidreams260K', request: { steps: 128, temperature: 0 }, text: true },
  { name: 'aidreams-prompt', model: 'aidreams260K', request: { prompt: 'I dream of a quiet city', steps: 100, temperature: 0 }, text: true },
  { name: 'aidreams-topp', model: 'aidreams260K', request: { steps: 128, temperature: 1, topp: 0.9, seed: 42 }, text: true },
  { name: 'stories-greedy', model: 'stories260K', request: { steps: 200, temperature: 0 }, text: false },
];

const models = new Map<string, Promise<Model>>();
function model(name: Case['model']): Promise<Model> {
  let m = models.get(name);
  if (!m) {
    m = loadModel(`${dir}${name}.bin`, name === 'aidreams260K' ? { tokenizer: `${dir}tok512-aidreams.bin` } : {});
    models.set(name, m);
  }
  return m;
}
afterAll(async () => {
  for (const m of models.values()) (await m).release();
});

describe('run.c generation rules', () => {
  it('stops at a BOS inside the prompt ids, as run.c stops at any BOS it is about to feed', async () => {
    const m = await model('aidreams260K');
    const steps: GeneratedToken[] = [];
    for await (const s of m.generate({ promptIds: [1, 319, 1, 459, 355], steps: 20, temperature: 0 })) steps.push(s);
    expect(steps.map((s) => [s.token, s.next])).toEqual([
      [1, 319],
      [319, 1],
    ]);
  });
});

describe('a one-token prompt', () => {
  // run.c's logits at position 0 come from the decode graph here, which needs no prefill pipeline
  for (const [name, request] of [
    ['greedy: chained on the device', { steps: 3, temperature: 0 }],
    ['sampled: each token chosen on the host', { steps: 3, temperature: 1, topp: 0.9, seed: 42 }],
  ] as const) {
    it(`runs as a decode step, its logits run.c's within ${LOGIT_TOLERANCE} (${name})`, async () => {
      const m = await model('aidreams260K');
      const c = cases.find((x) => x.name === (request.temperature === 0 ? 'aidreams-greedy' : 'aidreams-topp'))!;
      const ref = referenceLogits(c.name);
      const steps: GeneratedToken[] = [];
      for await (const s of m.generate({ ...request, promptIds: [1], logits: true })) steps.push(s);
      expect(steps.map((s) => [s.prefill, s.prompt])).toEqual([
        [false, true],
        [false, false],
        [false, false],
      ]);
      const V = m.config.vocabSize;
      steps.forEach((s, p) => expect(maxAbsDiff(s.logits!, ref.subarray(p * V, (p + 1) * V)), `position ${p}`).toBeLessThan(LOGIT_TOLERANCE));
    });
  }

  it('after a prompt the cache holds, is the decode step at its position', async () => {
    const m = await model('aidreams260K');
    const first: GeneratedToken[] = [];
    for await (const s of m.generate({ promptIds: [1, 319, 459], steps: 4, temperature: 0 })) first.push(s);
    const again: GeneratedToken[] = [];
    // the cache holds positions 0..2: only position 3's token is new
    for await (const s of m.generate({ promptIds: [1, 319, 459, first[3]!.token], steps: 6, temperature: 0, reuseCache: true })) again.push(s);
    expect(again.map((s) => [s.position, s.prefill, s.prompt])).toEqual([
      [3, false, true],
      [4, false, false],
      [5, false, false],
    ]);
    expect(again[0]!.next).toBe(first[3]!.next);
  });
});

// greedy runs of one step each, and of eight (LoadOptions.decodeRunMs: the GPU time a run may hold, whatever a
// step takes on this device)
const runLengths = { 'one step': 1e-6, 'eight steps': 1e6 };
const chained = new Map<string, Promise<Model>>();
afterAll(async () => {
  for (const m of chained.values()) (await m).release();
});

describe.each(Object.entries(runLengths))('greedy steps chained on the device, in runs of %s', (name, decodeRunMs) => {
  const prompt = [1, 319, 459];
  const stories = (): Promise<Model> => {
    let m = chained.get(name);
    if (!m) chained.set(name, (m = loadModel(`${dir}stories260K.bin`, { decodeRunMs })));
    return m;
  };
  const run = async (steps: number, logits: boolean): Promise<GeneratedToken[]> => {
    const m = await stories();
    const out: GeneratedToken[] = [];
    for await (const s of m.generate({ promptIds: prompt, steps, temperature: 0, logits })) out.push(s);
    return out;
  };

  it("each decode step feeds the device's first maximum, which is the host's argmax of its logits", async () => {
    const steps = await run(60, true);
    expect(steps).toHaveLength(60);
    for (const s of steps.slice(prompt.length - 1)) expect(s.next).toBe(argmax(s.logits!));
    // reading the logits back or not chooses the same tokens; runs as long as this device's step time allows
    // choose them too, from the same logits bit for bit
    expect((await run(60, false)).map((s) => s.next)).toEqual(steps.map((s) => s.next));
    const m = await model('stories260K');
    const single: GeneratedToken[] = [];
    for await (const s of m.generate({ promptIds: prompt, steps: 60, temperature: 0, logits: true })) single.push(s);
    expect(steps.map((s) => s.next)).toEqual(single.map((s) => s.next));
    for (const [i, s] of steps.entries()) expect(maxAbsDiff(s.logits!, single[i]!.logits!), `position ${s.position}`).toBe(0);
  });

  it('a generation cut short while steps run ahead leaves the next generation unchanged', async () => {
    const full = (await run(40, false)).map((s) => s.next);
    for (const steps of [4, 5, 17]) {
      expect((await run(steps, false)).map((s) => s.next)).toEqual(full.slice(0, steps));
      // a stopped generator (the consumer breaks off) lets its steps ahead finish first
      const m = await stories();
      for await (const s of m.generate({ promptIds: prompt, steps: 40, temperature: 0 })) if (s.position === steps) break;
      expect((await run(40, false)).map((s) => s.next)).toEqual(full);
    }
  });
});

it('a decode run time that is no positive number of milliseconds is an error before the GPU opens', async () => {
  for (const decodeRunMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await expect(loadModel(`${dir}stories260K.bin`, { decodeRunMs })).rejects.toThrow(
      new RegExp(`^the decode run time must be a positive number of milliseconds, got ${decodeRunMs}$`),
    );
  }
});

describe('sampled steps, each recorded while the step before it runs', () => {
  const prompt = [1, 319, 459];
  const sample = { temperature: 1, topp: 0.9, seed: 7 };
  const run = async (steps: number): Promise<number[]> => {
    const m = await model('stories260K');
    const out: number[] = [];
    for await (const s of m.generate({ promptIds: prompt, steps, ...sample })) out.push(s.next);
    return out;
  };

  it('a generation cut short leaves the next one unchanged, and a shorter one is a prefix of a longer one', async () => {
    const full = await run(40);
    expect(full).toHaveLength(40);
    for (const steps of [4, 5, 17]) {
      expect(await run(steps)).toEqual(full.slice(0, steps));
      const m = await model('stories260K');
      for await (const s of m.generate({ promptIds: prompt, steps: 40, ...sample })) if (s.position === steps) break;
      expect(await run(40)).toEqual(full);
    }
  });
});

describe('llama2.c fixtures', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const m = await model(c.model);
      const steps: GeneratedToken[] = [];
      for await (const s of m.generate({ ...c.request, logits: true })) steps.push(s);

      const expectedTokens = readFileSync(`${dir}${c.name}.tokens.txt`, 'utf8').trim().split('\n').map(Number);
      expect(steps.map((s) => s.token)).toEqual(expectedTokens);

      const ref = referenceLogits(c.name);
      const V = m.config.vocabSize;
      expect(ref.length).toBe(expectedTokens.length * V);
      steps.forEach((s, p) => {
        const err = maxAbsDiff(s.logits!, ref.subarray(p * V, (p + 1) * V));
        expect(err, `max |Δlogit| at position ${p}`).toBeLessThan(LOGIT_TOLERANCE);
      });

      if (c.text) {
        const printed = Buffer.concat([...steps.map((s) => s.piece), Buffer.from('\n')]);
        expect(printed.toString('latin1')).toBe(readFileSync(`${dir}${c.name}.stdout.txt`, 'latin1'));
      }
    });
  }
});

describe('llama2.c fixtures through the other kernel choices', () => {
  const greedy = cases.filter((c) => c.request.temperature === 0 && c.request.prompt === undefined);
  const run = async (c: Case, options: Parameters<typeof loadModel>[1]): Promise<{ tokens: number[]; error: number }> => {
    const m = await loadModel(`${dir}${c.model}.bin`, options);
    try {
      const steps: GeneratedToken[] = [];
      for await (const s of m.generate({ ...c.request, logits: true })) steps.push(s);
      const ref = referenceLogits(c.name);
      const V = m.config.vocabSize;
      const error = Math.max(...steps.map((s, i) => maxAbsDiff(s.logits!, ref.subarray(i * V, (i + 1) * V))));
      return { tokens: steps.map((s) => s.token), error };
    } finally {
      m.release();
    }
  };
  const expected = (c: Case): number[] => readFileSync(`${dir}${c.name}.tokens.txt`, 'utf8').trim().split('\n').map(Number);

  // Split-K sums in another order than run.c. aidreams260K is robust to that; stories260K is not: it
  // measures 1.03e-4 there, about where run.c itself sits from an exact forward pass (1.3e-4), which is why
  // decode splits K only from K = 512 and these 64-wide models keep run.c's order by default.
  it(`aidreams-greedy: split-K decode matmuls at every K stay within ${LOGIT_TOLERANCE}`, async () => {
    const c = greedy.find((g) => g.name === 'aidreams-greedy')!;
    const { tokens, error } = await run(c, { kernels: { splitKFrom: 0 } });
    expect(tokens).toEqual(expected(c));
    expect(error).toBeLessThan(LOGIT_TOLERANCE);
  });
  for (const c of greedy) {
    // float16 weights: measured 4.0e-3 (aidreams) and 7.2e-2 (stories, logits up to 21) from run.c's float32 logits
    it(`${c.name}: packed-half weights keep the greedy tokens, logits within 0.1`, async () => {
      const { tokens, error } = await run(c, { weights: 'f16' });
      expect(tokens).toEqual(expected(c));
      expect(error).toBeLessThan(0.1);
    });
  }
});

describe('a prompt prefilled in chunks', () => {
  const c = cases.find((x) => x.name === 'aidreams-prompt')!;
  const expectedTokens = (): number[] => readFileSync(`${dir}${c.name}.tokens.txt`, 'utf8').trim().split('\n').map(Number);

  // chunks of 3 tokens: the 8-token prompt runs as three prefill runs (3, 3, 2), the later ones after the cache's rows
  it(`runs each chunk after the one before: run.c's tokens and text, logits at every position within ${LOGIT_TOLERANCE}`, async () => {
    const m = await loadModel(`${dir}${c.model}.bin`, { tokenizer: `${dir}tok512-aidreams.bin`, prefillChunk: 3 });
    try {
      const prompt = m.tokenizer!.encode(c.request.prompt!, true);
      expect(prompt.length).toBeGreaterThan(6);
      const ref = referenceLogits(c.name);
      const V = m.config.vocabSize;
      for (const logits of [true, false]) {
        const steps: GeneratedToken[] = [];
        for await (const s of m.generate({ ...c.request, logits })) steps.push(s);
        expect(steps.map((s) => s.token)).toEqual(expectedTokens());
        expect(steps.filter((s) => s.prefill).length).toBe(prompt.length);
        const printed = Buffer.concat([...steps.map((s) => s.piece), Buffer.from('\n')]);
        expect(printed.toString('latin1')).toBe(readFileSync(`${dir}${c.name}.stdout.txt`, 'latin1'));
        if (logits) steps.forEach((s, p) => expect(maxAbsDiff(s.logits!, ref.subarray(p * V, (p + 1) * V)), `position ${p}`).toBeLessThan(LOGIT_TOLERANCE));
      }
    } finally {
      m.release();
    }
  });

  it('a chunk that is no positive whole number is an error before the GPU opens', async () => {
    await expect(loadModel(`${dir}${c.model}.bin`, { prefillChunk: 0 })).rejects.toThrow(
      /^the prefill chunk must be a positive whole number of tokens, got 0$/,
    );
  });
});
