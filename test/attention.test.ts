// Fused attention (flash prefill, split-K decode) against the CPU's attn_scores → softmax → attn_mix, on
// seeded random caches filled past the valid keys, at sizes that are not multiples of the tiles.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as A from '../src/affine.js';
import {
  attentionKernels,
  DECODE_GROUP_FROM,
  defaultAttentionOptions,
  prefillLayout,
  prefillRowLayout,
  type AttentionOptions,
  type AttentionSpec,
} from '../src/codegen/attention.js';
import { workgroupCount, type WorkgroupCount } from '../src/runtime/plan.js';
import { defaultCodegenOptions } from '../src/codegen/compile.js';
import { PlanExecutor, ResidentBuffers } from '../src/runtime/executor.js';
import { valuesSource } from '../src/weights/source.js';
import { openGpu, type Gpu } from '../src/runtime/gpu.js';
import type { Plan } from '../src/runtime/plan.js';
import * as ref from './reference.js';
import { loadModel } from '../src/api.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openGpu();
});
afterAll(() => gpu?.destroy());

const TOL = 2e-5;
/** The limits codegen gives attention on an adapter of 1024 invocations and ample workgroup memory, and its default tile. */
const codegenLimits: AttentionOptions = { maxInvocations: 1024, maxWorkgroupBytes: 32768, maxTile: defaultCodegenOptions.attentionTile };

interface Case {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headSize: number;
  readonly contextLength: number;
  readonly P: number;
  /** the adapter's limits the kernels are sized for (default: 8 KiB of tiles, 256 invocations) */
  readonly limits?: AttentionOptions;
  /** new rows; decode when absent */
  readonly T?: number;
}

function specOf(c: Case): AttentionSpec {
  const rows = c.T === undefined ? A.constant(1) : A.sym('T');
  const { heads, kvHeads, headSize, contextLength } = c;
  return { name: 'att', q: 'q', k: 'k', v: 'v', out: 'out', heads, kvHeads, headSize, rows, keys: A.add(A.sym('P'), rows), contextLength };
}

function planOf(spec: AttentionSpec, limits?: AttentionOptions): Plan {
  const att = attentionKernels(spec, limits);
  const [qd, kd] = [spec.heads * spec.headSize, spec.kvHeads * spec.headSize].map((n) => A.constant(n));
  const cache = [A.constant(spec.contextLength), kd!];
  return {
    graph: 'attention',
    symbols: A.isConstant(spec.rows) ? ['P'] : ['T', 'P'],
    buffers: [
      { name: 'q', role: 'input', dtype: 'f32', shape: [spec.rows, qd!] },
      { name: 'k', role: 'state', dtype: 'f32', shape: cache },
      { name: 'v', role: 'state', dtype: 'f32', shape: cache },
      { name: 'out', role: 'activation', dtype: 'f32', shape: [spec.rows, qd!] },
      ...att.scratch.map((s) => ({ name: s.name, role: 'activation' as const, dtype: 'f32' as const, shape: s.shape })),
    ],
    kernels: att.kernels.map(({ suffix, source }) => ({
      name: `${spec.name}.${suffix}`,
      scheduleKernel: spec.name,
      op: 'attention',
      wgsl: source.wgsl,
      bindings: source.bindings.map((b, i) => ({ binding: i + 1, buffer: b.buffer, access: b.access })),
      workgroups: source.workgroups,
    })),
    inputs: ['q'],
    outputs: ['out'],
  };
}

/** Runs the case on the GPU; returns the max error against the reference and the per-split sums l (decode). */
async function runCase(c: Case, seed: number): Promise<{ error: number; splitSums: Float32Array }> {
  const spec = specOf(c);
  const plan = planOf(spec, c.limits);
  const rows = c.T ?? 1;
  const keys = c.P + rows;
  const q = ref.randomArray(rows * c.heads * c.headSize, seed, 2);
  const k = ref.randomArray(c.contextLength * c.kvHeads * c.headSize, seed + 1, 2);
  const v = ref.randomArray(c.contextLength * c.kvHeads * c.headSize, seed + 2);
  const buffers = new ResidentBuffers(
    gpu,
    new Map([
      ['k', valuesSource(k)],
      ['v', valuesSource(v)],
    ]),
  );
  const exec = await PlanExecutor.create(gpu, plan, buffers);
  try {
    exec.run({ T: rows, P: c.P }, { q });
    const got = await exec.read('out', 0, rows * c.heads * c.headSize);
    // (m, l) per head and split: the sums l sit at odd places
    const stats = plan.buffers.find((b) => b.name === 'att.partial_ml');
    const splitStats = stats
      ? await exec.read(
          stats.name,
          0,
          stats.shape.reduce((p, d) => p * d.c, 1),
        )
      : new Float32Array();
    const splitSums = splitStats.filter((_, i) => i % 2 === 1);
    const scores = ref.attnScores(q, k, c, rows, keys);
    const want = ref.attnMix(ref.softmax(scores, rows, keys, true), v, c, rows, keys);
    return { error: ref.maxAbsDiff(got, want), splitSums };
  } finally {
    exec.destroy();
    buffers.destroy();
  }
}

/** Bytes of `var<workgroup>` arrays (of f32 or its vectors, a vec3 taking 16 bytes as a vec4 does) a kernel declares. */
function workgroupBytes(wgsl: string): number {
  const size: Record<string, number> = { f32: 4, 'vec2<f32>': 8, 'vec3<f32>': 16, 'vec4<f32>': 16 };
  return [...wgsl.matchAll(/var<workgroup>\s+\w+\s*:\s*array<(f32|vec[234]<f32>),\s*(\d+)>/g)].reduce((s, m) => s + size[m[1]!]! * Number(m[2]), 0);
}

describe('fused attention against the three-op CPU reference', () => {
  const prefill: Case[] = [
    { heads: 4, kvHeads: 2, headSize: 6, T: 5, P: 3, contextLength: 16 },
    { heads: 8, kvHeads: 8, headSize: 16, T: 70, P: 0, contextLength: 80 },
    { heads: 2, kvHeads: 1, headSize: 80, T: 3, P: 130, contextLength: 140 },
    { heads: 4, kvHeads: 4, headSize: 32, T: 1, P: 7, contextLength: 9 },
    { heads: 2, kvHeads: 1, headSize: 256, T: 4, P: 9, contextLength: 20 },
    // 32 KiB of tiles: up to 32×32 tiles of 256 invocations where the head fits, smaller where it does not; 16×16 over 128 invocations
    { heads: 4, kvHeads: 2, headSize: 64, T: 75, P: 6, contextLength: 90, limits: { maxInvocations: 1024, maxWorkgroupBytes: 32768, maxTile: 32 } },
    { heads: 2, kvHeads: 2, headSize: 80, T: 40, P: 0, contextLength: 40, limits: { maxInvocations: 1024, maxWorkgroupBytes: 32768, maxTile: 32 } },
    { heads: 2, kvHeads: 1, headSize: 6, T: 50, P: 20, contextLength: 80, limits: { maxInvocations: 128, maxWorkgroupBytes: 32768, maxTile: 16 } },
    // the codegen's limits: several row blocks and key tiles, heads of 64, 128 and 256, and not a multiple of 4
    { heads: 4, kvHeads: 1, headSize: 64, T: 150, P: 37, contextLength: 200, limits: codegenLimits },
    { heads: 4, kvHeads: 2, headSize: 128, T: 75, P: 11, contextLength: 90, limits: codegenLimits },
    { heads: 2, kvHeads: 1, headSize: 256, T: 21, P: 6, contextLength: 30, limits: codegenLimits },
    { heads: 3, kvHeads: 3, headSize: 66, T: 47, P: 29, contextLength: 80, limits: codegenLimits },
    { heads: 2, kvHeads: 1, headSize: 1, T: 33, P: 0, contextLength: 40, limits: codegenLimits },
    { heads: 4, kvHeads: 2, headSize: 64, T: 1, P: 70, contextLength: 80, limits: codegenLimits },
    // each tile edge, and 128 invocations
    ...[8, 16, 32].map((maxTile) => ({ heads: 4, kvHeads: 2, headSize: 64, T: 45, P: 10, contextLength: 60, limits: { ...codegenLimits, maxTile } })),
    { heads: 4, kvHeads: 2, headSize: 64, T: 150, P: 37, contextLength: 200, limits: { ...codegenLimits, maxInvocations: 128 } },
    { heads: 2, kvHeads: 1, headSize: 128, T: 40, P: 3, contextLength: 50, limits: { ...codegenLimits, maxInvocations: 128 } },
    { heads: 2, kvHeads: 1, headSize: 30, T: 70, P: 5, contextLength: 80, limits: { ...codegenLimits, maxInvocations: 128, maxTile: 16 } },
  ];
  prefill.forEach((c, i) => {
    it(`prefill: ${c.heads}/${c.kvHeads} heads of ${c.headSize}, T ${c.T}, P ${c.P}${c.limits ? `, ${c.limits.maxWorkgroupBytes} bytes, ${c.limits.maxInvocations} invocations, tiles up to ${c.limits.maxTile}` : ''}`, async () => {
      const { error } = await runCase(c, 100 + 10 * i);
      expect(error).toBeLessThan(TOL);
    });
  });
  // the same cases a query row an invocation, where the head is a whole number of vec4s up to 64 wide
  prefill
    .filter((c) => c.headSize % 4 === 0 && c.headSize <= 64)
    .forEach((c, i) => {
      const rows = { ...(c.limits ?? defaultAttentionOptions), prefillRows: true };
      it(`prefill a row an invocation: ${c.heads}/${c.kvHeads} heads of ${c.headSize}, T ${c.T}, P ${c.P}, ${rows.maxWorkgroupBytes} bytes, tiles up to ${rows.maxTile}`, async () => {
        expect(attentionKernels(specOf(c), rows).kernels[0]!.source.wgsl).toContain('one invocation a query row');
        const { error } = await runCase({ ...c, limits: rows }, 400 + 10 * i);
        expect(error).toBeLessThan(TOL);
      });
    });

  // busy: every split ran; some splits ran empty; one split held every key, wrote the output itself and left the split sums unwritten.
  // together: the query heads a workgroup takes (those of one kv head, up to 4 dividing them and fitting the workgroup memory)
  const decode: (Case & { busy?: 'all' | 'some' | 'one'; together?: number })[] = [
    { heads: 4, kvHeads: 2, headSize: 6, P: 0, contextLength: 200 },
    { heads: 4, kvHeads: 2, headSize: 6, P: 3, contextLength: 200 },
    { heads: 8, kvHeads: 4, headSize: 8, P: 511, contextLength: 512, busy: 'all' },
    { heads: 8, kvHeads: 4, headSize: 8, P: 40, contextLength: 512, busy: 'one' },
    { heads: 8, kvHeads: 4, headSize: 8, P: 150, contextLength: 512, busy: 'one' },
    { heads: 2, kvHeads: 1, headSize: 8, P: 9000, contextLength: 10000, busy: 'some' },
    { heads: 4, kvHeads: 2, headSize: 64, P: 1000, contextLength: 1024, busy: 'all' },
    // 128 invocations (compatibility mode's minimum): tiles of 128 keys
    { heads: 4, kvHeads: 2, headSize: 64, P: 1010, contextLength: 1024, busy: 'all', limits: { maxInvocations: 128, maxWorkgroupBytes: 16384, maxTile: 8 } },
    { heads: 4, kvHeads: 1, headSize: 96, P: 257, contextLength: 300 },
    { heads: 2, kvHeads: 2, headSize: 256, P: 129, contextLength: 130 },
    // subgroup reductions (the test device's subgroups are 4 wide), over 256 and 128 invocations
    { heads: 4, kvHeads: 2, headSize: 6, P: 3, contextLength: 200, limits: { ...defaultAttentionOptions, subgroups: true } },
    { heads: 8, kvHeads: 4, headSize: 8, P: 511, contextLength: 512, busy: 'all', limits: { ...defaultAttentionOptions, subgroups: true } },
    { heads: 2, kvHeads: 1, headSize: 8, P: 9000, contextLength: 10000, busy: 'some', limits: { ...defaultAttentionOptions, subgroups: true } },
    {
      heads: 4,
      kvHeads: 2,
      headSize: 64,
      P: 1010,
      contextLength: 1024,
      busy: 'all',
      limits: { maxInvocations: 128, maxWorkgroupBytes: 16384, maxTile: 8, subgroups: true },
    },
    { heads: 4, kvHeads: 1, headSize: 96, P: 257, contextLength: 300, limits: { ...defaultAttentionOptions, subgroups: true } },
    // query heads together (decodeGroupFrom 0: at any keys): 3 and 4 of a kv head (Llama 3's 32 of 8), two groups of 4
    // of a kv head's 8, one of 7 (Qwen2.5 7B's 28 of 4), and 2 where 8 KiB holds no more
    { heads: 12, kvHeads: 4, headSize: 64, P: 300, contextLength: 600, limits: { ...codegenLimits, decodeGroupFrom: 0 }, together: 3 },
    { heads: 8, kvHeads: 2, headSize: 64, P: 1000, contextLength: 1024, busy: 'all', limits: { ...codegenLimits, decodeGroupFrom: 0 }, together: 4 },
    {
      heads: 8,
      kvHeads: 2,
      headSize: 64,
      P: 40,
      contextLength: 1024,
      busy: 'one',
      limits: { ...codegenLimits, subgroups: true, decodeGroupFrom: 0 },
      together: 4,
    },
    {
      heads: 16,
      kvHeads: 2,
      headSize: 12,
      P: 600,
      contextLength: 2000,
      busy: 'some',
      limits: { ...codegenLimits, subgroups: true, decodeGroupFrom: 0 },
      together: 4,
    },
    { heads: 14, kvHeads: 2, headSize: 16, P: 260, contextLength: 600, limits: { ...codegenLimits, decodeGroupFrom: 0 }, together: 1 },
    { heads: 8, kvHeads: 2, headSize: 64, P: 300, contextLength: 600, limits: { ...defaultAttentionOptions, decodeGroupFrom: 0 }, together: 2 },
    // both kernels, one of which runs: a workgroup a head up to 300 keys, 4 heads together beyond
    { heads: 8, kvHeads: 2, headSize: 64, P: 299, contextLength: 600, limits: { ...codegenLimits, decodeGroupFrom: 300 }, together: 1 },
    { heads: 8, kvHeads: 2, headSize: 64, P: 300, contextLength: 600, limits: { ...codegenLimits, decodeGroupFrom: 300 }, together: 4 },
    // the default: a workgroup a head where the cache holds no more than DECODE_GROUP_FROM keys
    { heads: 8, kvHeads: 2, headSize: 64, P: 1000, contextLength: DECODE_GROUP_FROM, limits: codegenLimits, together: 1 },
    { heads: 8, kvHeads: 2, headSize: 64, P: DECODE_GROUP_FROM, contextLength: DECODE_GROUP_FROM + 100, limits: codegenLimits, together: 4 },
  ];
  decode.forEach((c, i) => {
    it(`decode: ${c.heads}/${c.kvHeads} heads of ${c.headSize}, P ${c.P} of ${c.contextLength}${c.limits ? `, ${c.limits.maxInvocations} invocations` : ''}${c.limits?.subgroups ? ', subgroups' : ''}`, async () => {
      if (c.limits?.subgroups) expect(gpu.subgroups).toBe(true);
      const env = { P: c.P, T: 1 };
      const count = (w: WorkgroupCount): number => workgroupCount(w, env);
      const partials = attentionKernels(specOf(c), c.limits).kernels.filter((k) => k.suffix?.startsWith('partial'));
      // of the partial kernels (one, or one a workgroup a head and one of heads together), one has workgroups at these keys
      const running = partials.filter((k) => k.source.workgroups.every((w) => count(w) > 0));
      expect(running).toHaveLength(1);
      const partial = running[0]!;
      for (const k of partials) expect(/subgroupMax\(/.test(k.source.wgsl) && /subgroupAdd\(/.test(k.source.wgsl)).toBe(c.limits?.subgroups === true);
      // a workgroup per split and group of query heads
      if (c.together !== undefined) expect(count(partial.source.workgroups[1]!)).toBe(c.heads / c.together);
      const { error, splitSums } = await runCase(c, 200 + 10 * i);
      expect(error).toBeLessThan(TOL);
      const empty = splitSums.filter((l) => l === 0).length;
      if (c.busy === 'all') expect(empty).toBe(0);
      if (c.busy === 'some') expect(empty).toBeGreaterThan(0);
      if (c.busy === 'some') expect(empty).toBeLessThan(splitSums.length);
      if (c.busy === 'one') expect(empty).toBe(splitSums.length);
    });
  });

  it('keeps workgroup memory within 8 KiB and workgroup counts within 65535 per dimension', () => {
    for (const headSize of [1, 6, 16, 48, 64, 80, 96, 128, 200, 256]) {
      for (const T of [undefined, 1]) {
        const spec = specOf({ heads: 256, kvHeads: 8, headSize, contextLength: 1 << 20, P: 0, T });
        for (const { source } of attentionKernels(spec).kernels) {
          expect(workgroupBytes(source.wgsl)).toBeLessThanOrEqual(8192 + 256);
          for (const w of source.workgroups) expect(Math.ceil(A.evaluate(w.of, { T: 65535, P: 0 }) / w.per)).toBeLessThanOrEqual(65535);
        }
      }
    }
  });

  it('keeps prefill tiles within the workgroup memory and invocations the limits give', () => {
    for (const headSize of [1, 3, 6, 16, 48, 64, 66, 80, 96, 128, 200, 256]) {
      for (const maxTile of [8, 16, 32]) {
        for (const maxInvocations of [128, 256, 1024]) {
          for (const maxWorkgroupBytes of [8192, 16384, 32768]) {
            const limits = { maxInvocations, maxWorkgroupBytes, maxTile };
            const spec = { heads: 32, kvHeads: 8, headSize };
            const { wgsl } = attentionKernels(specOf({ ...spec, contextLength: 4096, P: 0, T: 1 }), limits).kernels[0]!.source;
            const size = Number(/@workgroup_size\((\d+)\)/.exec(wgsl)![1]);
            expect(size).toBeLessThanOrEqual(maxInvocations);
            // asked for, heads of up to 64 in whole vec4s take a row an invocation, K and V tiles of up to maxTile keys
            const rowLayout = prefillRowLayout(spec, limits);
            expect(rowLayout !== undefined).toBe(headSize % 4 === 0 && headSize <= 64);
            if (rowLayout) {
              const rowWgsl = attentionKernels(specOf({ ...spec, contextLength: 4096, P: 0, T: 1 }), { ...limits, prefillRows: true }).kernels[0]!.source.wgsl;
              expect(workgroupBytes(rowWgsl)).toBe(2 * rowLayout.keys * headSize * 4);
              expect(workgroupBytes(rowWgsl)).toBeLessThanOrEqual(maxWorkgroupBytes);
              expect(rowLayout.keys).toBeLessThanOrEqual(maxTile);
              expect(Number(/@workgroup_size\((\d+)\)/.exec(rowWgsl)![1])).toBe(rowLayout.threads);
            }
            const layout = prefillLayout(headSize, limits);
            expect(workgroupBytes(wgsl)).toBe(layout.bytes);
            expect(layout.bytes).toBeLessThanOrEqual(maxWorkgroupBytes);
            expect(Math.max(layout.rows, layout.keys)).toBeLessThanOrEqual(Math.max(4, maxTile));
            expect(size).toBe(layout.threads);
          }
        }
      }
    }
    // the 1B's heads in 32 KiB: 32 query rows and 32 keys over 128 invocations; asked for, a row an invocation, 32
    // rows of the 4 heads of a kv head and 32 keys a tile
    expect(prefillLayout(64, codegenLimits)).toMatchObject({ rows: 32, keys: 32, threads: 128, bytes: 27776 });
    expect(prefillRowLayout({ heads: 32, kvHeads: 8, headSize: 64 }, codegenLimits)).toEqual({ rows: 32, heads: 4, keys: 32, threads: 128 });
  });

  it("a query row an invocation gives the register-blocked kernel's bits in a model: a 300-token prompt on the stories fixture, then decode", async () => {
    const path = new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url).pathname;
    const promptIds = Array.from({ length: 300 }, (_, i) => (i === 0 ? 1 : 3 + ((i * 7919) % 509)));
    const logits = async (attentionRows: boolean): Promise<Float32Array[]> => {
      const model = await loadModel(path, { kernels: { attentionRows } });
      try {
        const out: Float32Array[] = [];
        for await (const step of model.generate({ promptIds, steps: 320, temperature: 0, logits: true })) if (step.logits) out.push(step.logits);
        return out;
      } finally {
        model.release();
      }
    };
    const blocks = await logits(false);
    expect(blocks.length).toBeGreaterThan(20);
    expect(await logits(true)).toEqual(blocks);
  });

  it('rejects heads that do not divide into kv heads', () => {
    expect(() => attentionKernels(specOf({ heads: 6, kvHeads: 4, headSize: 8, contextLength: 8, P: 0 }))).toThrow(/kv heads/);
  });
});
