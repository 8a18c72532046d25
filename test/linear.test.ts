// The fused linear template in each of its ways (tiled, gemv, column), with each epilogue, with weights in
// each format of the weight-format table, against the CPU's rmsnorm → matmul → epilogue (over the values the
// format's reference dequantizer gives) on seeded random data, at sizes that are not multiples of the tiles.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as A from '../src/affine.js';
import {
  defaultLinearOptions,
  linearKernels,
  linearVariant,
  type LinearEpilogue,
  type LinearOptions,
  type LinearKernels,
  type LinearSpec,
  type LinearVariant,
} from '../src/codegen/linear/index.js';
import { halfToFloat } from '../models/ieee754.js';
import { PlanExecutor, ResidentBuffers } from '../src/runtime/executor.js';
import { int8MatrixUnitProbe, openGpu, type Gpu } from '../src/runtime/gpu.js';
import { int8MatrixTileKernel, int8MatrixTiledKernel } from '../src/codegen/linear/int8-matrix.js';
import { splitKernels } from '../src/codegen/linear/split.js';
import { int8Parts } from '../src/codegen/linear/int8-staging.js';
import { int8MatrixDevice } from '../src/codegen/linear/spec.js';
import { create } from 'webgpu';
import { floatToHalf } from '../src/runtime/halves.js';
import type { Plan, PlanBuffer } from '../src/runtime/plan.js';
import * as ref from './reference.js';
import { deviceLayout, weightFormats, type FormatName } from '../src/weights/formats.js';
import { bytesSource, valuesSource } from '../src/weights/source.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openGpu();
});
afterAll(() => gpu?.destroy());

/** the epilogue's kind; qk: qkv over stacked q and k alone (no v part, no v cache) */
type Kind = LinearEpilogue['kind'] | 'qk';

interface Case {
  readonly variant: LinearVariant;
  readonly kind: Kind;
  readonly k: number;
  /** output units: columns (store, residual), gated columns (glu), or q / kv sizes (qkv) */
  readonly n: number;
  readonly rows: number;
  readonly norm: boolean;
  readonly weights: FormatName;
  /** K splits, subgroups, invocations per workgroup (below 256: 32×128 tiles), a GEMV's least workgroups (its pairs of dots a group) */
  readonly tune?: Partial<Pick<LinearOptions, 'splitK' | 'subgroups' | 'maxInvocations' | 'int8Matrix' | 'maxWorkgroupBytes' | 'gemvWorkgroups'>>;
}

const QKV = { qSize: 48, kvSize: 16, headSize: 8, P: 5, context: 160 };

function stackedRows(c: Case): number {
  return c.kind === 'glu' ? 2 * c.n : c.kind === 'qkv' ? QKV.qSize + 2 * QKV.kvSize : c.kind === 'qk' ? QKV.qSize + QKV.kvSize : c.n;
}

function specOf(c: Case): LinearSpec {
  const epilogue: LinearEpilogue =
    c.kind === 'store'
      ? { kind: 'store', out: 'out' }
      : c.kind === 'residual'
        ? { kind: 'residual', residual: 'res', out: 'out' }
        : c.kind === 'glu'
          ? { kind: 'glu', out: 'out' }
          : c.kind === 'append'
            ? { kind: 'append', cache: 'ac' }
            : {
                kind: 'qkv',
                q: 'out',
                kCache: 'kc',
                ...(c.kind === 'qkv' ? { vCache: 'vc' } : {}),
                qSize: QKV.qSize,
                kvSize: QKV.kvSize,
                cos: 'cos',
                sin: 'sin',
                headSize: QKV.headSize,
              };
  return {
    x: 'x',
    rows: c.variant === 'tiled' || c.variant === 'tiled-int8' ? A.sym('T') : A.constant(c.rows),
    k: c.k,
    n: stackedRows(c),
    w: 'w',
    ...(c.norm ? { norm: { weight: 'nw', eps: 1e-5 } } : {}),
    epilogue,
  };
}

const int8Variants: readonly LinearVariant[] = ['tiled-int8', 'split-int8', 'tiled-int8-matrix', 'split-int8-matrix', 'gemv-int8'];

function optionsOf(c: Case): LinearOptions {
  return {
    ...defaultLinearOptions,
    weights: c.weights,
    ...(int8Variants.includes(c.variant) ? { matmul: 'int8' as const } : {}),
    splitKFrom: c.variant === 'gemv' || c.variant === 'gemv-int8' ? 0 : 1 << 30,
    ...c.tune,
  };
}

/** out of the CPU reference: [rows, units] (store, residual, glu) or q [rows, qSize] and the two caches (qkv) */
function reference(c: Case, data: Record<string, Float32Array>): Record<string, Float32Array> {
  // data.w holds the values the stored weights stand for
  const w = data.w!;
  const x = c.norm ? ref.rmsnorm(data.x!, data.nw!, 1e-5) : data.x!;
  const y = int8Variants.includes(c.variant) ? ref.int8Matmul(x, w, c.k) : ref.matmul(x, w, c.k);
  const n = stackedRows(c);
  if (c.kind === 'store') return { out: y };
  if (c.kind === 'residual') return { out: y.map((v, i) => Math.fround(data.res![i]! + v)) };
  if (c.kind === 'append') return { ac: ref.kvWrite(data.ac!, y, n, QKV.P) };
  if (c.kind === 'glu') {
    const out = new Float32Array(c.rows * c.n);
    for (let r = 0; r < c.rows; r++)
      for (let j = 0; j < c.n; j++) {
        const g = y[r * n + j]!;
        out[r * c.n + j] = Math.fround(Math.fround(g / Math.fround(1 + Math.fround(Math.exp(-g)))) * y[r * n + c.n + j]!);
      }
    return { out };
  }
  const { qSize, kvSize, headSize, P } = QKV;
  const part = (start: number, size: number): Float32Array => {
    const o = new Float32Array(c.rows * size);
    for (let r = 0; r < c.rows; r++) o.set(y.subarray(r * n + start, r * n + start + size), r * size);
    return o;
  };
  const q = ref.rope(part(0, qSize), data.cos!, data.sin!, qSize, headSize, P);
  const kc = ref.kvWrite(data.kc!, ref.rope(part(qSize, kvSize), data.cos!, data.sin!, kvSize, headSize, P), kvSize, P);
  if (c.kind === 'qk') return { out: q, kc };
  const vc = ref.kvWrite(data.vc!, part(qSize + kvSize, kvSize), kvSize, P);
  return { out: q, kc, vc };
}

const matrixVariants: readonly LinearVariant[] = ['tiled-int8-matrix', 'split-int8-matrix'];

/** The subgroup-matrix int8 tile with its products written out (SwiftShader has no subgroup matrices): all else is that tile's. */
function writtenOutMatrixKernels(s: LinearSpec, o: LinearOptions): LinearKernels {
  const variant = linearVariant(s, o);
  if (variant === 'tiled-int8-matrix')
    return { variant, ...int8Parts(s, 'linear', (q) => ({ kernels: [{ source: int8MatrixTiledKernel(q, o, 'written-out') }], scratch: [] })) };
  return {
    variant,
    ...int8Parts(s, 'linear', (q) =>
      splitKernels(q, o, 'linear', (spec, options, out, splits) => int8MatrixTileKernel(spec, options, out, splits, 'written-out')),
    ),
  };
}

async function runCase(c: Case, seed: number): Promise<{ errors: Record<string, number>; scale: number }> {
  const spec = specOf(c);
  const o = optionsOf(c);
  expect(linearVariant(spec, o)).toBe(c.variant);
  const linear = matrixVariants.includes(c.variant) ? writtenOutMatrixKernels(spec, o) : linearKernels(spec, o);
  expect(linear.variant).toBe(c.variant);
  for (const k of linear.kernels) expect(k.source.wgsl.includes('subgroupAdd')).toBe(o.subgroups);
  const n = stackedRows(c);
  const outCols = c.kind === 'glu' ? c.n : c.kind === 'qkv' || c.kind === 'qk' ? QKV.qSize : c.n;
  const data: Record<string, Float32Array> = {
    x: ref.randomArray(c.rows * c.k, seed, 2),
    w: ref.randomArray(n * c.k, seed + 1, 1 / Math.sqrt(c.k)),
    nw: ref.randomArray(c.k, seed + 2, 1),
    res: ref.randomArray(c.rows * c.n, seed + 3, 1),
    cos: ref.randomArray(QKV.context * (QKV.headSize / 2), seed + 4, 1),
    sin: ref.randomArray(QKV.context * (QKV.headSize / 2), seed + 5, 1),
    kc: ref.randomArray(QKV.context * QKV.kvSize, seed + 6, 1),
    vc: ref.randomArray(QKV.context * QKV.kvSize, seed + 7, 1),
    ac: ref.randomArray(QKV.context * n, seed + 8, 1),
  };
  // int8 variants quantize x after the norm, whose sum the kernel adds in another order than the reference: x is kept
  // away from rounding ties, where that last-ulp difference would flip a level (a whole step of the block's scale)
  if (int8Variants.includes(c.variant)) data.x = ref.awayFromInt8Ties(data.x!, c.norm ? (x) => ref.rmsnorm(x, data.nw!, 1e-5) : (x) => x);
  // the weights encoded in the case's format (ggml's reference quantizers for blocks); the reference multiplies by the values they stand for
  const format = weightFormats[c.weights];
  const stored = format.encode(data.w!);
  data.w = format.dequantize(stored, data.w!.length);
  const shape = (...d: number[]): A.Affine[] => d.map((v) => A.constant(v));
  const used = new Set(linear.kernels.flatMap((k) => k.source.bindings.map((b) => b.buffer)));
  const buffers: PlanBuffer[] = [
    { name: 'x', role: 'input' as const, dtype: 'f32' as const, shape: shape(c.rows, c.k) },
    { name: 'w', role: 'weight' as const, dtype: c.weights, shape: shape(n, c.k) },
    { name: 'nw', role: 'weight' as const, dtype: 'f32' as const, shape: shape(c.k) },
    { name: 'res', role: 'weight' as const, dtype: 'f32' as const, shape: shape(c.rows, c.n) },
    { name: 'cos', role: 'weight' as const, dtype: 'f32' as const, shape: shape(QKV.context, QKV.headSize / 2) },
    { name: 'sin', role: 'weight' as const, dtype: 'f32' as const, shape: shape(QKV.context, QKV.headSize / 2) },
    { name: 'kc', role: 'state' as const, dtype: 'f32' as const, shape: shape(QKV.context, QKV.kvSize) },
    { name: 'vc', role: 'state' as const, dtype: 'f32' as const, shape: shape(QKV.context, QKV.kvSize) },
    { name: 'ac', role: 'state' as const, dtype: 'f32' as const, shape: shape(QKV.context, n) },
    { name: 'out', role: 'activation' as const, dtype: 'f32' as const, shape: shape(c.rows, outCols) },
    ...linear.scratch.map((sc) => ({ name: sc.name, role: 'activation' as const, dtype: 'f32' as const, shape: sc.shape })),
  ].filter((b) => used.has(b.name));
  const plan: Plan = {
    graph: 'linear',
    symbols: ['T', 'P'],
    buffers,
    kernels: linear.kernels.map(({ suffix, source }) => ({
      name: suffix ? `linear.${suffix}` : 'linear',
      scheduleKernel: 'linear',
      op: 'linear',
      wgsl: source.wgsl,
      bindings: source.bindings.map((b, i) => ({ binding: i + 1, buffer: b.buffer, access: b.access })),
      workgroups: source.workgroups,
    })),
    inputs: ['x'],
    outputs: ['out'],
  };
  const sources = new Map(
    Object.entries(data)
      .filter(([k]) => k !== 'x' && k !== 'w')
      .map(([k, v]) => [k, valuesSource(v)]),
  );
  sources.set('w', bytesSource(stored, [n, c.k], format));
  const resident = new ResidentBuffers(gpu, sources);
  const exec = await PlanExecutor.create(gpu, plan, resident);
  try {
    exec.run({ T: c.rows, P: QKV.P }, { x: data.x! });
    const want = reference(c, data);
    const errors: Record<string, number> = {};
    for (const [name, values] of Object.entries(want)) errors[name] = ref.maxAbsDiff(await exec.read(name, 0, values.length), values);
    const scale = Math.max(...Object.values(want).map((v) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0)));
    return { errors, scale };
  } finally {
    exec.destroy();
    resident.destroy();
  }
}

describe('fused linear kernels against the CPU reference', () => {
  const kinds: Kind[] = ['store', 'residual', 'glu', 'qkv'];
  const cases: Case[] = [];
  for (const kind of kinds) {
    for (const weights of ['f32', 'f16', 'bf16'] as const) {
      cases.push({ variant: 'tiled', kind, k: 100, n: 150, rows: 37, norm: kind !== 'residual', weights });
      cases.push({ variant: 'gemv', kind, k: 260, n: 75, rows: 1, norm: kind !== 'residual', weights });
      cases.push({ variant: 'column', kind, k: 102, n: 70, rows: 2, norm: kind !== 'residual', weights });
    }
    cases.push({ variant: 'tiled', kind, k: 36, n: 131, rows: 130, norm: true, weights: 'f32', tune: { maxInvocations: 128 } });
    cases.push({ variant: 'gemv', kind, k: 1028, n: 9, rows: 3, norm: true, weights: 'f32' });
    // several blocks of in-flight weights per lane: K a whole number of blocks, and not
    cases.push({ variant: 'gemv', kind, k: 4096, n: 6, rows: 1, norm: kind !== 'residual', weights: 'f32' });
    cases.push({ variant: 'gemv', kind, k: 4100, n: 6, rows: 2, norm: true, weights: 'f16' });
    cases.push({ variant: 'tiled', kind, k: 164, n: 70, rows: 70, norm: kind !== 'residual', weights: 'f16' });
    cases.push({ variant: 'tiled', kind, k: 44, n: 66, rows: 5, norm: true, weights: 'f32', tune: { maxInvocations: 128 } });
    cases.push({ variant: 'tiled', kind, k: 52, n: 90, rows: 150, norm: kind !== 'store', weights: 'f16' });
    // deep K over few column tiles: split into K ranges (2 and 3, neither a whole number of slices) and reduced
    cases.push({ variant: 'split', kind, k: 2052, n: 70, rows: 37, norm: kind !== 'residual', weights: 'f32' });
    cases.push({ variant: 'split', kind, k: 3300, n: 40, rows: 70, norm: true, weights: 'f16', tune: { splitK: 3, maxInvocations: 128 } });
    // k-quant super-blocks of 256, K a whole number of them but not of tiles
    for (const weights of ['q4_k', 'q5_k', 'q6_k'] as const) {
      cases.push({ variant: 'tiled', kind, k: 768, n: 70, rows: 37, norm: kind !== 'residual', weights });
      cases.push({ variant: 'gemv', kind, k: 768, n: 75, rows: 1, norm: kind !== 'residual', weights });
      cases.push({ variant: 'column', kind, k: 256, n: 70, rows: 2, norm: true, weights });
    }
    cases.push({ variant: 'split', kind, k: 2304, n: 40, rows: 37, norm: true, weights: 'q4_k', tune: { splitK: 3 } });
    // GGUF blocks kept quantized on the device, K a whole number of blocks of 32 but not of tiles
    for (const weights of ['q8_0', 'q4_0'] as const) {
      cases.push({ variant: 'tiled', kind, k: 96, n: 150, rows: 37, norm: kind !== 'residual', weights });
      cases.push({ variant: 'gemv', kind, k: 288, n: 75, rows: 1, norm: kind !== 'residual', weights });
      cases.push({ variant: 'gemv', kind, k: 4128, n: 6, rows: 2, norm: true, weights });
      cases.push({ variant: 'column', kind, k: 96, n: 70, rows: 2, norm: kind !== 'residual', weights });
      cases.push({ variant: 'split', kind, k: 2080, n: 70, rows: 37, norm: true, weights, tune: { splitK: 3 } });
    }
    // int8 tiles over each int8 form (a scale a block, a scale per 16 values, offsets): rows and columns not whole
    // tiles, K split 3 ways into ranges that are not a whole number of blocks
    for (const weights of ['q8_0', 'q4_0'] as const) {
      cases.push({ variant: 'tiled-int8', kind, k: 96, n: 150, rows: 37, norm: kind !== 'residual', weights });
      cases.push({ variant: 'tiled-int8', kind, k: 160, n: 70, rows: 70, norm: true, weights, tune: { maxInvocations: 128 } });
      cases.push({ variant: 'split-int8', kind, k: 2080, n: 70, rows: 37, norm: kind !== 'store', weights, tune: { splitK: 3 } });
    }
    cases.push({ variant: 'split-int8', kind, k: 2112, n: 40, rows: 5, norm: true, weights: 'q8_0' });
    for (const weights of ['q4_k', 'q5_k', 'q6_k'] as const) {
      cases.push({ variant: 'tiled-int8', kind, k: 768, n: 70, rows: 37, norm: kind !== 'residual', weights });
    }
    cases.push({ variant: 'split-int8', kind, k: 2304, n: 40, rows: 37, norm: true, weights: 'q6_k', tune: { splitK: 3 } });
    // the subgroup-matrix tile, its 16×16×32 products written out: every form with a scale a block, tiled and split
    const matrix = { int8Matrix: true, maxWorkgroupBytes: 32768 } as const;
    for (const weights of ['q8_0', 'q4_0'] as const) {
      cases.push({ variant: 'tiled-int8-matrix', kind, k: 96, n: 150, rows: 37, norm: kind !== 'residual', weights, tune: matrix });
      cases.push({ variant: 'split-int8-matrix', kind, k: 2080, n: 70, rows: 70, norm: kind !== 'store', weights, tune: { ...matrix, splitK: 3 } });
    }
    for (const weights of ['q4_k', 'q5_k'] as const) {
      cases.push({ variant: 'tiled-int8-matrix', kind, k: 768, n: 70, rows: 37, norm: kind !== 'residual', weights, tune: matrix });
    }
    // room for one product a subgroup at a time (two above): a barrier pair per product
    cases.push({ variant: 'tiled-int8-matrix', kind, k: 768, n: 150, rows: 70, norm: true, weights: 'q4_k', tune: { ...matrix, maxWorkgroupBytes: 24576 } });
    // the int8 GEMV over each int8 form: fewer half-blocks than lanes, and more than a lane's unrolled loads, not a whole number of them
    for (const weights of ['q8_0', 'q4_0'] as const) {
      cases.push({ variant: 'gemv-int8', kind, k: 288, n: 75, rows: 1, norm: kind !== 'residual', weights });
      cases.push({ variant: 'gemv-int8', kind, k: 4128, n: 6, rows: 2, norm: true, weights });
      cases.push({ variant: 'gemv-int8', kind, k: 4096, n: 9, rows: 1, norm: kind !== 'store', weights, tune: { subgroups: true, maxInvocations: 128 } });
    }
    // more quarter-blocks than the workgroup holds in registers (9 an invocation of 64): read in a loop, after the norm's own pass over x
    cases.push({ variant: 'gemv-int8', kind, k: 4128, n: 5, rows: 2, norm: kind !== 'residual', weights: 'q8_0', tune: { maxInvocations: 64 } });
    for (const weights of ['q4_k', 'q5_k', 'q6_k'] as const) {
      cases.push({ variant: 'gemv-int8', kind, k: 768, n: 75, rows: 1, norm: kind !== 'residual', weights });
      cases.push({ variant: 'gemv-int8', kind, k: 2304, n: 6, rows: 3, norm: true, weights, tune: { subgroups: true } });
    }
    // 4 and 2 pairs of dots a group of 64 lanes (the last workgroup's pairs past the units), with and without subgroups
    for (const [weights, gemvWorkgroups, subgroups] of [
      ['q8_0', 1, false],
      ['q4_k', 4, true],
    ] as const) {
      cases.push({
        variant: 'gemv-int8',
        kind,
        k: weights === 'q4_k' ? 512 : 288,
        n: 75,
        rows: 1,
        norm: kind !== 'residual',
        weights,
        tune: { gemvWorkgroups, subgroups },
      });
      cases.push({ variant: 'gemv-int8', kind, k: 2304, n: 39, rows: 3, norm: true, weights, tune: { gemvWorkgroups, subgroups } });
    }
    for (const [weights, gemvWorkgroups, subgroups] of [
      ['f32', 1, true],
      ['q8_0', 4, false],
    ] as const) {
      cases.push({
        variant: 'gemv',
        kind,
        k: 260,
        n: 75,
        rows: 1,
        norm: kind !== 'residual',
        weights: weights === 'q8_0' ? 'f16' : weights,
        tune: { gemvWorkgroups, subgroups },
      });
      cases.push({ variant: 'gemv', kind, k: 4128, n: 39, rows: 2, norm: true, weights, tune: { gemvWorkgroups, subgroups } });
    }
    // subgroup reductions (the test device's subgroups are 4 wide), with 1, 2 and 4 groups of 64 lanes per workgroup
    for (const [weights, maxInvocations] of [
      ['f32', 256],
      ['f16', 128],
      ['q8_0', 64],
    ] as const) {
      cases.push({
        variant: 'gemv',
        kind,
        k: weights === 'q8_0' ? 288 : 260,
        n: 75,
        rows: 1,
        norm: kind !== 'residual',
        weights,
        tune: { subgroups: true, maxInvocations },
      });
      cases.push({ variant: 'gemv', kind, k: weights === 'q8_0' ? 4128 : 4100, n: 7, rows: 3, norm: true, weights, tune: { subgroups: true, maxInvocations } });
    }
  }
  // q and k stacked without v (a Q4_K_M layer, whose Q6_K wv stacks apart) and that v appended to its cache: each
  // qkv case without its v part, each store case as an append (the subgroup-matrix tiles' emulation left out)
  for (const c of cases.filter((c) => !matrixVariants.includes(c.variant))) {
    if (c.kind === 'qkv') cases.push({ ...c, kind: 'qk' });
    if (c.kind === 'store') cases.push({ ...c, kind: 'append' });
  }
  cases.forEach((c, i) => {
    const what =
      `${c.variant} ${c.kind}${c.norm ? ' + rmsnorm' : ''}, ${c.weights} weights, K ${c.k}, ${c.rows} rows` + `${c.tune ? `, ${JSON.stringify(c.tune)}` : ''}`;
    it(what, async () => {
      const { errors, scale } = await runCase(c, 1000 + 17 * i);
      expect(scale).toBeGreaterThan(0.01);
      // tiled and column sum k in order, as the reference does; gemv and split split K, and int8 tiles sum per block, so their sums round differently
      const tol = ['gemv', 'split', ...int8Variants].includes(c.variant) ? 1e-5 * Math.sqrt(c.k) * scale : 2e-6 * scale;
      for (const [name, e] of Object.entries(errors)) expect(e, name).toBeLessThan(tol);
    });
  });

  it('runs the subgroup cases on subgroups: the test device has them, laid out as the kernels assume', () => {
    expect(gpu.features.has('subgroups')).toBe(true);
    expect(gpu.subgroups).toBe(true);
  });

  it('chooses tiles for symbolic rows, gemv for a few constant rows from splitKFrom, a column otherwise', () => {
    const o = defaultLinearOptions;
    expect(linearVariant({ rows: A.sym('T'), k: 64 }, o)).toBe('tiled');
    expect(linearVariant({ rows: A.constant(1), k: 768 }, o)).toBe('gemv');
    expect(linearVariant({ rows: A.constant(1), k: 64 }, o)).toBe('column');
    expect(linearVariant({ rows: A.constant(1), k: 770 }, o)).toBe('column');
    expect(linearVariant({ rows: A.sym('T'), k: 66 }, o)).toBe('column');
    // int8 matmuls: the int8 GEMV where w has an int8 form and the quantized row fits workgroup memory
    const int8 = { ...o, matmul: 'int8' as const, weights: 'q8_0' as const };
    expect(linearVariant({ rows: A.constant(1), k: 8192 }, int8)).toBe('gemv-int8');
    expect(linearVariant({ rows: A.constant(1), k: 8192 }, { ...int8, weights: 'q4_k' })).toBe('gemv-int8');
    expect(linearVariant({ rows: A.constant(1), k: 16384 }, int8)).toBe('gemv');
    expect(linearVariant({ rows: A.constant(1), k: 16384 }, { ...int8, maxWorkgroupBytes: 32768 })).toBe('gemv-int8');
    expect(linearVariant({ rows: A.constant(1), k: 8192 }, { ...int8, weights: 'f16' })).toBe('gemv');
    expect(linearVariant({ rows: A.constant(1), k: 8192 }, { ...int8, matmul: 'float' })).toBe('gemv');
    expect(linearVariant({ rows: A.constant(1), k: 64 }, int8)).toBe('column');
    // split K: deep K over few column tiles (here 2048 columns, 16 tiles), never with splitK 1 or wide outputs
    const store = { kind: 'store', out: 'y' } as const;
    expect(linearVariant({ rows: A.sym('T'), k: 8192, n: 2048, epilogue: store }, o)).toBe('split');
    expect(linearVariant({ rows: A.sym('T'), k: 1000, n: 2048, epilogue: store }, o)).toBe('tiled');
    expect(linearVariant({ rows: A.sym('T'), k: 8192, n: 32000, epilogue: store }, o)).toBe('tiled');
    expect(linearVariant({ rows: A.sym('T'), k: 2048, n: 16384, epilogue: { kind: 'glu', out: 'y' } }, o)).toBe('tiled');
    expect(linearVariant({ rows: A.sym('T'), k: 8192, n: 2048, epilogue: store }, { ...o, splitK: 1 })).toBe('tiled');
  });

  it('keeps workgroup memory within the limit it is given, and refuses a limit no tile fits', () => {
    const s = specOf({ variant: 'tiled', kind: 'store', k: 64, n: 64, rows: 8, norm: false, weights: 'f32' });
    // 64×128 tiles (256 invocations) and 32×128 (128) of 16-deep slices: 12 KiB and 10 KiB
    for (const [maxInvocations, tileBytes] of [
      [256, 12288],
      [128, 10240],
    ] as const) {
      for (const maxWorkgroupBytes of [tileBytes, 16384, 49152]) {
        const { wgsl } = linearKernels(s, { ...defaultLinearOptions, maxWorkgroupBytes, maxInvocations }).kernels[0]!.source;
        const bytes = [...wgsl.matchAll(/var<workgroup>\s+\w+\s*:\s*array<vec4<f32>,\s*(\d+)>/g)].reduce((n, m) => n + 16 * Number(m[1]), 0);
        expect(bytes).toBe(tileBytes);
      }
      expect(() => linearKernels(s, { ...defaultLinearOptions, maxWorkgroupBytes: tileBytes - 4, maxInvocations })).toThrow(/fits/);
    }
  });
});

describe('int8 tiles on subgroup matrices', () => {
  const qkv: LinearEpilogue = { kind: 'qkv', q: 'q', kCache: 'kc', vCache: 'vc', qSize: 64, kvSize: 32, cos: 'cos', sin: 'sin', headSize: 16 };
  const epilogues: readonly LinearEpilogue[] = [
    { kind: 'store', out: 'out' },
    { kind: 'residual', residual: 'res', out: 'out' },
    { kind: 'glu', out: 'out' },
    qkv,
  ];
  const specFor = (epilogue: LinearEpilogue, k: number, norm: boolean): LinearSpec => ({
    x: 'x',
    rows: A.sym('T'),
    k,
    n: epilogue.kind === 'qkv' ? 128 : epilogue.kind === 'glu' ? 256 : 150,
    w: 'w',
    ...(norm ? { norm: { weight: 'nw', eps: 1e-5 } } : {}),
    epilogue,
  });
  const matrixOptions = (weights: FormatName, maxWorkgroupBytes: number = 32768): LinearOptions => ({
    ...defaultLinearOptions,
    weights,
    matmul: 'int8',
    int8Matrix: true,
    maxWorkgroupBytes,
  });

  it('run where asked for, for forms with a scale a block, when the tile fits workgroup memory; else the dot4 tile', () => {
    const s = specFor({ kind: 'store', out: 'out' }, 768, true);
    for (const weights of ['q8_0', 'q4_0', 'q4_k', 'q5_k'] as const) expect(linearVariant(s, matrixOptions(weights))).toBe('tiled-int8-matrix');
    expect(linearVariant(specFor({ kind: 'store', out: 'out' }, 4096, true), matrixOptions('q8_0'))).toBe('split-int8-matrix');
    // Q6_K's scale per 16 values; WebGPU's default 16 KiB of workgroup memory; not asked for
    expect(linearVariant(s, matrixOptions('q6_k'))).toBe('tiled-int8');
    expect(linearVariant(s, matrixOptions('q8_0', 16384))).toBe('tiled-int8');
    expect(linearVariant(s, { ...matrixOptions('q8_0'), int8Matrix: false })).toBe('tiled-int8');
    // a device with the int8 16×16×32 configuration and subgroups of 32 only, whose loads the probe read
    const i8 = { componentType: 'i8', resultComponentType: 'i32', M: 16, N: 16, K: 32 };
    expect(int8MatrixDevice([i8], 32, 'int8')).toBe(true);
    expect(int8MatrixDevice([i8], 32, 'word')).toBe(true);
    expect(int8MatrixDevice([i8], 32, undefined)).toBe(false);
    expect(int8MatrixDevice([i8], undefined, 'int8')).toBe(false);
    expect(int8MatrixDevice([i8], 64, 'int8')).toBe(false);
    expect(int8MatrixDevice([{ ...i8, N: 8 }], 32, 'int8')).toBe(false);
    expect(int8MatrixDevice([{ ...i8, componentType: 'f16', resultComponentType: 'f16' }], 32, 'int8')).toBe(false);
  });

  // SwiftShader has no subgroup matrices; Dawn's null backend offers the feature (with no configuration, so no
  // pipeline), which is enough for Tint to parse and check every kernel: their results await a GPU that has them
  it("WGSL that Dawn's compiler accepts, for every epilogue, with and without the norm, tiled and split, each form", async () => {
    const instance = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis,use_vulkan_memory_model']);
    const adapter = await instance.requestAdapter();
    expect(adapter?.features.has('chromium-experimental-subgroup-matrix')).toBe(true);
    const device = await adapter!.requestDevice({ requiredFeatures: ['subgroups', 'chromium-experimental-subgroup-matrix'] as GPUFeatureName[] });
    try {
      for (const epilogue of epilogues)
        for (const weights of ['q8_0', 'q4_0', 'q4_k', 'q5_k'] as const)
          for (const [k, bytes] of [
            [768, 32768],
            [4096, 32768],
            // room for one product a subgroup at a time, and for all four
            [768, 24576],
            [768, 49152],
          ] as const) {
            // the loads' offsets in either unit a device's probe may find
            for (const unit of ['int8', 'word'] as const) {
              const linear = linearKernels(specFor(epilogue, k, epilogue.kind !== 'residual'), { ...matrixOptions(weights, bytes), int8MatrixUnit: unit });
              expect(linear.variant).toBe(k === 768 ? 'tiled-int8-matrix' : 'split-int8-matrix');
              for (const kernel of linear.kernels) {
                const info = await device.createShaderModule({ code: kernel.source.wgsl }).getCompilationInfo();
                const messages = info.messages.filter((m) => m.type !== 'info').map((m) => `${m.lineNum}: ${m.message}`);
                expect(messages, `${epilogue.kind} ${weights} K ${k}, ${bytes} bytes ${kernel.suffix ?? ''} ${unit}`).toEqual([]);
              }
            }
          }
      // the probe that finds the unit (Gpu.subgroupMatrix.int8Unit), at the null adapter's subgroup size
      const info = await device.createShaderModule({ code: int8MatrixUnitProbe(264, 128) }).getCompilationInfo();
      expect(info.messages.filter((m) => m.type !== 'info').map((m) => `${m.lineNum}: ${m.message}`)).toEqual([]);
    } finally {
      device.destroy();
    }
  });
});

describe('packed halves', () => {
  it('round to the nearest half, ties to even, with subnormals, overflow and NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65520, 0x7c00],
      [1e6, 0x7c00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000],
      [1.5 * 2 ** -25, 0x0001],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [0.1, 0x2e66],
      [-0, 0x8000],
      [Infinity, 0x7c00],
    ];
    for (const [v, bits] of cases) expect(floatToHalf(v).toString(16), String(v)).toBe(bits.toString(16));
    expect(floatToHalf(Number.NaN) & 0x7e00).toBe(0x7e00);
  });

  it('round-trip every half exactly and pack element 2i low', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
      expect(floatToHalf(halfToFloat(h))).toBe(h);
    }
    const packed = deviceLayout(weightFormats.f16, [{ file: weightFormats.f16.encode(new Float32Array([1, -2, 0.5])), count: 3 }]);
    expect([...new Uint32Array(packed.buffer)]).toEqual([(0xc000 << 16) | 0x3c00, 0x3800].map((v) => v >>> 0));
  });
});
