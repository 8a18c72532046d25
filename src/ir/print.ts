// Prints graphs in the IR text form that `parse.ts` reads back: print(parse(s)) === s for printed text.
// Declarations, then nodes (or, once scheduled, kernel blocks and barriers in schedule order), then outputs;
// every node line ends with its parallelism class as a comment, which the parser ignores.
import { match } from 'ts-pattern';
import { formatKind } from './kernel-kinds.js';
import { parallelismOf } from './parallelism.js';
import { formatType } from './shapes.js';
import { opSignatures } from './types.js';
import type { BarrierItem, Decl, Graph, KernelItem, Op } from './types.js';

export function printDecl(d: Decl): string {
  const from = d.from === undefined ? '' : ` from ${d.from.join(', ')}`;
  return `${d.kind} %${d.name}: ${formatType(d.type)}${from}`;
}

/** The attrs of a node as `name=value` pairs in the order its signature lists them. */
export function attrEntries(node: Op): readonly (readonly [string, number])[] {
  const attrs = match<Op, Readonly<Record<string, number>>>(node)
    .with({ op: 'rmsnorm' }, { op: 'layernorm' }, { op: 'head_rmsnorm' }, (n) => n.attrs)
    .with({ op: 'rope' }, (n) => n.attrs)
    .with({ op: 'attn_scores' }, { op: 'attn_mix' }, (n) => n.attrs)
    .with({ op: 'softmax' }, (n) => n.attrs)
    .with({ op: 'slice' }, (n) => n.attrs)
    .with(
      { op: 'embed' },
      { op: 'matmul' },
      { op: 'kv_write' },
      { op: 'add' },
      { op: 'mul' },
      { op: 'silu' },
      { op: 'gelu' },
      { op: 'add_bias' },
      { op: 'take_rows' },
      { op: 'argmax' },
      () => ({}),
    )
    .exhaustive();
  return opSignatures[node.op].attrs.map((a) => [a, attrs[a]!] as const);
}

/** `%name = op(%args) {attrs} : type layer=N @slot  # parallelism` */
export function printNode(node: Op, slot?: string): string {
  const args = node.args.map((a) => `%${a}`).join(', ');
  const attrs = attrEntries(node);
  const braces = attrs.length === 0 ? '' : ` {${attrs.map(([k, v]) => `${k}=${String(v)}`).join(', ')}}`;
  const layer = node.layer === undefined ? '' : ` layer=${node.layer}`;
  const at = slot === undefined ? '' : ` @${slot}`;
  return `%${node.name} = ${node.op}(${args})${braces} : ${formatType(node.type)}${layer}${at}  # ${parallelismOf(node)}`;
}

/** A buffer as barriers and errors name it: `@slot` for an activation slot, `%name` for a value or declaration. */
export function formatBuffer(g: Graph, buffer: string): string {
  return slotNames(g).has(buffer) ? `@${buffer}` : `%${buffer}`;
}

function slotNames(g: Graph): ReadonlySet<string> {
  return new Set(Object.values(g.slots ?? {}));
}

/** `barrier {reason="…", producers=[…], consumers=[…], buffers=[…], unfused="…"}`; strings are JSON string literals. */
export function printBarrier(g: Graph, b: BarrierItem): string {
  const buffers = b.buffers.map((x) => formatBuffer(g, x));
  return (
    `barrier {reason=${JSON.stringify(b.reason)}, producers=[${b.producers.join(', ')}], ` +
    `consumers=[${b.consumers.join(', ')}], buffers=[${buffers.join(', ')}], unfused=${JSON.stringify(b.unfused)}}`
  );
}

function printKernel(g: Graph, k: KernelItem, byName: ReadonlyMap<string, Op>): string[] {
  const members = k.members.map((m) => {
    const node = byName.get(m);
    return node === undefined ? `    # %${m} is not a node` : `    ${printNode(node, g.slots?.[m])}`;
  });
  const declined = (k.declined ?? []).map(
    (d) => `    declined {pass=${JSON.stringify(d.pass)}, nodes=[${d.nodes.map((n) => `%${n}`).join(', ')}], reason=${JSON.stringify(d.reason)}}`,
  );
  return [`  kernel ${k.name}: ${formatKind(k.kind)} {`, ...declined, ...members, '  }'];
}

/** Node lines in schedule order; nodes no kernel holds (a broken schedule) follow as loose lines. */
function printBody(g: Graph): string[] {
  const loose = (nodes: readonly Op[]): string[] => nodes.map((n) => `  ${printNode(n, g.slots?.[n.name])}`);
  if (g.schedule === undefined) return loose(g.nodes);
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const scheduled = new Set(g.schedule.flatMap((item) => (item.item === 'kernel' ? item.members : [])));
  const items = g.schedule.flatMap((item) =>
    match(item)
      .with({ item: 'kernel' }, (k) => printKernel(g, k, byName))
      .with({ item: 'barrier' }, (b) => [`  ${printBarrier(g, b)}`])
      .exhaustive(),
  );
  return [...items, ...loose(g.nodes.filter((n) => !scheduled.has(n.name)))];
}

export function printGraph(g: Graph): string {
  const lines = [
    `graph ${g.name}(${g.symbols.join(', ')}) {`,
    ...g.decls.map((d) => `  ${printDecl(d)}`),
    ...printBody(g),
    ...g.outputs.map((o) => `  output %${o}`),
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** Several graphs, separated by one blank line. */
export function printModule(graphs: readonly Graph[]): string {
  return graphs.map(printGraph).join('\n');
}
