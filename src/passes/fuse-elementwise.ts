// fuse-elementwise: adjacent elementwise kernels over the same shape become one kernel; each element
// depends only on the same element of its inputs, so no barrier can be needed between them.
//
//   kernel a: silu { %a = silu(%g) }          kernel b: elementwise {
//   kernel b: mul { %b = mul(%a, %u) }   ->     %a = silu(%g)  %b = mul(%a, %u)
//                                             }
import { shapeKey } from '../ir/kernel-kinds.js';
import { scheduledKernels } from '../ir/schedule.js';
import { elementwiseOps, type Graph, type KernelItem } from '../ir/types.js';
import { nodeMap } from './graph-queries.js';
import { placeBarriers } from './insert-barriers.js';
import type { Pass } from './pass.js';

export const fuseElementwise: Pass = {
  name: 'fuse-elementwise',
  description: 'adjacent elementwise kernels over one shape in one kernel',
  run(g: Graph): Graph {
    const nodes = nodeMap(g);
    const isElementwise = (k: KernelItem): boolean =>
      (k.kind.kind === 'elementwise' || k.kind.kind === 'op') && k.members.every((m) => elementwiseOps.has(nodes.get(m)!.op));
    const out: KernelItem[] = [];
    for (const k of scheduledKernels(g)) {
      const prev = out[out.length - 1];
      if (!prev || !isElementwise(prev) || !isElementwise(k)) {
        out.push(k);
        continue;
      }
      // a reader has its argument's shape, so kernels of different shapes never depend on each other here
      const [a, b] = [nodes.get(prev.members[0]!)!, nodes.get(k.members[0]!)!];
      if (shapeKey(a) === shapeKey(b)) {
        const declined = [...(prev.declined ?? []), ...(k.declined ?? [])];
        out[out.length - 1] = {
          item: 'kernel',
          name: k.name,
          kind: { kind: 'elementwise' },
          members: [...prev.members, ...k.members],
          ...(declined.length > 0 ? { declined } : {}),
        };
      } else {
        out.push(k);
      }
    }
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, out) };
  },
};
