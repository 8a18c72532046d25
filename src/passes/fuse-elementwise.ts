// fuse-elementwise: adjacent elementwise kernels over the same shape become one kernel; each element
// depends only on the same element of its inputs, so no barrier can be needed between them.
//
//   kernel a: silu { %a = silu(%g) }          kernel b: elementwise {
//   kernel b: mul { %b = mul(%a, %u) }   ->     %a = silu(%g)  %b = mul(%a, %u)
//                                             }
import * as A from '../affine.js';
import { elementwiseOps, type Graph, type KernelItem, type Op } from '../ir/types.js';
import { nodeMap } from './graph-queries.js';
import { placeBarriers } from './insert-barriers.js';
import { scheduledKernels } from '../ir/schedule.js';
import type { Pass } from './pass.js';

const shapeKey = (n: Op): string => n.type.shape.map(A.format).join(',');

export const fuseElementwise: Pass = {
  name: 'fuse-elementwise',
  description: 'adjacent elementwise kernels over one shape in one kernel',
  run(g: Graph): Graph {
    const nodes = nodeMap(g);
    const isElementwise = (k: KernelItem): boolean =>
      (k.template === 'elementwise' || k.members.length === 1) && k.members.every((m) => elementwiseOps.has(nodes.get(m)!.op));
    const out: KernelItem[] = [];
    for (const k of scheduledKernels(g)) {
      const prev = out[out.length - 1];
      if (prev && isElementwise(prev) && isElementwise(k) && shapeKey(nodes.get(prev.members[0]!)!) === shapeKey(nodes.get(k.members[0]!)!)) {
        out[out.length - 1] = { item: 'kernel', name: k.name, template: 'elementwise', members: [...prev.members, ...k.members] };
      } else {
        out.push(k);
      }
    }
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, out) };
  },
};
