// Prints graphs in the IR text form that `parse.ts` reads back: print(parse(s)) === s for printed text.
// Declarations, then nodes (attrs in opSignatures order), then outputs; numbers as `String(n)`.
import { match } from 'ts-pattern';
import { formatType } from './shapes.js';
import { opSignatures } from './types.js';
import type { Decl, Graph, Op } from './types.js';

export function printDecl(d: Decl): string {
  return `${d.kind} %${d.name}: ${formatType(d.type)}`;
}

/** The attrs of a node as `name=value` pairs in the order its signature lists them. */
function attrEntries(node: Op): readonly (readonly [string, number])[] {
  const attrs = match<Op, Readonly<Record<string, number>>>(node)
    .with({ op: 'rmsnorm' }, (n) => n.attrs)
    .with({ op: 'rope' }, (n) => n.attrs)
    .with({ op: 'attn_scores' }, { op: 'attn_mix' }, (n) => n.attrs)
    .with({ op: 'softmax' }, (n) => n.attrs)
    .with({ op: 'embed' }, { op: 'matmul' }, { op: 'kv_write' }, { op: 'add' }, { op: 'mul' }, { op: 'silu' }, () => ({}))
    .exhaustive();
  return opSignatures[node.op].attrs.map((a) => [a, attrs[a]!] as const);
}

export function printNode(node: Op): string {
  const args = node.args.map((a) => `%${a}`).join(', ');
  const attrs = attrEntries(node);
  const braces = attrs.length === 0 ? '' : ` {${attrs.map(([k, v]) => `${k}=${String(v)}`).join(', ')}}`;
  return `%${node.name} = ${node.op}(${args})${braces} : ${formatType(node.type)}`;
}

export function printGraph(g: Graph): string {
  const lines = [
    `graph ${g.name}(${g.symbols.join(', ')}) {`,
    ...g.decls.map((d) => `  ${printDecl(d)}`),
    ...g.nodes.map((n) => `  ${printNode(n)}`),
    ...g.outputs.map((o) => `  output %${o}`),
    '}',
  ];
  return lines.join('\n') + '\n';
}

/** Several graphs, separated by one blank line. */
export function printModule(graphs: readonly Graph[]): string {
  return graphs.map(printGraph).join('\n');
}
