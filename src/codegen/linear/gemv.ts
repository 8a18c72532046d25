// The GEMV variant (decode: a few constant rows, K ≥ splitKFrom, K % 4 = 0): a group of 64 invocations per 1–4
// pairs of dots splits K, reads w as vec4s and reduces in a fixed order (workgroupReduce).
import * as A from '../../affine.js';
import { kernelSource, preciseMath, subgroupBuiltins, wg, workgroupReduce, type KernelSource } from '../wgsl.js';
import { epilogueOf, type Epilogue } from './epilogue.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import { GEMV_LANES as LANES, gemvPairs, gemvThreads, type LinearOptions, type LinearSpec } from './spec.js';

/**
 * Invocations of a float GEMV's workgroup at most: two groups. On an H100 the 1B f32 decode step's pass took 1.759 ms
 * with 128 against 1.820 ms with 256 (the down projection, K = 8192: 0.401 against 0.505 ms), same call.
 */
const FLOAT_GEMV_THREADS = 128;

/** Weight vectors per lane and per dot a GEMV of one pair a group keeps in flight (with more pairs, as many in all). */
const GEMV_UNROLL = 8;

/**
 * What the float and int8 GEMVs share: groups of LANES invocations, each computing `pairs` pairs of dots (a pair: one
 * unit's two dots, or two one-dot units) of the row `wid.y`; the entry point's opening (row, g, lane, xBase, and for
 * each pair p its units and w rows u0_p, w0_p, w1_p), its end (each pair's two sums `acc_p` reduced and emitted), the
 * norm's prologue (scale from the row's sum of squares), the reductions, and the grid.
 */
export interface GemvFrame {
  readonly threads: number;
  readonly pairs: number;
  readonly entry: string;
  readonly finish: string;
  readonly prologue: string;
  /** the workgroup-memory reductions' WGSL (sumWorkgroup where there is a norm, sumGroup) and their `red` array */
  readonly reductions: string;
  readonly workgroups: KernelSource['workgroups'];
}

export function gemvFrame(s: LinearSpec, o: LinearOptions, ep: Epilogue): GemvFrame {
  const threads = gemvThreads(o.maxInvocations);
  const groups = threads / LANES;
  const K4 = s.k / 4;
  // a pair of dots: one unit's two, or two one-dot units
  const perPair = ep.dots === 1 ? 2 : 1;
  const pairsNeeded = Math.ceil(ep.units / perPair);
  const rows = A.isConstant(s.rows) ? s.rows.c : 1;
  const pairs = gemvPairs(pairsNeeded, groups, rows, o);
  const ps = Array.from({ length: pairs }, (_, p) => p);
  const last = `${ep.units - 1}u`;
  const rowsOf = ps
    .map((p) => {
      const pair = `(wid.x * ${groups}u + g) * ${pairs}u + ${p}u`;
      if (perPair === 2) return `let u0_${p} = (${pair}) * 2u;\n  let w0_${p} = min(u0_${p}, ${last});\n  let w1_${p} = min(u0_${p} + 1u, ${last});`;
      const [a0, a1] = ep.wRows(`min(u0_${p}, ${last})`);
      return `let u0_${p} = ${pair};\n  let w0_${p} = ${a0};\n  let w1_${p} = ${a1};`;
    })
    .join('\n  ');
  // what the epilogue reads for each unit, read at the start (its units clamped as the w rows are)
  const pres = ps
    .map((p) => (perPair === 2 ? `let pre${p}a = pre(row, w0_${p});\n  let pre${p}b = pre(row, w1_${p});` : `let pre${p}a = pre(row, min(u0_${p}, ${last}));`))
    .join('\n  ');
  const emit = (p: number): string =>
    perPair === 2
      ? `if (u0_${p} < ${ep.units}u) { emitWith(row, u0_${p}, r${p}.x, 0.0, pre${p}a); }
    if (u0_${p} + 1u < ${ep.units}u) { emitWith(row, u0_${p} + 1u, r${p}.y, 0.0, pre${p}b); }`
      : `if (u0_${p} < ${ep.units}u) { emitWith(row, u0_${p}, r${p}.x, r${p}.y, pre${p}a); }`;
  // sums of squares over the workgroup and dots over each group, a vec2 (a pair's two dots) at a time
  const sg = o.subgroups ? { op: 'subgroupAdd' as const } : undefined;
  const sgArgs = o.subgroups ? ', sgSize, sgLane' : '';
  const add = (a: string, b: string): string => `${a} + ${b}`;
  const prologue = s.norm
    ? `
  var ss = 0.0;
  for (var i = tid; i < ${K4}u; i += ${threads}u) { let v = x[xBase + i]; ss += dot(v, v); }
  let squares = sumWorkgroup(tid, vec2<f32>(ss, 0.0)${sgArgs}).x;
  scale = ${rowScale(s, 'squares')};`
    : '';
  const reductions = `var<workgroup> red: array<vec2<f32>, ${threads}>;
${s.norm ? workgroupReduce('sumWorkgroup', threads, add, sg, { type: 'vec2<f32>' }) : ''}
${workgroupReduce('sumGroup', threads, add, sg, { type: 'vec2<f32>', group: LANES })}
${s.norm ? 'var<private> scale: f32;' : ''}`;
  const entry = `@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32${o.subgroups ? `, ${subgroupBuiltins}` : ''}) {
  let row = wid.y;
  let g = tid / ${LANES}u;
  let lane = tid % ${LANES}u;
  xBase = row * ${K4}u;
  ${rowsOf}
  ${pres}`;
  const finish = `${ps.map((p) => `  let r${p} = sumGroup(tid, acc${p}${sgArgs});`).join('\n')}
  if (lane == 0u) {
    ${ps.map(emit).join('\n    ')}
  }
}`;
  return { threads, pairs, entry, finish, prologue, reductions, workgroups: [wg(Math.ceil(pairsNeeded / pairs), groups), wg(s.rows), wg(1)] };
}

export function gemvKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const K4 = s.k / 4;
  const ep = epilogueOf(s);
  const inputs = linearInputs(s, o.weights, 'vec4s');
  const { pairs, entry, finish, prologue, reductions, workgroups } = gemvFrame(s, { ...o, maxInvocations: Math.min(o.maxInvocations, FLOAT_GEMV_THREADS) }, ep);
  const ps = Array.from({ length: pairs }, (_, p) => p);
  // Each lane keeps `unroll` weight vectors of each of its 2·pairs rows in flight: a block of lane, lane + 64, …
  // is loaded before the previous one is used, and the first block before the norm's reduction.
  const unroll = Math.min(Math.max(1, GEMV_UNROLL / pairs), Math.ceil(K4 / LANES));
  const stride = LANES * unroll;
  const exact = K4 % stride === 0;
  const blocks = Array.from({ length: unroll }, (_, j) => j);
  const at = (j: number, i0: string): string => (exact ? `${i0} + ${j * LANES}u` : `min(${i0} + ${j * LANES}u, ${K4 - 1}u)`);
  const load = (i0: string, indent: string): string =>
    ps
      .flatMap((p) =>
        blocks.map((j) => `${indent}wa${p}_${j} = wAt(w0_${p} * ${K4}u + ${at(j, i0)});\n${indent}wb${p}_${j} = wAt(w1_${p} * ${K4}u + ${at(j, i0)});`),
      )
      .join('\n');
  const use = blocks
    .map((j) => {
      const body = `let xv = xAt(i0 + ${j * LANES}u);${ps.map((p) => ` acc${p} += vec2<f32>(dot(xv, wa${p}_${j}), dot(xv, wb${p}_${j}));`).join('')}`;
      return exact || j === 0 ? `    { ${body} }` : `    if (i0 + ${j * LANES}u < ${K4}u) { ${body} }`;
    })
    .join('\n');
  return kernelSource(
    [...inputs.bindings, ...ep.bindings],
    `
${reductions}
var<private> xBase: u32;
${preciseMath}

${inputs.wAt}

fn xAt(i: u32) -> vec4<f32> { return ${xElement(s, 'xBase + i', 'i')}; }

${ep.emit}

${entry}
${ps.flatMap((p) => blocks.map((j) => `  var wa${p}_${j}: vec4<f32>;\n  var wb${p}_${j}: vec4<f32>;`)).join('\n')}
${load('lane', '  ')}${prologue}
${ps.map((p) => `  var acc${p} = vec2<f32>(0.0);`).join('\n')}
  for (var i0 = lane; i0 < ${K4}u; i0 += ${stride}u) {
${use}
    if (i0 + ${stride}u < ${K4}u) {
${load(`i0 + ${stride}u`, '      ')}
    }
  }
${finish}`,
    workgroups,
    o.subgroups,
  );
}
