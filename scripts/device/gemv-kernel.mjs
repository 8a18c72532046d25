// What the decode-GEMV scripts (gemv-rate.mjs, l2-warm.mjs) share: the 1B and 8B decode matmul shapes, the linear
// spec of one (a single row of x, the shape's norm and epilogue), and the bind group entries of its kernel.
import * as A from '../../dist/src/affine.js';

/** name, epilogue, K, stacked rows N, whether a norm precedes it */
export const decodeShapes = [
  ['1B q_k_v', 'store', 2048, 3072, true],
  ['1B attn_out', 'residual', 2048, 2048, false],
  ['1B gate_up', 'glu', 2048, 16384, true],
  ['1B down', 'residual', 8192, 2048, false],
  ['1B logits', 'store', 2048, 32000, true],
  ['8B gate_up', 'glu', 4096, 28672, true],
  ['8B down', 'residual', 14336, 4096, false],
];

/** The linear spec of a decode shape: x, w, normWeight, residual and out name the buffers its kernel binds. */
export function gemvSpec(kind, k, n, norm) {
  const epilogue = kind === 'residual' ? { kind, residual: 'residual', out: 'out' } : { kind, out: 'out' };
  return { x: 'x', rows: A.constant(1), k, n, w: 'w', ...(norm ? { norm: { weight: 'normWeight', eps: 1e-5 } } : {}), epilogue };
}

/** Bind group entries of `source` (a kernel of gemvSpec's): `uniform` where it reads dims, then buffers[name] per binding. */
export const gemvEntries = (source, uniform, buffers) => [
  ...(/\bdims\./.test(source.wgsl) ? [{ binding: 0, resource: { buffer: uniform } }] : []),
  ...source.bindings.map((b, i) => ({ binding: i + 1, resource: { buffer: buffers[b.buffer] } })),
];
