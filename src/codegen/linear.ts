// The fused linear template: an optional RMSNorm prologue, one matmul over weights stored [N, K] (K
// contiguous, float32 or packed halves), and an epilogue applied to each output unit (store, residual
// add, SiLU·gate, or RoPE + KV append). Three ways to run it:
//   tiled  — prefill: a register-tiled matmul, each workgroup a BM×128 output tile staged through
//            workgroup memory in BK-deep slices of x and w; every output sums k in order.
//   split  — prefill when the columns give few tiles and K is deep: the same tile over one of S ranges
//            of K writes partial sums, and a second dispatch adds them (in split order) and applies the epilogue.
//   gemv   — decode (a few constant rows), K ≥ splitKFrom: a group of 64 invocations per unit splits K,
//            reads w as vec4s, and reduces in workgroup memory (each subgroup's sum first, where the device
//            has subgroups); bandwidth-bound.
//   column — one invocation per unit sums its column in order (run.c's order): small K, or K % 4 ≠ 0.
// The normalized input is formed per element in the order a stored rmsnorm result would be.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import { f32Lit, header, preciseMath, u32Expr, wg, type KernelBinding, type KernelParts, type KernelSource } from './wgsl.js';
import { weightFormats, type FormatName } from '../weights/formats.js';

export type LinearEpilogue =
  | { readonly kind: 'store'; readonly out: string }
  /** out = residual + x·wᵀ */
  | { readonly kind: 'residual'; readonly residual: string; readonly out: string }
  /** w stacks gate over up ([2F, K]): out[:, j] = silu(gate_j) · up_j, out [M, F] */
  | { readonly kind: 'glu'; readonly out: string }
  /** w stacks q, k, v: q columns are rotated into `q`, k columns rotated and v columns appended to the caches at rows P.. */
  | {
      readonly kind: 'qkv';
      readonly q: string;
      readonly kCache: string;
      readonly vCache: string;
      readonly qSize: number;
      readonly kvSize: number;
      readonly cos: string;
      readonly sin: string;
      readonly headSize: number;
    };

export interface LinearSpec {
  readonly x: string;
  readonly rows: Affine;
  /** inner dimension */
  readonly k: number;
  /** rows of w */
  readonly n: number;
  readonly w: string;
  readonly norm?: { readonly weight: string; readonly eps: number };
  readonly epilogue: LinearEpilogue;
}

export interface LinearOptions {
  /** how the kernel's weights are stored on the device (src/weights/formats.ts) */
  readonly weights: FormatName;
  /** the adapter's maxComputeInvocationsPerWorkgroup */
  readonly maxInvocations: number;
  /** the adapter's maxComputeWorkgroupStorageSize */
  readonly maxWorkgroupBytes: number;
  /** constant-row (decode) kernels split K across invocations from this K on; below it a column sums in order */
  readonly splitKFrom: number;
  /** output rows per invocation in a prefill tile (4 or 8) */
  readonly tileRows: 4 | 8;
  /** output columns of a prefill tile (64 or 128; two halves, each invocation four columns of each) */
  readonly tileWidth: 64 | 128;
  /** k per slice of a prefill tile (0: the deepest of 32, 16, 8 that fits the workgroup memory) */
  readonly sliceDepth: 0 | 8 | 16 | 32;
  /** load the next slice into registers while multiplying the current one */
  readonly prefetch: boolean;
  /** unroll the k loop of a slice */
  readonly unroll: boolean;
  /** at most this many K ranges for a prefill tile whose columns give few tiles (1: never split) */
  readonly splitK: number;
  /**
   * reduce with subgroup operations (the device's subgroups at most 64 wide, in local-invocation order: Gpu.subgroups);
   * otherwise through workgroup memory alone
   */
  readonly subgroups: boolean;
}

export const defaultLinearOptions: LinearOptions = {
  weights: 'f32',
  maxInvocations: 256,
  maxWorkgroupBytes: 16384,
  splitKFrom: 512,
  tileRows: 4,
  tileWidth: 128,
  // measured best on the H100 (OpenGL ES): deeper slices, prefetching and unrolling were all slower
  sliceDepth: 16,
  prefetch: false,
  unroll: false,
  splitK: 4,
  subgroups: false,
};

export type LinearVariant = 'tiled' | 'split' | 'gemv' | 'column';

/** A prefill tile splits K only when its columns give fewer tiles than this… */
const SPLIT_BELOW_TILES = 64;
/** …and each split still gets at least this much of K. */
const SPLIT_MIN_DEPTH = 1024;

/** Weight vectors per lane and per dot a GEMV keeps in flight. */
const GEMV_UNROLL = 8;

/** Rows up to this many, when constant, run as GEMV rather than as a tile. */
const GEMV_MAX_ROWS = 4;

export function linearVariant(s: Pick<LinearSpec, 'rows' | 'k'> & Partial<Pick<LinearSpec, 'n' | 'epilogue'>>, o: LinearOptions): LinearVariant {
  if (s.k % 4 !== 0) return 'column';
  if (A.isConstant(s.rows) && s.rows.c <= GEMV_MAX_ROWS) return s.k >= o.splitKFrom ? 'gemv' : 'column';
  return kSplits(s, o) > 1 ? 'split' : 'tiled';
}

/** How many K ranges a prefill tile runs over: more than one when its columns give few tiles and K is deep. */
function kSplits(s: Pick<LinearSpec, 'k'> & Partial<Pick<LinearSpec, 'n' | 'epilogue'>>, o: LinearOptions): number {
  if (s.n === undefined || s.epilogue === undefined) return 1;
  const columns = s.epilogue.kind === 'glu' ? s.n / 2 : s.n;
  const width = s.epilogue.kind === 'glu' ? o.tileWidth / 2 : o.tileWidth;
  if (Math.ceil(columns / width) >= SPLIT_BELOW_TILES) return 1;
  return Math.max(1, Math.min(o.splitK, Math.floor(s.k / SPLIT_MIN_DEPTH)));
}

const ro = (buffer: string, v: string, type: KernelBinding['type'] = 'f32'): KernelBinding => ({ buffer, access: 'read', var: v, type });
const rw = (buffer: string, v: string): KernelBinding => ({ buffer, access: 'read_write', var: v, type: 'f32' });

/** The epilogue as a WGSL function `emit(row, unit, a, b)` of a unit's one or two dot products. */
interface Epilogue {
  readonly units: number;
  readonly dots: 1 | 2;
  /** WGSL expressions of the w rows that a unit's dots read */
  readonly wRows: (unit: string) => readonly [string, string];
  readonly bindings: readonly KernelBinding[];
  readonly emit: string;
}

function epilogueOf(s: LinearSpec): Epilogue {
  const e = s.epilogue;
  const fn = (body: string): string => `fn emit(row: u32, unit: u32, a: f32, b: f32) {${body}\n}`;
  switch (e.kind) {
    case 'store':
    case 'residual': {
      const value = e.kind === 'residual' ? `residual[row * ${s.n}u + unit] + a` : 'a';
      return {
        units: s.n,
        dots: 1,
        wRows: (u) => [u, u],
        bindings: [...(e.kind === 'residual' ? [ro(e.residual, 'residual')] : []), rw(e.out, 'out')],
        emit: fn(`\n  out[row * ${s.n}u + unit] = ${value};`),
      };
    }
    case 'glu': {
      if (s.n % 2 !== 0) throw new Error(`glu needs an even number of stacked rows, got ${s.n}`);
      const f = s.n / 2;
      return {
        units: f,
        dots: 2,
        wRows: (u) => [u, `${u} + ${f}u`],
        bindings: [rw(e.out, 'out')],
        emit: fn(`\n  out[row * ${f}u + unit] = (a * preciseDiv(1.0, 1.0 + preciseExp(-a))) * b;`),
      };
    }
    case 'qkv': {
      if (e.qSize + 2 * e.kvSize !== s.n || e.qSize % 2 !== 0 || e.kvSize % 2 !== 0) {
        throw new Error(`qkv columns ${e.qSize}+2·${e.kvSize} do not match the ${s.n} stacked rows`);
      }
      const half = e.headSize / 2;
      return {
        units: s.n / 2,
        dots: 2,
        wRows: (u) => [`2u * ${u}`, `2u * ${u} + 1u`],
        bindings: [ro(e.cos, 'cosT'), ro(e.sin, 'sinT'), rw(e.q, 'q'), rw(e.kCache, 'kCache'), rw(e.vCache, 'vCache')],
        emit: fn(`
  let c0 = 2u * unit;
  let pos = dims.P + row;
  if (c0 < ${e.qSize + e.kvSize}u) {
    let local = select(c0 - ${e.qSize}u, c0, c0 < ${e.qSize}u);
    let at = pos * ${half}u + (local / 2u) % ${half}u;
    let c = cosT[at];
    let s = sinT[at];
    let r0 = a * c - b * s;
    let r1 = a * s + b * c;
    if (c0 < ${e.qSize}u) {
      q[row * ${e.qSize}u + local] = r0;
      q[row * ${e.qSize}u + local + 1u] = r1;
    } else {
      kCache[pos * ${e.kvSize}u + local] = r0;
      kCache[pos * ${e.kvSize}u + local + 1u] = r1;
    }
  } else {
    let local = c0 - ${e.qSize + e.kvSize}u;
    vCache[pos * ${e.kvSize}u + local] = a;
    vCache[pos * ${e.kvSize}u + local + 1u] = b;
  }`),
      };
    }
  }
}

/** `fn wAt(i) -> vec4<f32>`: the i-th group of four weights (of `s.n` rows of `s.k`), decoded as the format's CPU reference does. */
function vectorWeights(format: FormatName, s: Pick<LinearSpec, 'n' | 'k'>): { type: KernelBinding['type']; fn: string } {
  const { wgsl } = weightFormats[format];
  return { type: wgsl.vectorType, fn: wgsl.vector(s.n * s.k) };
}

/** `w` element i, for the column kernel: the scalar counterpart of vectorWeights. */
function scalarWeight(format: FormatName, s: Pick<LinearSpec, 'n' | 'k'>): string {
  return weightFormats[format].wgsl.scalar(s.n * s.k);
}

/** The dispatches of one linear kernel and the scratch buffers between them, with the variant that runs. */
export interface LinearKernels extends KernelParts {
  readonly variant: LinearVariant;
}

/** The kernels for `s`; `name` names the scratch buffers (a split's partial sums). */
export function linearKernels(s: LinearSpec, o: LinearOptions = defaultLinearOptions, name = 'linear'): LinearKernels {
  const block = weightFormats[o.weights].blockElements;
  if (s.k % block !== 0) throw new Error(`${name}: ${o.weights} weights need K a multiple of ${block}, K is ${s.k}`);
  const variant = linearVariant(s, o);
  switch (variant) {
    case 'column':
      return { variant, kernels: [{ source: columnKernel(s, o) }], scratch: [] };
    case 'gemv':
      return { variant, kernels: [{ source: gemvKernel(s, o) }], scratch: [] };
    case 'tiled':
      return { variant, kernels: [{ source: tiledKernel(s, o) }], scratch: [] };
    case 'split': {
      const splits = kSplits(s, o);
      const partial = { name: `${name}.partial`, shape: [A.constant(splits), s.rows, A.constant(s.n)] };
      return {
        variant,
        kernels: [
          { suffix: 'partial', source: tiledKernel(s, o, { splits, partial: partial.name }) },
          { suffix: 'reduce', source: reduceKernel(s, splits, partial.name), after: 'split-K: the reduce adds the partial sums of every K range' },
        ],
        scratch: [partial],
      };
    }
  }
}

const normScale = (sum: string, s: LinearSpec): string => `preciseDiv(1.0, preciseSqrt(preciseDiv(${sum}, ${f32Lit(s.k)}) + ${f32Lit(s.norm!.eps)}))`;

function columnKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const THREADS = 64;
  const K = s.k;
  const ep = epilogueOf(s);
  const bindings: KernelBinding[] = [ro(s.x, 'x'), ro(s.w, 'w', weightFormats[o.weights].wgsl.scalarType)];
  if (s.norm) bindings.push(ro(s.norm.weight, 'normWeight'));
  bindings.push(...ep.bindings);
  const xAt = (k: string): string => (s.norm ? `normWeight[${k}] * (scale * x[xBase + ${k}])` : `x[xBase + ${k}]`);
  const wAt = scalarWeight(o.weights, s);
  const [r0, r1] = ep.wRows('unit');
  // Every invocation sums its row's squares itself, in order, as run.c does: no barrier, and the
  // scale is bit-identical in every workgroup.
  const prologue = s.norm
    ? `
  var ss = 0.0;
  for (var j = 0u; j < ${K}u; j++) { let v = x[xBase + j]; ss += v * v; }
  scale = ${normScale('ss', s)};`
    : '';
  const wgsl = `${header(bindings)}
${s.norm ? 'var<private> scale: f32;' : ''}
var<private> xBase: u32;
${preciseMath}

fn wAt(i: u32) -> f32 { return ${wAt}; }

fn dot(wRow: u32) -> f32 {
  let wBase = wRow * ${K}u;
  var acc = 0.0;
  for (var i = 0u; i < ${K}u; i++) { acc += ${xAt('i')} * wAt(wBase + i); }
  return acc;
}

${ep.emit}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = wid.y;
  let unit = wid.x * ${THREADS}u + lane;
  xBase = row * ${K}u;${prologue}
  if (unit >= ${ep.units}u || row >= ${u32Expr(s.rows)}) { return; }
  emit(row, unit, dot(${r0}), ${ep.dots === 2 ? `dot(${r1})` : '0.0'});
}
`;
  return { wgsl, bindings, workgroups: [wg(ep.units, THREADS), wg(s.rows), wg(1)] };
}

function gemvKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const LANES = 64;
  const groups = Math.max(1, Math.min(4, Math.floor(o.maxInvocations / LANES)));
  const threads = LANES * groups;
  const K4 = s.k / 4;
  const ep = epilogueOf(s);
  const w = vectorWeights(o.weights, s);
  const bindings: KernelBinding[] = [ro(s.x, 'x', 'vec4<f32>'), ro(s.w, 'w', w.type)];
  if (s.norm) bindings.push(ro(s.norm.weight, 'normWeight', 'vec4<f32>'));
  bindings.push(...ep.bindings);
  // a group computes two dots: one unit's two, or two one-dot units
  const perGroup = ep.dots === 1 ? 2 : 1;
  const last = `${ep.units - 1}u`;
  const [a0, a1] = ep.wRows('uc');
  const rowsOf =
    perGroup === 2
      ? `let u0 = (wid.x * ${groups}u + g) * 2u;
  let w0 = min(u0, ${last});
  let w1 = min(u0 + 1u, ${last});`
      : `let u0 = wid.x * ${groups}u + g;
  let uc = min(u0, ${last});
  let w0 = ${a0};
  let w1 = ${a1};`;
  const emit =
    perGroup === 2
      ? `if (u0 < ${ep.units}u) { emit(row, u0, r.x, 0.0); }
    if (u0 + 1u < ${ep.units}u) { emit(row, u0 + 1u, r.y, 0.0); }`
      : `if (u0 < ${ep.units}u) { emit(row, u0, r.x, r.y); }`;
  // Sums of squares and dots: a tree over workgroup memory, or each subgroup's sum (subgroupAdd) stored at
  // its index and those added in order — one barrier instead of a barrier per halving.
  const squares = o.subgroups
    ? `
  let sgSquares = subgroupAdd(ss);
  if (sgLane == 0u) { red[tid / sgSize] = vec2<f32>(sgSquares, 0.0); }
  workgroupBarrier();
  var squares = 0.0;
  for (var i = 0u; i < ${threads}u / sgSize; i++) { squares += red[i].x; }`
    : `
  red[tid] = vec2<f32>(ss, 0.0);
  workgroupBarrier();
  for (var k = ${threads / 2}u; k > 0u; k = k >> 1u) {
    if (tid < k) { red[tid] += red[tid + k]; }
    workgroupBarrier();
  }
  let squares = red[0].x;`;
  const prologue = s.norm
    ? `
  var ss = 0.0;
  for (var i = tid; i < ${K4}u; i += ${threads}u) { let v = x[xBase + i]; ss += dot(v, v); }${squares}
  scale = ${normScale('squares', s)};
  workgroupBarrier();`
    : '';
  const reduce = o.subgroups
    ? `let sgDots = subgroupAdd(acc);
  if (sgLane == 0u) { red[tid / sgSize] = sgDots; }
  workgroupBarrier();
  if (lane == 0u) {
    let groupSubgroups = ${LANES}u / sgSize;
    var r = vec2<f32>(0.0);
    for (var i = 0u; i < groupSubgroups; i++) { r += red[g * groupSubgroups + i]; }
    ${emit}
  }`
    : `red[tid] = acc;
  workgroupBarrier();
  for (var k = ${LANES / 2}u; k > 0u; k = k >> 1u) {
    if (lane < k) { red[tid] += red[tid + k]; }
    workgroupBarrier();
  }
  if (lane == 0u) {
    let r = red[tid];
    ${emit}
  }`;
  // Each lane keeps `unroll` pairs of weight vectors in flight: a block of lane, lane + 64, … is loaded
  // before the previous one is used, and the first block before the norm's reduction.
  const unroll = Math.min(GEMV_UNROLL, Math.ceil(K4 / LANES));
  const stride = LANES * unroll;
  const exact = K4 % stride === 0;
  const blocks = Array.from({ length: unroll }, (_, j) => j);
  const at = (j: number, i0: string): string => (exact ? `${i0} + ${j * LANES}u` : `min(${i0} + ${j * LANES}u, ${K4 - 1}u)`);
  const load = (i0: string, indent: string): string =>
    blocks.map((j) => `${indent}wa${j} = wAt(w0 * ${K4}u + ${at(j, i0)});\n${indent}wb${j} = wAt(w1 * ${K4}u + ${at(j, i0)});`).join('\n');
  const use = blocks
    .map((j) => {
      const body = `let xv = xAt(i0 + ${j * LANES}u); acc += vec2<f32>(dot(xv, wa${j}), dot(xv, wb${j}));`;
      return exact || j === 0 ? `    { ${body} }` : `    if (i0 + ${j * LANES}u < ${K4}u) { ${body} }`;
    })
    .join('\n');
  const wgsl = `${o.subgroups ? 'enable subgroups;\n' : ''}${header(bindings)}
var<workgroup> red: array<vec2<f32>, ${threads}>;
${s.norm ? 'var<private> scale: f32;' : ''}
var<private> xBase: u32;
${preciseMath}

${w.fn}

fn xAt(i: u32) -> vec4<f32> { return ${s.norm ? 'normWeight[i] * (scale * x[xBase + i])' : 'x[xBase + i]'}; }

${ep.emit}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32${
    o.subgroups ? ', @builtin(subgroup_size) sgSize: u32, @builtin(subgroup_invocation_id) sgLane: u32' : ''
  }) {
  let row = wid.y;
  let g = tid / ${LANES}u;
  let lane = tid % ${LANES}u;
  xBase = row * ${K4}u;
  ${rowsOf}
${blocks.map((j) => `  var wa${j}: vec4<f32>;\n  var wb${j}: vec4<f32>;`).join('\n')}
${load('lane', '  ')}${prologue}
  var acc = vec2<f32>(0.0);
  for (var i0 = lane; i0 < ${K4}u; i0 += ${stride}u) {
${use}
    if (i0 + ${stride}u < ${K4}u) {
${load(`i0 + ${stride}u`, '      ')}
    }
  }
  ${reduce}
}
`;
  return { wgsl, bindings, workgroups: [wg(Math.ceil(ep.units / perGroup), groups), wg(s.rows), wg(1)] };
}

/** With `split`, the tile covers one of `splits` K ranges (workgroup z) and writes its raw sums to `partial` [splits, rows, n] by w row. */
function tiledKernel(s: LinearSpec, o: LinearOptions, split?: { readonly splits: number; readonly partial: string }): KernelSource {
  const TX = o.tileWidth / 8;
  const threads = o.maxInvocations >= 256 ? 256 : 128;
  const TY = threads / TX;
  const TM = o.tileRows;
  const BM = TY * TM;
  const HALF = TX * 4;
  const BN = 2 * HALF;
  // the slice depth asked for, or the deepest that fits the adapter's workgroup memory; every
  // invocation loads whole vec4s of both slices
  const fits = (bk: number): boolean => ((BM * bk) / 4) % threads === 0 && ((BN * bk) / 4) % threads === 0 && (BM + BN) * bk * 4 <= o.maxWorkgroupBytes;
  const BK = [32, 16, 8, 4].find((bk) => (o.sliceDepth === 0 || bk <= o.sliceDepth) && fits(bk)) ?? [4, 8, 16, 32].find(fits);
  if (BK === undefined) throw new Error(`no ${BM}×${BN} matmul tile fits ${o.maxWorkgroupBytes} bytes of workgroup memory`);
  const KQ = BK / 4;
  const aLoads = (BM * KQ) / threads;
  const bLoads = (BN * KQ) / threads;
  const K4 = s.k / 4;
  const ep = epilogueOf(s);
  const glu = s.epilogue.kind === 'glu';
  const w = vectorWeights(o.weights, s);
  const bindings: KernelBinding[] = [ro(s.x, 'x', 'vec4<f32>'), ro(s.w, 'w', w.type)];
  if (s.norm) bindings.push(ro(s.norm.weight, 'normWeight', 'vec4<f32>'));
  bindings.push(...(split ? [rw(split.partial, 'partial')] : ep.bindings));
  // the K range of this workgroup, in vec4s: whole slices per split
  const per = split ? Math.ceil(K4 / split.splits / KQ) * KQ : K4;
  const [kBegin, kEnd] = split ? ['kBegin', 'kEnd'] : ['0u', `${K4}u`];
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const comps = ['x', 'y', 'z', 'w'];

  // which w row feeds local tile column `c`, and whether it exists
  const wRow = glu ? (c: string): string => `select(${s.n / 2}u + base + ${c} - ${HALF}u, base + ${c}, ${c} < ${HALF}u)` : (c: string): string => `base + ${c}`;
  const wLive = glu ? (c: string): string => `base + ${c} % ${HALF}u < ${s.n / 2}u` : (c: string): string => `base + ${c} < ${s.n}u`;

  const scales = s.norm
    ? range(aLoads)
        .map(
          (j) => `
  var scale${j} = 0.0;
  {
    let r = min(rowBase + ar${j}, M - 1u) * ${K4}u;
    var ss = 0.0;
    for (var i = 0u; i < ${K4}u; i++) { let v = x[r + i]; ss += v.x * v.x; ss += v.y * v.y; ss += v.z * v.z; ss += v.w * v.w; }
    scale${j} = ${normScale('ss', s)};
  }`,
        )
        .join('')
    : '';
  // Global loads of the next slice go to registers (pa*, pb*) while the current slice is multiplied.
  const fetch = (kn: string): string =>
    [
      ...range(aLoads).map((j) => {
        const xv = s.norm ? `normWeight[kk] * (scale${j} * x[r * ${K4}u + kk])` : `x[r * ${K4}u + kk]`;
        return `    {
      let r = rowBase + ar${j};
      let kk = ${kn} + kq${j};
      pa${j} = vec4<f32>(0.0);
      if (r < M && kk < ${kEnd}) { pa${j} = ${xv}; }
    }`;
      }),
      ...range(bLoads).map(
        (j) => `    {
      let kk = ${kn} + kq${j}b;
      pb${j} = vec4<f32>(0.0);
      if (live${j} && kk < ${kEnd}) { pb${j} = wAt(wr${j} * ${K4}u + kk); }
    }`,
      ),
    ].join('\n');
  const stage = [
    ...range(aLoads).flatMap((j) => range(4).map((c) => `    As[(kq${j} * 4u + ${c}u) * ${BM / 4}u + ar${j} / 4u][ar${j} % 4u] = pa${j}.${comps[c]};`)),
    ...range(bLoads).flatMap((j) => range(4).map((c) => `    Bs[(kq${j}b * 4u + ${c}u) * ${BN / 4}u + bc${j} / 4u][bc${j} % 4u] = pb${j}.${comps[c]};`)),
  ].join('\n');
  const accs = range(TM).flatMap((i) => [`acc0_${i}`, `acc1_${i}`]);
  const step = (k: string): string => `
      let b0 = Bs[${k} * ${BN / 4}u + tx];
      let b1 = Bs[${k} * ${BN / 4}u + ${TX}u + tx];${range(TM / 4)
        .map(
          (q) => `
      let a${q} = As[${k} * ${BM / 4}u + ty * ${TM / 4}u + ${q}u];
${range(4)
  .map((c) => `      acc0_${q * 4 + c} += a${q}.${comps[c]} * b0;\n      acc1_${q * 4 + c} += a${q}.${comps[c]} * b1;`)
  .join('\n')}`,
        )
        .join('')}`;
  const multiply = o.unroll
    ? range(BK)
        .map((k) => `    {${step(`${k}u`)}\n    }`)
        .join('\n')
    : `    for (var k = 0u; k < ${BK}u; k++) {${step('k')}\n    }`;
  const loop = o.prefetch
    ? `${fetch(kBegin)}
  for (var k4 = ${kBegin}; k4 < ${kEnd}; k4 += ${KQ}u) {
${stage}
    workgroupBarrier();
${fetch(`k4 + ${KQ}u`)}
${multiply}
    workgroupBarrier();
  }`
    : `  for (var k4 = ${kBegin}; k4 < ${kEnd}; k4 += ${KQ}u) {
${fetch('k4')}
${stage}
    workgroupBarrier();
${multiply}
    workgroupBarrier();
  }`;
  const stores = range(TM)
    .map((i) => {
      const row = `rowBase + ty * ${TM}u + ${i}u`;
      let body: string;
      if (split) {
        // raw sums by w row: local column h·HALF + 4·tx + c
        body = [0, 1]
          .flatMap((h) =>
            range(4).map((c) => {
              const lc = `${h * HALF + c}u + tx * 4u`;
              return `if (${wLive(`(${lc})`)}) { partial[(wid.z * M + row) * ${s.n}u + ${wRow(`(${lc})`)}] = acc${h}_${i}.${comps[c]}; }`;
            }),
          )
          .join('\n      ');
      } else if (glu) {
        body = range(4)
          .map((c) => `if (base + tx * 4u + ${c}u < ${ep.units}u) { emit(row, base + tx * 4u + ${c}u, acc0_${i}.${comps[c]}, acc1_${i}.${comps[c]}); }`)
          .join('\n      ');
      } else if (ep.dots === 1) {
        body = [0, 1]
          .flatMap((h) =>
            range(4).map(
              (c) =>
                `if (base + ${h * HALF}u + tx * 4u + ${c}u < ${ep.units}u) { emit(row, base + ${h * HALF}u + tx * 4u + ${c}u, acc${h}_${i}.${comps[c]}, 0.0); }`,
            ),
          )
          .join('\n      ');
      } else {
        // column pairs (2u, 2u + 1) sit side by side in one vec4
        body = [0, 1]
          .flatMap((h) =>
            [0, 1].map((p) => {
              const unit = `(base + ${h * HALF}u + tx * 4u) / 2u + ${p}u`;
              return `if (${unit} < ${ep.units}u) { emit(row, ${unit}, acc${h}_${i}.${comps[2 * p]}, acc${h}_${i}.${comps[2 * p + 1]}); }`;
            }),
          )
          .join('\n      ');
      }
      return `
  {
    let row = ${row};
    if (row < M) {
      ${body}
    }
  }`;
    })
    .join('');

  const wgsl = `${header(bindings)}
var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;
${preciseMath}

${w.fn}

${split ? '' : ep.emit}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let tx = tid % ${TX}u;
  let ty = tid / ${TX}u;
  let M = ${u32Expr(s.rows)};
  let rowBase = wid.y * ${BM}u;
  let base = wid.x * ${glu ? HALF : BN}u;${split ? `\n  let kBegin = wid.z * ${per}u;\n  let kEnd = min(${K4}u, kBegin + ${per}u);` : ''}
${range(aLoads)
  .map((j) => `  let ar${j} = (tid + ${j * threads}u) / ${KQ}u;\n  let kq${j} = (tid + ${j * threads}u) % ${KQ}u;`)
  .join('\n')}
${range(bLoads)
  .map(
    (j) =>
      `  let bc${j} = (tid + ${j * threads}u) / ${KQ}u;\n  let kq${j}b = (tid + ${j * threads}u) % ${KQ}u;\n  let wr${j} = ${wRow(`bc${j}`)};\n  let live${j} = ${wLive(`bc${j}`)};`,
  )
  .join('\n')}${scales}
${accs.map((a) => `  var ${a} = vec4<f32>(0.0);`).join('\n')}
${range(aLoads)
  .map((j) => `  var pa${j}: vec4<f32>;`)
  .join('\n')}
${range(bLoads)
  .map((j) => `  var pb${j}: vec4<f32>;`)
  .join('\n')}
${loop}${stores}
}
`;
  const across = glu ? ep.units : s.n;
  return { wgsl, bindings, workgroups: [wg(across, glu ? HALF : BN), wg(s.rows, BM), wg(split ? Math.ceil(K4 / per) : 1)] };
}

/** Adds the `splits` partial sums of each output in split order and applies the epilogue: one invocation per (row, unit). */
function reduceKernel(s: LinearSpec, splits: number, partial: string): KernelSource {
  const THREADS = 64;
  const ep = epilogueOf(s);
  const bindings: KernelBinding[] = [ro(partial, 'partial'), ...ep.bindings];
  const [r0, r1] = ep.wRows('unit');
  const wgsl = `${header(bindings)}
${preciseMath}

${ep.emit}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let M = ${u32Expr(s.rows)};
  let row = wid.y;
  let unit = wid.x * ${THREADS}u + lane;
  if (unit >= ${ep.units}u || row >= M) { return; }
  var a = 0.0;
  var b = 0.0;
  for (var k = 0u; k < ${splits}u; k++) {
    let at = (k * M + row) * ${s.n}u;
    a += partial[at + ${r0}];${ep.dots === 2 ? `\n    b += partial[at + ${r1}];` : ''}
  }
  emit(row, unit, a, b);
}
`;
  return { wgsl, bindings, workgroups: [wg(ep.units, THREADS), wg(s.rows), wg(1)] };
}
