// fuse-linear: a matmul becomes one kernel with the RMSNorm that feeds it and the epilogue it feeds —
// a residual add, SiLU·gate over a stacked gate/up matmul, or RoPE and the KV-cache append over a
// stacked Q/K/V matmul. The norm is recomputed per workgroup from its row, so it needs no barrier.
//
//   kernel l0.ffn_in: rmsnorm { %l0.ffn_in = rmsnorm(...) }         kernel l0.gate_up: linear {
//   kernel l0.gate_up: matmul { %l0.gate_up = matmul(...) }    ->     %l0.ffn_in = rmsnorm(...)
//   kernel l0.gate: slice ... kernel l0.gated: mul { ... }             %l0.gate_up = matmul(...) ... %l0.gated = mul(...)
//                                                                    }
import type { Graph, Op } from '../ir/types.js';
import { mergeKernels, nodeMap, usersOf } from './graph-queries.js';
import { placeBarriers } from './insert-barriers.js';
import { scheduledKernels } from '../ir/schedule.js';
import type { Pass, PassContext } from './pass.js';

type Users = Map<string, Op[]>;

const only = (users: Users, v: string): Op | undefined => {
  const u = users.get(v) ?? [];
  return u.length === 1 ? u[0] : undefined;
};

/** gate/up: two slices halving the matmul, silu(gate) · up, each intermediate used once. */
function gluEpilogue(mm: Op, users: Users): Op[] | undefined {
  const slices = users.get(mm.name) ?? [];
  if (slices.length !== 2 || slices.some((s) => s.op !== 'slice')) return undefined;
  const [gate, up] = slices as [Extract<Op, { op: 'slice' }>, Extract<Op, { op: 'slice' }>];
  const width = gate.attrs.size;
  if (gate.attrs.start !== 0 || up.attrs.start !== width || up.attrs.size !== width) return undefined;
  const act = only(users, gate.name);
  const mul = act?.op === 'silu' ? only(users, act.name) : undefined;
  if (!act || mul?.op !== 'mul' || mul.args[0] !== act.name || mul.args[1] !== up.name || only(users, up.name) !== mul) return undefined;
  return [gate, up, act, mul];
}

/** Q/K/V: three slices; q and k rotated by the same tables, k and v appended to caches. */
function qkvEpilogue(mm: Op, users: Users): Op[] | undefined {
  const slices = users.get(mm.name) ?? [];
  if (slices.length !== 3 || slices.some((s) => s.op !== 'slice')) return undefined;
  const [q, k, v] = slices as Extract<Op, { op: 'slice' }>[];
  if (q!.attrs.start !== 0 || k!.attrs.start !== q!.attrs.size || v!.attrs.start !== k!.attrs.start + k!.attrs.size || k!.attrs.size !== v!.attrs.size) {
    return undefined;
  }
  const qRot = only(users, q!.name);
  const kRot = only(users, k!.name);
  if (qRot?.op !== 'rope' || kRot?.op !== 'rope' || qRot.attrs.headSize !== kRot.attrs.headSize) return undefined;
  if (qRot.args[1] !== kRot.args[1] || qRot.args[2] !== kRot.args[2]) return undefined;
  const kWrite = only(users, kRot.name);
  const vWrite = only(users, v!.name);
  if (kWrite?.op !== 'kv_write' || vWrite?.op !== 'kv_write') return undefined;
  return [q!, k!, v!, qRot, kRot, kWrite, vWrite];
}

/** Storage buffers one kernel of `members` binds: what it reads from outside, what it writes for outside, the caches it fills. */
function storageBuffers(g: Graph, members: readonly Op[], users: Users, outputs: ReadonlySet<string>): number {
  const inside = new Set(members.map((m) => m.name));
  const buffers = new Set<string>();
  for (const m of members) {
    for (const a of m.args) if (!inside.has(a)) buffers.add(a);
    if (outputs.has(m.name) || (users.get(m.name) ?? []).some((u) => !inside.has(u.name))) buffers.add(m.op === 'kv_write' ? m.args[0] : m.name);
  }
  return buffers.size;
}

export const fuseLinear: Pass = {
  name: 'fuse-linear',
  description: 'a matmul with the RMSNorm before it and its epilogue (residual add, SiLU·gate, RoPE + KV append) in one kernel',
  run(g: Graph, ctx: PassContext): Graph {
    const users = usersOf(g);
    const nodes = nodeMap(g);
    const outputs = new Set(g.outputs);
    let kernels = scheduledKernels(g);
    for (const mm of g.nodes) {
      if (mm.op !== 'matmul') continue;
      const x = nodes.get(mm.args[0]);
      const prologue = x?.op === 'rmsnorm' && only(users, x.name) === mm && !outputs.has(x.name) ? [x] : [];
      const add = only(users, mm.name);
      const epilogue =
        add?.op === 'add' && !outputs.has(mm.name) ? [add] : outputs.has(mm.name) ? [] : (gluEpilogue(mm, users) ?? qkvEpilogue(mm, users) ?? []);
      // widest first; a group that would bind more storage buffers than the adapter allows sheds its
      // epilogue, then its prologue
      const candidates = [[...prologue, mm, ...epilogue], [...prologue, mm], [mm, ...epilogue], [mm]].filter(
        (c) => storageBuffers(g, c, users, outputs) <= ctx.maxStorageBuffers,
      );
      for (const c of candidates) {
        const merged =
          c.length > 1
            ? mergeKernels(
                kernels,
                c.map((n) => n.name),
                mm.name,
                'linear',
              )
            : undefined;
        if (merged) {
          kernels = merged;
          break;
        }
      }
    }
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, kernels) };
  },
};
