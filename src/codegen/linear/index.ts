// The fused linear template: an optional RMSNorm prologue, one matmul over weights stored [N, K] (K
// contiguous, in any format of src/weights/formats.ts), and an epilogue applied to each output unit (store,
// residual add, SiLU·gate, or RoPE + KV append). Four ways to run it:
//   tiled  — prefill: a register-tiled matmul, each workgroup a BM×128 output tile staged through
//            workgroup memory in 16-deep slices of x and w; every output sums k in order.
//   split  — prefill when the columns give few tiles and K is deep: the same tile over one of S ranges
//            of K writes partial sums, and a second dispatch adds them (in split order) and applies the epilogue.
//   gemv   — decode (a few constant rows), K ≥ splitKFrom: a group of 64 invocations per unit splits K,
//            reads w as vec4s, and reduces in workgroup memory (each subgroup's sum first, where the device
//            has subgroups); bandwidth-bound.
//   gemv-int8 — gemv with matmul 'int8' where w has an int8 form: x quantized per 32-wide block into workgroup
//            memory, w's int8 blocks read 16 bytes a lane, dot4I8Packed per four pairs (gemv-int8.ts).
//   column — one invocation per unit sums its column in order (run.c's order): small K, or K % 4 ≠ 0.
//   tiled-int8, split-int8 — tiled and split with matmul 'int8' where w has an int8 form: a dispatch quantizes x
//            once per row and 32-wide block, then the same tile over those blocks and w's int8 blocks (int8.ts);
//            tiled-int8-matrix and split-int8-matrix take each block's integer products on subgroup matrices
//            (int8-matrix.ts).
// The normalized input is formed per element in the order a stored rmsnorm result would be.
import { weightFormats } from '../../weights/formats.js';
import type { KernelParts, KernelSource } from '../wgsl.js';
import { columnKernel } from './column.js';
import { gemvKernel } from './gemv.js';
import { gemvInt8Kernel } from './gemv-int8.js';
import { int8TileKernel, int8TiledKernel } from './int8.js';
import { int8MatrixTileKernel, int8MatrixTiledKernel } from './int8-matrix.js';
import { int8Parts } from './int8-staging.js';
import { defaultLinearOptions, linearVariant, type LinearOptions, type LinearSpec, type LinearVariant } from './spec.js';
import { splitKernels } from './split.js';
import { tiledKernel } from './tiled.js';

export { defaultLinearOptions, linearVariant, type LinearEpilogue, type LinearOptions, type LinearSpec, type LinearVariant, type MatmulKind } from './spec.js';

/** The dispatches of one linear kernel and the scratch buffers between them, with the variant that runs. */
export interface LinearKernels extends KernelParts {
  readonly variant: LinearVariant;
}

/** The kernels for `s`; `name` names the scratch buffers (a split's partial sums). */
export function linearKernels(s: LinearSpec, o: LinearOptions = defaultLinearOptions, name = 'linear'): LinearKernels {
  const block = weightFormats[o.weights].blockElements;
  if (s.k % block !== 0) throw new Error(`${name}: ${o.weights} weights need K a multiple of ${block}, K is ${s.k}`);
  const variant = linearVariant(s, o);
  const one = (source: KernelSource): KernelParts => ({ kernels: [{ source }], scratch: [] });
  switch (variant) {
    case 'column':
      return { variant, ...one(columnKernel(s, o)) };
    case 'gemv':
      return { variant, ...one(gemvKernel(s, o)) };
    case 'gemv-int8':
      return { variant, ...one(gemvInt8Kernel(s, o)) };
    case 'tiled':
      return { variant, ...one(tiledKernel(s, o)) };
    case 'split':
      return { variant, ...splitKernels(s, o, name) };
    case 'tiled-int8':
      return { variant, ...int8Parts(s, name, (q) => one(int8TiledKernel(q, o))) };
    case 'split-int8':
      return { variant, ...int8Parts(s, name, (q) => splitKernels(q, o, name, int8TileKernel)) };
    case 'tiled-int8-matrix':
      return { variant, ...int8Parts(s, name, (q) => one(int8MatrixTiledKernel(q, o))) };
    case 'split-int8-matrix':
      return { variant, ...int8Parts(s, name, (q) => splitKernels(q, o, name, int8MatrixTileKernel)) };
  }
}
