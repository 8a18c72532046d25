// The compilation pipeline as data: the passes in order, by name. `weft compile --passes` picks a
// subset. Every pass that regroups kernels re-places the barriers, so the schedule is verified after
// each; plan-buffers runs last, on the final kernels.
import { fuseAttention } from './fuse-attention.js';
import { fuseElementwise } from './fuse-elementwise.js';
import { fuseLinear } from './fuse-linear.js';
import { insertBarriers } from './insert-barriers.js';
import type { Pass } from './pass.js';
import { planBuffers } from './plan-buffers.js';
import { splitNorms } from './split-norms.js';
import { stackWeights } from './stack-weights.js';

export const pipeline: readonly Pass[] = [stackWeights, splitNorms, insertBarriers, fuseLinear, fuseAttention, fuseElementwise, planBuffers];

export function passesByName(names: readonly string[]): Pass[] {
  return names.map((name) => {
    const p = pipeline.find((q) => q.name === name);
    if (!p) throw new Error(`unknown pass '${name}' (passes: ${pipeline.map((q) => q.name).join(', ')})`);
    return p;
  });
}
