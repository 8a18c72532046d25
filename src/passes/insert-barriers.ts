// insert-barriers: a barrier before each kernel that touches a buffer an earlier kernel of the current
// segment writes (or writes one it reads), and nowhere else. Each barrier names the kernels and buffers
// it orders, the dependency it guards, and why the kernels on either side are not one.
//
//   kernel l0.q_k_v: linear {...}        kernel l0.q_k_v: linear {...}
//   kernel l0.mixed: attention {...} ->  barrier {reason="cross-token: ...", producers=[l0.q_k_v], consumers=[l0.mixed], ...}
//                                        kernel l0.mixed: attention {...}
import { parallelismOf } from '../ir/parallelism.js';
import { bufferOf, kernelAccess } from '../ir/schedule.js';
import type { BarrierItem, Graph, KernelItem, Op, ScheduleItem } from '../ir/types.js';
import { kernelsOf, nodeMap } from './graph-queries.js';
import type { Pass } from './pass.js';

const layerOf = (kernel: string): string | undefined => /^l(\d+)\./.exec(kernel)?.[1];

/** Why `consumer` must wait for `producer` on `buffer`, from the op that touches it. */
function explain(g: Graph, nodes: Map<string, Op>, producer: KernelItem, consumer: KernelItem, buffer: string, kind: string): { reason: string; unfused: string } {
  const reader = consumer.members.map((m) => nodes.get(m)!).find((n) => n.args.some((a) => bufferOf(g, a) === buffer));
  const value = reader?.args.find((a) => bufferOf(g, a) === buffer) ?? buffer;
  const [pl, cl] = [layerOf(producer.name), layerOf(consumer.name)];
  const layer = pl !== undefined && cl !== undefined && pl !== cl ? `layer-serial: layer ${cl} starts after layer ${pl}; ` : '';
  if (kind !== 'read-after-write' || !reader) {
    return {
      reason: `${layer}${kind}: ${consumer.name} writes ${buffer}, which ${producer.name} ${kind === 'write-after-read' ? 'reads' : 'writes'}`,
      unfused: `${consumer.name} would overwrite ${buffer} while workgroups of ${producer.name} may still use it`,
    };
  }
  const cls = parallelismOf(reader);
  const what =
    cls === 'cross-token'
      ? `${reader.op} at row t reads %${value} at every position up to P+t`
      : cls === 'row-reduction'
        ? `${reader.op} reads whole rows of %${value}`
        : `${reader.op} reads %${value}`;
  return {
    reason: `${layer}${cls}: ${what}, written by ${producer.name}`,
    unfused:
      cls === 'token-parallel'
        ? `${producer.name} (${producer.template}) has no epilogue for ${reader.op}`
        : `a workgroup of ${consumer.name} needs values that other workgroups of ${producer.name} write, and workgroups of one dispatch cannot wait for each other`,
  };
}

/** The kernels in order with a barrier before each one that depends on the segment before it. */
export function placeBarriers(g: Graph, kernels: readonly KernelItem[]): ScheduleItem[] {
    const unscheduled: Graph = { ...g, schedule: kernels };
    const access = kernelAccess(unscheduled);
    const nodes = nodeMap(g);
    const schedule: ScheduleItem[] = [];
    let segment: KernelItem[] = [];
    for (const k of kernels) {
      const mine = access.get(k.name)!;
      const hazards = segment.flatMap((p) => {
        const theirs = access.get(p.name)!;
        const found: { producer: KernelItem; buffer: string; kind: string }[] = [];
        for (const b of mine.reads) if (theirs.writes.has(b)) found.push({ producer: p, buffer: b, kind: 'read-after-write' });
        for (const b of mine.writes) {
          if (theirs.reads.has(b)) found.push({ producer: p, buffer: b, kind: 'write-after-read' });
          else if (theirs.writes.has(b)) found.push({ producer: p, buffer: b, kind: 'write-after-write' });
        }
        return found;
      });
      if (hazards.length > 0) {
        const first = hazards[0]!;
        const { reason, unfused } = explain(unscheduled, nodes, first.producer, k, first.buffer, first.kind);
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
    return { ...unplanned, schedule: placeBarriers(unplanned, kernelsOf(g)) };
  },
};
