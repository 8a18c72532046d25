// Fused attention, replacing attn_scores → softmax → attn_mix: one flash-attention kernel for prefill and
// split-K flash-decoding (partial, then combine) for a single row. Every index is guarded and every
// workgroupBarrier sits in uniform control flow, so any rows, keys and headSize ≤ 256 are safe.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import {
  f32Lit,
  kernelSource,
  preciseMath,
  readBinding,
  subgroupBuiltins,
  u32Expr,
  wg,
  workgroupReduce,
  writeBinding,
  type KernelParts,
  type KernelSource,
} from './wgsl.js';

export interface AttentionSpec {
  /** the IR value computed; scratch buffers are named after it (`${name}.partial_o`, …) */
  readonly name: string;
  /** [rows, heads*headSize], already RoPE'd */
  readonly q: string;
  /** the K cache [S, kvHeads*headSize]; rows 0..keys-1 are valid */
  readonly k: string;
  /** the V cache, same layout */
  readonly v: string;
  /** [rows, heads*headSize] */
  readonly out: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headSize: number;
  /** T (prefill) or the constant 1 (decode) */
  readonly rows: Affine;
  /** P+T (or P+1): row r sees keys 0..keys-rows+r */
  readonly keys: Affine;
  /** S, the cache length: an upper bound on keys */
  readonly contextLength: number;
}

export type AttentionKernels = KernelParts;

/** invocations of the decode combine, one per element of a head row in turn */
const COMBINE_THREADS = 64;
/** The masked-score sentinel and the running max before any key: the most negative finite f32. */
const NEG = '-3.402823e38';

/**
 * Values of V a decode group loads before it adds any (8: the 1B decode's 192 keys over 16 groups take two rounds
 * of loads, where one value at a time took twelve load latencies in a row).
 */
const V_IN_FLIGHT = 8;
/** `c0 + i` as WGSL. */
const c0Plus = (i: number): string => (i === 0 ? 'c0' : `c0 + ${i}u`);

/** Decode splits: at most this many, and at least this many cache rows per split. */
const MAX_SPLITS = 32;
/** The adapter's limits that size the kernels. */
export interface AttentionOptions {
  /** the adapter's maxComputeInvocationsPerWorkgroup */
  readonly maxInvocations: number;
  /** workgroup memory the prefill tiles may use (Q, K, V, scores and row state) */
  readonly maxWorkgroupBytes: number;
  /** the most query rows and keys of a prefill tile */
  readonly maxTile: number;
  /** decode reduces with subgroup operations (see LinearOptions.subgroups) */
  readonly subgroups?: boolean;
}

/** 8 KiB of tiles (half of WebGPU's default workgroup memory), 256 invocations, tiles up to 16×16. */
export const defaultAttentionOptions: AttentionOptions = { maxInvocations: 256, maxWorkgroupBytes: 8192, maxTile: 16 };

/** The most invocations per workgroup the templates use: a power of two up to 256 within the adapter's limit. */
function workgroupThreads(o: AttentionOptions): number {
  let t = 256;
  while (t > 1 && t > o.maxInvocations) t /= 2;
  return t;
}

const one = wg(1);
const u = (n: number): string => `${n}u`;

/** Query rows per workgroup and keys per tile for prefill: halves the larger (rows on a tie) from maxTile² until the tiles fit. */
function prefillTiles(headSize: number, o: AttentionOptions): { rows: number; keys: number } {
  let rows = o.maxTile;
  let keys = o.maxTile;
  // head rows as whole vec4s, K rows padded by one vec4 (see prefillKernel)
  const width = 4 * Math.ceil(headSize / 4);
  const floats = () => (rows + 2 * keys) * width + 4 * keys + rows * keys + 3 * rows;
  const budget = Math.floor(o.maxWorkgroupBytes / 4);
  while (floats() > budget && (rows > 1 || keys > 1)) {
    if (rows >= keys && rows > 1) rows /= 2;
    else keys /= 2;
  }
  if (floats() > budget) throw new Error(`headSize ${headSize} does not fit attention's workgroup memory`);
  return { rows, keys };
}

/** min(32, ceil(S / keys per tile)) splits: short caches get few, so a split is never much less than one tile of keys. */
function decodeSplits(contextLength: number, tile: number): number {
  return Math.max(1, Math.min(MAX_SPLITS, Math.ceil(contextLength / tile)));
}

export function attentionKernels(spec: AttentionSpec, o: AttentionOptions = defaultAttentionOptions): AttentionKernels {
  const { heads, kvHeads, headSize, contextLength } = spec;
  for (const [what, n] of [
    ['heads', heads],
    ['kvHeads', kvHeads],
    ['headSize', headSize],
    ['contextLength', contextLength],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`attention ${spec.name}: ${what} must be a positive integer, is ${n}`);
  }
  if (heads % kvHeads !== 0) throw new Error(`attention ${spec.name}: ${heads} heads do not divide into ${kvHeads} kv heads`);
  const decode = A.isConstant(spec.rows) && spec.rows.c === 1;
  return decode ? decodeKernels(spec, o) : { kernels: [{ suffix: 'flash', source: prefillKernel(spec, o) }], scratch: [] };
}

/**
 * One workgroup per (block of query rows, head). Per tile of keys: load K and V, score every (row, key)
 * of the block, update each row's running max, turn every score into a probability (one per invocation)
 * and add each row's sum, then rescale and accumulate each invocation's outputs (fixed (row, 4 dims) slots held
 * in registers). Head rows sit in workgroup memory as vec4s (zeros past the head), so a score reads 4 values of q
 * and of k a load and an output 4 values of V; K rows sit one vec4 apart beyond the head (stride width + 1), so the
 * keys that neighbouring invocations score fall in different memory banks. Scores and outputs add their terms one
 * dimension and one key at a time, in order.
 */
function prefillKernel(spec: AttentionSpec, o: AttentionOptions): KernelSource {
  const { heads, kvHeads, headSize: hs } = spec;
  const { rows: br, keys: bc } = prefillTiles(hs, o);
  // one invocation per (row, key) of a tile, at least 64 and at most workgroupThreads
  const threads = Math.max(Math.min(64, workgroupThreads(o)), Math.min(br * bc, workgroupThreads(o)));
  // vec4s of a head row
  const hw = Math.ceil(hs / 4);
  const slots = Math.ceil((br * hw) / threads);
  const [qd, kd] = [heads * hs, kvHeads * hs];
  // the four values of vec4 `j` of the head row at `at` in `buf` (zeros past the head)
  const part = (buf: string, at: string): string =>
    hs % 4 === 0
      ? `${buf}[${at} + 4u * j], ${buf}[${at} + 4u * j + 1u], ${buf}[${at} + 4u * j + 2u], ${buf}[${at} + 4u * j + 3u]`
      : [0, 1, 2, 3].map((c) => `select(0.0, ${buf}[${at} + min(4u * j + ${c}u, ${hs - 1}u)], 4u * j + ${c}u < ${u(hs)})`).join(', ');
  return kernelSource(
    [readBinding(spec.q, 'q'), readBinding(spec.k, 'k'), readBinding(spec.v, 'v'), writeBinding(spec.out, 'out')],
    `
var<workgroup> qTile: array<vec4<f32>, ${br * hw}>;
var<workgroup> kTile: array<vec4<f32>, ${bc * (hw + 1)}>;
var<workgroup> vTile: array<vec4<f32>, ${bc * hw}>;
var<workgroup> pTile: array<f32, ${br * bc}>;
var<workgroup> rowMax: array<f32, ${br}>;
var<workgroup> rowSum: array<f32, ${br}>;
var<workgroup> rowScale: array<f32, ${br}>;
${preciseMath}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let rows = ${u32Expr(spec.rows)};
  let keys = ${u32Expr(spec.keys)};
  let row0 = wid.x * ${u(br)};
  let qBase = wid.y * ${u(hs)};
  let kvBase = (wid.y / ${u(heads / kvHeads)}) * ${u(hs)};
  // the block's last row sees keys 0..kEnd-1
  let kEnd = keys - rows + min(rows, row0 + ${u(br)});
  for (var e = lane; e < ${u(br * hw)}; e += ${u(threads)}) {
    let row = row0 + e / ${u(hw)};
    let j = e % ${u(hw)};
    var x = vec4<f32>(0.0);
    if (row < rows) { x = vec4<f32>(${part('q', `row * ${u(qd)} + qBase`)}); }
    qTile[e] = x;
  }
  for (var r = lane; r < ${u(br)}; r += ${u(threads)}) { rowMax[r] = ${NEG}; rowSum[r] = 0.0; }
  var acc: array<vec4<f32>, ${slots}>;
  for (var k0 = 0u; k0 < kEnd; k0 += ${u(bc)}) {
    for (var e = lane; e < ${u(bc * hw)}; e += ${u(threads)}) {
      let key = k0 + e / ${u(hw)};
      let j = e % ${u(hw)};
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (key < kEnd) {
        let at = key * ${u(kd)} + kvBase;
        kx = vec4<f32>(${part('k', 'at')});
        vx = vec4<f32>(${part('v', 'at')});
      }
      kTile[(e / ${u(hw)}) * ${u(hw + 1)} + j] = kx;
      vTile[e] = vx;
    }
    workgroupBarrier();
    for (var e = lane; e < ${u(br * bc)}; e += ${u(threads)}) {
      let r = e / ${u(bc)};
      let c = e % ${u(bc)};
      let row = row0 + r;
      var s = ${NEG};
      if (row < rows && k0 + c <= keys - rows + row) {
        var dot = 0.0;
        for (var j = 0u; j < ${u(hw)}; j++) {
          let a = qTile[r * ${u(hw)} + j];
          let b = kTile[c * ${u(hw + 1)} + j];
          dot += a.x * b.x;
          dot += a.y * b.y;
          dot += a.z * b.z;
          dot += a.w * b.w;
        }
        s = preciseDiv(dot, ${f32Lit(Math.sqrt(hs))});
      }
      pTile[e] = s;
    }
    workgroupBarrier();
    // each row's new max and the factor its earlier sums shrink by
    for (var r = lane; r < ${u(br)}; r += ${u(threads)}) {
      let mOld = rowMax[r];
      var m = mOld;
      for (var c = 0u; c < ${u(bc)}; c++) { m = max(m, pTile[r * ${u(bc)} + c]); }
      rowScale[r] = preciseExp(mOld - m);
      rowMax[r] = m;
    }
    workgroupBarrier();
    // every score to a probability, one per invocation
    for (var e = lane; e < ${u(br * bc)}; e += ${u(threads)}) {
      let s = pTile[e];
      var p = 0.0;
      if (s > ${NEG}) { p = preciseExp(s - rowMax[e / ${u(bc)}]); }
      pTile[e] = p;
    }
    workgroupBarrier();
    // each row's sum, in key order, by the invocation that owns the row
    for (var r = lane; r < ${u(br)}; r += ${u(threads)}) {
      var sum = 0.0;
      for (var c = 0u; c < ${u(bc)}; c++) { sum += pTile[r * ${u(bc)} + c]; }
      rowSum[r] = rowSum[r] * rowScale[r] + sum;
    }
    for (var i = 0u; i < ${u(slots)}; i++) {
      let e = lane + i * ${u(threads)};
      if (e < ${u(br * hw)}) {
        let r = e / ${u(hw)};
        let j = e % ${u(hw)};
        var o = acc[i] * rowScale[r];
        for (var c = 0u; c < ${u(bc)}; c++) { o += pTile[r * ${u(bc)} + c] * vTile[c * ${u(hw)} + j]; }
        acc[i] = o;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${u(slots)}; i++) {
    let e = lane + i * ${u(threads)};
    let r = e / ${u(hw)};
    let row = row0 + r;
    if (e < ${u(br * hw)} && row < rows) {
      let d = 4u * (e % ${u(hw)});
      let at = row * ${u(qd)} + qBase + d;
${[0, 1, 2, 3]
  .map((c) => {
    const store = `out[at + ${c}u] = preciseDiv(acc[i][${c}], rowSum[r]);`;
    return `      ${hs % 4 === 0 ? store : `if (d + ${c}u < ${u(hs)}) { ${store} }`}`;
  })
  .join('\n')}
    }
  }
}`,
    [wg(spec.rows, br), wg(heads), one],
  );
}

/**
 * Decode: only the splits that have keys run (one per tile of keys, one key per invocation, at most `splits`); split s of each head
 * scores a contiguous chunk of the keys (a whole number of tiles sized at run time from `keys`; a trailing
 * split may still be empty and write m = -max, l = 0, o = 0), reading q and K straight from memory (no barrier
 * before the first key's loads; the q row is the same for every invocation). Each tile's weighted sum of V is spread
 * over groups of invocations (a group holds one head row, as vec4s where the head size allows; group g takes keys
 * g, g + groups, …, its first value loaded before the scores and reductions), and the groups' sums are added at the end. When one split
 * holds every key it writes the normalized output itself and the combine is not dispatched; otherwise each
 * split writes its max m, sum l and unnormalized output o, and the combine merges the splits that ran.
 */
function decodeKernels(spec: AttentionSpec, o: AttentionOptions): AttentionKernels {
  const { name, heads, kvHeads, headSize: hs } = spec;
  // one key of a tile per invocation, so one pair of reductions per tile
  const threads = workgroupThreads(o);
  const TILE = threads;
  const splits = decodeSplits(spec.contextLength, TILE);
  const width = hs % 4 === 0 ? 4 : 1;
  const T = width === 4 ? 'vec4<f32>' : 'f32';
  const lanes = hs / width;
  const groups = Math.max(1, Math.floor(threads / lanes));
  if (lanes > threads) throw new Error(`attention ${name}: headSize ${hs} is beyond decode attention's ${threads * 4}`);
  const kd = (kvHeads * hs) / width;
  const scratch = {
    stats: { name: `${name}.partial_ml`, shape: [A.constant(heads), A.constant(splits), A.constant(2)] },
    out: { name: `${name}.partial_o`, shape: [A.constant(heads), A.constant(splits), A.constant(hs)] },
  };
  // q·k in run.c's order: one product at a time along the head
  const dotTerms = width === 4 ? ['x', 'y', 'z', 'w'].map((c) => `dot += qv.${c} * kv.${c};`).join(' ') : 'dot += qv * kv;';
  const normalize = width === 4 ? ['x', 'y', 'z', 'w'].map((c) => `preciseDiv(o.${c}, l)`).join(', ') : 'preciseDiv(o, l)';
  const ran = `min((keys + ${u(TILE - 1)}) / ${u(TILE)}, ${u(splits)})`;
  const sg = o.subgroups === true;
  const sgArgs = sg ? ', sgSize, sgLane' : '';
  // a group's weighted sum takes its keys c0, c0 + groups, … V_IN_FLIGHT at a time, all their values loaded first
  // (at clamped rows; only those below n are added, in key order)
  const vis = Array.from({ length: V_IN_FLIGHT }, (_, i) => i);
  const loadValues = (c0: string, indent: string): string =>
    vis.map((i) => `${indent}v${i} = v[(t0 + min(${c0} + ${u(i * groups)}, n - 1u)) * ${u(kd)} + kvBase + d];`).join('\n');
  const addValues = vis.map((i) => `        if (${c0Plus(i * groups)} < n) { o += probs[${c0Plus(i * groups)}] * v${i}; }`).join('\n');
  const partial = kernelSource(
    [
      readBinding(spec.q, 'q', T),
      readBinding(spec.k, 'k', T),
      readBinding(spec.v, 'v', T),
      writeBinding(scratch.stats.name, 'partialStats'),
      writeBinding(scratch.out.name, 'partialOut', T),
      writeBinding(spec.out, 'out', T),
    ],
    `
var<workgroup> probs: array<f32, ${TILE}>;
var<workgroup> red: array<f32, ${threads}>;
var<workgroup> sums: array<${T}, ${groups * lanes}>;
${preciseMath}
${workgroupReduce('reduceMax', threads, (a, b) => `max(${a}, ${b})`, sg ? { op: 'subgroupMax' } : undefined)}
${workgroupReduce('reduceSum', threads, (a, b) => `${a} + ${b}`, sg ? { op: 'subgroupAdd' } : undefined)}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32${sg ? `, ${subgroupBuiltins}` : ''}) {
  let keys = ${u32Expr(spec.keys)};
  let chunk = ((keys + ${u(splits - 1)}) / ${u(splits)} + ${u(TILE - 1)}) / ${u(TILE)} * ${u(TILE)};
  let first = min(keys, wid.x * chunk);
  let last = min(keys, first + chunk);
  let head = wid.y;
  let kvBase = (head / ${u(heads / kvHeads)}) * ${u(lanes)};
  // this invocation's slot in the weighted sum: group g, element d of the head row
  let g = lane / ${u(lanes)};
  let d = lane % ${u(lanes)};
  let qBase = head * ${u(lanes)};
  var m = ${NEG};
  var l = 0.0;
  var acc = ${T}(0.0);
${vis.map((i) => `  var v${i}: ${T};`).join('\n')}
  for (var t0 = first; t0 < last; t0 += ${u(TILE)}) {
    let n = min(${u(TILE)}, last - t0);
    // the group's first ${V_IN_FLIGHT} values of the tile, loaded before the scores and reductions they wait for
${loadValues('g', '    ')}
    let key = t0 + lane;
    var s = ${NEG};
    if (key < last) {
      let kBase = key * ${u(kd)} + kvBase;
      var dot = 0.0;
      for (var j = 0u; j < ${u(lanes)}; j++) { let qv = q[qBase + j]; let kv = k[kBase + j]; ${dotTerms} }
      s = preciseDiv(dot, ${f32Lit(Math.sqrt(hs))});
    }
    let mNew = max(m, reduceMax(lane, s${sgArgs}));
    var p = 0.0;
    if (key < last) { p = preciseExp(s - mNew); }
    probs[lane] = p;
    let scale = preciseExp(m - mNew);
    // reduceSum's barriers also publish probs
    let sum = reduceSum(lane, p${sgArgs});
    l = l * scale + sum;
    m = mNew;
    if (g < ${u(groups)}) {
      var o = acc * scale;
      for (var c0 = g; c0 < n; c0 += ${u(V_IN_FLIGHT * groups)}) {
        if (c0 != g) {
${loadValues('c0', '          ')}
        }
${addValues}
      }
      acc = o;
    }
  }
  if (g < ${u(groups)}) { sums[lane] = acc; }
  workgroupBarrier();
  if (lane < ${u(lanes)}) {
    var o = ${T}(0.0);
    for (var i = 0u; i < ${u(groups)}; i++) { o += sums[i * ${u(lanes)} + lane]; }
    if (${ran} == 1u) {
      out[head * ${u(lanes)} + lane] = ${T}(${normalize});
    } else {
      let at = head * ${u(splits)} + wid.x;
      partialOut[at * ${u(lanes)} + lane] = o;
      if (lane == 0u) {
        partialStats[2u * at] = m;
        partialStats[2u * at + 1u] = l;
      }
    }
  }
}`,
    // only splits that have keys: one per tile of keys, at most `splits`
    [{ of: spec.keys, per: TILE, max: splits }, wg(heads), one],
    sg,
  );
  const combine = kernelSource(
    [readBinding(scratch.stats.name, 'partialStats'), readBinding(scratch.out.name, 'partialOut'), writeBinding(spec.out, 'out')],
    `
${preciseMath}

@compute @workgroup_size(${COMBINE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let keys = ${u32Expr(spec.keys)};
  let base = wid.x * ${u(splits)};
  let used = ${ran};
  var m = ${NEG};
  for (var s = 0u; s < used; s++) { m = max(m, partialStats[2u * (base + s)]); }
  var weight: array<f32, ${splits}>;
  var total = 0.0;
  for (var s = 0u; s < used; s++) {
    weight[s] = preciseExp(partialStats[2u * (base + s)] - m);
    total += weight[s] * partialStats[2u * (base + s) + 1u];
  }
  for (var d = lane; d < ${u(hs)}; d += ${u(COMBINE_THREADS)}) {
    var o = 0.0;
    for (var s = 0u; s < used; s++) { o += weight[s] * partialOut[(base + s) * ${u(hs)} + d]; }
    out[wid.x * ${u(hs)} + d] = preciseDiv(o, total);
  }
}`,
    // dispatched only when more than one split ran (keys beyond one tile)
    [wg(heads), { of: A.add(spec.keys, A.constant(-TILE)), per: spec.contextLength, max: 1 }, one],
  );
  return {
    kernels: [
      { suffix: 'partial', source: partial },
      { suffix: 'combine', source: combine, after: 'split-K: the combine reads the partial max, sum and output of every split' },
    ],
    scratch: [scratch.stats, scratch.out],
  };
}
