// plan-buffers: values that need a buffer share slots once their lifetimes no longer overlap: a slot is
// free for a kernel once a barrier separates it from the last read of the slot's value, so reuse adds
// no barrier. The runtime sizes a slot for its largest value; an output counts as read after the run,
// so nothing writes its slot after it.
//
//   %l0.resid_attn = ... : f32[T, 64]         %l0.resid_attn = ... : f32[T, 64] @s0
//   %l0.gated = ... : f32[T, 172]       ->    %l0.gated = ... : f32[T, 172] @s1
//   %l0.resid_ffn = ... : f32[T, 64]          %l0.resid_ffn = ... : f32[T, 64] @s2   (s0 is still live)
import * as A from '../affine.js';
import { materializedValues, scheduledKernels } from '../ir/schedule.js';
import type { Graph } from '../ir/types.js';
import { placeBarriers } from './insert-barriers.js';
import type { Pass } from './pass.js';

export const planBuffers: Pass = {
  name: 'plan-buffers',
  description: 'activation buffers reused across values whose lifetimes do not overlap',
  run(g: Graph): Graph {
    const kernels = scheduledKernels(g);
    const materialized = materializedValues(g);
    const nodes = new Map(g.nodes.map((n) => [n.name, n]));
    // segment of each kernel: how many barriers precede it
    const segmentOf = new Map<string, number>();
    let segment = 0;
    for (const item of g.schedule ?? []) {
      if (item.item === 'barrier') segment++;
      else segmentOf.set(item.name, segment);
    }
    const kernelIndex = new Map<string, number>();
    kernels.forEach((k, i) => k.members.forEach((m) => kernelIndex.set(m, segmentOf.get(k.name) ?? i)));
    const lastRead = new Map<string, number>();
    for (const n of g.nodes) for (const a of n.args) if (kernelIndex.has(a)) lastRead.set(a, Math.max(lastRead.get(a) ?? -1, kernelIndex.get(n.name)!));
    for (const o of g.outputs) lastRead.set(o, Infinity);

    const slots = new Map<string, { free: number; shape: string }>();
    const assigned: Record<string, string> = {};
    kernels.forEach((k) => {
      const i = kernelIndex.get(k.members[0]!)!;
      for (const m of k.members) {
        const n = nodes.get(m)!;
        if (!materialized.has(m) || n.op === 'kv_write') continue;
        const shape = n.type.shape.map(A.format).join(',');
        // a slot is free for kernel i once its last value was last read before kernel i
        const free = [...slots].filter(([, s]) => s.free < i);
        const pick = free.find(([, s]) => s.shape === shape) ?? free[0];
        const name = pick ? pick[0] : `s${slots.size}`;
        slots.set(name, { free: lastRead.get(m) ?? i, shape });
        assigned[m] = name;
      }
    });
    const planned = { ...g, slots: assigned };
    return { ...planned, schedule: placeBarriers(planned, kernels) };
  },
};
