// Memory plans on the fixtures, with the figures worked out here from tensor shapes and formats: weights on
// the device, the KV cache, a context cut; a plan that does not fit (small limits injected) names the limit
// and what would fit, and that really fits; `weft inspect --memory` as text, as JSON, and its exit status.
import { mkdtempSync, rmSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCheckpoint, type Checkpoint } from '../src/api.js';
import { failedChecksText, fittingText, memoryPlan, webgpuDefaultLimits, type MemoryLimits, type MemoryPlanOptions } from '../src/memory-plan.js';
import { runWeft } from './weft-process.js';

const stories = new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url).pathname;
const gqa = new URL('../../shared/fixtures/hf/llama-gqa', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'weft-memory-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const host = { total: 64 * 2 ** 30, free: 32 * 2 ** 30 };
const plan = (c: Checkpoint, o: MemoryPlanOptions = {}) => memoryPlan(c, { host, ...o });
const limited = (limits: Partial<MemoryLimits>): MemoryPlanOptions['adapter'] => ({ name: 'test limits', limits: { ...webgpuDefaultLimits, ...limits } });

const elements = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/** Float32 RoPE tables, cos and sin, [context, headSize / 2] each. */
const ropeBytes = (c: Checkpoint, context: number): number => 2 * context * (c.config.headSize / 2) * 4;

/** layers × (K and V) × context × kvDim × 4 bytes */
const kvBytes = (c: Checkpoint, context: number): number => c.config.nLayers * 2 * context * c.config.nKvHeads * c.config.headSize * 4;

describe('memory plan', () => {
  const storiesCheckpoint = readCheckpoint(stories);
  const gqaCheckpoint = readCheckpoint(gqa);

  it('counts float32 weights once each (the shared classifier is the embedding table), the RoPE tables and the KV cache', () => {
    const c = storiesCheckpoint;
    const distinct = [...new Set(c.tensors.values())];
    expect(distinct.length).toBe(c.tensors.size - 1); // output is tok_embeddings
    const p = plan(c);
    expect(p.context).toBe(512);
    expect(p.promptTokens).toBe(512);
    expect(p.file.tensors).toBe(distinct.length);
    expect(p.file.bytes).toBe(distinct.reduce((s, t) => s + 4 * elements(t.shape), 0));
    expect(p.device.weights.bytes).toBe(p.file.bytes + ropeBytes(c, 512));
    expect(p.device.weights.formats.map((f) => f.format)).toEqual(['f32']);
    expect(p.device.kvCache).toBe(5 * 2 * 512 * 32 * 4);
    expect(p.device.kvCache).toBe(kvBytes(c, 512));
    // prefill's largest value is the FFN's gated rows of every prompt position (its logits are the last row's alone)
    expect(p.device.largestBuffer).toEqual({ name: 'prefill l0.gated', bytes: 512 * c.config.hiddenDim * 4 });
    expect(p.device.total).toBe(p.device.weights.bytes + p.device.kvCache + p.device.activations.prefill + p.device.activations.decode);
    expect(p.fits).toBe(true);
    expect(p.fitting).toBeUndefined();
  });

  it('a shorter context shrinks the KV cache, the RoPE tables and the prompt planned for', () => {
    const c = storiesCheckpoint;
    const full = plan(c);
    const cut = plan(c, { context: 100 });
    expect(cut.device.kvCache).toBe(kvBytes(c, 100));
    expect(cut.device.weights.bytes).toBe(full.device.weights.bytes - ropeBytes(c, 512) + ropeBytes(c, 100));
    expect(cut.promptTokens).toBe(100);
    expect(cut.device.activations.prefill).toBeLessThan(full.device.activations.prefill);
    expect(plan(c, { promptTokens: 16 }).device.activations.prefill).toBeLessThan(full.device.activations.prefill);
    expect(() => plan(c, { context: 513 })).toThrow(/beyond the model's context of 512/);
    expect(() => plan(c, { promptTokens: 0 })).toThrow(/positive whole number/);
  });

  it('counts converted weights in their device layout: Q8_0 matmul weights where rows are whole blocks, float32 elsewhere', () => {
    const c = gqaCheckpoint;
    // Q8_0: 32 quants and a 2-byte scale per block of 32; every tensor here has an even number of blocks, so no plane is padded
    const q8 = (n: number): number => (n / 32) * 34;
    let quantized = 0;
    let floats = ropeBytes(c, 256);
    for (const [name, t] of c.tensors) {
      // --weights converts matmul weights; the embedding table stays as stored
      if (t.shape.length === 2 && t.shape[1]! % 32 === 0 && name !== 'tok_embeddings') quantized += q8(elements(t.shape));
      else floats += 4 * elements(t.shape);
    }
    const p = plan(c, { weights: 'q8_0' });
    const bytes = Object.fromEntries(p.device.weights.formats.map((f) => [f.format, f.bytes]));
    expect(bytes).toEqual({ q8_0: quantized, f32: floats });
    expect(p.device.weights.bytes).toBe(quantized + floats);
    expect(p.device.kvCache).toBe(3 * 2 * 256 * 32 * 4);
    expect(p.weights).toBe('q8_0');
  });

  it('names the limit a buffer passes and the largest context that fits, which fits', () => {
    const c = storiesCheckpoint;
    const adapter = limited({ maxStorageBufferBindingSize: 256 * 1024 });
    const p = plan(c, { adapter });
    expect(p.fits).toBe(false);
    const failed = p.checks.filter((x) => !x.fits);
    expect(failed.map((x) => x.limit)).toEqual(['maxStorageBufferBindingSize']);
    expect(failed[0]).toMatchObject({ what: 'largest buffer prefill l0.gated', needed: 512 * 172 * 4, allowed: 256 * 1024 });
    expect(failedChecksText(p.checks)).toMatch(/prefill l0\.gated needs 344\.0 KiB .* over maxStorageBufferBindingSize 256\.0 KiB .* by 88\.0 KiB/);
    // 381 prompt positions of 172 floats fit in 256 KiB, 382 do not: a context of 381, or prefill chunks of 381 tokens
    expect(p.fitting?.context).toBe(381);
    expect(p.fitting?.promptTokens).toBe(381);
    expect(fittingText(p.fitting!)).toMatch(/^--context 381 fits; prefill chunks of 381 tokens fit \(--prefill-chunk\); none of --weights /);
    expect(plan(c, { adapter, context: 381 }).fits).toBe(true);
    expect(plan(c, { adapter, context: 382 }).fits).toBe(false);
    expect(plan(c, { adapter, promptTokens: 381 }).fits).toBe(true);
    expect(plan(c, { adapter, promptTokens: 382 }).fits).toBe(false);
    // no weight format makes the activations smaller
    expect(p.fitting?.weights.length).toBeGreaterThan(0);
    expect(p.fitting?.weights.every((w) => !w.fits)).toBe(true);
  });

  it('suggests smaller weights when no context fits, and they fit', () => {
    const c = gqaCheckpoint;
    // below the stacked float32 gate/up weights (688 × 128 × 4 = 344 KiB), which no context shrinks, above the embedding table (256 KiB)
    const adapter = limited({ maxStorageBufferBindingSize: 300 * 1024 });
    const p = plan(c, { adapter, promptTokens: 16 });
    expect(p.fits).toBe(false);
    expect(p.device.largestBuffer).toEqual({ name: 'layers.0.w1_w3', bytes: 688 * 128 * 4 });
    expect(p.fitting?.context).toBeUndefined();
    const fit = p.fitting!.weights.filter((w) => w.fits).map((w) => w.format);
    expect(fit).toEqual(expect.arrayContaining(['f16', 'q8_0', 'q4_0']));
    for (const format of fit) expect(plan(c, { adapter, promptTokens: 16, weights: format }).fits, format).toBe(true);
  });

  it("sets the host's peak against its memory: the heaviest weight read, laid out and queued", () => {
    const c = storiesCheckpoint;
    const p = plan(c, { host: { total: 1024 * 1024, free: 1024 * 1024 } });
    const w = p.host.largestWeight;
    expect(w).toMatchObject({ name: 'tok_embeddings', read: 512 * 64 * 4, converted: 0, device: 512 * 64 * 4 });
    expect(p.host.queued).toBe(p.device.weights.bytes); // below the 256 MiB the loader queues before it waits
    expect(p.host.peak).toBe(w.read + w.converted + 2 * w.device + p.host.queued);
    expect(p.checks.find((x) => x.limit === 'hostMemory')).toMatchObject({ fits: false, needed: p.host.peak, allowed: 1024 * 1024 });
    expect(p.fitting?.context).toBeUndefined();
  });
});

/** A llama2.c checkpoint of these sizes with no weights written: a sparse file, read only for its header. */
function sparseLlama2c(
  path: string,
  c: { dim: number; hidden: number; layers: number; heads: number; kvHeads: number; vocab: number; seqLen: number },
): string {
  const hs = c.dim / c.heads;
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * hs * c.kvHeads * c.dim + 3 * c.hidden * c.dim;
  const floats = c.vocab * c.dim + c.layers * perLayer + c.dim + c.seqLen * hs;
  writeFileSync(path, new Uint8Array(new Int32Array([c.dim, c.hidden, c.layers, c.heads, c.kvHeads, c.vocab, c.seqLen]).buffer));
  truncateSync(path, 28 + 4 * floats);
  return path;
}

describe('weft inspect --memory', () => {
  const weft = (...args: string[]) => runWeft(args, 90_000);

  it("prints the checkpoint's tensors and its memory plan against the adapter's limits, and exits 0 when it fits", () => {
    const r = weft('inspect', stories, '--memory', '--context', '256');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('llama: 5 layers, dim 64, hidden 172, 8 heads of 8, 4 KV heads, vocab 512, context 512');
    expect(lines).toContain('tensors: 47, 1015.8 KiB in the file');
    expect(lines).toContain('memory at context 256, prefill of 256 tokens, weights as stored');
    expect(lines.find((l) => l.startsWith('limits: '))).toBeDefined();
    expect(r.stdout).toMatch(/KV cache +320\.0 KiB \(5 layers × 2 × 256 positions × 32 × 4 B\)/);
    expect(r.stdout).toMatch(/largest buffer +172\.0 KiB \(prefill l0\.gated\) ≤ maxStorageBufferBindingSize/);
    expect(r.stdout).toMatch(/host peak .* ≤ host memory/);
    expect(lines.at(-2)).toBe('fits');
  });

  it('prints the plan as one JSON object with --json', () => {
    const r = weft('inspect', gqa, '--memory', '--json', '--weights', 'q4_0', '--prompt-tokens', '16');
    expect(r.status).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p).toMatchObject({ family: 'llama', context: 256, promptTokens: 16, weights: 'q4_0', fits: true });
    expect(p.device.kvCache).toBe(3 * 2 * 256 * 32 * 4);
    expect(p.device.weights.formats.map((f: { format: string }) => f.format).sort()).toEqual(['f32', 'q4_0']);
    expect(Object.keys(p.limits)).toContain('maxStorageBufferBindingSize');
  });

  it('prints the plan, then fails with one line naming the limit, when a buffer is larger than any adapter binds', () => {
    // a 16 GB embedding table: beyond every adapter's maxStorageBufferBindingSize (at most 4 GiB)
    const big = sparseLlama2c(join(scratch, 'big.bin'), { dim: 4096, hidden: 4096, layers: 1, heads: 32, kvHeads: 8, vocab: 1_000_000, seqLen: 2048 });
    const r = weft('inspect', big, '--memory');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/largest buffer +15\.3 GiB \(tok_embeddings\) > maxStorageBufferBindingSize/);
    expect(r.stdout).toMatch(/^does not fit: /m);
    const errors = r.stderr.split('\n').filter((l) => l !== '');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^weft: does not fit: largest buffer tok_embeddings needs 15\.3 GiB .*over maxStorageBufferBindingSize .*; no --context fits; /);
    const json = weft('inspect', big, '--memory', '--json');
    expect(json.status).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ fits: false, fitting: { weights: expect.any(Array) } });
  });

  it('refuses memory options without --memory, and --memory with --graph', () => {
    for (const args of [['--json'], ['--context', '8'], ['--memory', '--graph', 'prefill']]) {
      const r = weft('inspect', stories, ...args);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(/^weft: /);
    }
  });
});
