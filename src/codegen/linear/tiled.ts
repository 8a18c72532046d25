// The tiled variant (prefill): a register-tiled matmul, each workgroup a BM×128 output tile staged through
// workgroup memory in 16-deep slices of x and w; every output sums k in order over its tile's K range.
import { match } from 'ts-pattern';
import { kernelSource, preciseMath, u32Expr, wg, type KernelBinding, type KernelSource } from '../wgsl.js';
import { epilogueOf, type Epilogue } from './epilogue.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import { TILE_HALF, tileColumns, type LinearOptions, type LinearSpec } from './spec.js';

/** k per slice: measured fastest, with the 64×128 tile and neither prefetching nor unrolling (BENCHMARKS.md, prefill tile variants). */
const SLICE = 16;
/** output rows per invocation */
const TM = 4;
const HALF = TILE_HALF;
const BN = 2 * HALF;
/** invocations per tile row: four columns of each half each */
const TX = HALF / 4;
/** vec4s of k per slice */
const KQ = SLICE / 4;
const comps = ['x', 'y', 'z', 'w'];
/** Column c of accumulator row i of half h (acc0: the left half, acc1: the right; the columns as LaneColumns says). */
export const accumulator = (h: number, i: number, c: number): string => `acc${h}_${i}.${comps[c]}`;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * Which columns of its tile an invocation's accumulator row holds: `width` adjacent columns from `offset` (a WGSL
 * expression) in each half, accumulator(h, i, c) column c of them in half h.
 */
export interface LaneColumns {
  readonly width: 2 | 4;
  readonly offset: string;
}

/** The float32 and dot4 int8 tiles' columns: four at 4·tx. */
export const tileLane: LaneColumns = { width: 4, offset: 'tx * 4u' };

/**
 * What a tile does with its sums: the bindings it writes through, its WGSL functions, and the statements that
 * store accumulator row i of tile row `row`, the invocation's columns laid out as `lane` says.
 */
export interface TileOutput {
  readonly bindings: readonly KernelBinding[];
  readonly functions: string;
  stores(i: number, lane: LaneColumns): readonly string[];
}

/** A tile on an adapter: its invocations, its rows, and the vec4s of x (aLoads) and of w (bLoads) each invocation loads per slice. */
interface Tile {
  readonly threads: number;
  readonly BM: number;
  readonly aLoads: number;
  readonly bLoads: number;
}

function tileFor(o: LinearOptions): Tile {
  const threads = o.maxInvocations >= 256 ? 256 : 128;
  const BM = (threads / TX) * TM;
  // every invocation loads whole vec4s of both slices: BM·SLICE/4 and BN·SLICE/4 are multiples of threads
  if ((BM + BN) * SLICE * 4 > o.maxWorkgroupBytes) throw new Error(`no ${BM}×${BN} matmul tile fits ${o.maxWorkgroupBytes} bytes of workgroup memory`);
  return { threads, BM, aLoads: (BM * KQ) / threads, bLoads: (BN * KQ) / threads };
}

/** The norm scale of each x row an invocation loads, summed in order by each such invocation (no barrier). */
function normScales(s: LinearSpec, t: Tile): string {
  const K4 = s.k / 4;
  return range(t.aLoads)
    .map(
      (j) => `
  var scale${j} = 0.0;
  {
    let r = min(rowBase + ar${j}, M - 1u) * ${K4}u;
    var ss = 0.0;
    for (var i = 0u; i < ${K4}u; i++) { let v = x[r + i]; ss += v.x * v.x; ss += v.y * v.y; ss += v.z * v.z; ss += v.w * v.w; }
    scale${j} = ${rowScale(s, 'ss')};
  }`,
    )
    .join('');
}

/** The slice at k4 (up to kEnd): global loads to registers (pa*, pb*), then to workgroup memory (As, Bs). */
function sliceLoads(s: LinearSpec, t: Tile, kEnd: string): string {
  const K4 = s.k / 4;
  return [
    ...range(t.aLoads).map(
      (j) => `    {
      let r = rowBase + ar${j};
      let kk = k4 + kq${j};
      pa${j} = vec4<f32>(0.0);
      if (r < M && kk < ${kEnd}) { pa${j} = ${xElement(s, `r * ${K4}u + kk`, 'kk', `scale${j}`)}; }
    }`,
    ),
    ...range(t.bLoads).map(
      (j) => `    {
      let kk = k4 + kq${j}b;
      pb${j} = vec4<f32>(0.0);
      if (live${j} && kk < ${kEnd}) { pb${j} = wAt(wr${j} * ${K4}u + kk); }
    }`,
    ),
    ...range(t.aLoads).flatMap((j) => range(4).map((c) => `    As[(kq${j} * 4u + ${c}u) * ${t.BM / 4}u + ar${j} / 4u][ar${j} % 4u] = pa${j}.${comps[c]};`)),
    ...range(t.bLoads).flatMap((j) => range(4).map((c) => `    Bs[(kq${j}b * 4u + ${c}u) * ${BN / 4}u + bc${j} / 4u][bc${j} % 4u] = pb${j}.${comps[c]};`)),
  ].join('\n');
}

/** Row k of the slice into the accumulators: each invocation's TM rows times its four columns of each half. */
function sliceProducts(t: Tile): string {
  return `
      let b0 = Bs[k * ${BN / 4}u + tx];
      let b1 = Bs[k * ${BN / 4}u + ${TX}u + tx];${range(TM / 4)
        .map(
          (q) => `
      let a${q} = As[k * ${t.BM / 4}u + ty * ${TM / 4}u + ${q}u];
${range(4)
  .map((c) => `      acc0_${q * 4 + c} += a${q}.${comps[c]} * b0;\n      acc1_${q * 4 + c} += a${q}.${comps[c]} * b1;`)
  .join('\n')}`,
        )
        .join('')}`;
}

/** The stores of a tile's `rows` accumulator rows, each where its row (`rowOf(i)` within the tile) is below M. */
export function tileStores(rows: number, rowOf: (i: number) => string, out: TileOutput, lane: LaneColumns): string {
  return range(rows)
    .map(
      (i) => `
  {
    let row = rowBase + ${rowOf(i)};
    if (row < M) {
      ${out.stores(i, lane).join('\n      ')}
    }
  }`,
    )
    .join('');
}

/** The tile whose sums go to `out`; with `splits` above 1 it covers one of that many K ranges (workgroup z). */
export function tileKernel(s: LinearSpec, o: LinearOptions, out: TileOutput, splits = 1): KernelSource {
  const t = tileFor(o);
  const K4 = s.k / 4;
  const inputs = linearInputs(s, o.weights, 'vec4s');
  const { across, per: columns } = tileColumns(s);
  const { wRow, wLive } = tileRows(s, epilogueOf(s));
  // the K range of this workgroup, in vec4s: whole slices per split
  const per = splits > 1 ? Math.ceil(K4 / splits / KQ) * KQ : K4;
  const [kBegin, kEnd] = splits > 1 ? ['kBegin', 'kEnd'] : ['0u', `${K4}u`];
  const lines = (n: number, line: (j: number) => string): string => range(n).map(line).join('\n');
  const stores = tileStores(TM, (i) => `ty * ${TM}u + ${i}u`, out, tileLane);
  return kernelSource(
    [...inputs.bindings, ...out.bindings],
    `
var<workgroup> As: array<vec4<f32>, ${(SLICE * t.BM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(SLICE * BN) / 4}>;
${preciseMath}

${inputs.wAt}

${out.functions}

@compute @workgroup_size(${t.threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let tx = tid % ${TX}u;
  let ty = tid / ${TX}u;
  let M = ${u32Expr(s.rows)};
  let rowBase = wid.y * ${t.BM}u;
  let base = wid.x * ${columns}u;${splits > 1 ? `\n  let kBegin = wid.z * ${per}u;\n  let kEnd = min(${K4}u, kBegin + ${per}u);` : ''}
${lines(t.aLoads, (j) => `  let ar${j} = (tid + ${j * t.threads}u) / ${KQ}u;\n  let kq${j} = (tid + ${j * t.threads}u) % ${KQ}u;`)}
${lines(
  t.bLoads,
  (j) =>
    `  let bc${j} = (tid + ${j * t.threads}u) / ${KQ}u;\n  let kq${j}b = (tid + ${j * t.threads}u) % ${KQ}u;\n  let wr${j} = ${wRow(`bc${j}`)};\n  let live${j} = ${wLive(`bc${j}`)};`,
)}${s.norm ? normScales(s, t) : ''}
${lines(TM, (i) => `  var acc0_${i} = vec4<f32>(0.0);\n  var acc1_${i} = vec4<f32>(0.0);`)}
${lines(t.aLoads, (j) => `  var pa${j}: vec4<f32>;`)}
${lines(t.bLoads, (j) => `  var pb${j}: vec4<f32>;`)}
  for (var k4 = ${kBegin}; k4 < ${kEnd}; k4 += ${KQ}u) {
${sliceLoads(s, t, kEnd)}
    workgroupBarrier();
    for (var k = 0u; k < ${SLICE}u; k++) {${sliceProducts(t)}
    }
    workgroupBarrier();
  }${stores}
}`,
    [wg(across, columns), wg(s.rows, t.BM), wg(splits > 1 ? Math.ceil(K4 / per) : 1)],
  );
}

/**
 * Which w row feeds local tile column `c` (an expression of `base`, the tile's first column), and whether it exists:
 * columns base.. of w, or with halves the gate rows of units base.. in the left half and their up rows in the right.
 */
export function tileRows(s: LinearSpec, ep: Epilogue): { wRow: (c: string) => string; wLive: (c: string) => string } {
  return ep.unitRows === 'halves'
    ? { wRow: (c) => `select(${ep.units}u + base + ${c} - ${HALF}u, base + ${c}, ${c} < ${HALF}u)`, wLive: (c) => `base + ${c} % ${HALF}u < ${ep.units}u` }
    : { wRow: (c) => `base + ${c}`, wLive: (c) => `base + ${c} < ${s.n}u` };
}

/** The emits of the units a tile row's accumulators hold, as the epilogue's unitRows lays them out. */
export function emits(ep: Epilogue, i: number, lane: LaneColumns): string[] {
  const acc = (h: number, c: number): string => accumulator(h, i, c);
  const cols = range(lane.width);
  const units = match(ep.unitRows)
    // a unit per column
    .with('columns', () => [0, 1].flatMap((h) => cols.map((c) => ({ unit: `base + ${h * HALF}u + ${lane.offset} + ${c}u`, a: acc(h, c), b: '0.0' }))))
    // column pairs (2u, 2u + 1) sit side by side
    .with('pairs', () =>
      [0, 1].flatMap((h) =>
        range(lane.width / 2).map((p) => ({ unit: `(base + ${h * HALF}u + ${lane.offset}) / 2u + ${p}u`, a: acc(h, 2 * p), b: acc(h, 2 * p + 1) })),
      ),
    )
    // a unit's gate in the left half, its up in the right
    .with('halves', () => cols.map((c) => ({ unit: `base + ${lane.offset} + ${c}u`, a: acc(0, c), b: acc(1, c) })))
    .exhaustive();
  return units.map(({ unit, a, b }) => `if (${unit} < ${ep.units}u) { emit(row, ${unit}, ${a}, ${b}); }`);
}

export function tiledKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const ep = epilogueOf(s);
  return tileKernel(s, o, { bindings: ep.bindings, functions: ep.emit, stores: (i, lane) => emits(ep, i, lane) });
}
