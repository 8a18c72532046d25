// Shape and dtype rules for every op: the type a node must have given the types of its arguments.
// Throws a one-line error naming the node when arguments do not agree.
import { match } from 'ts-pattern';
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import type { Op, TensorType } from './types.js';

export type OpWithoutType = Op extends infer O ? (O extends Op ? Omit<O, 'type'> : never) : never;

export function formatType(t: TensorType): string {
  return `${t.dtype}[${t.shape.map(A.format).join(', ')}]`;
}

export function inferType(node: OpWithoutType, typeOf: (name: string) => TensorType): TensorType {
  const fail = (msg: string): never => {
    throw new Error(`%${node.name} = ${node.op}: ${msg}`);
  };
  const arg = (i: number): TensorType => typeOf(node.args[i]!);
  const f32 = (i: number, rank: number): readonly Affine[] => {
    const t = arg(i);
    if (t.dtype !== 'f32') fail(`%${node.args[i]} must be f32, is ${formatType(t)}`);
    if (t.shape.length !== rank) fail(`%${node.args[i]} must have rank ${rank}, is ${formatType(t)}`);
    return t.shape;
  };
  const same = (a: Affine, b: Affine, what: string): void => {
    if (!A.equal(a, b)) fail(`${what}: ${A.format(a)} vs ${A.format(b)}`);
  };
  const dim = (a: Affine): number => {
    if (!A.isConstant(a)) fail(`dimension ${A.format(a)} must be a constant`);
    return a.c;
  };
  const heads = (attrs: { heads: number; kvHeads: number; headSize: number }): void => {
    if (attrs.heads % attrs.kvHeads !== 0) fail(`heads ${attrs.heads} is not a multiple of kvHeads ${attrs.kvHeads}`);
  };
  const t = (shape: readonly Affine[]): TensorType => ({ dtype: 'f32', shape });

  return match<OpWithoutType, TensorType>(node)
    .with({ op: 'embed' }, () => {
      const [, d] = f32(0, 2);
      const ids = arg(1);
      if (ids.dtype !== 'i32' || ids.shape.length !== 1) fail(`ids must be i32[N], is ${formatType(ids)}`);
      return t([ids.shape[0]!, d!]);
    })
    .with({ op: 'rmsnorm' }, () => {
      const [m, d] = f32(0, 2);
      const [w] = f32(1, 1);
      same(d!, w!, 'weight length differs from row length');
      return t([m!, d!]);
    })
    .with({ op: 'head_rmsnorm' }, (n) => {
      const [m, d] = f32(0, 2);
      const [w] = f32(1, 1);
      const hs = n.attrs.headSize;
      if (dim(d!) % hs !== 0) fail(`row length ${A.format(d!)} is not a whole number of heads of ${hs}`);
      if (dim(w!) !== hs) fail(`weight length ${A.format(w!)} differs from the head size ${hs}`);
      return t([m!, d!]);
    })
    .with({ op: 'matmul' }, () => {
      const [m, k] = f32(0, 2);
      const [n, k2] = f32(1, 2);
      same(k!, k2!, 'inner dimensions differ');
      return t([m!, n!]);
    })
    .with({ op: 'rope' }, (n) => {
      const [m, d] = f32(0, 2);
      const [, half] = f32(1, 2);
      const [, half2] = f32(2, 2);
      const hs = n.attrs.headSize;
      if (hs % 2 !== 0 || dim(d!) % hs !== 0) fail(`row length ${A.format(d!)} is not a whole number of even heads of ${hs}`);
      if (dim(half!) !== hs / 2 || dim(half2!) !== hs / 2) fail(`rope tables must have ${hs / 2} columns`);
      return t([m!, d!]);
    })
    .with({ op: 'kv_write' }, () => {
      const [, d] = f32(0, 2);
      const [m, d2] = f32(1, 2);
      same(d!, d2!, 'row length differs from the cache');
      return t([A.add(A.sym('P'), m!), d!]);
    })
    .with({ op: 'attn_scores' }, (n) => {
      heads(n.attrs);
      const [m, dq] = f32(0, 2);
      const [s, dk] = f32(1, 2);
      if (dim(dq!) !== n.attrs.heads * n.attrs.headSize) fail(`q rows must be heads·headSize = ${n.attrs.heads * n.attrs.headSize}`);
      if (dim(dk!) !== n.attrs.kvHeads * n.attrs.headSize) fail(`k rows must be kvHeads·headSize = ${n.attrs.kvHeads * n.attrs.headSize}`);
      return t([A.constant(n.attrs.heads), m!, s!]);
    })
    .with({ op: 'softmax' }, () => {
      const x = arg(0);
      if (x.dtype !== 'f32' || x.shape.length < 1) fail(`x must be an f32 tensor`);
      return x;
    })
    .with({ op: 'attn_mix' }, (n) => {
      heads(n.attrs);
      const [h, m, s] = f32(0, 3);
      const [s2, dv] = f32(1, 2);
      if (dim(h!) !== n.attrs.heads) fail(`p must have ${n.attrs.heads} heads`);
      same(s!, s2!, 'key count differs from the value rows');
      if (dim(dv!) !== n.attrs.kvHeads * n.attrs.headSize) fail(`v rows must be kvHeads·headSize = ${n.attrs.kvHeads * n.attrs.headSize}`);
      return t([m!, A.constant(n.attrs.heads * n.attrs.headSize)]);
    })
    .with({ op: 'add' }, { op: 'mul' }, () => {
      const a = arg(0);
      const b = arg(1);
      if (a.dtype !== 'f32' || b.dtype !== 'f32') fail(`operands must be f32`);
      if (a.shape.length !== b.shape.length || a.shape.some((d, i) => !A.equal(d, b.shape[i]!))) {
        fail(`operand shapes differ: ${formatType(a)} vs ${formatType(b)}`);
      }
      return a;
    })
    .with({ op: 'silu' }, { op: 'gelu' }, () => {
      const x = arg(0);
      if (x.dtype !== 'f32') fail(`x must be f32`);
      return x;
    })
    .with({ op: 'layernorm' }, () => {
      const [m, d] = f32(0, 2);
      const [w] = f32(1, 1);
      const [b] = f32(2, 1);
      same(d!, w!, 'weight length differs from row length');
      same(d!, b!, 'bias length differs from row length');
      return t([m!, d!]);
    })
    .with({ op: 'add_bias' }, () => {
      const [m, d] = f32(0, 2);
      const [b] = f32(1, 1);
      same(d!, b!, 'bias length differs from row length');
      return t([m!, d!]);
    })
    .with({ op: 'take_rows' }, () => {
      const [, d] = f32(0, 2);
      const ids = arg(1);
      if (ids.dtype !== 'i32' || ids.shape.length !== 1) fail(`ids must be i32[N], is ${formatType(ids)}`);
      return t([ids.shape[0]!, d!]);
    })
    .with({ op: 'argmax' }, () => {
      const [m] = f32(0, 2);
      return { dtype: 'i32', shape: [m!] };
    })
    .with({ op: 'slice' }, (n) => {
      const [m, cols] = f32(0, 2);
      const { start, size } = n.attrs;
      if (!Number.isInteger(start) || !Number.isInteger(size) || start < 0 || size <= 0 || start + size > dim(cols!)) {
        fail(`columns ${start}..${start + size - 1} are outside 0..${A.format(cols!)}-1`);
      }
      return t([m!, A.constant(size)]);
    })
    .exhaustive();
}
