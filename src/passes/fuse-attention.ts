// fuse-attention: scores, causal softmax and the weighted sum become one flash-attention kernel
// (prefill: online softmax over K/V tiles in workgroup memory; decode: split-K partials and a combine).
// Scores it leaves apart say why on their kernel.
//
//   kernel l0.scores: attn_scores {...}                      kernel l0.mixed: attention(causal) {
//   kernel l0.probs: softmax {...}                    ->       %l0.scores = ...  %l0.probs = ...  %l0.mixed = ...
//   kernel l0.mixed: attn_mix {...}                          }
import { attentionChain, attentionStorageBuffers, graphIndex } from '../ir/kernel-kinds.js';
import { scheduledKernels } from '../ir/schedule.js';
import type { Graph } from '../ir/types.js';
import { mergeKernels, recordDecline, withoutDeclines } from './graph-queries.js';
import { placeBarriers } from './insert-barriers.js';
import type { Pass, PassContext } from './pass.js';

const PASS = 'fuse-attention';

export const fuseAttention: Pass = {
  name: PASS,
  description: 'attention scores, causal softmax and weighted sum in one flash-attention kernel',
  run(g: Graph, ctx: PassContext): Graph {
    const index = graphIndex(g);
    let kernels = withoutDeclines(scheduledKernels(g), PASS);
    for (const s of g.nodes) {
      const chain = attentionChain(s, index);
      if (chain === undefined) continue;
      const readers = (index.users.get(s.name) ?? []).map((n) => n.name);
      const decline = (reason: string) => {
        kernels = recordDecline(kernels, s.name, { pass: PASS, nodes: readers, reason });
      };
      if ('reason' in chain) {
        decline(chain.reason);
        continue;
      }
      const bound = attentionStorageBuffers(s.type.shape[1]!);
      if (bound > ctx.maxStorageBuffers) {
        decline(`the attention kernel binds ${bound} storage buffers, more than the ${ctx.maxStorageBuffers} a kernel may`);
        continue;
      }
      const merged = mergeKernels(
        kernels,
        chain.map((n) => n.name),
        chain[2]!.name,
        { kind: 'attention', variant: 'causal' },
      );
      if (merged) kernels = merged;
      else decline('their kernels are not adjacent single-node kernels in the schedule');
    }
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, kernels) };
  },
};
