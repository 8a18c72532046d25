// split-norms: an RMSNorm read by several matmuls becomes one RMSNorm per matmul, so that fuse-linear can make each
// the prologue of its matmul's kernel (a prologue recomputes the norm for its one reader). Where weights of two
// formats stack apart (a Q4_K_M layer's Q6_K wv beside its Q4_K wq and wk) this saves the norm's own kernel and its
// barrier; a norm also read by any other node, or a graph output, stays whole.
//
//   %l0.attn_in = rmsnorm(%x, %w)                   %l0.attn_in = rmsnorm(%x, %w)
//   %l0.q_k = matmul(%l0.attn_in, %wq_wk)     ->    %l0.q_k = matmul(%l0.attn_in, %wq_wk)
//   %l0.v = matmul(%l0.attn_in, %wv)                %l0.attn_in.1 = rmsnorm(%x, %w)
//                                                   %l0.v = matmul(%l0.attn_in.1, %wv)
import { graphIndex } from '../ir/kernel-kinds.js';
import type { Graph, Op } from '../ir/types.js';
import type { Pass } from './pass.js';

export const splitNorms: Pass = {
  name: 'split-norms',
  description: 'an RMSNorm read by several matmuls becomes one per matmul, each then a prologue of its own',
  run(g: Graph): Graph {
    const { users, outputs } = graphIndex(g);
    const taken = new Set([...g.decls.map((d) => d.name), ...g.nodes.map((n) => n.name)]);
    // per reader after the first: the copy of the norm it reads instead
    const copies = new Map<string, Op>();
    for (const n of g.nodes) {
      if (n.op !== 'rmsnorm' || outputs.has(n.name)) continue;
      const rs = users.get(n.name) ?? [];
      if (rs.length < 2 || rs.some((r) => r.op !== 'matmul' || r.args[1] === n.name)) continue;
      rs.slice(1).forEach((r, i) => {
        let name = `${n.name}.${i + 1}`;
        while (taken.has(name)) name += '_';
        taken.add(name);
        copies.set(r.name, { ...n, name });
      });
    }
    if (copies.size === 0) return g;
    // each copy, and its matmul reading it in place of the original, just before the matmul's first reader (where
    // the matmul has one): fuse-linear merges only kernels adjacent in the schedule, and another matmul's epilogue
    // may lie between a matmul and its own (a Q4_K_M layer's v matmul sat between q/k and their RoPE)
    const before = new Map<string, Op[]>();
    const inPlace = new Map<string, Op[]>();
    for (const n of g.nodes) {
      const copy = copies.get(n.name);
      if (!copy || n.op !== 'matmul') continue;
      const pair = [copy, { ...n, args: [copy.name, n.args[1]] } as const];
      const first = users.get(n.name)?.[0];
      if (first && !copies.has(first.name)) before.set(first.name, [...(before.get(first.name) ?? []), ...pair]);
      else inPlace.set(n.name, pair);
    }
    const nodes = g.nodes.flatMap((n): Op[] => (copies.has(n.name) ? (inPlace.get(n.name) ?? []) : [...(before.get(n.name) ?? []), n]));
    return { ...g, nodes, schedule: undefined, slots: undefined };
  },
};
