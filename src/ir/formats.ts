// Machine- and eye-readable views of a Graph beside the text form: stable JSON (dims as formatted strings,
// each node's parallelism) and Graphviz dot (one node per value, a cluster per kernel, barriers as notes).
import * as A from '../affine.js';
import { formatKind } from './kernel-kinds.js';
import { parallelismOf } from './parallelism.js';
import { attrEntries, formatBuffer } from './print.js';
import { formatType } from './shapes.js';
import type { BarrierItem, Graph, KernelItem, TensorType } from './types.js';

function jsonType(t: TensorType): { dtype: string; shape: string[] } {
  return { dtype: t.dtype, shape: t.shape.map(A.format) };
}

/** The Graph as JSON with a fixed key order, attrs in signature order and slots in node order; ends with a newline. */
export function printJson(g: Graph): string {
  const json = {
    name: g.name,
    symbols: g.symbols,
    decls: g.decls.map((d) => ({ kind: d.kind, name: d.name, type: jsonType(d.type), ...(d.from ? { from: d.from } : {}) })),
    nodes: g.nodes.map((n) => ({
      name: n.name,
      op: n.op,
      args: n.args,
      attrs: Object.fromEntries(attrEntries(n)),
      type: jsonType(n.type),
      parallelism: parallelismOf(n),
      ...(n.layer !== undefined ? { layer: n.layer } : {}),
      ...(g.slots?.[n.name] !== undefined ? { slot: g.slots[n.name] } : {}),
    })),
    ...(g.schedule
      ? {
          schedule: g.schedule.map((item) =>
            item.item === 'kernel'
              ? { item: item.item, name: item.name, kind: formatKind(item.kind), members: item.members, ...(item.declined ? { declined: item.declined } : {}) }
              : {
                  item: item.item,
                  reason: item.reason,
                  producers: item.producers,
                  consumers: item.consumers,
                  buffers: item.buffers,
                  unfused: item.unfused,
                },
          ),
        }
      : {}),
    ...(g.slots ? { slots: Object.fromEntries(g.nodes.flatMap((n) => (g.slots![n.name] !== undefined ? [[n.name, g.slots![n.name]!]] : []))) } : {}),
    outputs: g.outputs,
  };
  return JSON.stringify(json, null, 2) + '\n';
}

/** A dot string literal; `\n` in the text becomes a label line break. */
function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/**
 * Graphviz dot: declarations as ellipses (inputs), folders (weights) and cylinders (states), nodes as boxes
 * labelled with op, type, slot and parallelism, outputs double-bordered, one `cluster_<kernel>` per kernel,
 * and each barrier as a note (reason, buffers, why unfused) with dashed edges from its producers and to its consumers.
 */
export function printDot(g: Graph): string {
  const outputs = new Set(g.outputs);
  const shapes = { input: 'ellipse', weight: 'folder', state: 'cylinder' } as const;
  const id = (value: string): string => quote(`%${value}`);
  const peripheries = (value: string): string => (outputs.has(value) ? ', peripheries=2' : '');
  const lines = [`digraph ${quote(g.name)} {`, '  compound=true;', '  node [shape=box, fontname="monospace", fontsize=10];'];

  for (const d of g.decls) {
    const label = `${d.kind} %${d.name}\n${formatType(d.type)}${d.from ? `\nfrom ${d.from.join(', ')}` : ''}`;
    lines.push(`  ${id(d.name)} [shape=${shapes[d.kind]}, label=${quote(label)}${peripheries(d.name)}];`);
  }
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const nodeLine = (name: string, indent: string): string => {
    const n = byName.get(name)!;
    const slot = g.slots?.[name] !== undefined ? ` @${g.slots[name]}` : '';
    const label = `%${name} = ${n.op}\n${formatType(n.type)}${slot}\n${parallelismOf(n)}`;
    return `${indent}${id(name)} [label=${quote(label)}${peripheries(name)}];`;
  };
  const kernels = (g.schedule ?? []).filter((i): i is KernelItem => i.item === 'kernel');
  const clustered = new Set<string>();
  for (const k of kernels) {
    lines.push(`  subgraph ${quote(`cluster_${k.name}`)} {`, `    label=${quote(`kernel ${k.name}: ${formatKind(k.kind)}`)};`, '    style=rounded;');
    for (const m of k.members.filter((m) => byName.has(m) && !clustered.has(m))) {
      lines.push(nodeLine(m, '    '));
      clustered.add(m);
    }
    lines.push('  }');
  }
  for (const n of g.nodes) if (!clustered.has(n.name)) lines.push(nodeLine(n.name, '  '));
  for (const n of g.nodes) for (const a of n.args) lines.push(`  ${id(a)} -> ${id(n.name)};`);

  const kernelByName = new Map(kernels.filter((k) => k.members.some((m) => byName.has(m))).map((k) => [k.name, k]));
  const schedule = g.schedule ?? [];
  const isKernel = (i: KernelItem | BarrierItem): i is KernelItem => i.item === 'kernel' && kernelByName.has(i.name);
  let n = 0;
  schedule.forEach((barrier, i) => {
    if (barrier.item !== 'barrier') return;
    const before = schedule.slice(0, i).filter(isKernel).at(-1);
    const after = schedule.slice(i + 1).find(isKernel);
    const producers = barrier.producers.length > 0 ? barrier.producers.flatMap((p) => kernelByName.get(p) ?? []) : before ? [before] : [];
    const consumers = barrier.consumers.length > 0 ? barrier.consumers.flatMap((c) => kernelByName.get(c) ?? []) : after ? [after] : [];
    const note = quote(`barrier ${n}`);
    const buffers = barrier.buffers.map((b) => formatBuffer(g, b)).join(', ');
    const label = `barrier ${n++}: ${barrier.reason}\nbuffers: ${buffers}\nunfused: ${barrier.unfused}`;
    lines.push(`  ${note} [shape=note, color=red, label=${quote(label)}];`);
    for (const p of producers) {
      const tail = p.members.filter((m) => byName.has(m)).at(-1)!;
      lines.push(`  ${id(tail)} -> ${note} [style=dashed, color=red, ltail=${quote(`cluster_${p.name}`)}];`);
    }
    for (const c of consumers) {
      const head = c.members.find((m) => byName.has(m))!;
      lines.push(`  ${note} -> ${id(head)} [style=dashed, color=red, lhead=${quote(`cluster_${c.name}`)}];`);
    }
  });
  lines.push('}');
  return lines.join('\n') + '\n';
}
