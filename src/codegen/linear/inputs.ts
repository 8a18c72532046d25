// The inputs of the linear template: x (normalized per element in the order a stored rmsnorm result would be),
// the norm weight, and w decoded as its format's CPU reference does; read one element or four at a time.
import { weightFormats, type FormatName } from '../../weights/formats.js';
import { normScale, readBinding, type KernelBinding } from '../wgsl.js';
import type { LinearSpec } from './spec.js';

export interface LinearInputs {
  /** x, w and the norm weight where the spec has one */
  readonly bindings: readonly KernelBinding[];
  /** `fn wAt(i: u32)`: w's i-th element (f32) or group of four (vec4<f32>) */
  readonly wAt: string;
}

/** The inputs read as f32 elements, or as vec4s of K-contiguous rows (w as its format's four packed elements). */
export function linearInputs(s: LinearSpec, weights: FormatName, read: 'scalars' | 'vec4s'): LinearInputs {
  const { wgsl } = weightFormats[weights];
  const type = read === 'vec4s' ? 'vec4<f32>' : 'f32';
  const bindings = [readBinding(s.x, 'x', type), readBinding(s.w, 'w', read === 'vec4s' ? wgsl.vectorType : wgsl.scalarType)];
  if (s.norm) bindings.push(readBinding(s.norm.weight, 'normWeight', type));
  const count = s.n * s.k;
  return { bindings, wAt: read === 'vec4s' ? wgsl.vector(count) : `fn wAt(i: u32) -> f32 { return ${wgsl.scalar(count)}; }` };
}

/** x[at] as the matmul reads it: with a norm, times `scale` and then the norm weight at `k`, as rmsnorm stores it. */
export const xElement = (s: LinearSpec, at: string, k: string, scale = 'scale'): string => (s.norm ? `normWeight[${k}] * (${scale} * x[${at}])` : `x[${at}]`);

/** RMSNorm's scale of a row of x from the WGSL sum of its squares. */
export const rowScale = (s: LinearSpec, sumOfSquares: string): string => normScale(sumOfSquares, s.k, s.norm!.eps);
