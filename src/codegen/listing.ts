// The WGSL of a compiled graph for a reader: every plan kernel's shader in dispatch order, after comment lines naming
// it, the schedule kernel it was emitted for, the IR nodes that kernel computes, its workgroup count and the barrier
// before it. The Plan must be the one compileGraph gave for the Graph.
import * as A from '../affine.js';
import { printBarrier, printNode } from '../ir/print.js';
import { scheduledKernels } from '../ir/schedule.js';
import { formatKind } from '../ir/kernel-kinds.js';
import type { BarrierItem, Graph, KernelItem, Op } from '../ir/types.js';
import type { Plan, PlanKernel, WorkgroupCount } from '../runtime/plan.js';
import { barrierIndices } from './stats.js';

/** `ceil(T / 64)`, `min(ceil((P + 1) / 32), 8)`, or the number where the count is constant. */
function workgroupText(w: WorkgroupCount): string {
  if (A.isConstant(w.of)) return String(Math.min(Math.ceil(w.of.c / w.per), w.max ?? Infinity));
  const of = A.format(w.of);
  const count = w.per === 1 ? of : `ceil(${/^\w+$/.test(of) ? of : `(${of})`} / ${w.per})`;
  return w.max === undefined ? count : `min(${count}, ${w.max})`;
}

/** The comment lines above one plan kernel's WGSL. */
function kernelHeader(graph: Graph, kernel: PlanKernel, of: KernelItem | undefined, members: readonly Op[], barrier: BarrierItem | undefined): string[] {
  const how = kernel.variant ? `${kernel.op}, ${kernel.variant}` : kernel.op;
  const kind = of ? `: ${formatKind(of.kind)}` : '';
  return [
    `// kernel ${kernel.name} (${how}), emitted for ${kernel.scheduleKernel}${kind}, which computes:`,
    ...members.map((m) => `//   ${printNode(m, graph.slots?.[m.name])}`),
    `// workgroups: ${kernel.workgroups.map(workgroupText).join(' × ')}`,
    ...(barrier ? [`// after ${printBarrier(graph, barrier)}`] : []),
    ...(kernel.after ? [`// after the dispatch before it: ${kernel.after}`] : []),
  ];
}

/** Every kernel of `plan` with its header, separated by blank lines, after a line naming the graph. */
export function printWgsl(graph: Graph, plan: Plan): string {
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const scheduled = new Map(scheduledKernels(graph).map((k) => [k.name, k]));
  const barriers = (graph.schedule ?? []).filter((item) => item.item === 'barrier');
  const before = barrierIndices(graph);
  const listed = plan.kernels.map((k, i) => {
    // the barrier before a schedule kernel comes before its first dispatch
    const first = plan.kernels[i - 1]?.scheduleKernel !== k.scheduleKernel;
    const barrier = first ? barriers[before.get(k.scheduleKernel) ?? -1] : undefined;
    const of = scheduled.get(k.scheduleKernel);
    const members = (of?.members ?? []).map((m) => nodes.get(m)!);
    return [...kernelHeader(graph, k, of, members, barrier), k.wgsl.trimEnd()].join('\n');
  });
  return [`// graph ${plan.graph}: ${plan.kernels.length} dispatches`, ...listed].join('\n\n') + '\n';
}
