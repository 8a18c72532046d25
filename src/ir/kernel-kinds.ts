// Kernel kinds: how each is written in the text IR, which members fit it (the verifier's check, and the
// patterns the fusion passes look for, so the two cannot disagree), and what a kernel of it binds.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import { match } from 'ts-pattern';
import { elementwiseOps, opSignatures } from './types.js';
import type { Graph, KernelItem, KernelKind, LinearEpilogue, LinearPrologue, Op, OpName } from './types.js';

const PROLOGUES: readonly LinearPrologue[] = ['none', 'rmsnorm'];
const EPILOGUES: readonly LinearEpilogue[] = ['store', 'residual', 'glu', 'qkv', 'qk', 'append'];

/** `rmsnorm`, `linear(prologue=rmsnorm, epilogue=qkv)`, `attention(causal)`, `elementwise`. */
export function formatKind(k: KernelKind): string {
  return match(k)
    .with({ kind: 'op' }, ({ op }) => op)
    .with({ kind: 'linear' }, ({ prologue, epilogue }) => `linear(prologue=${prologue}, epilogue=${epilogue})`)
    .with({ kind: 'attention' }, ({ variant }) => `attention(${variant})`)
    .with({ kind: 'elementwise' }, () => 'elementwise')
    .exhaustive();
}

const KINDS = ['an op name', 'linear(prologue=…, epilogue=…)', 'attention(causal)', 'elementwise'].join(', ');

/** A kind as formatKind writes it; a message saying what is wrong otherwise. */
export function parseKind(text: string): KernelKind | { readonly error: string } {
  if (text === 'elementwise') return { kind: 'elementwise' };
  if (text === 'attention(causal)') return { kind: 'attention', variant: 'causal' };
  if (Object.hasOwn(opSignatures, text)) return { kind: 'op', op: text as OpName };
  const linear = /^linear\(\s*prologue\s*=\s*(\w+)\s*,\s*epilogue\s*=\s*(\w+)\s*\)$/.exec(text);
  if (linear) {
    const [, prologue, epilogue] = linear as unknown as [string, LinearPrologue, LinearEpilogue];
    if (!PROLOGUES.includes(prologue)) return { error: `unknown linear prologue '${prologue}' (prologues: ${PROLOGUES.join(', ')})` };
    if (!EPILOGUES.includes(epilogue)) return { error: `unknown linear epilogue '${epilogue}' (epilogues: ${EPILOGUES.join(', ')})` };
    return { kind: 'linear', prologue, epilogue };
  }
  return { error: `unknown kernel kind '${text}' (kinds: ${KINDS})` };
}

/** The kernel of one node, by its op's own template: how every node starts out before fusion. */
export function singleNodeKernel(n: Op): KernelItem {
  return { item: 'kernel', name: n.name, kind: { kind: 'op', op: n.op }, members: [n.name] };
}

/** The layer all of a kernel's members belong to; undefined where they belong to none or to several. */
export function kernelLayer(members: readonly Op[]): number | undefined {
  const layer = members[0]?.layer;
  return members.every((m) => m.layer === layer) ? layer : undefined;
}

/** Who reads each value, in node order. */
export type Users = ReadonlyMap<string, readonly Op[]>;

export function usersOf(g: Graph): Map<string, Op[]> {
  const users = new Map<string, Op[]>();
  for (const n of g.nodes) {
    for (const a of n.args) {
      const readers = users.get(a);
      if (readers) readers.push(n);
      else users.set(a, [n]);
    }
  }
  return users;
}

/** What the patterns ask of a graph, built once per graph: its nodes by name, who reads each value, its outputs. */
export interface GraphIndex {
  readonly nodes: ReadonlyMap<string, Op>;
  readonly users: Users;
  readonly outputs: ReadonlySet<string>;
}

export function graphIndex(g: Graph): GraphIndex {
  return { nodes: new Map(g.nodes.map((n) => [n.name, n])), users: usersOf(g), outputs: new Set(g.outputs) };
}

const only = (users: Users, v: string): Op | undefined => {
  const u = users.get(v) ?? [];
  return u.length === 1 ? u[0] : undefined;
};

/** A pattern that did not match, with why. */
export interface Mismatch {
  readonly reason: string;
}

const ops = (nodes: readonly Op[]): string => (nodes.length > 0 ? nodes.map((n) => `${n.op} %${n.name}`).join(', ') : 'no node');

/** gate/up: two slices halving the matmul, silu(gate) · up, each intermediate used once. */
function gluEpilogue(mm: Op, users: Users): readonly Op[] | Mismatch {
  const slices = users.get(mm.name) ?? [];
  const [gate, up] = slices as [Extract<Op, { op: 'slice' }>, Extract<Op, { op: 'slice' }>];
  const width = gate.attrs.size;
  if (gate.attrs.start !== 0 || up.attrs.start !== width || up.attrs.size !== width) return { reason: 'its two slices are not the halves of its columns' };
  const act = only(users, gate.name);
  const mul = act?.op === 'silu' ? only(users, act.name) : undefined;
  if (!act || mul?.op !== 'mul' || mul.args[0] !== act.name || mul.args[1] !== up.name || only(users, up.name) !== mul) {
    return { reason: `its halves are read by ${ops([...(users.get(gate.name) ?? []), ...(users.get(up.name) ?? [])])}, not by silu(gate) · up alone` };
  }
  return [gate, up, act, mul];
}

/** q and k each read by one rope alone, both by the same tables and head size: the two ropes, or why not. */
function rotatedQK(q: Op, k: Op, users: Users): readonly [Extract<Op, { op: 'rope' }>, Extract<Op, { op: 'rope' }>] | Mismatch {
  const qRot = only(users, q.name);
  const kRot = only(users, k.name);
  if (qRot?.op !== 'rope' || kRot?.op !== 'rope') {
    return { reason: `q and k are read by ${ops([...(users.get(q.name) ?? []), ...(users.get(k.name) ?? [])])}, not each by one rope` };
  }
  if (qRot.attrs.headSize !== kRot.attrs.headSize || qRot.args[1] !== kRot.args[1] || qRot.args[2] !== kRot.args[2]) {
    return { reason: 'q and k are rotated by different tables or head sizes' };
  }
  return [qRot, kRot];
}

/** Q/K/V: three slices; q and k rotated by the same tables, k and v appended to caches. */
function qkvEpilogue(mm: Op, users: Users): readonly Op[] | Mismatch {
  const [q, k, v] = (users.get(mm.name) ?? []) as Extract<Op, { op: 'slice' }>[];
  if (q!.attrs.start !== 0 || k!.attrs.start !== q!.attrs.size || v!.attrs.start !== k!.attrs.start + k!.attrs.size || k!.attrs.size !== v!.attrs.size) {
    return { reason: 'its three slices are not q, then k and v of one width' };
  }
  const ropes = rotatedQK(q!, k!, users);
  if ('reason' in ropes) return ropes;
  const [qRot, kRot] = ropes;
  const kWrite = only(users, kRot.name);
  const vWrite = only(users, v!.name);
  if (kWrite?.op !== 'kv_write' || vWrite?.op !== 'kv_write') {
    return { reason: `the rotated k and v are read by ${ops([...(users.get(kRot.name) ?? []), ...(users.get(v!.name) ?? [])])}, not each by one kv_write` };
  }
  return [q!, k!, v!, qRot, kRot, kWrite, vWrite];
}

/** Q/K with V stacked apart: two slices, q and k rotated by the same tables, k appended to its cache. */
function qkEpilogue(mm: Op, users: Users): readonly Op[] | Mismatch {
  const [q, k] = (users.get(mm.name) ?? []) as Extract<Op, { op: 'slice' }>[];
  if (q!.attrs.start !== 0 || k!.attrs.start !== q!.attrs.size) return { reason: 'its two slices are not q, then k' };
  const ropes = rotatedQK(q!, k!, users);
  if ('reason' in ropes) return ropes;
  const [qRot, kRot] = ropes;
  const kWrite = only(users, kRot.name);
  if (kWrite?.op !== 'kv_write') return { reason: `the rotated k is read by ${ops(users.get(kRot.name) ?? [])}, not by one kv_write` };
  return [q!, k!, qRot, kRot, kWrite];
}

/** The epilogue a linear kernel takes after `mm`, or why none fits the nodes that read it. */
export function linearEpilogue(mm: Op, { users, outputs }: GraphIndex): { readonly kind: LinearEpilogue; readonly nodes: readonly Op[] } | Mismatch {
  const readers = users.get(mm.name) ?? [];
  if (readers.length === 0) return { kind: 'store', nodes: [] };
  if (outputs.has(mm.name)) return { reason: `%${mm.name} is a graph output, so it is stored whole` };
  const slices = readers.filter((r) => r.op === 'slice');
  const tail = (nodes: readonly Op[] | Mismatch, kind: LinearEpilogue) => ('reason' in nodes ? nodes : { kind, nodes });
  if (readers.length === 1 && readers[0]!.op === 'add') return { kind: 'residual', nodes: readers };
  if (readers.length === 1 && readers[0]!.op === 'kv_write' && readers[0]!.args[1] === mm.name) return { kind: 'append', nodes: readers };
  if (readers.length === 2 && slices.length === 2) {
    // two slices: gate and up, else q and k
    const glu = gluEpilogue(mm, users);
    if (!('reason' in glu)) return { kind: 'glu', nodes: glu };
    const qk = qkEpilogue(mm, users);
    return 'reason' in qk ? { reason: `not gate/up: ${glu.reason}; not q/k: ${qk.reason}` } : { kind: 'qk', nodes: qk };
  }
  if (readers.length === 3 && slices.length === 3) return tail(qkvEpilogue(mm, users), 'qkv');
  return {
    reason: `no epilogue reads ${ops(readers)} (epilogues: a residual add; a kv_write; silu(gate) · up or rope and kv_write over two slices; rope and kv_write over three)`,
  };
}

/** The RMSNorm a linear kernel recomputes for `mm`'s input, or why it cannot. */
export function linearPrologue(mm: Op, { nodes, users, outputs }: GraphIndex): Op | Mismatch | undefined {
  const x = nodes.get(mm.args[0]);
  if (x?.op !== 'rmsnorm') return undefined;
  if (outputs.has(x.name)) return { reason: `%${x.name} is a graph output, so it is stored whole` };
  const readers = users.get(x.name) ?? [];
  if (readers.length !== 1) return { reason: `%${x.name} is read by ${readers.length} nodes; a prologue recomputes the norm for its one reader` };
  return x;
}

/** The attention pattern: scores, causal softmax, weighted sum, each read once by the next; or why not. */
export function attentionChain(s: Op, { users, outputs }: GraphIndex): readonly Op[] | Mismatch | undefined {
  if (s.op !== 'attn_scores') return undefined;
  const [p] = users.get(s.name) ?? [];
  if (outputs.has(s.name) || users.get(s.name)?.length !== 1 || p?.op !== 'softmax') return { reason: `%${s.name} is not read by one softmax alone` };
  if (p.attrs.causal !== 1) return { reason: `softmax %${p.name} is not causal` };
  const [m] = users.get(p.name) ?? [];
  if (outputs.has(p.name) || users.get(p.name)?.length !== 1 || m?.op !== 'attn_mix' || m.args[0] !== p.name) {
    return { reason: `%${p.name} is not read by one attn_mix alone` };
  }
  if (m.attrs.heads !== s.attrs.heads || m.attrs.kvHeads !== s.attrs.kvHeads || m.attrs.headSize !== s.attrs.headSize) {
    return { reason: `attn_scores %${s.name} and attn_mix %${m.name} disagree on heads` };
  }
  return [s, p, m];
}

/**
 * The most storage buffers one dispatch of the attention template binds for `rows` query rows: decode's partial
 * (q, K, V, max and sum, partial out, out) or prefill's flash (q, K, V, out). Fusion asks it before choosing the
 * kind; codegen emits within it.
 */
export function attentionStorageBuffers(rows: Affine): number {
  return A.isConstant(rows) && rows.c === 1 ? 6 : 4;
}

/** A node's shape as text, to compare shapes by. */
export const shapeKey = (n: Op): string => n.type.shape.map(A.format).join(',');

/** Whether `members` are what a kernel of kind `k` computes in the graph `index` describes; a message saying how not, otherwise. */
export function kindMismatch(k: KernelKind, members: readonly Op[], index: GraphIndex): string | undefined {
  const names = (nodes: readonly Op[]) => nodes.map((n) => n.op).join(', ');
  // members are in node order (the schedule's check); the pattern lists them in its own
  const expect = (want: readonly Op[]): string | undefined =>
    want.length === members.length && want.every((n) => members.includes(n)) ? undefined : `computes ${names(want)}, not ${names(members)}`;
  return match(k)
    .with({ kind: 'op' }, ({ op }) => (members.length === 1 && members[0]!.op === op ? undefined : `is one ${op} node, not ${names(members)}`))
    .with({ kind: 'elementwise' }, () => {
      const other = members.find((m) => !elementwiseOps.has(m.op));
      if (other) return `takes elementwise ops only, not ${other.op} %${other.name}`;
      const shaped = members.find((m) => shapeKey(m) !== shapeKey(members[0]!));
      return shaped ? `takes one shape, but %${shaped.name} differs from %${members[0]!.name}` : undefined;
    })
    .with({ kind: 'attention' }, () => {
      const chain = members[0] && attentionChain(members[0], index);
      if (!chain) return 'starts with attn_scores';
      return 'reason' in chain ? chain.reason : expect(chain);
    })
    .with({ kind: 'linear' }, ({ prologue, epilogue }) => {
      const matmuls = members.filter((m) => m.op === 'matmul');
      if (matmuls.length !== 1) return `has one matmul, not ${matmuls.length}`;
      const mm = matmuls[0]!;
      const norm = prologue === 'rmsnorm' ? linearPrologue(mm, index) : undefined;
      if (prologue === 'rmsnorm' && (norm === undefined || 'reason' in norm))
        return `has no rmsnorm prologue: ${norm?.reason ?? `%${mm.args[0]} is no rmsnorm`}`;
      const tail = epilogue === 'store' ? { kind: 'store' as const, nodes: [] } : linearEpilogue(mm, index);
      if ('reason' in tail) return `has no ${epilogue} epilogue: ${tail.reason}`;
      if (tail.kind !== epilogue) return `has a ${tail.kind} epilogue, not ${epilogue}`;
      return expect([...(norm ? [norm as Op] : []), mm, ...tail.nodes]);
    })
    .exhaustive();
}
