// Lowers a verified graph to a Plan: one buffer per declaration and per node (a kv_write result is its
// cache), one kernel per node in program order. The plan is all the runtime receives.
import type { Graph, TensorType } from '../ir/types.js';
import type { Plan, PlanBuffer, PlanKernel } from '../runtime/plan.js';
import { kernelFor, type KernelContext } from './kernels.js';

export function compileGraph(graph: Graph): Plan {
  const types = new Map<string, TensorType>();
  const storage = new Map<string, string>();
  const buffers: PlanBuffer[] = [];
  for (const d of graph.decls) {
    types.set(d.name, d.type);
    storage.set(d.name, d.name);
    buffers.push({ name: d.name, role: d.kind, dtype: d.type.dtype, shape: d.type.shape });
  }
  for (const n of graph.nodes) {
    types.set(n.name, n.type);
    if (n.op === 'kv_write') {
      storage.set(n.name, storage.get(n.args[0])!);
    } else {
      storage.set(n.name, n.name);
      buffers.push({ name: n.name, role: 'activation', dtype: n.type.dtype, shape: n.type.shape });
    }
  }
  const ctx: KernelContext = {
    typeOf: (v) => types.get(v)!,
    bufferOf: (v) => storage.get(v)!,
  };
  const kernels: PlanKernel[] = graph.nodes.map((n) => {
    const k = kernelFor(n, ctx);
    return {
      name: n.name,
      op: n.op,
      wgsl: k.wgsl,
      bindings: k.bindings.map((b, i) => ({ binding: i + 1, buffer: b.buffer, access: b.access })),
      workgroups: k.workgroups,
    };
  });
  return {
    graph: graph.name,
    symbols: graph.symbols,
    buffers,
    kernels,
    inputs: graph.decls.filter((d) => d.kind === 'input').map((d) => d.name),
    outputs: graph.outputs.map((o) => storage.get(o)!),
  };
}
