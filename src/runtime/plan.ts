// A compiled graph as the runtime sees it: buffers, WGSL kernels in dispatch order, and the symbolic
// sizes of both. Plain data produced by codegen; the runtime needs nothing else (and never the IR).
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import type { FormatName } from '../weights/formats.js';

export type BufferRole = 'input' | 'weight' | 'state' | 'activation';

export interface PlanBuffer {
  readonly name: string;
  readonly role: BufferRole;
  /** i32, or a weight format (src/weights/formats.ts): f32, packed halves, blocks in their device layout */
  readonly dtype: 'i32' | FormatName;
  /** elements = product of the dims evaluated at the run's symbol values */
  readonly shape: readonly Affine[];
  /** a weight stacked from these checkpoint tensors along the first axis (default: the tensor of its name) */
  readonly sources?: readonly string[];
  /** activations of one slot share one device buffer, sized for the largest of them */
  readonly slot?: string;
}

/** min(ceil(of / per), max) workgroups along one axis; none (the dispatch is skipped) when that is not positive */
export interface WorkgroupCount {
  readonly of: Affine;
  readonly per: number;
  readonly max?: number;
}

/** Workgroups along one axis at `env`: ceil(of / per), at most max, and 0 where the formula is not positive. */
export function workgroupCount(w: WorkgroupCount, env: A.Env): number {
  return Math.max(0, Math.min(Math.ceil(A.evaluate(w.of, env) / w.per), w.max ?? Infinity));
}

export interface PlanBinding {
  readonly binding: number;
  readonly buffer: string;
  readonly access: 'read' | 'read_write';
}

export interface PlanKernel {
  /** the IR value it computes, for errors and stats */
  readonly name: string;
  /** the schedule's kernel it was emitted for (the node's name where the graph has no schedule): one emits one or more dispatches */
  readonly scheduleKernel: string;
  /** the transformer layer that kernel's nodes belong to, where they belong to one */
  readonly layer?: number;
  readonly op: string;
  /** how the template runs it, where it has several ways (linear: tiled, gemv or column) */
  readonly variant?: string;
  readonly wgsl: string;
  readonly bindings: readonly PlanBinding[];
  readonly workgroups: readonly [WorkgroupCount, WorkgroupCount, WorkgroupCount];
  /** for the second and later dispatches of one fused kernel: the dependency on the dispatch before */
  readonly after?: string;
}

/** Symbols a kernel reads from the uniform at @group(0) @binding(0), one u32 each, in this order (16 bytes in all). */
export const uniformSymbols = ['T', 'P', 'L'] as const;

export interface Plan {
  readonly graph: string;
  readonly symbols: readonly string[];
  readonly buffers: readonly PlanBuffer[];
  readonly kernels: readonly PlanKernel[];
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}
