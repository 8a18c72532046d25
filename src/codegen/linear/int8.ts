// The int8 tile (prefill with int8 matmuls): the tiled variant's 64×128 output tile and accumulators, with x
// quantized on the fly and w read as int8 blocks. Per 32-wide block of K, each x row gets a scale d = max|x|/127
// and integers round(x/d) (llama.cpp's q8_1); w's block gives its own integers, scale and offset through its
// format's int8 form (Q8_0 as stored; Q4_0, Q4_K, Q5_K and Q6_K unpacked to int8 while staged). An output adds,
// per block, the exact integer dot product of the two blocks times the product of their scales, less w's offset
// times the x block's sum (k-quants' mins, as q8_1's sum serves llama.cpp):
//   y[r, c] = Σ_b d_x[r, b]·d_w[c, b] · Σ_{k in b} q_x[r, k]·q_w[c, k] − o_w[c, b] · d_x[r, b]·Σ_{k in b} q_x[r, k]
// with d_w a scale per half block where the format has one per 16 values (Q6_K).
// The integer products are dot4I8Packed (four int8 products a call) over blocks staged in workgroup memory,
// double-buffered: the next block is loaded while the current one is multiplied, one barrier a block.
import { kernelSource, preciseMath, u32Expr, wg, type KernelSource } from '../wgsl.js';
import { weightFormats } from '../../weights/formats.js';
import { epilogueOf } from './epilogue.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import { INT8_BLOCK, TILE_HALF, tileColumns, type LinearOptions, type LinearSpec } from './spec.js';
import { emits, tileLane, tileRows, type TileOutput } from './tiled.js';

/** packed int8 words (four elements each) per block */
const WORDS = INT8_BLOCK / 4;
const HALF = TILE_HALF;
const BN = 2 * HALF;
/** output rows per invocation */
const TM = 4;
/** invocations per tile row: four columns of each half each */
const TX = HALF / 4;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * The rows of the tile, and the invocations: 256 (64 rows) where the adapter allows, else 128 (32 rows). Each of
 * the first BM invocations quantizes one x row of a block; every invocation stages w words.
 */
function tileFor(o: LinearOptions): { threads: number; BM: number } {
  const threads = o.maxInvocations >= 256 ? 256 : 128;
  const BM = (threads / TX) * TM;
  // two buffers of: x words, scales and sums, w words, scales and offsets (at most two scales a block)
  const bytes = 2 * (BM * WORDS * 4 + 2 * BM * 4 + BN * WORDS * 4 + 3 * BN * 4);
  if (bytes > o.maxWorkgroupBytes) throw new Error(`no ${BM}×${BN} int8 matmul tile fits ${o.maxWorkgroupBytes} bytes of workgroup memory`);
  return { threads, BM };
}

/** The int8 tile whose sums go to `out`; with `splits` above 1 it covers one of that many ranges of K's blocks (workgroup z). */
export function int8TiledKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const ep = epilogueOf(s);
  return int8TileKernel(s, o, { bindings: ep.bindings, functions: ep.emit, stores: (i, lane) => emits(ep, i, lane) });
}

export function int8TileKernel(s: LinearSpec, o: LinearOptions, out: TileOutput, splits = 1): KernelSource {
  const int8 = weightFormats[o.weights].wgsl.int8;
  if (!int8) throw new Error(`${o.weights} weights have no int8 form`);
  if (s.k % INT8_BLOCK !== 0) throw new Error(`int8 matmuls need K a multiple of ${INT8_BLOCK}, K is ${s.k}`);
  const { threads, BM } = tileFor(o);
  const K4 = s.k / 4;
  const blocks = s.k / INT8_BLOCK;
  const inputs = linearInputs(s, o.weights, 'vec4s');
  const { across, per: columns } = tileColumns(s);
  const { wRow, wLive } = tileRows(s, epilogueOf(s));
  // the block range of this workgroup
  const per = splits > 1 ? Math.ceil(blocks / splits) : blocks;
  const [bBegin, bEnd] = splits > 1 ? ['bBegin', 'bEnd'] : ['0u', `${blocks}u`];
  // w words: each invocation stages `wordsEach` consecutive words of one column's block
  const wordsEach = (BN * WORDS) / threads;
  const stores = range(TM)
    .map(
      (i) => `
  {
    let row = rowBase + ty * ${TM}u + ${i}u;
    if (row < M) {
      ${out.stores(i, tileLane).join('\n      ')}
    }
  }`,
    )
    .join('');
  // per part of a block (the whole block, or each half where w has a scale per 16 values): the integer dot products
  // of 4 x rows (a vec4 of words) with 4 w columns of each half, then added times the scales
  const parts = int8.scales;
  const partWords = WORDS / parts;
  const products = range(parts)
    .map(
      (part) => `
    {
      let xd = Xd[buf * ${BM / 4}u + ty];
      let wd0 = Wd[(buf * ${parts}u + ${part}u) * ${BN / 4}u + tx];
      let wd1 = Wd[(buf * ${parts}u + ${part}u) * ${BN / 4}u + ${TX}u + tx];
${range(TM)
  .map((i) => `      var s0_${i} = vec4<i32>(0);\n      var s1_${i} = vec4<i32>(0);`)
  .join('\n')}
      for (var j = ${part * partWords}u; j < ${(part + 1) * partWords}u; j++) {
        let a = Xq[(buf * ${WORDS}u + j) * ${BM / 4}u + ty];
        let b0 = Wq[(buf * ${WORDS}u + j) * ${BN / 4}u + tx];
        let b1 = Wq[(buf * ${WORDS}u + j) * ${BN / 4}u + ${TX}u + tx];
${range(TM)
  .map(
    (i) =>
      `        s0_${i} += vec4<i32>(dot4I8Packed(a[${i}], b0.x), dot4I8Packed(a[${i}], b0.y), dot4I8Packed(a[${i}], b0.z), dot4I8Packed(a[${i}], b0.w));\n` +
      `        s1_${i} += vec4<i32>(dot4I8Packed(a[${i}], b1.x), dot4I8Packed(a[${i}], b1.y), dot4I8Packed(a[${i}], b1.z), dot4I8Packed(a[${i}], b1.w));`,
  )
  .join('\n')}
      }
${range(TM)
  .map((i) => `      acc0_${i} += vec4<f32>(s0_${i}) * (xd[${i}] * wd0);\n      acc1_${i} += vec4<f32>(s1_${i}) * (xd[${i}] * wd1);`)
  .join('\n')}
    }`,
    )
    .join('')
    // offsets: each value less its block's offset, times the x block's sum (the dequantized x values')
    .concat(
      int8.offset
        ? `
    {
      let xs = Xs[buf * ${BM / 4}u + ty];
      let wo0 = Wo[buf * ${BN / 4}u + tx];
      let wo1 = Wo[buf * ${BN / 4}u + ${TX}u + tx];
${range(TM)
  .map((i) => `      acc0_${i} -= xs[${i}] * wo0;\n      acc1_${i} -= xs[${i}] * wo1;`)
  .join('\n')}
    }`
        : '',
    );
  return kernelSource(
    [...inputs.bindings, ...out.bindings],
    `
var<workgroup> Xq: array<vec4<u32>, ${(2 * WORDS * BM) / 4}>;
var<workgroup> Xd: array<vec4<f32>, ${(2 * BM) / 4}>;
var<workgroup> Wq: array<vec4<u32>, ${(2 * WORDS * BN) / 4}>;
var<workgroup> Wd: array<vec4<f32>, ${(2 * parts * BN) / 4}>;${
      int8.offset ? `\nvar<workgroup> Xs: array<vec4<f32>, ${(2 * BM) / 4}>;\nvar<workgroup> Wo: array<vec4<f32>, ${(2 * BN) / 4}>;` : ''
    }
${preciseMath}

${int8.wgsl(s.n * s.k)}

${out.functions}

/** Block b of the x row this invocation quantizes into buffer buf: its scale and ${WORDS} words of int8. */
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
    Xq[(buf * ${WORDS}u + j) * ${BM / 4}u + tid / 4u][tid % 4u] = pack4xI8(q);
  }
  Xd[buf * ${BM / 4}u + tid / 4u][tid % 4u] = d;${int8.offset ? `\n  Xs[buf * ${BM / 4}u + tid / 4u][tid % 4u] = d * f32(sum.x + sum.y + sum.z + sum.w);` : ''}
}

/** Block b of the w column this invocation stages into buffer buf: words j0.. of it, and the scale where j0 is 0. */
fn stageW(wr: u32, live: bool, b: u32, buf: u32, c: u32, j0: u32) {
  // a column past w's rows stages zeros: its words are not read (nothing guards a read past the buffer)
  let block = wr * ${blocks}u + b;
  for (var j = j0; j < j0 + ${wordsEach}u; j++) {
    var q = 0u;
    if (live) { q = wInt8(block, j); }
    Wq[(buf * ${WORDS}u + j) * ${BN / 4}u + c / 4u][c % 4u] = q;
  }
  if (j0 == 0u) {
${range(parts)
  .map(
    (part) =>
      `    var d${part} = 0.0;\n    if (live) { d${part} = wScale(block, ${part}u); }\n    Wd[(buf * ${parts}u + ${part}u) * ${BN / 4}u + c / 4u][c % 4u] = d${part};`,
  )
  .join('\n')}${int8.offset ? `\n    var o = 0.0;\n    if (live) { o = wOffset(block); }\n    Wo[buf * ${BN / 4}u + c / 4u][c % 4u] = o;` : ''}
  }
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let tx = tid % ${TX}u;
  let ty = tid / ${TX}u;
  let M = ${u32Expr(s.rows)};
  let rowBase = wid.y * ${BM}u;
  let base = wid.x * ${columns}u;${splits > 1 ? `\n  let bBegin = wid.z * ${per}u;\n  let bEnd = min(${blocks}u, bBegin + ${per}u);` : ''}
  // the x row this invocation quantizes (the first ${BM} invocations), and its norm scale
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
  // the w column this invocation stages words of
  let wc = tid / ${WORDS / wordsEach}u;
  let wj = (tid % ${WORDS / wordsEach}u) * ${wordsEach}u;
  let wr = ${wRow('wc')};
  let wLive = ${wLive('wc')};
${range(TM)
  .map((i) => `  var acc0_${i} = vec4<f32>(0.0);\n  var acc1_${i} = vec4<f32>(0.0);`)
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
    workgroupBarrier();
  }${stores}
}`,
    // every split writes its partial sums, zeros where its range is empty
    [wg(across, columns), wg(s.rows, BM), wg(splits)],
  );
}
