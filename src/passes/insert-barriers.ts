// insert-barriers: a barrier before each kernel that touches a buffer an earlier kernel of the current
// segment writes (or writes one it reads), and nowhere else. Each barrier names the kernels and buffers
// it orders, the dependency it guards, and why the kernels on either side are not one.
//
//   kernel l0.q_k_v: linear {...}        kernel l0.q_k_v: linear {...}
//   kernel l0.mixed: attention {...} ->  barrier {reason="cross-token: ...", producers=[l0.q_k_v], consumers=[l0.mixed], ...}
//                                        kernel l0.mixed: attention {...}
import { formatKind, kernelLayer } from '../ir/kernel-kinds.js';
import { parallelismOf } from '../ir/parallelism.js';
import { formatBuffer } from '../ir/print.js';
import { bufferOf, kernelAccess, scheduledKernels } from '../ir/schedule.js';
import type { BarrierItem, FusionDecline, Graph, KernelItem, Op, Parallelism, ScheduleItem } from '../ir/types.js';
import { nodeMap } from './graph-queries.js';
import type { Pass } from './pass.js';

type Need = Parallelism | 'ordering';

/** What a reader needs of its argument `arg`: attention needs other positions of K and V but one row of q. */
function needOf(reader: Op, arg: number): Parallelism {
  if (reader.op === 'attn_scores' || reader.op === 'attn_mix') return arg === 1 ? 'cross-token' : 'row-reduction';
  return parallelismOf(reader);
}

const rank: Record<Need, number> = { 'cross-token': 3, 'row-reduction': 2, 'token-parallel': 1, ordering: 0 };

interface Hazard {
  readonly producer: KernelItem;
  readonly buffer: string;
  readonly kind: 'read-after-write' | 'write-after-read' | 'write-after-write';
}

/** The dependency a hazard stands for: the consumer's op that reads the buffer, and what it needs of it. */
function dependency(g: Graph, nodes: Map<string, Op>, consumer: KernelItem, h: Hazard): { need: Need; reader?: Op; value?: string } {
  if (h.kind !== 'read-after-write') return { need: 'ordering' };
  for (const n of consumer.members.map((m) => nodes.get(m)!)) {
    const arg = n.args.findIndex((a, i) => !(n.op === 'kv_write' && i === 0) && bufferOf(g, a) === h.buffer);
    if (arg >= 0) return { need: needOf(n, arg), reader: n, value: n.args[arg] };
  }
  return { need: 'ordering' };
}

/** Why `consumer` must wait, from its strongest dependency, and why the two kernels cannot be one. */
function explain(
  g: Graph,
  nodes: Map<string, Op>,
  declines: ReadonlyMap<string, FusionDecline>,
  consumer: KernelItem,
  hazards: readonly Hazard[],
): { reason: string; unfused: string } {
  const ranked = hazards.map((h) => ({ h, ...dependency(g, nodes, consumer, h) })).sort((a, b) => rank[b.need] - rank[a.need]);
  const { h, need, reader, value } = ranked[0]!;
  const layerOf = (k: KernelItem) => kernelLayer(k.members.map((m) => nodes.get(m)!));
  const [pl, cl] = [layerOf(h.producer), layerOf(consumer)];
  const layer = pl !== undefined && cl !== undefined && pl !== cl ? `layer-serial: layer ${cl} starts after layer ${pl}; ` : '';
  if (need === 'ordering' || !reader) {
    const buffer = formatBuffer(g, h.buffer);
    return {
      reason: `${layer}${h.kind}: ${consumer.name} writes ${buffer}, which ${h.producer.name} ${h.kind === 'write-after-read' ? 'reads' : 'writes'}`,
      unfused: `${consumer.name} would overwrite ${buffer} while workgroups of ${h.producer.name} may still use it`,
    };
  }
  const what =
    need === 'cross-token'
      ? reader.op === 'take_rows'
        ? `${reader.op} reads the rows of %${value} that %${reader.args[1]} picks`
        : `${reader.op} at row t reads %${value} at every position up to P+t`
      : need === 'row-reduction'
        ? `${reader.op} reads whole ${reader.op === 'head_rmsnorm' ? 'heads' : 'rows'} of %${value}`
        : `${reader.op} reads %${value}`;
  // a token-parallel dependency could be one kernel: why it is not is what the fusion passes recorded
  const declined = declines.get(reader.name);
  return {
    reason: `${layer}${need}: ${what}, written by ${h.producer.name}`,
    unfused:
      need !== 'token-parallel'
        ? `a workgroup of ${consumer.name} needs values that other workgroups of ${h.producer.name} write, and workgroups of one dispatch cannot wait for each other`
        : declined
          ? `${declined.pass} declined: ${declined.reason}`
          : `not fused by the passes run so far: none has joined ${reader.op} to a ${formatKind(h.producer.kind)} kernel`,
  };
}

/** The kernels in order with a barrier before each one that depends on the segment before it. */
export function placeBarriers(g: Graph, kernels: readonly KernelItem[]): ScheduleItem[] {
  const unscheduled: Graph = { ...g, schedule: kernels };
  const access = kernelAccess(unscheduled);
  const nodes = nodeMap(g);
  // the fusion a pass declined for each node it left out, on whichever kernel it recorded it
  const declines = new Map(kernels.flatMap((k) => (k.declined ?? []).flatMap((d) => d.nodes.map((n) => [n, d] as const))));
  const schedule: ScheduleItem[] = [];
  let segment: KernelItem[] = [];
  for (const k of kernels) {
    const mine = access.get(k.name)!;
    const hazards = segment.flatMap((p) => {
      const theirs = access.get(p.name)!;
      const found: Hazard[] = [];
      for (const b of mine.reads) if (theirs.writes.has(b)) found.push({ producer: p, buffer: b, kind: 'read-after-write' });
      for (const b of mine.writes) {
        if (theirs.reads.has(b)) found.push({ producer: p, buffer: b, kind: 'write-after-read' });
        else if (theirs.writes.has(b)) found.push({ producer: p, buffer: b, kind: 'write-after-write' });
      }
      return found;
    });
    if (hazards.length > 0) {
      const { reason, unfused } = explain(unscheduled, nodes, declines, k, hazards);
      const barrier: BarrierItem = {
        item: 'barrier',
        reason,
        producers: [...new Set(hazards.map((h) => h.producer.name))],
        consumers: [k.name],
        buffers: [...new Set(hazards.map((h) => h.buffer))],
        unfused,
      };
      schedule.push(barrier);
      segment = [];
    }
    schedule.push(k);
    segment.push(k);
  }
  return schedule;
}

export const insertBarriers: Pass = {
  name: 'insert-barriers',
  description: 'a barrier exactly where a kernel depends on an earlier one (read-after-write, write-after-read, write-after-write)',
  run(g: Graph): Graph {
    const unplanned = { ...g, slots: undefined };
    return { ...unplanned, schedule: placeBarriers(unplanned, scheduledKernels(g)) };
  },
};
