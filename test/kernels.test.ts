// Every kernel against its CPU reference on seeded random inputs, at sizes that are not multiples of the
// workgroup size (64), with a nonzero cache position P where the op reads it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileGraph } from '../src/codegen/compile.js';
import { GraphBuilder } from '../src/ir/builder.js';
import { verifyGraph } from '../src/ir/verify.js';
import { FIRST_PART, PlanExecutor, ResidentBuffers, runParts } from '../src/runtime/executor.js';
import { valuesSource } from '../src/weights/source.js';
import { openGpu, type Gpu } from '../src/runtime/gpu.js';
import * as ref from './reference.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openGpu();
});
afterAll(() => gpu?.destroy());

type Data = Float32Array | Int32Array;

/** Builds a one-op graph, runs it on the GPU and returns the output buffer's contents. */
async function runOp(
  build: (g: GraphBuilder) => string,
  env: { T: number; P: number; L?: number },
  inputs: Record<string, Data>,
  resident: Record<string, Float32Array>,
): Promise<Float32Array> {
  const g = new GraphBuilder('op', ['T', 'P', 'L']);
  g.output(build(g));
  const graph = g.build();
  verifyGraph(graph);
  const plan = compileGraph(graph);
  const buffers = new ResidentBuffers(gpu, new Map(Object.entries(resident).map(([k, v]) => [k, valuesSource(v)])));
  const exec = await PlanExecutor.create(gpu, plan, buffers);
  try {
    exec.run(env, inputs);
    const out = plan.buffers.find((b) => b.name === plan.outputs[0])!;
    const n = out.shape.reduce((p, d) => p * (d.c + d.terms.reduce((s, [k, c]) => s + c * env[k as 'T' | 'P' | 'L']!, 0)), 1);
    return await exec.read(plan.outputs[0]!, 0, n);
  } finally {
    exec.destroy();
    buffers.destroy();
  }
}

const T = 5;
const P = 3;
const env = { T, P, L: 0 };
const TOL = 2e-5;

describe('kernels against CPU references', () => {
  it('embed', async () => {
    const table = ref.randomArray(13 * 67, 1);
    const ids = Int32Array.from([4, 0, 12, 7, 4]);
    const out = await runOp((g) => g.node('embed', 'y', [g.weight('table', [13, 67]), g.input('ids', 'i32', ['T'])], {}), env, { ids }, { table });
    expect(ref.maxAbsDiff(out, ref.embed(table, ids, 67))).toBe(0);
  });

  it('take_rows: the rows ids pick, zeros for an id outside x', async () => {
    const x = ref.randomArray(T * 67, 2);
    const ids = Int32Array.from([T - 1, 0, 2, T, -1, T - 1]);
    const out = await runOp(
      (g) => g.node('take_rows', 'y', [g.input('x', 'f32', ['T', 67]), g.input('ids', 'i32', ['L'])], {}),
      { ...env, L: ids.length },
      { x, ids },
      {},
    );
    const expected = new Float32Array(ids.length * 67);
    ids.forEach((id, r) => {
      if (id >= 0 && id < T) expected.set(x.subarray(id * 67, (id + 1) * 67), r * 67);
    });
    expect(ref.maxAbsDiff(out, expected)).toBe(0);
  });

  it('argmax: the first largest column of each row', async () => {
    // rows of whole vec4s read several at a time: fewer than the lanes, one stride of loads and a bit, several strides
    for (const cols of [7, 300, 1000, 4100, 9000, 9002]) {
      const x = ref.randomArray(T * cols, cols, 4);
      // ties: row 1's maximum twice, row 3 constant
      const peak = Math.max(...x.subarray(cols, 2 * cols));
      x[cols + cols - 1] = peak;
      x[cols + Math.floor(cols / 2)] = peak;
      x.fill(0.5, 3 * cols, 4 * cols);
      const out = await runOp((g) => g.node('argmax', 'y', [g.input('x', 'f32', ['T', cols])], {}), env, { x }, {});
      const expected = Array.from({ length: T }, (_, r) => {
        let best = 0;
        for (let c = 1; c < cols; c++) if (x[r * cols + c]! > x[r * cols + best]!) best = c;
        return best;
      });
      expect(Array.from(new Int32Array(out.buffer, out.byteOffset, T))).toEqual(expected);
    }
  });

  it('rmsnorm', async () => {
    const x = ref.randomArray(T * 67, 2, 3);
    const w = ref.randomArray(67, 3);
    const out = await runOp((g) => g.node('rmsnorm', 'y', [g.input('x', 'f32', ['T', 67]), g.weight('w', [67])], { eps: 1e-5 }), env, { x }, { w });
    expect(ref.maxAbsDiff(out, ref.rmsnorm(x, w, 1e-5))).toBeLessThan(TOL);
  });

  it('head_rmsnorm: each head of a row normalized alone', async () => {
    // 5 heads of 26: a head is shorter than the 64 lanes of its workgroup, and the row is no multiple of them
    const [hs, d] = [26, 130];
    const x = ref.randomArray(T * d, 26, 3);
    const w = ref.randomArray(hs, 27);
    const out = await runOp(
      (g) => g.node('head_rmsnorm', 'y', [g.input('x', 'f32', ['T', d]), g.weight('w', [hs])], { eps: 1e-6, headSize: hs }),
      env,
      { x },
      { w },
    );
    expect(ref.maxAbsDiff(out, ref.rmsnorm(x, w, 1e-6))).toBeLessThan(TOL);
    // not the norm over whole rows
    expect(
      ref.maxAbsDiff(
        out,
        ref.rmsnorm(
          x,
          Float32Array.from({ length: d }, (_, j) => w[j % hs]!),
          1e-6,
        ),
      ),
    ).toBeGreaterThan(1e-3);
  });

  for (const [m, k, n] of [
    [T, 37, 45],
    [1, 70, 33],
    [T, 16, 16],
  ] as const) {
    it(`matmul ${m}x${k} · ${n}x${k}ᵀ`, async () => {
      const x = ref.randomArray(m * k, 4);
      const w = ref.randomArray(n * k, 5);
      const out = await runOp((g) => g.node('matmul', 'y', [g.input('x', 'f32', ['T', k]), g.weight('w', [n, k])], {}), { T: m, P, L: 0 }, { x }, { w });
      expect(ref.maxAbsDiff(out, ref.matmul(x, w, k))).toBeLessThan(TOL);
    });
  }

  it('rope', async () => {
    const [hs, d, s] = [6, 18, 11];
    const x = ref.randomArray(T * d, 6);
    const cos = ref.randomArray(s * (hs / 2), 7);
    const sin = ref.randomArray(s * (hs / 2), 8);
    const out = await runOp(
      (g) => g.node('rope', 'y', [g.input('x', 'f32', ['T', d]), g.weight('cos', [s, hs / 2]), g.weight('sin', [s, hs / 2])], { headSize: hs }),
      env,
      { x },
      { cos, sin },
    );
    expect(ref.maxAbsDiff(out, ref.rope(x, cos, sin, d, hs, P))).toBeLessThan(TOL);
  });

  it('kv_write keeps the rows it does not write', async () => {
    const [s, d] = [11, 67];
    const cache = ref.randomArray(s * d, 9);
    const x = ref.randomArray(T * d, 10);
    const out = await runOp((g) => g.node('kv_write', 'y', [g.state('cache', [s, d]), g.input('x', 'f32', ['T', d])], {}), env, { x }, { cache });
    expect(ref.maxAbsDiff(out, ref.kvWrite(cache, x, d, P))).toBe(0);
  });

  const heads = { heads: 4, kvHeads: 2, headSize: 6 };
  const keys = P + T;

  it('attn_scores (grouped-query, causal)', async () => {
    const q = ref.randomArray(T * 24, 11);
    const k = ref.randomArray(keys * 12, 12);
    const out = await runOp((g) => g.node('attn_scores', 'y', [g.input('q', 'f32', ['T', 24]), g.input('k', 'f32', ['P+T', 12])], heads), env, { q, k }, {});
    expect(ref.maxAbsDiff(out, ref.attnScores(q, k, heads, T, keys))).toBeLessThan(TOL);
  });

  it('softmax (causal)', async () => {
    const x = ref.randomArray(4 * T * keys, 13, 4);
    const out = await runOp((g) => g.node('softmax', 'y', [g.input('x', 'f32', [4, 'T', 'P+T'])], { causal: 1 }), env, { x }, {});
    expect(ref.maxAbsDiff(out, ref.softmax(x, T, keys, true))).toBeLessThan(TOL);
  });

  it('softmax (full rows longer than the workgroup)', async () => {
    const x = ref.randomArray(T * 131, 14, 4);
    const out = await runOp((g) => g.node('softmax', 'y', [g.input('x', 'f32', ['T', 131])], { causal: 0 }), env, { x }, {});
    expect(ref.maxAbsDiff(out, ref.softmax(x, T, 131, false))).toBeLessThan(TOL);
  });

  it('attn_mix (grouped-query, causal)', async () => {
    const p = ref.softmax(ref.randomArray(4 * T * keys, 15, 3), T, keys, true);
    const v = ref.randomArray(keys * 12, 16);
    const out = await runOp((g) => g.node('attn_mix', 'y', [g.input('p', 'f32', [4, 'T', 'P+T']), g.input('v', 'f32', ['P+T', 12])], heads), env, { p, v }, {});
    expect(ref.maxAbsDiff(out, ref.attnMix(p, v, heads, T, keys))).toBeLessThan(TOL);
  });

  it('layernorm', async () => {
    const x = ref.randomArray(T * 67, 21, 3);
    const w = ref.randomArray(67, 22);
    const b = ref.randomArray(67, 23);
    const out = await runOp(
      (g) => g.node('layernorm', 'y', [g.input('x', 'f32', ['T', 67]), g.weight('w', [67]), g.weight('b', [67])], { eps: 1e-5 }),
      env,
      { x },
      { w, b },
    );
    expect(ref.maxAbsDiff(out, ref.layernorm(x, w, b, 1e-5))).toBeLessThan(TOL);
  });

  it('gelu and add_bias', async () => {
    const a = ref.randomArray(T * 67, 24, 5);
    const b = ref.randomArray(67, 25);
    const act = await runOp((g) => g.node('gelu', 'y', [g.input('a', 'f32', ['T', 67])], {}), env, { a }, {});
    const biased = await runOp((g) => g.node('add_bias', 'y', [g.input('a', 'f32', ['T', 67]), g.weight('b', [67])], {}), env, { a }, { b });
    expect(ref.maxAbsDiff(act, ref.gelu(a))).toBeLessThan(TOL);
    expect(ref.maxAbsDiff(biased, ref.addBias(a, b))).toBe(0);
  });

  it('add, mul, silu', async () => {
    const a = ref.randomArray(T * 67, 17, 5);
    const b = ref.randomArray(T * 67, 18, 5);
    const shape = ['T', 67];
    const sum = await runOp((g) => g.node('add', 'y', [g.input('a', 'f32', shape), g.input('b', 'f32', shape)], {}), env, { a, b }, {});
    const prod = await runOp((g) => g.node('mul', 'y', [g.input('a', 'f32', shape), g.input('b', 'f32', shape)], {}), env, { a, b }, {});
    const act = await runOp((g) => g.node('silu', 'y', [g.input('a', 'f32', shape)], {}), env, { a }, {});
    expect(ref.maxAbsDiff(sum, ref.add(a, b))).toBeLessThan(TOL);
    expect(ref.maxAbsDiff(prod, ref.mul(a, b))).toBeLessThan(TOL);
    expect(ref.maxAbsDiff(act, ref.silu(a))).toBeLessThan(TOL);
  });
});

describe('a run submitted in parts', () => {
  it('covers every kernel once, in order: FIRST_PART, then each part twice the one before', () => {
    expect(runParts(0)).toEqual([]);
    expect(runParts(5)).toEqual([[0, 5]]);
    expect(runParts(230)).toEqual([
      [0, 8],
      [8, 24],
      [24, 56],
      [56, 120],
      [120, 230],
    ]);
    for (const n of [1, FIRST_PART, FIRST_PART + 1, 99, 1000]) {
      const parts = runParts(n);
      expect(parts[0]![0]).toBe(0);
      expect(parts.at(-1)![1]).toBe(n);
      parts.forEach(([from, to], i) => {
        expect(to).toBeGreaterThan(from);
        if (i > 0) expect(from).toBe(parts[i - 1]![1]);
      });
    }
  });
});
