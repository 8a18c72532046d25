// fuse-linear: a matmul becomes one kernel with the RMSNorm that feeds it and the epilogue it feeds —
// a residual add, SiLU·gate over a stacked gate/up matmul, or RoPE and the KV-cache append over a
// stacked Q/K/V matmul. The norm is recomputed per workgroup from its row, so it needs no barrier. A matmul
// with neither is a linear kernel too (epilogue store), so it keeps the linear templates and quantized weights.
// Every prologue or epilogue it leaves out is recorded on the matmul's kernel with the reason.
//
//   kernel l0.ffn_in: rmsnorm { %l0.ffn_in = rmsnorm(...) }         kernel l0.gate_up: linear(prologue=rmsnorm, epilogue=glu) {
//   kernel l0.gate_up: matmul { %l0.gate_up = matmul(...) }    ->     %l0.ffn_in = rmsnorm(...)
//   kernel l0.gate: slice ... kernel l0.gated: mul { ... }             %l0.gate_up = matmul(...) ... %l0.gated = mul(...)
//                                                                    }
import { graphIndex, linearEpilogue, linearPrologue, type GraphIndex } from '../ir/kernel-kinds.js';
import { scheduledKernels } from '../ir/schedule.js';
import type { FusionDecline, Graph, KernelItem, LinearEpilogue, Op } from '../ir/types.js';
import { mergeKernels, recordDecline, withoutDeclines } from './graph-queries.js';
import { placeBarriers } from './insert-barriers.js';
import type { Pass, PassContext } from './pass.js';

const PASS = 'fuse-linear';

/** Storage buffers one kernel of `members` binds: what it reads from outside, what it writes for outside, the caches it fills. */
function storageBuffers(members: readonly Op[], { users, outputs }: GraphIndex): number {
  const inside = new Set(members.map((m) => m.name));
  const buffers = new Set<string>();
  for (const m of members) {
    for (const a of m.args) if (!inside.has(a)) buffers.add(a);
    if (outputs.has(m.name) || (users.get(m.name) ?? []).some((u) => !inside.has(u.name))) buffers.add(m.op === 'kv_write' ? m.args[0] : m.name);
  }
  return buffers.size;
}

const names = (nodes: readonly Op[]): string[] => nodes.map((n) => n.name);

export const fuseLinear: Pass = {
  name: PASS,
  description: 'a matmul with the RMSNorm before it and its epilogue (residual add, SiLU·gate, RoPE + KV append) in one kernel',
  run(g: Graph, ctx: PassContext): Graph {
    const index = graphIndex(g);
    let kernels: KernelItem[] = withoutDeclines(scheduledKernels(g), PASS);
    for (const mm of g.nodes) {
      if (mm.op !== 'matmul') continue;
      const declines: FusionDecline[] = [];
      const decline = (nodes: readonly Op[], reason: string) => declines.push({ pass: PASS, nodes: names(nodes), reason });
      const norm = linearPrologue(mm, index);
      if (norm && 'reason' in norm) decline([index.nodes.get(mm.args[0])!], `no rmsnorm prologue: ${norm.reason}`);
      const prologue = norm && !('reason' in norm) ? [norm] : [];
      const store = { kind: 'store' as LinearEpilogue, nodes: [] as readonly Op[] };
      const tail = linearEpilogue(mm, index);
      if ('reason' in tail) decline(index.users.get(mm.name) ?? [], tail.reason);
      const epilogue = 'reason' in tail ? store : tail;
      // widest first; a group that would bind more storage buffers than the adapter allows sheds its
      // epilogue, then its prologue
      const fits = [
        { prologue, epilogue },
        { prologue, epilogue: store },
        { prologue: [] as Op[], epilogue },
      ].find((c) => storageBuffers([...c.prologue, mm, ...c.epilogue.nodes], index) <= ctx.maxStorageBuffers);
      const widest = storageBuffers([...prologue, mm, ...epilogue.nodes], index);
      const over = (nodes: readonly Op[], what: string) =>
        decline(nodes, `the ${what} would make it bind ${widest} storage buffers, more than the ${ctx.maxStorageBuffers} a kernel may`);
      if (fits?.epilogue !== epilogue && epilogue.nodes.length > 0) over(epilogue.nodes, `${epilogue.kind} epilogue`);
      if (fits?.prologue !== prologue && prologue.length > 0) over(prologue, 'rmsnorm prologue');
      const members = fits ? [...fits.prologue, mm, ...fits.epilogue.nodes] : [mm];
      if (fits) {
        const kind = { kind: 'linear' as const, prologue: fits.prologue.length > 0 ? ('rmsnorm' as const) : ('none' as const), epilogue: fits.epilogue.kind };
        const merged = mergeKernels(kernels, names(members), mm.name, kind);
        if (merged) kernels = merged;
        else
          decline(
            members.filter((m) => m !== mm),
            'their kernels are not adjacent single-node kernels in the schedule',
          );
      }
      for (const d of declines) kernels = recordDecline(kernels, mm.name, d);
    }
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, kernels) };
  },
};
