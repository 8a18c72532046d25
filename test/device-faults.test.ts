// Device faults in the middle of a generation: a validation error ends it with one clear error and the model
// goes on; a device lost ends it (and every later generation) with one clear error, the model releases, and a
// model loaded again in the same process generates the same tokens as before.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type GenerateRequest, type Model } from '../src/api.js';

const stories = fileURLToPath(new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url));
const greedy: GenerateRequest = { steps: 40, temperature: 0 };
const seeded: GenerateRequest = { steps: 40, temperature: 1, seed: 5 };

/** The tokens of a generation; `at` runs once `fault` tokens are out. */
async function tokens(model: Model, request: GenerateRequest, fault?: { at: number; run: () => void }): Promise<number[]> {
  const out: number[] = [];
  for await (const step of model.generate(request)) {
    out.push(step.next);
    if (out.length === fault?.at) fault.run();
  }
  return out;
}

/** The one error a generation ends with. */
async function failure(run: Promise<unknown>): Promise<string> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  const message = (error as Error).message;
  expect(message).not.toMatch(/[\r\n]/);
  expect(message.length).toBeLessThanOrEqual(300);
  return message;
}

describe('device faults', () => {
  let model: Model;
  let expected: { greedy: number[]; seeded: number[] };
  beforeAll(async () => {
    model = await loadModel(stories);
    expected = { greedy: await tokens(model, greedy), seeded: await tokens(model, seeded) };
  });
  afterAll(() => model?.release());

  it('a validation error mid-generation ends it with one error; the next generation is whole', async () => {
    // a mapped buffer cannot be a storage buffer: Dawn reports the error on the device, as a kernel's would be
    const invalid = () => void model.gpuDevice.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    expect(await failure(tokens(model, greedy, { at: 5, run: invalid }))).toMatch(/^WebGPU error: Buffer usages .* is invalid/);
    expect(await tokens(model, greedy)).toEqual(expected.greedy);
    expect(await tokens(model, seeded)).toEqual(expected.seeded);
  });

  it('a device lost mid-generation ends it and every later one with one error; a new load generates the same tokens', async () => {
    const buffers = model.deviceBuffers;
    expect(await failure(tokens(model, seeded, { at: 5, run: () => model.gpuDevice.destroy() }))).toBe('the GPU device was lost: device was destroyed');
    expect(await failure(tokens(model, greedy))).toBe('the GPU device was lost: device was destroyed');
    expect(model.deviceBuffers).toEqual(buffers);
    model.release();
    expect(model.deviceBuffers.buffers).toBe(0);
    model = await loadModel(stories);
    expect(await tokens(model, greedy)).toEqual(expected.greedy);
    expect(await tokens(model, seeded)).toEqual(expected.seeded);
  });
});
