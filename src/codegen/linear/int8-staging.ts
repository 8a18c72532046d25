// What the int8 tiles (int8.ts with dot4I8Packed, int8-matrix.ts on subgroup matrices) share: the dispatch that quantizes
// x once per row before them, staging blocks of those rows and of w's columns into workgroup memory (each tile lays
// them out as its products read them), the invocations' setup for it, and the double-buffered loop over K's blocks.
import * as A from '../../affine.js';
import {
  kernelSource,
  preciseMath,
  readBinding,
  u32Expr,
  wg,
  workgroupReduce,
  writeBinding,
  type KernelBinding,
  type KernelParts,
  type KernelSource,
} from '../wgsl.js';
import { weightFormats, type Int8Form } from '../../weights/formats.js';
import { epilogueOf } from './epilogue.js';
import { rowScale, xElement } from './inputs.js';
import { INT8_BLOCK, tileColumns, type LinearOptions, type LinearSpec } from './spec.js';
import { tileRows } from './tiled.js';

/** packed int8 words (four elements each) per block */
export const WORDS = INT8_BLOCK / 4;

/** What an int8 tile of `rows` rows over `splits` ranges of K's blocks has from its spec alone. */
export interface Int8Tile {
  readonly form: Int8Form;
  /** the quantized x rows (s.x names them: see int8Parts) and w: as vec4<u32> where the form reads quads, else as its format binds it */
  readonly bindings: readonly KernelBinding[];
  /** whether w is staged by the form's quads (wQuad), else by its words (wInt8) */
  readonly quads: boolean;
  /** the WGSL that reads w's int8 blocks, quads or words, with wScale (and wOffset) */
  readonly wFunctions: string;
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
  const { wgsl } = weightFormats[o.weights];
  const form = wgsl.int8;
  if (!form) throw new Error(`${o.weights} weights have no int8 form`);
  if (s.k % INT8_BLOCK !== 0) throw new Error(`int8 matmuls need K a multiple of ${INT8_BLOCK}, K is ${s.k}`);
  const blocks = s.k / INT8_BLOCK;
  const per = splits > 1 ? Math.ceil(blocks / splits) : blocks;
  const { across, per: columns } = tileColumns(s);
  const { wRow, wLive } = tileRows(s, epilogueOf(s));
  const range = splits > 1 ? `\n  let bBegin = wid.z * ${per}u;\n  let bEnd = min(${blocks}u, bBegin + ${per}u);` : '';
  // w staged four words at once (one 16-byte load, the form's shifts and masks on the vec4) where its words are
  // assembled: the 1B's Q4_K_M prefill went from 12,894 / 12,828 to 13,101 / 14,497 tok/s at 128 tokens and from
  // 19,665 / 19,707 to 20,993 / 21,957 at 512 (H100, each build in turn, one call). Q8_0's words, one load each, stay
  // words: its quads' tiles ran faster alone, but its 128-token prefill went from 17,132 / 16,818 to 15,398 / 15,305.
  const quads = form.quads !== undefined && !form.stored;
  return {
    form,
    quads,
    bindings: [readBinding(s.x, 'xq', 'u32'), readBinding(s.w, 'w', quads ? 'vec4<u32>' : wgsl.vectorType)],
    wFunctions: quads ? form.quads!(s.n * s.k) : form.wgsl(s.n * s.k),
    wRow,
    wLive,
    bBegin: splits > 1 ? 'bBegin' : '0u',
    bEnd: splits > 1 ? 'bEnd' : `${blocks}u`,
    origin: `  let M = ${u32Expr(s.rows)};\n  let rowBase = wid.y * ${rows}u;\n  let base = wid.x * ${columns}u;${range}`,
    workgroups: [wg(across, columns), wg(s.rows, rows), wg(splits)],
  };
}

/**
 * Where a tile keeps a staged block in buffer `buf` (WGSL expressions to assign to): word j of x row `row` (of the
 * tile), its scale and its sum (the dequantized values'); word j of w column `c`, its scale (of each part: a scale a
 * block, or one per 16 values) and its offset.
 */
export interface StagingLayout {
  xWord(row: string, j: string): string;
  xScale(row: string): string;
  xSum(row: string): string;
  wWord(j: string): string;
  wScale(part: number): string;
  readonly wOffset: string;
  /** the WGSL type a word is stored as (u32, or i32 for subgroup matrix loads) */
  readonly wordType: 'u32' | 'i32';
}

const indices = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** x words each invocation stages a block: a tile of `rows` rows over `threads` invocations (rows·8 words in all). */
const xWordsEach = (rows: number, threads: number): number => (rows * WORDS) / threads;

/**
 * What an invocation stages of a block, in two steps so that the block after the one being multiplied is read into
 * registers before the products and written to workgroup memory after them (the loads' latency behind the
 * products): `fn fetch(b) -> Staged` reads block b — `xEach` words of x row xr from word xj, the scale and sum of
 * x row xRow (the first `rows` invocations), `wordsEach` words of w column wc from word wj (four at a time where
 * `quads`) and where wj is 0 its scales and offset; `fn put(v, buf)` stores them into buffer buf. A row or column past the end stages zeros
 * without reading (nothing guards a read past a buffer).
 */
export function stagingFunctions(
  s: LinearSpec,
  form: Int8Form,
  quads: boolean,
  rows: number,
  threads: number,
  wordsEach: number,
  layout: StagingLayout,
): string {
  if (quads && wordsEach % 4 !== 0) throw new Error(`int8 tiles stage w's quads whole: ${wordsEach} words an invocation`);
  const blocks = s.k / INT8_BLOCK;
  const stride = quantizedRowWords(s.k);
  const xEach = xWordsEach(rows, threads);
  const word = (v: string): string => (layout.wordType === 'u32' ? v : `bitcast<i32>(${v})`);
  return `struct Staged {
${indices(xEach)
  .map((j) => `  x${j}: u32,`)
  .join('\n')}
  xd: f32,
  xs: f32,
${indices(wordsEach)
  .map((j) => `  w${j}: u32,`)
  .join('\n')}
${indices(form.scales)
  .map((p) => `  wd${p}: f32,`)
  .join('\n')}
  wo: f32,
}

/** Block b as this invocation stages it (see stagingSetup for which rows, columns and words). */
fn fetch(b: u32) -> Staged {
  var v: Staged;
  if (xLiveWords) {
    let at = xRowWords * ${stride}u + b * ${WORDS}u + xj;
${indices(xEach)
  .map((j) => `    v.x${j} = xq[at + ${j}u];`)
  .join('\n')}
  }
  if (xLive) {
    let at = xRow * ${stride}u + ${s.k / 4}u + 2u * b;
    v.xd = bitcast<f32>(xq[at]);${form.offset ? '\n    v.xs = bitcast<f32>(xq[at + 1u]);' : ''}
  }
  if (wLive) {
    let block = wr * ${blocks}u + b;
${
  quads
    ? indices(wordsEach / 4)
        .map(
          (h) =>
            `    let q${h} = wQuad(block, wj / 4u + ${h}u);\n${indices(4)
              .map((c) => `    v.w${4 * h + c} = q${h}[${c}];`)
              .join('\n')}`,
        )
        .join('\n')
    : indices(wordsEach)
        .map((j) => `    v.w${j} = wInt8(block, wj + ${j}u);`)
        .join('\n')
}
    if (wj == 0u) {
${indices(form.scales)
  .map((p) => `      v.wd${p} = wScale(block, ${p}u);`)
  .join('\n')}${form.offset ? '\n      v.wo = wOffset(block);' : ''}
    }
  }
  return v;
}

/** A staged block into buffer buf. */
fn put(v: Staged, buf: u32) {
${indices(xEach)
  .map((j) => `  ${layout.xWord('xr', `xj + ${j}u`)} = ${word(`v.x${j}`)};`)
  .join('\n')}
  if (tid < ${rows}u) {
    ${layout.xScale('tid')} = v.xd;${form.offset ? `\n    ${layout.xSum('tid')} = v.xs;` : ''}
  }
${indices(wordsEach)
  .map((j) => `  ${layout.wWord(`wj + ${j}u`)} = ${word(`v.w${j}`)};`)
  .join('\n')}
  if (wj == 0u) {
${indices(form.scales)
  .map((p) => `    ${layout.wScale(p)} = v.wd${p};`)
  .join('\n')}${form.offset ? `\n    ${layout.wOffset} = v.wo;` : ''}
  }
}`;
}

/**
 * The private variables fetch and put read (the invocation's part in staging, set once in main by stagingSetup):
 * invocation tid stages words of one x row and of one w column, and the first `rows` the scale and sum of row tid.
 */
export const stagingPrivates = `var<private> tid: u32;
var<private> xr: u32;
var<private> xj: u32;
var<private> xRowWords: u32;
var<private> xLiveWords: bool;
var<private> xRow: u32;
var<private> xLive: bool;
var<private> wc: u32;
var<private> wj: u32;
var<private> wr: u32;
var<private> wLive: bool;`;

/** main's lines that set stagingPrivates; `lid` is main's local_invocation_index. */
export function stagingSetup(rows: number, threads: number, wordsEach: number, wRow: (c: string) => string, wLive: (c: string) => string): string {
  const xEach = xWordsEach(rows, threads);
  return `
  tid = lid;
  // x words xj.. of tile row xr; the scale and sum of tile row tid (the first ${rows} invocations)
  xr = lid / ${WORDS / xEach}u;
  xj = (lid % ${WORDS / xEach}u) * ${xEach}u;
  xRowWords = rowBase + xr;
  xLiveWords = xRowWords < M;
  xRow = rowBase + lid;
  xLive = lid < ${rows}u && xRow < M;
  // w words wj.. of tile column wc
  wc = lid / ${WORDS / wordsEach}u;
  wj = (lid % ${WORDS / wordsEach}u) * ${wordsEach}u;
  wr = ${wRow('wc')};
  wLive = ${wLive('wc')};`;
}

/**
 * The loop over blocks bBegin..bEnd: the first put into buffer 0 of workgroup memory; then per block, the next one
 * read into registers, `products` of this one (buffer `buf`), the next one stored into the other buffer, and a
 * barrier. `products` may place barriers of its own; the other buffer was last read before the previous block's
 * barrier.
 */
export function blockLoop(bBegin: string, bEnd: string, products: string): string {
  return `
  if (${bBegin} < ${bEnd}) { put(fetch(${bBegin}), 0u); }
  workgroupBarrier();
  for (var b = ${bBegin}; b < ${bEnd}; b++) {
    let buf = (b - ${bBegin}) & 1u;
    var next: Staged;
    if (b + 1u < ${bEnd}) { next = fetch(b + 1u); }${products}
    if (b + 1u < ${bEnd}) { put(next, buf ^ 1u); }
    workgroupBarrier();
  }`;
}

/**
 * The arithmetic of x's int8 quantization (llama.cpp's q8_1), which every int8 kernel's quantizer calls so that
 * their bits agree: `fn int8Scale(amax) -> vec2<f32>` — d = amax/127 and its inverse (0 where d is 0) — and
 * `fn int8Round(v, id) -> vec4<i32>` — round(v/d) within ±127.
 */
export const int8QuantizeWgsl = `fn int8Scale(amax: f32) -> vec2<f32> {
  let d = preciseDiv(amax, 127.0);
  return vec2<f32>(d, select(0.0, preciseDiv(1.0, d), d > 0.0));
}

fn int8Round(v: vec4<f32>, id: f32) -> vec4<i32> {
  return vec4<i32>(clamp(round(v * id), vec4<f32>(-127.0), vec4<f32>(127.0)));
}`;

/**
 * `fn quantizeBlock(b) -> QuantizedBlock`: block b of the x row at `xBase` (vec4s; after the norm, by the private
 * `scale`, where the spec has one) quantized as llama.cpp's q8_1 — d = max|x|/127, q = round(x/d) — its eight words
 * of four int8 (pack4xI8's order), d, and the block's sum d·Σq (the dequantized values').
 */
export function quantizeBlockWgsl(s: LinearSpec): string {
  return `${int8QuantizeWgsl}

struct QuantizedBlock { words: array<u32, ${WORDS}>, d: f32, sum: f32 }

fn quantizeBlock(b: u32) -> QuantizedBlock {
  var v: array<vec4<f32>, ${WORDS}>;
  var amax = 0.0;
  for (var j = 0u; j < ${WORDS}u; j++) {
    let kk = b * ${WORDS}u + j;
    v[j] = ${xElement(s, 'xBase + kk', 'kk')};
    let m = abs(v[j]);
    amax = max(amax, max(max(m.x, m.y), max(m.z, m.w)));
  }
  let di = int8Scale(amax);
  let d = di.x;
  var out: QuantizedBlock;
  var sum = vec4<i32>(0);
  for (var j = 0u; j < ${WORDS}u; j++) {
    let q = int8Round(v[j], di.y);
    sum += q;
    out.words[j] = pack4xI8(q);
  }
  out.d = d;
  out.sum = d * f32(sum.x + sum.y + sum.z + sum.w);
  return out;
}`;
}

/** u32 words of one quantized x row: its K/4 words of four int8, then each block's scale and sum (f32 bits). */
export const quantizedRowWords = (k: number): number => k / 4 + 2 * (k / INT8_BLOCK);

/** Invocations of quantizeKernel's workgroup: one row. */
const QUANTIZE_THREADS = 64;

/**
 * The dispatch before an int8 tile: each x row (after the norm, where the spec has one) quantized once per 32-wide
 * block — d = max|x|/127, q = round(x/d), the block's sum d·Σq — into `out` (quantizedRowWords a row), which every
 * column tile then reads instead of quantizing the rows again. One workgroup a row.
 */
export function quantizeKernel(s: LinearSpec, out: string): KernelSource {
  const K4 = s.k / 4;
  const blocks = s.k / INT8_BLOCK;
  const stride = quantizedRowWords(s.k);
  const bindings = [
    readBinding(s.x, 'x', 'vec4<f32>'),
    ...(s.norm ? [readBinding(s.norm.weight, 'normWeight', 'vec4<f32>')] : []),
    writeBinding(out, 'xq', 'u32'),
  ];
  const norm = s.norm
    ? `
  var ss = 0.0;
  for (var i = tid; i < ${K4}u; i += ${QUANTIZE_THREADS}u) { let v = x[xBase + i]; ss += dot(v, v); }
  scale = ${rowScale(s, `sumRow(tid, ss)`)};`
    : '';
  return kernelSource(
    bindings,
    `
var<workgroup> red: array<f32, ${QUANTIZE_THREADS}>;
${s.norm ? workgroupReduce('sumRow', QUANTIZE_THREADS, (a, b) => `${a} + ${b}`) : ''}
${s.norm ? 'var<private> scale: f32;' : ''}
var<private> xBase: u32;
${preciseMath}

${quantizeBlockWgsl(s)}

@compute @workgroup_size(${QUANTIZE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row = wid.x;
  xBase = row * ${K4}u;${norm}
  let base = row * ${stride}u;
  for (var b = tid; b < ${blocks}u; b += ${QUANTIZE_THREADS}u) {
    let q = quantizeBlock(b);
    for (var j = 0u; j < ${WORDS}u; j++) { xq[base + b * ${WORDS}u + j] = q.words[j]; }
    xq[base + ${K4}u + 2u * b] = bitcast<u32>(q.d);
    xq[base + ${K4}u + 2u * b + 1u] = bitcast<u32>(q.sum);
  }
}`,
    [wg(s.rows), wg(1), wg(1)],
  );
}

/**
 * An int8 tile's dispatches: quantizeKernel into the scratch rows `${name}.xq`, then `tile`'s (one, or a split's
 * two), which read x from there — the spec they get names the scratch rows as x, without the norm.
 */
export function int8Parts(s: LinearSpec, name: string, tile: (quantized: LinearSpec) => KernelParts): KernelParts {
  const xq = { name: `${name}.xq`, shape: [s.rows, A.constant(quantizedRowWords(s.k))] };
  const { norm: _, ...rest } = s;
  const parts = tile({ ...rest, x: xq.name });
  const [first, ...others] = parts.kernels;
  return {
    kernels: [
      { suffix: 'quantize', source: quantizeKernel(s, xq.name) },
      { ...first!, after: first!.after ?? 'int8: the tile reads the x blocks the quantize dispatch wrote' },
      ...others,
    ],
    scratch: [xq, ...parts.scratch],
  };
}
