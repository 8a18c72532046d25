// The GEMV variant (decode: a few constant rows, K ≥ splitKFrom, K % 4 = 0): a group of 64 invocations per
// unit (or pair of one-dot units) splits K, reads w as vec4s and reduces in a fixed order (workgroupReduce).
import { kernelSource, preciseMath, subgroupBuiltins, wg, workgroupReduce, type KernelSource } from '../wgsl.js';
import { epilogueOf, type Epilogue } from './epilogue.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import { GEMV_LANES as LANES, gemvThreads, type LinearOptions, type LinearSpec } from './spec.js';

/** Weight vectors per lane and per dot a GEMV keeps in flight. */
const GEMV_UNROLL = 8;

/**
 * What the float and int8 GEMVs share: groups of LANES invocations, each computing two dots (one unit's two, or two
 * one-dot units) of the row `wid.y`; the entry point's opening (row, g, lane, xBase, and a group's units and w rows
 * u0, w0, w1) and its end (the group's two sums `acc` reduced and emitted), the norm's prologue (scale from the
 * row's sum of squares), the reductions, and the grid.
 */
export interface GemvFrame {
  readonly threads: number;
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
  // sums of squares over the workgroup and dots over each group, a vec2 (a group's two dots) at a time
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
  ${rowsOf}`;
  const finish = `  let r = sumGroup(tid, acc${sgArgs});
  if (lane == 0u) {
    ${emit}
  }
}`;
  return { threads, entry, finish, prologue, reductions, workgroups: [wg(Math.ceil(ep.units / perGroup), groups), wg(s.rows), wg(1)] };
}

export function gemvKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const K4 = s.k / 4;
  const ep = epilogueOf(s);
  const inputs = linearInputs(s, o.weights, 'vec4s');
  const { entry, finish, prologue, reductions, workgroups } = gemvFrame(s, o, ep);
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
${blocks.map((j) => `  var wa${j}: vec4<f32>;\n  var wb${j}: vec4<f32>;`).join('\n')}
${load('lane', '  ')}${prologue}
  var acc = vec2<f32>(0.0);
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
