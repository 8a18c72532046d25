// One WGSL kernel template per IR op. A template sees concrete constants for every static dim and
// reads T and P from the uniform; it guards every index, so any size (not only tile multiples) is safe.
import { match } from 'ts-pattern';
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import type { Op, TensorType } from '../ir/types.js';
import { weightFormats, type FormatName } from '../weights/formats.js';
import {
  activations,
  f32Lit,
  kernelSource,
  preciseMath,
  readBinding,
  normScale,
  u32Expr,
  wg,
  workgroupReduce,
  writeBinding,
  type KernelBinding,
  type KernelSource,
} from './wgsl.js';

export type { KernelSource } from './wgsl.js';

export interface KernelContext {
  typeOf(value: string): TensorType;
  /** the buffer that holds a value (a kv_write result lives in its cache) */
  bufferOf(value: string): string;
  /** how a weight is stored on the device (src/weights/formats.ts) */
  formatOf(value: string): FormatName;
}

const ROW_THREADS = 64;
/** lanes of one argmax row: a vocabulary of 32000 is 125 columns each */
const ARGMAX_THREADS = 256;
/** vec4s of a row each argmax lane loads before it compares them */
const ARGMAX_LOADS = 4;

const one = wg(1);

/** The value of a dimension that must be constant; `what` names it in the error. */
export function constDim(d: Affine, what: string): number {
  if (!A.isConstant(d)) throw new Error(`${what} must be a constant dimension, is ${A.format(d)}`);
  return d.c;
}

/** [rows, cols] view of a tensor: all leading dims folded into rows (a product of at most one symbolic dim). */
export function rowsCols(t: TensorType): { rows: Affine; cols: number } {
  const cols = constDim(t.shape[t.shape.length - 1]!, 'last dimension');
  let rows: Affine = A.constant(1);
  let factor = 1;
  for (const d of t.shape.slice(0, -1)) {
    if (A.isConstant(d)) factor *= d.c;
    else if (A.isConstant(rows)) rows = d;
    else throw new Error(`more than one symbolic dimension in ${t.shape.map(A.format).join(', ')}`);
  }
  return { rows: A.scale(rows, factor), cols };
}

/**
 * Rows picked by ids (embed's from its table, take_rows' from x): an invocation per element of the [rows, d] result,
 * `value` the element `col` of the row `id` names (a WGSL expression of id and col, over `source` and `functions`).
 */
function rowsKernel(
  ctx: KernelContext,
  n: Extract<Op, { op: 'embed' | 'take_rows' }>,
  source: KernelBinding,
  row: { readonly functions?: string; readonly value: string },
): KernelSource {
  const [rows] = n.type.shape;
  const d = constDim(n.type.shape[1]!, 'row width');
  return kernelSource(
    [source, readBinding(ctx.bufferOf(n.args[1]), 'ids', 'i32'), writeBinding(ctx.bufferOf(n.name), 'out')],
    `
${row.functions ?? ''}
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = gid.x;
  let r = gid.y;
  if (col >= ${d}u || r >= ${u32Expr(rows!)}) { return; }
  let id = u32(ids[r]);
  out[r * ${d}u + col] = ${row.value};
}`,
    [wg(d, ROW_THREADS), wg(rows!), one],
  );
}

/** x / sqrt(mean(x²) + eps) · weight over each of `rows` rows of `cols` values, a workgroup per row. */
function rmsnormKernel(ctx: KernelContext, n: Extract<Op, { op: 'rmsnorm' | 'head_rmsnorm' }>, rows: Affine, cols: number): KernelSource {
  return kernelSource(
    [readBinding(ctx.bufferOf(n.args[0]), 'x'), readBinding(ctx.bufferOf(n.args[1]), 'weight'), writeBinding(ctx.bufferOf(n.name), 'out')],
    `
var<workgroup> red: array<f32, ${ROW_THREADS}>;
${workgroupReduce('sumAll', ROW_THREADS, (a, b) => `${a} + ${b}`)}
${preciseMath}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let base = wid.x * ${cols}u;
  var ss = 0.0;
  for (var j = lane; j < ${cols}u; j += ${ROW_THREADS}u) { let v = x[base + j]; ss += v * v; }
  ss = sumAll(lane, ss);
  let scale = ${normScale('ss', cols, n.attrs.eps)};
  for (var j = lane; j < ${cols}u; j += ${ROW_THREADS}u) { out[base + j] = weight[j] * (scale * x[base + j]); }
}`,
    [wg(rows), one, one],
  );
}

export function kernelFor(node: Op, ctx: KernelContext): KernelSource {
  return match<Op, KernelSource>(node)
    .with({ op: 'embed' }, (n) => {
      // the table in its device format: element i decoded as the format's CPU reference does
      const { wgsl } = weightFormats[ctx.formatOf(n.args[0])];
      const table = ctx.typeOf(n.args[0]).shape.reduce((p, x) => p * constDim(x, 'embedding table'), 1);
      const d = constDim(n.type.shape[1]!, 'embedding width');
      return rowsKernel(ctx, n, readBinding(ctx.bufferOf(n.args[0]), 'w', wgsl.scalarType), {
        functions: `fn tableAt(i: u32) -> f32 { return ${wgsl.scalar(table)}; }\n`,
        value: `tableAt(id * ${d}u + col)`,
      });
    })
    .with({ op: 'take_rows' }, (n) => {
      const d = constDim(n.type.shape[1]!, 'row width');
      const from = u32Expr(ctx.typeOf(n.args[0]).shape[0]!);
      // an id outside x's rows gives zeros: nothing reads past x
      return rowsKernel(ctx, n, readBinding(ctx.bufferOf(n.args[0]), 'x'), {
        value: `select(0.0, x[min(id, ${from} - 1u) * ${d}u + col], id < ${from})`,
      });
    })
    .with({ op: 'rmsnorm' }, (n) => {
      const { rows, cols } = rowsCols(n.type);
      return rmsnormKernel(ctx, n, rows, cols);
    })
    .with({ op: 'head_rmsnorm' }, (n) => {
      // each head of each row is a row of its own: [M, H·hs] read as [M·H, hs]
      const { rows, cols } = rowsCols(n.type);
      const hs = n.attrs.headSize;
      return rmsnormKernel(ctx, n, A.scale(rows, cols / hs), hs);
    })
    .with({ op: 'matmul' }, (n) => {
      const [m, k] = ctx.typeOf(n.args[0]).shape;
      const kk = constDim(k!, 'matmul inner dimension');
      const nn = constDim(n.type.shape[1]!, 'matmul output width');
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'x'), readBinding(ctx.bufferOf(n.args[1]), 'w'), writeBinding(ctx.bufferOf(n.name), 'out')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = gid.x;
  let row = gid.y;
  if (col >= ${nn}u || row >= ${u32Expr(m!)}) { return; }
  let xBase = row * ${kk}u;
  let wBase = col * ${kk}u;
  var acc = 0.0;
  for (var i = 0u; i < ${kk}u; i++) { acc += x[xBase + i] * w[wBase + i]; }
  out[row * ${nn}u + col] = acc;
}`,
        [wg(nn, ROW_THREADS), wg(m!), one],
      );
    })
    .with({ op: 'rope' }, (n) => {
      const [rows, dd] = n.type.shape;
      const d = constDim(dd!, 'rope width');
      const half = n.attrs.headSize / 2;
      return kernelSource(
        [
          readBinding(ctx.bufferOf(n.args[0]), 'x'),
          readBinding(ctx.bufferOf(n.args[1]), 'cosT'),
          readBinding(ctx.bufferOf(n.args[2]), 'sinT'),
          writeBinding(ctx.bufferOf(n.name), 'out'),
        ],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let pair = gid.x;
  let row = gid.y;
  if (pair >= ${d / 2}u || row >= ${u32Expr(rows!)}) { return; }
  let at = (dims.P + row) * ${half}u + pair % ${half}u;
  let c = cosT[at];
  let s = sinT[at];
  let i = row * ${d}u + 2u * pair;
  let x0 = x[i];
  let x1 = x[i + 1u];
  out[i] = x0 * c - x1 * s;
  out[i + 1u] = x0 * s + x1 * c;
}`,
        [wg(d / 2, ROW_THREADS), wg(rows!), one],
      );
    })
    .with({ op: 'kv_write' }, (n) => {
      const [rows, dd] = ctx.typeOf(n.args[1]).shape;
      const d = constDim(dd!, 'cache width');
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[1]), 'x'), writeBinding(ctx.bufferOf(n.args[0]), 'cache')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = gid.x;
  let row = gid.y;
  if (col >= ${d}u || row >= ${u32Expr(rows!)}) { return; }
  cache[(dims.P + row) * ${d}u + col] = x[row * ${d}u + col];
}`,
        [wg(d, ROW_THREADS), wg(rows!), one],
      );
    })
    .with({ op: 'attn_scores' }, (n) => {
      const { heads, kvHeads, headSize } = n.attrs;
      const [, rows, keys] = n.type.shape;
      const qd = heads * headSize;
      const kd = kvHeads * headSize;
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'q'), readBinding(ctx.bufferOf(n.args[1]), 'k'), writeBinding(ctx.bufferOf(n.name), 'out')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let key = gid.x;
  let row = gid.y;
  let head = gid.z;
  let rows = ${u32Expr(rows!)};
  let keys = ${u32Expr(keys!)};
  if (key >= keys || row >= rows) { return; }
  let at = (head * rows + row) * keys + key;
  if (key > keys - rows + row) { out[at] = 0.0; return; }
  let qBase = row * ${qd}u + head * ${headSize}u;
  let kBase = key * ${kd}u + (head / ${heads / kvHeads}u) * ${headSize}u;
  var acc = 0.0;
  for (var i = 0u; i < ${headSize}u; i++) { acc += q[qBase + i] * k[kBase + i]; }
  out[at] = preciseDiv(acc, ${f32Lit(Math.sqrt(headSize))});
}
${preciseMath}`,
        [wg(keys!, ROW_THREADS), wg(rows!), wg(heads)],
      );
    })
    .with({ op: 'softmax' }, (n) => {
      const shape = n.type.shape;
      const cols = shape[shape.length - 1]!;
      const rows = shape.length >= 2 ? shape[shape.length - 2]! : A.constant(1);
      const lead = shape.slice(0, -2).reduce((p, d) => p * constDim(d, 'softmax batch dimension'), 1);
      const C = u32Expr(cols);
      const R = u32Expr(rows);
      const valid = n.attrs.causal ? `${C} - ${R} + row + 1u` : C;
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'x'), writeBinding(ctx.bufferOf(n.name), 'out')],
        `
var<workgroup> red: array<f32, ${ROW_THREADS}>;
${workgroupReduce('maxAll', ROW_THREADS, (a, b) => `max(${a}, ${b})`)}
${workgroupReduce('sumAll', ROW_THREADS, (a, b) => `${a} + ${b}`)}
${preciseMath}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = wid.x;
  let cols = ${C};
  let base = (wid.y * ${R} + row) * cols;
  let n = ${valid};
  var m = -3.402823e38;
  for (var j = lane; j < n; j += ${ROW_THREADS}u) { m = max(m, x[base + j]); }
  m = maxAll(lane, m);
  var s = 0.0;
  for (var j = lane; j < n; j += ${ROW_THREADS}u) { let e = preciseExp(x[base + j] - m); out[base + j] = e; s += e; }
  s = sumAll(lane, s);
  for (var j = lane; j < n; j += ${ROW_THREADS}u) { out[base + j] = preciseDiv(out[base + j], s); }
  for (var j = n + lane; j < cols; j += ${ROW_THREADS}u) { out[base + j] = 0.0; }
}`,
        [wg(rows), wg(lead), one],
      );
    })
    .with({ op: 'attn_mix' }, (n) => {
      const { heads, kvHeads, headSize } = n.attrs;
      const [, rows, keys] = ctx.typeOf(n.args[0]).shape;
      const qd = heads * headSize;
      const kd = kvHeads * headSize;
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'p'), readBinding(ctx.bufferOf(n.args[1]), 'v'), writeBinding(ctx.bufferOf(n.name), 'out')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let col = gid.x;
  let row = gid.y;
  let rows = ${u32Expr(rows!)};
  let keys = ${u32Expr(keys!)};
  if (col >= ${qd}u || row >= rows) { return; }
  let head = col / ${headSize}u;
  let vBase = (head / ${heads / kvHeads}u) * ${headSize}u + col % ${headSize}u;
  let pBase = (head * rows + row) * keys;
  let n = keys - rows + row + 1u;
  var acc = 0.0;
  for (var j = 0u; j < n; j++) { acc += p[pBase + j] * v[j * ${kd}u + vBase]; }
  out[row * ${qd}u + col] = acc;
}`,
        [wg(qd, ROW_THREADS), wg(rows!), one],
      );
    })
    .with({ op: 'layernorm' }, (n) => {
      const { rows, cols } = rowsCols(n.type);
      return kernelSource(
        [
          readBinding(ctx.bufferOf(n.args[0]), 'x'),
          readBinding(ctx.bufferOf(n.args[1]), 'weight'),
          readBinding(ctx.bufferOf(n.args[2]), 'bias'),
          writeBinding(ctx.bufferOf(n.name), 'out'),
        ],
        `
var<workgroup> red: array<f32, ${ROW_THREADS}>;
${workgroupReduce('sumAll', ROW_THREADS, (a, b) => `${a} + ${b}`)}
${preciseMath}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let base = wid.x * ${cols}u;
  var s = 0.0;
  for (var j = lane; j < ${cols}u; j += ${ROW_THREADS}u) { s += x[base + j]; }
  let mean = preciseDiv(sumAll(lane, s), ${f32Lit(cols)});
  var v = 0.0;
  for (var j = lane; j < ${cols}u; j += ${ROW_THREADS}u) { let d = x[base + j] - mean; v += d * d; }
  let rstd = ${normScale('sumAll(lane, v)', cols, n.attrs.eps)};
  for (var j = lane; j < ${cols}u; j += ${ROW_THREADS}u) { out[base + j] = (x[base + j] - mean) * rstd * weight[j] + bias[j]; }
}`,
        [wg(rows), one, one],
      );
    })
    .with({ op: 'add_bias' }, (n) => {
      const { rows, cols } = rowsCols(n.type);
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'x'), readBinding(ctx.bufferOf(n.args[1]), 'bias'), writeBinding(ctx.bufferOf(n.name), 'out')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= ${cols}u || gid.y >= ${u32Expr(rows)}) { return; }
  let i = gid.y * ${cols}u + gid.x;
  out[i] = x[i] + bias[gid.x];
}`,
        [wg(cols, ROW_THREADS), wg(rows), one],
      );
    })
    .with({ op: 'slice' }, (n) => {
      const [rows, cc] = ctx.typeOf(n.args[0]).shape;
      const cols = constDim(cc!, 'slice input width');
      const { start, size } = n.attrs;
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'x'), writeBinding(ctx.bufferOf(n.name), 'out')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= ${size}u || gid.y >= ${u32Expr(rows!)}) { return; }
  out[gid.y * ${size}u + gid.x] = x[gid.y * ${cols}u + ${start}u + gid.x];
}`,
        [wg(size, ROW_THREADS), wg(rows!), one],
      );
    })
    .with({ op: 'argmax' }, (n) => {
      const { rows, cols } = rowsCols(ctx.typeOf(n.args[0]));
      // Each lane scans its columns in order, keeping the first largest; lanes combine by value, then column. Rows
      // of whole vec4s are read ARGMAX_LOADS vec4s at a time, all loads issued before the comparisons (one
      // workgroup reads the whole row: its time is the loads' latency, not their bytes).
      const vec = cols % 4 === 0;
      const C4 = cols / 4;
      const stride = ARGMAX_THREADS * ARGMAX_LOADS;
      const loads = Array.from({ length: ARGMAX_LOADS }, (_, u) => u);
      const scan = vec
        ? `  let base = wid.x * ${C4}u;
  let first = x[base + min(lane, ${C4 - 1}u)];
  var value = first.x;
  var column = 4u * min(lane, ${C4 - 1}u);
  for (var j = lane; j < ${C4}u; j += ${stride}u) {
${loads.map((u) => `    let v${u} = x[base + min(j + ${u * ARGMAX_THREADS}u, ${C4 - 1}u)];`).join('\n')}
${loads
  .map(
    (u) => `    if (j + ${u * ARGMAX_THREADS}u < ${C4}u) {
      let c = 4u * (j + ${u * ARGMAX_THREADS}u);
      if (v${u}.x > value) { value = v${u}.x; column = c; }
      if (v${u}.y > value) { value = v${u}.y; column = c + 1u; }
      if (v${u}.z > value) { value = v${u}.z; column = c + 2u; }
      if (v${u}.w > value) { value = v${u}.w; column = c + 3u; }
    }`,
  )
  .join('\n')}
  }`
        : `  let base = wid.x * ${cols}u;
  var value = x[base + min(lane, ${cols - 1}u)];
  var column = min(lane, ${cols - 1}u);
  for (var j = lane + ${ARGMAX_THREADS}u; j < ${cols}u; j += ${ARGMAX_THREADS}u) {
    let v = x[base + j];
    if (v > value) { value = v; column = j; }
  }`;
      return kernelSource(
        [readBinding(ctx.bufferOf(n.args[0]), 'x', vec ? 'vec4<f32>' : 'f32'), writeBinding(ctx.bufferOf(n.name), 'out', 'i32')],
        `
var<workgroup> bestValue: array<f32, ${ARGMAX_THREADS}>;
var<workgroup> bestColumn: array<u32, ${ARGMAX_THREADS}>;

@compute @workgroup_size(${ARGMAX_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
${scan}
  bestValue[lane] = value;
  bestColumn[lane] = column;
  workgroupBarrier();
  for (var k = ${ARGMAX_THREADS / 2}u; k > 0u; k = k >> 1u) {
    if (lane < k) {
      let v = bestValue[lane + k];
      let c = bestColumn[lane + k];
      if (v > bestValue[lane] || (v == bestValue[lane] && c < bestColumn[lane])) { bestValue[lane] = v; bestColumn[lane] = c; }
    }
    workgroupBarrier();
  }
  if (lane == 0u) { out[wid.x] = i32(bestColumn[0]); }
}`,
        [wg(rows), one, one],
      );
    })
    .with({ op: 'add' }, { op: 'mul' }, { op: 'silu' }, { op: 'gelu' }, (n) => {
      const { rows, cols } = rowsCols(n.type);
      const expr = match(n)
        .with({ op: 'add' }, () => 'a[i] + b[i]')
        .with({ op: 'mul' }, () => 'a[i] * b[i]')
        .with({ op: 'silu' }, { op: 'gelu' }, (n) => activations[n.op]('a[i]'))
        .exhaustive();
      const inputs = n.args.map((arg, i) => readBinding(ctx.bufferOf(arg), 'ab'[i]!));
      return kernelSource(
        [...inputs, writeBinding(ctx.bufferOf(n.name), 'out')],
        `
@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= ${cols}u || gid.y >= ${u32Expr(rows)}) { return; }
  let i = gid.y * ${cols}u + gid.x;
  out[i] = ${expr};
}
${n.op === 'silu' || n.op === 'gelu' ? preciseMath : ''}`,
        [wg(cols, ROW_THREADS), wg(rows), one],
      );
    })
    .exhaustive();
}
