// The int8 tile on subgroup matrices (Dawn's chromium_experimental_subgroup_matrix: the tensor cores): the
// computation of int8.ts — x quantized per row and 32-wide block, w's int8 blocks, per block the exact integer
// products times the two scales, less w's offset times the x block's sum — with each block's integer products
// taken as 16×16×32 matrix products (i8 × i8 → i32). 256 invocations in 8 subgroups of 32 own a 64×128 output
// tile; subgroup s takes row tiles 2·(s / 4) and 2·(s / 4) + 1 and column tiles s % 4 and s % 4 + 4 (so a
// column's gate and up, 64 apart, land in one invocation). Per block and output tile the subgroup multiplies,
// stores the i32 product to its own 16×16 of workgroup memory, and each invocation adds 8 of its values times
// the scales to its float32 accumulators: rows l / 8 + 4k (k < 4), columns 2·(l % 8) and the one after (a
// RoPE pair). Blocks are staged as in int8.ts, double-buffered, x row-major and w column-major as the matrix
// loads read them. Offsets and strides count int8 elements. Scales per 16 values (Q6_K) take int8.ts's tile.
import { kernelSource, preciseMath, u32Expr, wg, type KernelSource } from '../wgsl.js';
import { weightFormats } from '../../weights/formats.js';
import { epilogueOf } from './epilogue.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import { INT8_BLOCK, INT8_MATRIX, int8MatrixBytes, TILE_HALF, tileColumns, type LinearOptions, type LinearSpec } from './spec.js';
import { emits, tileRows, type LaneColumns, type TileOutput } from './tiled.js';

/** packed int8 words (four elements each) per block */
const WORDS = INT8_BLOCK / 4;
const BM = INT8_MATRIX.BM;
const BN = 2 * TILE_HALF;
const THREADS = INT8_MATRIX.threads;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The invocation's columns: two adjacent from 16·(s % 4) + 2·(l % 8) in each half. */
const lane: LaneColumns = { width: 2, offset: '(sg % 4u) * 16u + 2u * (sl % 8u)' };

export function int8MatrixTiledKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const ep = epilogueOf(s);
  return int8MatrixTileKernel(s, o, { bindings: ep.bindings, functions: ep.emit, stores: (i, l) => emits(ep, i, l) });
}

/** The tile whose sums go to `out`; with `splits` above 1 it covers one of that many ranges of K's blocks (workgroup z). */
export function int8MatrixTileKernel(s: LinearSpec, o: LinearOptions, out: TileOutput, splits = 1): KernelSource {
  const int8 = weightFormats[o.weights].wgsl.int8;
  if (!int8 || int8.scales !== 1) throw new Error(`${o.weights} weights have no int8 form with a scale a block`);
  if (s.k % INT8_BLOCK !== 0) throw new Error(`int8 matmuls need K a multiple of ${INT8_BLOCK}, K is ${s.k}`);
  if (int8MatrixBytes(int8.offset) > o.maxWorkgroupBytes) throw new Error(`the int8 matrix tile does not fit ${o.maxWorkgroupBytes} bytes of workgroup memory`);
  const K4 = s.k / 4;
  const blocks = s.k / INT8_BLOCK;
  const inputs = linearInputs(s, o.weights, 'vec4s');
  const { across, per: columns } = tileColumns(s);
  const { wRow, wLive } = tileRows(s, epilogueOf(s));
  const per = splits > 1 ? Math.ceil(blocks / splits) : blocks;
  const [bBegin, bEnd] = splits > 1 ? ['bBegin', 'bEnd'] : ['0u', `${blocks}u`];
  const wordsEach = (BN * WORDS) / THREADS;
  const tileElements = INT8_MATRIX.M * INT8_MATRIX.N;
  // accumulator row i = 4a + k: row tile 2·(s / 4) + a, row l / 8 + 4k in it
  const rowOf = (i: number): string => `(2u * (sg / 4u) + ${Math.floor(i / 4)}u) * 16u + sl / 8u + ${4 * (i % 4)}u`;
  // offsets first: every read of a buffer comes before a barrier that the next write into it follows
  const offsets = int8.offset
    ? `
    {
      let wo0 = vec2<f32>(Wo[buf * ${BN}u + cl], Wo[buf * ${BN}u + cl + 1u]);
      let wo1 = vec2<f32>(Wo[buf * ${BN}u + ${TILE_HALF}u + cl], Wo[buf * ${BN}u + ${TILE_HALF}u + cl + 1u]);
${range(8)
  .map((i) => `      acc0_${i} -= Xs[buf * ${BM}u + ${rowOf(i)}] * wo0;\n      acc1_${i} -= Xs[buf * ${BM}u + ${rowOf(i)}] * wo1;`)
  .join('\n')}
    }`
    : '';
  const products =
    offsets +
    range(2)
      .flatMap((a) =>
        range(2).map(
          (h) => `
    {
      let left = subgroupMatrixLoad<subgroup_matrix_left<i8, ${INT8_MATRIX.K}, ${INT8_MATRIX.M}>, row_major>(&Xq, buf * ${BM * INT8_BLOCK}u + (2u * (sg / 4u) + ${a}u) * ${16 * INT8_BLOCK}u, ${INT8_BLOCK}u);
      let right = subgroupMatrixLoad<subgroup_matrix_right<i8, ${INT8_MATRIX.N}, ${INT8_MATRIX.K}>, col_major>(&Wq, buf * ${BN * INT8_BLOCK}u + (sg % 4u + ${4 * h}u) * ${16 * INT8_BLOCK}u, ${INT8_BLOCK}u);
      subgroupMatrixStore<row_major>(&P, sg * ${tileElements}u, subgroupMatrixMultiply<i32>(left, right), ${INT8_MATRIX.N}u);
      workgroupBarrier();
      let wd = vec2<f32>(Wd[buf * ${BN}u + ${h * TILE_HALF}u + cl], Wd[buf * ${BN}u + ${h * TILE_HALF}u + cl + 1u]);
${range(4)
  .map((k) => {
    const i = 4 * a + k;
    const at = `sg * ${tileElements}u + (sl / 8u + ${4 * k}u) * 16u + 2u * (sl % 8u)`;
    return `      acc${h}_${i} += vec2<f32>(vec2<i32>(P[${at}], P[${at} + 1u])) * (Xd[buf * ${BM}u + ${rowOf(i)}] * wd);`;
  })
  .join('\n')}
      workgroupBarrier();
    }`,
        ),
      )
      .join('');
  const stores = range(8)
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
  return kernelSource(
    [...inputs.bindings, ...out.bindings],
    `
// the matrix loads' offsets come from subgroup_id: uniform in each subgroup, as they must be
var<workgroup> Xq: array<i32, ${(2 * BM * INT8_BLOCK) / 4}>;
var<workgroup> Wq: array<i32, ${(2 * BN * INT8_BLOCK) / 4}>;
var<workgroup> Xd: array<f32, ${2 * BM}>;
var<workgroup> Wd: array<f32, ${2 * BN}>;${int8.offset ? `\nvar<workgroup> Xs: array<f32, ${2 * BM}>;\nvar<workgroup> Wo: array<f32, ${2 * BN}>;` : ''}
var<workgroup> P: array<i32, ${(THREADS / INT8_MATRIX.subgroupSize) * tileElements}>;
${preciseMath}

${int8.wgsl(s.n * s.k)}

${out.functions}

/** Block b of x row tid into buffer buf: its scale${int8.offset ? ', its sum' : ''} and ${WORDS} words of int8, row-major. */
fn stageX(row: u32, live: bool, scale: f32, b: u32, buf: u32, tid: u32) {
  var v: array<vec4<f32>, ${WORDS}>;
  var amax = 0.0;
  for (var j = 0u; j < ${WORDS}u; j++) {
    let kk = b * ${WORDS}u + j;
    v[j] = vec4<f32>(0.0);
    if (live) { v[j] = ${xElement(s, `row * ${K4}u + kk`, 'kk')}; }
    let m = abs(v[j]);
    amax = max(amax, max(max(m.x, m.y), max(m.z, m.w)));
  }
  let d = preciseDiv(amax, 127.0);
  let id = select(0.0, preciseDiv(1.0, d), d > 0.0);
  var sum = vec4<i32>(0);
  for (var j = 0u; j < ${WORDS}u; j++) {
    let q = vec4<i32>(clamp(round(v[j] * id), vec4<f32>(-127.0), vec4<f32>(127.0)));
    sum += q;
    Xq[(buf * ${BM}u + tid) * ${WORDS}u + j] = bitcast<i32>(pack4xI8(q));
  }
  Xd[buf * ${BM}u + tid] = d;${int8.offset ? `\n  Xs[buf * ${BM}u + tid] = d * f32(sum.x + sum.y + sum.z + sum.w);` : ''}
}

/** Block b of w column c into buffer buf: words j0.. of it (column-major), and its scale${int8.offset ? ' and offset' : ''} where j0 is 0. */
fn stageW(wr: u32, live: bool, b: u32, buf: u32, c: u32, j0: u32) {
  // a column past w's rows stages zeros: its words are not read (nothing guards a read past the buffer)
  let block = wr * ${blocks}u + b;
  for (var j = j0; j < j0 + ${wordsEach}u; j++) {
    var q = 0u;
    if (live) { q = wInt8(block, j); }
    Wq[(buf * ${BN}u + c) * ${WORDS}u + j] = bitcast<i32>(q);
  }
  if (j0 == 0u) {
    var d = 0.0;
    if (live) { d = wScale(block, 0u); }
    Wd[buf * ${BN}u + c] = d;${int8.offset ? `\n    var o = 0.0;\n    if (live) { o = wOffset(block); }\n    Wo[buf * ${BN}u + c] = o;` : ''}
  }
}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sl: u32) {
  let M = ${u32Expr(s.rows)};
  let rowBase = wid.y * ${BM}u;
  let base = wid.x * ${columns}u;${splits > 1 ? `\n  let bBegin = wid.z * ${per}u;\n  let bEnd = min(${blocks}u, bBegin + ${per}u);` : ''}
  // this invocation's first column in its left-half column tile
  let cl = (sg % 4u) * 16u + 2u * (sl % 8u);
  let xRow = rowBase + tid;
  let xLive = tid < ${BM}u && xRow < M;
  var scale = 0.0;${
    s.norm
      ? `
  if (xLive) {
    var ss = 0.0;
    for (var i = 0u; i < ${K4}u; i++) { let v = x[xRow * ${K4}u + i]; ss += v.x * v.x; ss += v.y * v.y; ss += v.z * v.z; ss += v.w * v.w; }
    scale = ${rowScale(s, 'ss')};
  }`
      : ''
  }
  let wc = tid / ${WORDS / wordsEach}u;
  let wj = (tid % ${WORDS / wordsEach}u) * ${wordsEach}u;
  let wr = ${wRow('wc')};
  let wLive = ${wLive('wc')};
${range(8)
  .map((i) => `  var acc0_${i} = vec2<f32>(0.0);\n  var acc1_${i} = vec2<f32>(0.0);`)
  .join('\n')}
  if (${bBegin} < ${bEnd}) {
    if (tid < ${BM}u) { stageX(xRow, xLive, scale, ${bBegin}, 0u, tid); }
    stageW(wr, wLive, ${bBegin}, 0u, wc, wj);
  }
  workgroupBarrier();
  for (var b = ${bBegin}; b < ${bEnd}; b++) {
    let buf = (b - ${bBegin}) & 1u;
    // the next block goes to the other buffer, last read before the previous barrier
    if (b + 1u < ${bEnd}) {
      if (tid < ${BM}u) { stageX(xRow, xLive, scale, b + 1u, buf ^ 1u, tid); }
      stageW(wr, wLive, b + 1u, buf ^ 1u, wc, wj);
    }${products}
  }${stores}
}`,
    // every split writes its partial sums, zeros where its range is empty
    [wg(across, columns), wg(s.rows, BM), wg(splits)],
    true,
    ['chromium_experimental_subgroup_matrix'],
  );
}
