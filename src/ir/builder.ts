// Builds a Graph node by node, inferring each node's type from its arguments, so a model definition
// cannot produce a node whose written type disagrees with the shape rules.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import { inferType, type OpWithoutType } from './shapes.js';
import type { Decl, DeclKind, DType, Graph, Op, OpName, TensorType } from './types.js';

export type Dim = number | string | Affine;

function toAffine(d: Dim): Affine {
  return typeof d === 'number' ? A.constant(d) : typeof d === 'string' ? A.parse(d) : d;
}

type OpOf<O extends OpName> = Extract<Op, { op: O }>;

export class GraphBuilder {
  private readonly decls: Decl[] = [];
  private readonly nodes: Op[] = [];
  private readonly outputs: string[] = [];
  private readonly types = new Map<string, TensorType>();
  private currentLayer: number | undefined;

  constructor(
    private readonly name: string,
    private readonly symbols: readonly string[],
  ) {}

  private declare(kind: DeclKind, name: string, dtype: DType, shape: readonly Dim[]): string {
    const type: TensorType = { dtype, shape: shape.map(toAffine) };
    if (this.types.has(name)) throw new Error(`graph ${this.name}: %${name} is defined twice`);
    this.decls.push({ kind, name, type });
    this.types.set(name, type);
    return name;
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): string {
    return this.declare('input', name, dtype, shape);
  }

  weight(name: string, shape: readonly Dim[]): string {
    return this.declare('weight', name, 'f32', shape);
  }

  state(name: string, shape: readonly Dim[]): string {
    return this.declare('state', name, 'f32', shape);
  }

  /** Nodes built from now on belong to transformer layer `l` (none: undefined). */
  layer(l: number | undefined): void {
    this.currentLayer = l;
  }

  node<O extends OpName>(op: O, name: string, args: OpOf<O>['args'], attrs: OpOf<O>['attrs']): string {
    if (this.types.has(name)) throw new Error(`graph ${this.name}: %${name} is defined twice`);
    const partial = { op, name, args, attrs } as unknown as OpWithoutType;
    const type = inferType(partial, (n) => {
      const t = this.types.get(n);
      if (!t) throw new Error(`graph ${this.name}: %${name} uses %${n} before it is defined`);
      return t;
    });
    this.nodes.push({ ...partial, type, ...(this.currentLayer !== undefined ? { layer: this.currentLayer } : {}) } as Op);
    this.types.set(name, type);
    return name;
  }

  output(name: string): void {
    if (!this.types.has(name)) throw new Error(`graph ${this.name}: output %${name} is not defined`);
    this.outputs.push(name);
  }

  build(): Graph {
    return { name: this.name, symbols: this.symbols, decls: this.decls, nodes: this.nodes, outputs: this.outputs };
  }
}
