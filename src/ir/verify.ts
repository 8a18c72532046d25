// Checks a Graph's invariants: unique names, definition before use, known symbols, constant resident shapes,
// sane attrs, kv_write onto state, every node's written type equal to `inferType`, weights stacked `from`
// checkpoint tensors, slots on nodes only, and the schedule and its kernels' kinds (`schedule.ts`). Throws `graph <name>: ...`.
import { match } from 'ts-pattern';
import * as A from '../affine.js';
import { verifyKernelKinds, verifySchedule } from './schedule.js';
import { formatType, inferType } from './shapes.js';
import { opSignatures } from './types.js';
import type { DeclKind, Graph, Op, TensorType } from './types.js';

const NAME = /^[A-Za-z0-9_.]+$/;

export function verifyGraph(g: Graph): void {
  const fail = (msg: string): never => {
    throw new Error(`graph ${g.name}: ${msg}`);
  };

  const symbols = new Set<string>();
  for (const s of g.symbols) {
    if (symbols.has(s)) fail(`duplicate symbol ${s}`);
    symbols.add(s);
  }
  const checkSymbols = (what: string, t: TensorType): void => {
    for (const d of t.shape) {
      for (const s of A.symbols(d)) {
        if (!symbols.has(s)) fail(`${what}: unknown symbol ${s} in ${formatType(t)} (graph symbols: ${g.symbols.join(', ') || 'none'})`);
      }
    }
  };

  const names = new Set<string>();
  for (const { name } of [...g.decls, ...g.nodes]) {
    if (names.has(name)) fail(`duplicate name %${name}`);
    names.add(name);
  }

  /** Values defined so far, with where they came from. */
  const defined = new Map<string, { readonly type: TensorType; readonly kind: DeclKind | 'node' }>();

  for (const d of g.decls) {
    const what = `${d.kind} %${d.name}`;
    checkSymbols(what, d.type);
    match(d.kind)
      .with('input', () => {})
      .with('weight', 'state', () => {
        if (!d.type.shape.every(A.isConstant)) fail(`${what} must have a constant shape, is ${formatType(d.type)}`);
      })
      .exhaustive();
    if (d.from !== undefined) {
      if (d.kind !== 'weight') fail(`${what}: only a weight can be stacked 'from' checkpoint tensors`);
      if (d.from.length === 0) fail(`${what}: 'from' lists no checkpoint tensors`);
      for (const t of d.from) if (!NAME.test(t)) fail(`${what}: malformed checkpoint tensor name '${t}'`);
    }
    defined.set(d.name, { type: d.type, kind: d.kind });
  }

  for (const node of g.nodes) {
    const what = `%${node.name} = ${node.op}`;
    const sig = opSignatures[node.op];
    if (node.args.length !== sig.args.length) fail(`${what}: takes ${sig.args.length} args, has ${node.args.length}`);
    for (const a of node.args) {
      if (!defined.has(a)) fail(names.has(a) ? `${what}: %${a} is used before its definition` : `${what}: undefined value %${a}`);
    }
    checkAttrs(node, (msg) => fail(`${what}: ${msg}`));
    match(node)
      .with({ op: 'kv_write' }, (n) => {
        const cache = defined.get(n.args[0])!;
        if (cache.kind !== 'state')
          fail(`${what}: cache %${n.args[0]} must be a state declaration, is ${cache.kind === 'node' ? 'a node' : `a ${cache.kind}`}`);
      })
      .otherwise(() => {});
    checkSymbols(`%${node.name}`, node.type);

    let inferred: TensorType;
    try {
      inferred = inferType(node, (name) => defined.get(name)!.type);
    } catch (e) {
      return fail((e as Error).message);
    }
    if (formatType(inferred) !== formatType(node.type)) {
      fail(`${what}: written type ${formatType(node.type)} differs from inferred ${formatType(inferred)}`);
    }
    defined.set(node.name, { type: node.type, kind: 'node' });
  }

  const outputs = new Set<string>();
  for (const o of g.outputs) {
    if (!defined.has(o)) fail(`output %${o} is not defined`);
    if (outputs.has(o)) fail(`output %${o} is listed twice`);
    outputs.add(o);
  }

  const nodes = new Set(g.nodes.map((n) => n.name));
  for (const [value, slot] of Object.entries(g.slots ?? {})) {
    const owner = names.has(value) ? `declaration %${value}` : `undefined value %${value}`;
    if (!nodes.has(value)) fail(`slot @${slot} is given to ${owner}; only nodes have slots`);
    if (!NAME.test(slot)) fail(`%${value}: malformed slot name '${slot}'`);
    if (names.has(slot)) fail(`%${value}: slot @${slot} has the name of a value; slots and values must not share names`);
  }

  verifySchedule(g);
  verifyKernelKinds(g);
}

/** Attr names are exactly the signature's, values finite, and each in the range its op needs. */
function checkAttrs(node: Op, fail: (msg: string) => never): void {
  const attrs = node.attrs as Readonly<Record<string, number>>;
  const expected: readonly string[] = opSignatures[node.op].attrs as readonly string[];
  for (const key of Object.keys(attrs)) if (!expected.includes(key)) fail(`unknown attr '${key}'`);
  for (const key of expected) {
    const v = attrs[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`attr '${key}' must be a finite number`);
  }
  const positiveInt = (key: string, v: number): void => {
    if (!Number.isInteger(v) || v <= 0) fail(`attr '${key}' must be a positive integer, is ${v}`);
  };
  match(node)
    .with({ op: 'rmsnorm' }, { op: 'layernorm' }, (n) => {
      if (!(n.attrs.eps > 0)) fail(`attr 'eps' must be positive, is ${n.attrs.eps}`);
    })
    .with({ op: 'head_rmsnorm' }, (n) => {
      if (!(n.attrs.eps > 0)) fail(`attr 'eps' must be positive, is ${n.attrs.eps}`);
      positiveInt('headSize', n.attrs.headSize);
    })
    .with({ op: 'rope' }, (n) => positiveInt('headSize', n.attrs.headSize))
    .with({ op: 'attn_scores' }, { op: 'attn_mix' }, (n) => {
      positiveInt('heads', n.attrs.heads);
      positiveInt('kvHeads', n.attrs.kvHeads);
      positiveInt('headSize', n.attrs.headSize);
    })
    .with({ op: 'softmax' }, (n) => {
      if (n.attrs.causal !== 0 && n.attrs.causal !== 1) fail(`attr 'causal' must be 0 or 1, is ${n.attrs.causal}`);
    })
    .with({ op: 'slice' }, (n) => {
      if (!Number.isInteger(n.attrs.start) || n.attrs.start < 0) fail(`attr 'start' must be a non-negative integer, is ${n.attrs.start}`);
      positiveInt('size', n.attrs.size);
    })
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
      () => {},
    )
    .exhaustive();
}
