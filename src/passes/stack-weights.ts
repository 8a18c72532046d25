// stack-weights: matmuls that read the same input become one matmul over their weights stacked along
// the output axis, and each original value becomes a column slice of it (same name, same type).
//
//   %l0.q = matmul(%h, %layers.0.wq) : f32[T, 64]          %l0.q_k_v = matmul(%h, %layers.0.wq_wk_wv) : f32[T, 128]
//   %l0.k = matmul(%h, %layers.0.wk) : f32[T, 32]    ->    %l0.q = slice(%l0.q_k_v) {start=0, size=64} : f32[T, 64]
//   %l0.v = matmul(%h, %layers.0.wv) : f32[T, 32]          %l0.k = slice(%l0.q_k_v) {start=64, size=32} : f32[T, 32] ...
// A stacked weight is one buffer of one format, so only weights kept in the same format stack (a Q4_K_M file's
// Q6_K wv stays apart from its Q4_K wq and wk).
import * as A from '../affine.js';
import type { Decl, Graph, Matmul, Op, Slice } from '../ir/types.js';
import type { Pass, PassContext } from './pass.js';

/** `layers.0.wq`, `layers.0.wk` → `layers.0.wq_wk` (the shared prefix up to a dot, then the rest joined) */
export function stackedName(names: readonly string[]): string {
  const first = names[0]!;
  let prefix = first.slice(0, first.lastIndexOf('.') + 1);
  while (prefix && !names.every((n) => n.startsWith(prefix))) prefix = prefix.slice(0, prefix.slice(0, -1).lastIndexOf('.') + 1);
  return prefix + names.map((n) => n.slice(prefix.length)).join('_');
}

export const stackWeights: Pass = {
  name: 'stack-weights',
  description: 'matmuls sharing an input become one matmul over stacked weights, sliced back into the original values',
  run(g: Graph, ctx: PassContext): Graph {
    const decls = new Map(g.decls.map((d) => [d.name, d]));
    const formatOf = (w: Decl): string => {
      const formats = new Set((w.from ?? [w.name]).map((n) => ctx.formats?.get(n) ?? 'f32'));
      return formats.size === 1 ? [...formats][0]! : [...formats].join('+');
    };
    // a weight another node reads too (a tied embedding table) is not stacked: the stack would be a second copy
    const readers = new Map<string, number>();
    for (const n of g.nodes) for (const a of n.args) readers.set(a, (readers.get(a) ?? 0) + 1);
    const groups = new Map<string, Matmul[]>();
    for (const n of g.nodes) {
      if (n.op !== 'matmul') continue;
      const w = decls.get(n.args[1]);
      if (w?.kind !== 'weight' || readers.get(w.name) !== 1) continue;
      const key = `${n.args[0]}\u0000${formatOf(w)}`;
      groups.set(key, [...(groups.get(key) ?? []), n]);
    }
    const replaced = new Map<string, Op[]>();
    // stacked weights by the tensor whose place they take (its first), each once
    const newDecls = new Map<string, Map<string, Decl>>();
    for (const mms of groups.values()) {
      if (mms.length < 2) continue;
      const x = mms[0]!.args[0];
      const ws = mms.map((m) => decls.get(m.args[1])!);
      const n = ws.reduce((s, w) => s + A.evaluate(w.type.shape[0]!, {}), 0);
      const name = stackedName(ws.map((w) => w.name));
      const stacked: Decl = {
        kind: 'weight',
        name,
        type: { dtype: 'f32', shape: [A.constant(n), ws[0]!.type.shape[1]!] },
        from: ws.flatMap((w) => w.from ?? [w.name]),
      };
      newDecls.set(ws[0]!.name, (newDecls.get(ws[0]!.name) ?? new Map<string, Decl>()).set(name, stacked));
      const mm: Matmul = {
        op: 'matmul',
        name: stackedName(mms.map((m) => m.name)),
        args: [x, name],
        attrs: {},
        type: { dtype: 'f32', shape: [mms[0]!.type.shape[0]!, A.constant(n)] },
        ...(mms[0]!.layer !== undefined ? { layer: mms[0]!.layer } : {}),
      };
      let start = 0;
      const slices = mms.map((m): Slice => {
        const size = A.evaluate(m.type.shape[1]!, {});
        const s: Slice = {
          op: 'slice',
          name: m.name,
          args: [mm.name],
          attrs: { start, size },
          type: m.type,
          ...(m.layer !== undefined ? { layer: m.layer } : {}),
        };
        start += size;
        return s;
      });
      replaced.set(mms[0]!.name, [mm, ...slices]);
      for (const m of mms.slice(1)) replaced.set(m.name, []);
    }
    if (replaced.size === 0) return g;
    const nodes = g.nodes.flatMap((n) => replaced.get(n.name) ?? [n]);
    const used = new Set(nodes.flatMap((n) => n.args));
    // a tensor another node still reads (a tied embedding table, a weight of two groups) stays beside its stacks
    const declsOut = g.decls.flatMap((d) => [...(newDecls.get(d.name)?.values() ?? []), ...(d.kind !== 'weight' || used.has(d.name) ? [d] : [])]);
    return { ...g, decls: declsOut, nodes, schedule: undefined, slots: undefined };
  },
};
