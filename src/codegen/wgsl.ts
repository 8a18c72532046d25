// The WGSL target's quirks in one place: how dims, literals and bindings are written.
// Every kernel reads the run's symbol values (T, P, L) from the uniform at binding 0.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import { uniformSymbols, type PlanBinding, type WorkgroupCount } from '../runtime/plan.js';

/** A u32 WGSL expression for an affine dim: constants inline, symbols read from the uniform. */
export function u32Expr(d: Affine): string {
  const parts = d.terms.map(([s, k]) => {
    if (!(uniformSymbols as readonly string[]).includes(s)) throw new Error(`symbol ${s} has no uniform slot`);
    if (k < 0) throw new Error(`negative coefficient in ${s}`);
    return k === 1 ? `dims.${s}` : `${k}u * dims.${s}`;
  });
  if (d.c !== 0 || parts.length === 0) parts.push(`${d.c}u`);
  return parts.length === 1 ? parts[0]! : `(${parts.join(' + ')})`;
}

/** An f32 literal that WGSL reads back to the same float32 value. */
export function f32Lit(x: number): string {
  const v = Math.fround(x);
  if (!Number.isFinite(v)) throw new Error(`${x} is not a finite f32`);
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** The element type a kernel sees a buffer as: scalars, or vec4<f32> / vec2<u32> (four packed halves) views of K-contiguous rows. */
export type ElementType = 'f32' | 'i32' | 'u32' | 'vec4<f32>' | 'vec2<u32>' | 'vec4<u32>';

export interface KernelBinding extends Omit<PlanBinding, 'binding'> {
  readonly var: string;
  readonly type: ElementType;
}

/** A binding through which a kernel reads `buffer` as `v`. */
export const readBinding = (buffer: string, v: string, type: ElementType = 'f32'): KernelBinding => ({ buffer, access: 'read', var: v, type });

/** A binding through which a kernel writes (and may read) `buffer` as `v`. */
export const writeBinding = (buffer: string, v: string, type: ElementType = 'f32'): KernelBinding => ({ buffer, access: 'read_write', var: v, type });

/** The shared header: the uniform and one storage array per binding, numbered from 1. */
export function header(bindings: readonly KernelBinding[]): string {
  const lines = [`struct Dims { ${uniformSymbols.map((s) => `${s}: u32`).join(', ')}, pad: u32 }`, `@group(0) @binding(0) var<uniform> dims: Dims;`];
  bindings.forEach((b, i) => {
    const access = b.access === 'read' ? 'read' : 'read_write';
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${access}> ${b.var}: array<${b.type}>;`);
  });
  return lines.join('\n');
}

/**
 * exp, division and square root within about one ulp on every adapter, as the CPU's libm computes them:
 * GPU builtins are allowed several ulps (and drivers use fast approximations), which drifts from
 * float32 references over many layers and positions.
 */
export const preciseMath = `
fn preciseDiv(a: f32, b: f32) -> f32 {
  let q = a / b;
  return q + fma(-q, b, a) / b;
}

fn preciseSqrt(x: f32) -> f32 {
  let s = sqrt(x);
  if (s == 0.0) { return s; }
  return s + fma(-s, s, x) / (2.0 * s);
}

fn preciseExp(v: f32) -> f32 {
  let x = clamp(v, -104.0, 89.0);
  let k = round(x * 1.442695041);
  var r = fma(-k, 0.693145751953125, x);
  r = fma(-k, 1.428606765330187e-6, r);
  var p = 1.984126984126984e-4;
  p = fma(p, r, 1.388888888888889e-3);
  p = fma(p, r, 8.333333333333333e-3);
  p = fma(p, r, 4.166666666666667e-2);
  p = fma(p, r, 1.666666666666667e-1);
  p = fma(p, r, 0.5);
  p = fma(p, r, 1.0);
  p = fma(p, r, 1.0);
  return ldexp(p, i32(k));
}

fn geluTanh(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * (x * x * x));
  let e = preciseExp(-2.0 * abs(u));
  let t = sign(u) * preciseDiv(1.0 - e, 1.0 + e);
  return 0.5 * x * (1.0 + t);
}`;

/** The activations as WGSL expressions of their argument (an identifier or an element read), over preciseMath. */
export const activations = {
  silu: (x: string): string => `${x} * preciseDiv(1.0, 1.0 + preciseExp(-${x}))`,
  gelu: (x: string): string => `geluTanh(${x})`,
} as const;

/** A norm's scale 1 / sqrt(sum / count + eps) over preciseMath: RMSNorm's from the sum of squares, LayerNorm's from that of squared deviations. */
export const normScale = (sum: string, count: number, eps: number): string =>
  `preciseDiv(1.0, preciseSqrt(preciseDiv(${sum}, ${f32Lit(count)}) + ${f32Lit(eps)}))`;

/** What a template emits: one dispatch's WGSL, its storage bindings (numbered from 1) and its grid. */
export interface KernelSource {
  readonly wgsl: string;
  readonly bindings: readonly KernelBinding[];
  readonly workgroups: readonly [WorkgroupCount, WorkgroupCount, WorkgroupCount];
}

/**
 * What a template of one or more dispatches emits: its kernels in order (a suffix names each after the
 * first's kernel; `after` says why a dispatch must wait for the one before it), and the f32 activation
 * buffers they pass between them.
 */
export interface KernelParts {
  readonly kernels: readonly { readonly suffix?: string; readonly source: KernelSource; readonly after?: string }[];
  readonly scratch: readonly { readonly name: string; readonly shape: readonly Affine[] }[];
}

/** ceil(of / per) workgroups along one axis */
export const wg = (of: Affine | number, per = 1): WorkgroupCount => ({ of: typeof of === 'number' ? A.constant(of) : of, per });

/** The header for `bindings`, then the body (after `enable subgroups;` where it uses subgroup operations, and the other extensions it enables). */
export function kernelSource(
  bindings: readonly KernelBinding[],
  body: string,
  workgroups: KernelSource['workgroups'],
  subgroups = false,
  extensions: readonly string[] = [],
): KernelSource {
  const enables = [...(subgroups ? ['subgroups'] : []), ...extensions].map((e) => `enable ${e};\n`).join('');
  return { wgsl: `${enables}${header(bindings)}\n\n${body.trim()}\n`, bindings, workgroups };
}

/** Entry-point parameters giving a subgroup kernel its subgroup's size and its index in it, as workgroupReduce's subgroup form uses them. */
export const subgroupBuiltins = '@builtin(subgroup_size) sgSize: u32, @builtin(subgroup_invocation_id) sgLane: u32';

/** A subgroup reduction and the combine it stands for. */
export type SubgroupReduce = { readonly op: 'subgroupAdd' | 'subgroupMax' };

/** What workgroupReduce reduces: values of `type` (default f32), over runs of `group` consecutive invocations (default all `lanes`). */
export interface ReduceShape {
  readonly type?: 'f32' | 'vec2<f32>' | 'vec3<f32>' | 'vec4<f32>';
  readonly group?: number;
}

/**
 * A WGSL function `name(lane, value)` reducing `value` over a workgroup's `lanes` invocations through a
 * `red: array<type, lanes>` in workgroup memory, in log2(lanes) barrier steps; every lane gets the result.
 * With `subgroup`, `name(lane, value, sgSize, sgLane)` reduces each subgroup first (subgroups in
 * local-invocation order: Gpu.subgroups), stores each subgroup's result at its index and combines those
 * in order — two barriers whatever `lanes`. With a `group` below `lanes`, each run of `group` invocations
 * (a multiple of the subgroup size) reduces on its own, in the same order, and gets its run's result.
 */
export function workgroupReduce(
  name: string,
  lanes: number,
  combine: (a: string, b: string) => string,
  subgroup?: SubgroupReduce,
  { type = 'f32', group = lanes }: ReduceShape = {},
): string {
  const runs = group < lanes;
  if (subgroup) {
    // the run's first subgroup result, and the i-th after it
    const first = runs ? `(lane - lane % ${group}u) / sgSize` : '0';
    const at = runs ? `${first} + i` : 'i';
    return `
fn ${name}(lane: u32, value: ${type}, sgSize: u32, sgLane: u32) -> ${type} {
  let part = ${subgroup.op}(value);
  if (sgLane == 0u) { red[lane / sgSize] = part; }
  workgroupBarrier();
  var result = red[${first}];
  for (var i = 1u; i < ${group}u / sgSize; i++) { result = ${combine('result', `red[${at}]`)}; }
  workgroupBarrier();
  return result;
}`;
  }
  return `
fn ${name}(lane: u32, value: ${type}) -> ${type} {
  red[lane] = value;
  workgroupBarrier();
  for (var k = ${group / 2}u; k > 0u; k = k >> 1u) {
    if (${runs ? `lane % ${group}u` : 'lane'} < k) { red[lane] = ${combine('red[lane]', 'red[lane + k]')}; }
    workgroupBarrier();
  }
  let result = red[${runs ? `lane - lane % ${group}u` : '0'}];
  workgroupBarrier();
  return result;
}`;
}
