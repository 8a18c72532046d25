// The elementwise template: any chain of add/mul/silu/gelu over one shape in one pass over its elements;
// intermediate values stay in registers, values used outside the kernel are stored.
import { match } from 'ts-pattern';
import type { Op } from '../ir/types.js';
import { rowsCols, type KernelContext } from './kernels.js';
import { activations, kernelSource, preciseMath, readBinding, u32Expr, wg, writeBinding, type KernelBinding, type KernelSource } from './wgsl.js';

export function elementwiseKernel(members: readonly Op[], materialized: ReadonlySet<string>, ctx: KernelContext): KernelSource {
  const produced = new Map(members.map((m, i) => [m.name, `v${i}`]));
  const inputs = [...new Set(members.flatMap((m) => m.args.filter((a) => !produced.has(a))))];
  const bindings: KernelBinding[] = inputs.map((a, i) => readBinding(ctx.bufferOf(a), `in${i}`));
  const stored = members.filter((m) => materialized.has(m.name));
  stored.forEach((m, i) => bindings.push(writeBinding(ctx.bufferOf(m.name), `out${i}`)));
  const ref = (a: string): string => produced.get(a) ?? `in${inputs.indexOf(a)}[i]`;
  const lines = members.map((m, i) =>
    match(m)
      .with({ op: 'add' }, (n) => `  let v${i} = ${ref(n.args[0])} + ${ref(n.args[1])};`)
      .with({ op: 'mul' }, (n) => `  let v${i} = ${ref(n.args[0])} * ${ref(n.args[1])};`)
      .with({ op: 'silu' }, { op: 'gelu' }, (n) => `  let v${i} = ${activations[n.op](ref(n.args[0]))};`)
      .otherwise((n) => {
        throw new Error(`the elementwise template cannot emit ${n.op} (%${n.name})`);
      }),
  );
  const { rows, cols } = rowsCols(members[members.length - 1]!.type);
  return kernelSource(
    bindings,
    `
${preciseMath}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= ${cols}u || gid.y >= ${u32Expr(rows)}) { return; }
  let i = gid.y * ${cols}u + gid.x;
${lines.join('\n')}
${stored.map((m, k) => `  out${k}[i] = ${produced.get(m.name)};`).join('\n')}
}`,
    [wg(cols, 64), wg(rows), wg(1)],
  );
}
