// fuse-attention: scores, causal softmax and the weighted sum become one flash-attention kernel
// (prefill: online softmax over K/V tiles in workgroup memory; decode: split-K partials and a combine).
//
//   kernel l0.scores: attn_scores {...}                      kernel l0.mixed: attention {
//   kernel l0.probs: softmax {...}                    ->       %l0.scores = ...  %l0.probs = ...  %l0.mixed = ...
//   kernel l0.mixed: attn_mix {...}                          }
import { attentionStorageBuffers } from '../codegen/attention.js';
import type { Graph } from '../ir/types.js';
import { mergeKernels, usersOf } from './graph-queries.js';
import { placeBarriers } from './insert-barriers.js';
import { scheduledKernels } from '../ir/schedule.js';
import type { Pass, PassContext } from './pass.js';

export const fuseAttention: Pass = {
  name: 'fuse-attention',
  description: 'attention scores, causal softmax and weighted sum in one flash-attention kernel',
  run(g: Graph, ctx: PassContext): Graph {
    const users = usersOf(g);
    const outputs = new Set(g.outputs);
    let kernels = scheduledKernels(g);
    for (const s of g.nodes) {
      if (s.op !== 'attn_scores' || outputs.has(s.name)) continue;
      const [p] = users.get(s.name) ?? [];
      if (users.get(s.name)?.length !== 1 || p?.op !== 'softmax' || p.attrs.causal !== 1 || outputs.has(p.name)) continue;
      const [m] = users.get(p.name) ?? [];
      if (users.get(p.name)?.length !== 1 || m?.op !== 'attn_mix' || m.args[0] !== p.name) continue;
      if (m.attrs.heads !== s.attrs.heads || m.attrs.kvHeads !== s.attrs.kvHeads || m.attrs.headSize !== s.attrs.headSize) continue;
      if (attentionStorageBuffers(s.type.shape[1]!) > ctx.maxStorageBuffers) continue;
      const merged = mergeKernels(kernels, [s.name, p.name, m.name], m.name, 'attention');
      if (merged) kernels = merged;
    }
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, kernels) };
  },
};
