// Soak: generations one after another on one loaded model (greedy and seeded sampling) give the same tokens every
// time, and neither host memory (heap after GC, resident set) nor the model's live GPU buffers grow.
// SOAK_STEPS sets the decode steps, the first round's included (default 1,000; `npm run soak` runs 10,000).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadModel, type GenerateRequest, type Model } from '../src/api.js';

const stories = fileURLToPath(new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url));
const totalSteps = Number(process.env.SOAK_STEPS ?? 1000);
/** positions per generation, the prompt's one included */
const STEPS = 125;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let model: Model;
beforeAll(async () => {
  model = await loadModel(stories);
});
afterAll(() => model?.release());

async function tokens(request: GenerateRequest): Promise<number[]> {
  const out: number[] = [];
  for await (const step of model.generate(request)) out.push(step.next);
  return out;
}

function hostMemory(): { heap: number; rss: number } {
  gc();
  gc();
  return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage.rss() };
}

const MB = 2 ** 20;

it(
  `${totalSteps} decode steps: no drift, host memory and GPU buffers flat`,
  async () => {
    const requests: GenerateRequest[] = [
      { steps: STEPS, temperature: 0 },
      { steps: STEPS, temperature: 1, topp: 0.9, seed: 42 },
      { steps: STEPS, temperature: 0.8, topp: 0, seed: 7 },
    ];
    // the first round is the reference and the warm-up: buffers reach their sizes, pipelines and caches fill
    const expected: number[][] = [];
    for (const r of requests) expected.push(await tokens(r));
    const before = { memory: hostMemory(), buffers: model.deviceBuffers };
    let steps = expected.reduce((n, t) => n + t.length, 0);
    let round = 0;
    while (steps < totalSteps) {
      const i = round++ % requests.length;
      const got = await tokens(requests[i]!);
      expect(got, `generation ${round} (request ${i}) drifted`).toEqual(expected[i]);
      steps += got.length;
      expect(model.deviceBuffers).toEqual(before.buffers);
    }
    const after = hostMemory();
    console.log(
      `soak: ${steps} decode steps in ${round} generations; heap ${(before.memory.heap / MB).toFixed(1)} -> ${(after.heap / MB).toFixed(1)} MB, ` +
        `rss ${(before.memory.rss / MB).toFixed(1)} -> ${(after.rss / MB).toFixed(1)} MB, GPU buffers ${before.buffers.buffers} (${before.buffers.bytes} bytes) -> ${model.deviceBuffers.buffers}`,
    );
    expect(steps).toBeGreaterThanOrEqual(totalSteps);
    // a leak of one small object per step would be 10,000 objects: the heap may move by GC noise only
    expect(after.heap - before.memory.heap).toBeLessThan(4 * MB);
    expect(after.rss - before.memory.rss).toBeLessThan(48 * MB);
    expect(model.deviceBuffers).toEqual(before.buffers);
    // SwiftShader takes about 170 ms a step on a 2-core machine with nothing else running
  },
  Math.max(1_800_000, totalSteps * 400),
);
