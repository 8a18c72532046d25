// What the int8 tiles (int8.ts with dot4I8Packed, int8-matrix.ts on subgroup matrices) share: quantizing a block of
// an x row and staging a block of a w column into workgroup memory, the invocations' setup for it, and the
// double-buffered loop over K's blocks. Each tile lays the staged values out as its products read them.
import { u32Expr, wg, type KernelSource } from '../wgsl.js';
import { weightFormats, type Int8Form } from '../../weights/formats.js';
import { epilogueOf } from './epilogue.js';
import { linearInputs, rowScale, xElement, type LinearInputs } from './inputs.js';
import { INT8_BLOCK, tileColumns, type LinearOptions, type LinearSpec } from './spec.js';
import { tileRows } from './tiled.js';

/** packed int8 words (four elements each) per block */
export const WORDS = INT8_BLOCK / 4;

/** What an int8 tile of `rows` rows over `splits` ranges of K's blocks has from its spec alone. */
export interface Int8Tile {
  readonly form: Int8Form;
  readonly inputs: LinearInputs;
  /** w's row of tile column c, and whether it exists */
  readonly wRow: (c: string) => string;
  readonly wLive: (c: string) => string;
  /** the WGSL of this workgroup's first and last-plus-one block */
  readonly bBegin: string;
  readonly bEnd: string;
  /** main's first lines: M, the tile's first row and column, the block range of a split */
  readonly origin: string;
  /** a tile of columns by rows, a split each (every split writes its partial sums, zeros where its range is empty) */
  readonly workgroups: KernelSource['workgroups'];
}

export function int8Tile(s: LinearSpec, o: LinearOptions, rows: number, splits: number): Int8Tile {
  const form = weightFormats[o.weights].wgsl.int8;
  if (!form) throw new Error(`${o.weights} weights have no int8 form`);
  if (s.k % INT8_BLOCK !== 0) throw new Error(`int8 matmuls need K a multiple of ${INT8_BLOCK}, K is ${s.k}`);
  const blocks = s.k / INT8_BLOCK;
  const per = splits > 1 ? Math.ceil(blocks / splits) : blocks;
  const { across, per: columns } = tileColumns(s);
  const { wRow, wLive } = tileRows(s, epilogueOf(s));
  const range = splits > 1 ? `\n  let bBegin = wid.z * ${per}u;\n  let bEnd = min(${blocks}u, bBegin + ${per}u);` : '';
  return {
    form,
    inputs: linearInputs(s, o.weights, 'vec4s'),
    wRow,
    wLive,
    bBegin: splits > 1 ? 'bBegin' : '0u',
    bEnd: splits > 1 ? 'bEnd' : `${blocks}u`,
    origin: `  let M = ${u32Expr(s.rows)};\n  let rowBase = wid.y * ${rows}u;\n  let base = wid.x * ${columns}u;${range}`,
    workgroups: [wg(across, columns), wg(s.rows, rows), wg(splits)],
  };
}

/**
 * Where a tile keeps a staged block in buffer `buf` (WGSL expressions to assign to): word j of the x row the
 * invocation `tid` quantizes, its scale and its sum (the dequantized values'); word j of w column `c`, its scale
 * (of each part: a scale a block, or one per 16 values) and its offset.
 */
export interface StagingLayout {
  xWord(j: string): string;
  readonly xScale: string;
  readonly xSum: string;
  wWord(j: string): string;
  wScale(part: number): string;
  readonly wOffset: string;
  /** the WGSL type a word is stored as (u32, or i32 for subgroup matrix loads) */
  readonly wordType: 'u32' | 'i32';
}

const indices = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * `fn stageX`: block b of an x row quantized (d = max|x|/127, q = round(x/d), after the norm) into the layout;
 * `fn stageW`: words j0.. of block b of a w column, and its scales and offset where j0 is 0. A column past w's
 * rows stages zeros without reading (nothing guards a read past a buffer).
 */
export function stagingFunctions(s: LinearSpec, form: Int8Form, wordsEach: number, layout: StagingLayout): string {
  const K4 = s.k / 4;
  const blocks = s.k / INT8_BLOCK;
  const word = (v: string): string => (layout.wordType === 'u32' ? v : `bitcast<i32>(${v})`);
  return `/** Block b of x row \`row\` (scaled by its norm \`scale\`) into buffer buf, as invocation tid quantizes it. */
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
    ${layout.xWord('j')} = ${word('pack4xI8(q)')};
  }
  ${layout.xScale} = d;${form.offset ? `\n  ${layout.xSum} = d * f32(sum.x + sum.y + sum.z + sum.w);` : ''}
}

/** Words j0.. of block b of w column c (w row wr) into buffer buf, and its scales${form.offset ? ' and offset' : ''} where j0 is 0. */
fn stageW(wr: u32, live: bool, b: u32, buf: u32, c: u32, j0: u32) {
  let block = wr * ${blocks}u + b;
  for (var j = j0; j < j0 + ${wordsEach}u; j++) {
    var q = 0u;
    if (live) { q = wInt8(block, j); }
    ${layout.wWord('j')} = ${word('q')};
  }
  if (j0 == 0u) {
${indices(form.scales)
  .map((part) => `    var d${part} = 0.0;\n    if (live) { d${part} = wScale(block, ${part}u); }\n    ${layout.wScale(part)} = d${part};`)
  .join('\n')}${form.offset ? `\n    var o = 0.0;\n    if (live) { o = wOffset(block); }\n    ${layout.wOffset} = o;` : ''}
  }
}`;
}

/**
 * The invocations' part in staging: the first `rows` quantize one x row each (xRow, xLive, and its norm scale),
 * every invocation stages `wordsEach` words of one w column (wc, wj, wr, wLive).
 */
export function stagingSetup(s: LinearSpec, rows: number, wordsEach: number, wRow: (c: string) => string, wLive: (c: string) => string): string {
  const K4 = s.k / 4;
  const norm = s.norm
    ? `
  if (xLive) {
    var ss = 0.0;
    for (var i = 0u; i < ${K4}u; i++) { let v = x[xRow * ${K4}u + i]; ss += v.x * v.x; ss += v.y * v.y; ss += v.z * v.z; ss += v.w * v.w; }
    scale = ${rowScale(s, 'ss')};
  }`
    : '';
  return `
  // the x row this invocation quantizes (the first ${rows} invocations), and its norm scale
  let xRow = rowBase + tid;
  let xLive = tid < ${rows}u && xRow < M;
  var scale = 0.0;${norm}
  // the w column this invocation stages words of
  let wc = tid / ${WORDS / wordsEach}u;
  let wj = (tid % ${WORDS / wordsEach}u) * ${wordsEach}u;
  let wr = ${wRow('wc')};
  let wLive = ${wLive('wc')};`;
}

/**
 * The loop over blocks bBegin..bEnd: the first block staged into buffer 0, then per block the next staged into
 * the other buffer while `products` reads this one (`buf`). `products` must end every read of a buffer before a
 * barrier: one at the end of each block unless it places its own (`endBarrier` false).
 */
export function blockLoop(rows: number, bBegin: string, bEnd: string, products: string, endBarrier: boolean): string {
  const stage = (b: string, buf: string): string => `if (tid < ${rows}u) { stageX(xRow, xLive, scale, ${b}, ${buf}, tid); }
    stageW(wr, wLive, ${b}, ${buf}, wc, wj);`;
  return `
  if (${bBegin} < ${bEnd}) {
    ${stage(bBegin, '0u')}
  }
  workgroupBarrier();
  for (var b = ${bBegin}; b < ${bEnd}; b++) {
    let buf = (b - ${bBegin}) & 1u;
    // the next block goes to the other buffer, last read before the previous barrier
    if (b + 1u < ${bEnd}) {
      ${stage('b + 1u', 'buf ^ 1u').replace('\n    ', '\n      ')}
    }${products}${endBarrier ? '\n    workgroupBarrier();' : ''}
  }`;
}
