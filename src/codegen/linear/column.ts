// The column variant: one invocation per (row, unit) sums its dots over K in order (run.c's order) — small K,
// or K % 4 ≠ 0 — and each invocation computes its row's norm scale itself, so no barrier.
import { kernelSource, preciseMath, u32Expr, wg, type KernelSource } from '../wgsl.js';
import { epilogueOf } from './epilogue.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import type { LinearOptions, LinearSpec } from './spec.js';

const THREADS = 64;

export function columnKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const K = s.k;
  const ep = epilogueOf(s);
  const inputs = linearInputs(s, o.weights, 'scalars');
  const [r0, r1] = ep.wRows('unit');
  // Every invocation sums its row's squares itself, in order, as run.c does: the scale is bit-identical in every workgroup.
  const prologue = s.norm
    ? `
  var ss = 0.0;
  for (var j = 0u; j < ${K}u; j++) { let v = x[xBase + j]; ss += v * v; }
  scale = ${rowScale(s, 'ss')};`
    : '';
  return kernelSource(
    [...inputs.bindings, ...ep.bindings],
    `
${s.norm ? 'var<private> scale: f32;' : ''}
var<private> xBase: u32;
${preciseMath}

${inputs.wAt}

fn dot(wRow: u32) -> f32 {
  let wBase = wRow * ${K}u;
  var acc = 0.0;
  for (var i = 0u; i < ${K}u; i++) { acc += ${xElement(s, 'xBase + i', 'i')} * wAt(wBase + i); }
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
}`,
    [wg(ep.units, THREADS), wg(s.rows), wg(1)],
  );
}
