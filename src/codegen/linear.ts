// The fused linear template: an optional RMSNorm prologue, one matmul over weights stored [N, K], and
// an epilogue applied to each thread's columns (store, residual add, SiLU·gate, or RoPE + KV append).
// The normalized input is formed per element in the order a stored rmsnorm result would be.
import type { Affine } from '../affine.js';
import { f32Lit, header, preciseMath, u32Expr, wg, type KernelBinding, type KernelSource } from './wgsl.js';

export type LinearEpilogue =
  | { readonly kind: 'store'; readonly out: string }
  /** out = residual + x·wᵀ */
  | { readonly kind: 'residual'; readonly residual: string; readonly out: string }
  /** w stacks gate over up ([2F, K]): out[:, j] = silu(gate_j) · up_j, out [M, F] */
  | { readonly kind: 'glu'; readonly out: string }
  /** w stacks q, k, v: q columns are rotated into `q`, k columns rotated and v columns appended to the caches at rows P.. */
  | {
      readonly kind: 'qkv';
      readonly q: string;
      readonly kCache: string;
      readonly vCache: string;
      readonly qSize: number;
      readonly kvSize: number;
      readonly cos: string;
      readonly sin: string;
      readonly headSize: number;
    };

export interface LinearSpec {
  readonly x: string;
  readonly rows: Affine;
  /** inner dimension */
  readonly k: number;
  /** rows of w */
  readonly n: number;
  readonly w: string;
  readonly norm?: { readonly weight: string; readonly eps: number };
  readonly epilogue: LinearEpilogue;
}


const THREADS = 64;
const ro = (buffer: string, v: string): KernelBinding => ({ buffer, access: 'read', var: v, type: 'f32' });
const rw = (buffer: string, v: string): KernelBinding => ({ buffer, access: 'read_write', var: v, type: 'f32' });

export function linearKernel(s: LinearSpec): KernelSource {
  const K = s.k;
  const e = s.epilogue;
  const bindings: KernelBinding[] = [ro(s.x, 'x'), ro(s.w, 'w')];
  if (s.norm) bindings.push(ro(s.norm.weight, 'normWeight'));
  const xAt = (k: string): string => (s.norm ? `normWeight[${k}] * (scale * x[xBase + ${k}])` : `x[xBase + ${k}]`);
  const dot = (col: string): string => `dot(${col})`;

  // units: the columns (or column pairs) one invocation owns
  let units: number;
  let body: string;
  switch (e.kind) {
    case 'store':
    case 'residual': {
      units = s.n;
      if (e.kind === 'residual') bindings.push(ro(e.residual, 'residual'));
      bindings.push(rw(e.out, 'out'));
      const value = e.kind === 'residual' ? `residual[row * ${s.n}u + unit] + ${dot('unit')}` : dot('unit');
      body = `out[row * ${s.n}u + unit] = ${value};`;
      break;
    }
    case 'glu': {
      if (s.n % 2 !== 0) throw new Error(`glu needs an even number of stacked rows, got ${s.n}`);
      units = s.n / 2;
      bindings.push(rw(e.out, 'out'));
      body = `
  let gate = ${dot('unit')};
  let up = ${dot(`unit + ${units}u`)};
  out[row * ${units}u + unit] = (gate * preciseDiv(1.0, 1.0 + preciseExp(-gate))) * up;`;
      break;
    }
    case 'qkv': {
      if (e.qSize + 2 * e.kvSize !== s.n || e.qSize % 2 !== 0 || e.kvSize % 2 !== 0) {
        throw new Error(`qkv columns ${e.qSize}+2·${e.kvSize} do not match the ${s.n} stacked rows`);
      }
      units = s.n / 2;
      const half = e.headSize / 2;
      bindings.push(ro(e.cos, 'cosT'), ro(e.sin, 'sinT'), rw(e.q, 'q'), rw(e.kCache, 'kCache'), rw(e.vCache, 'vCache'));
      body = `
  let c0 = 2u * unit;
  let a0 = ${dot('c0')};
  let a1 = ${dot('c0 + 1u')};
  let pos = dims.P + row;
  if (c0 < ${e.qSize + e.kvSize}u) {
    let local = select(c0 - ${e.qSize}u, c0, c0 < ${e.qSize}u);
    let at = pos * ${half}u + (local / 2u) % ${half}u;
    let c = cosT[at];
    let s = sinT[at];
    let r0 = a0 * c - a1 * s;
    let r1 = a0 * s + a1 * c;
    if (c0 < ${e.qSize}u) {
      q[row * ${e.qSize}u + local] = r0;
      q[row * ${e.qSize}u + local + 1u] = r1;
    } else {
      kCache[pos * ${e.kvSize}u + local] = r0;
      kCache[pos * ${e.kvSize}u + local + 1u] = r1;
    }
  } else {
    let local = c0 - ${e.qSize + e.kvSize}u;
    vCache[pos * ${e.kvSize}u + local] = a0;
    vCache[pos * ${e.kvSize}u + local + 1u] = a1;
  }`;
      break;
    }
  }

  // Every invocation sums its row's squares itself, in order, as run.c does: no barrier, and the
  // scale is bit-identical in every workgroup.
  const prologue = s.norm
    ? `
  var ss = 0.0;
  for (var j = 0u; j < ${K}u; j++) { let v = x[xBase + j]; ss += v * v; }
  scale = preciseDiv(1.0, preciseSqrt(preciseDiv(ss, ${f32Lit(K)}) + ${f32Lit(s.norm.eps)}));`
    : '';

  const wgsl = `${header(bindings)}
${s.norm ? 'var<private> scale: f32;' : ''}
var<private> xBase: u32;
${preciseMath}

fn dot(col: u32) -> f32 {
  let wBase = col * ${K}u;
  var acc = 0.0;
  for (var i = 0u; i < ${K}u; i++) { acc += ${xAt('i')} * w[wBase + i]; }
  return acc;
}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let row = wid.y;
  let unit = wid.x * ${THREADS}u + lane;
  xBase = row * ${K}u;${prologue}
  if (unit >= ${units}u || row >= ${u32Expr(s.rows)}) { return; }
${body}
}
`;
  return { wgsl, bindings, workgroups: [wg(units, THREADS), wg(s.rows), wg(1)] };
}
