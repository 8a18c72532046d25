// The llama family as one ONNX graph (opset 17, standard ops) for prefill and decode alike: tokens [T] at
// positions P..P+T-1, where P is the length of the past keys fed in; logits [T, vocab] and the caches grown by T.
// Weights are external data, one file per tensor, so no protobuf holds more than the graph itself.
import type { ModelConfig } from '../../models/llama.js';
import { encodeModel, type AttributeValue, type NodeProto, type TensorProto } from './onnx-proto.js';

export interface OnnxModel {
  /** the ModelProto bytes */
  readonly model: Uint8Array;
  /** the bytes of each external data file, by the location the model names */
  readonly externalData: readonly { readonly path: string; readonly data: Uint8Array }[];
}

/** Graph input and output names of layer `l`'s caches, [positions, kvDim] each. */
export const cacheNames = (l: number) => ({
  pastKey: `past_key_values.${l}.key`,
  pastValue: `past_key_values.${l}.value`,
  presentKey: `present.${l}.key`,
  presentValue: `present.${l}.value`,
});

const bytesOf = (a: Float32Array | BigInt64Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** [rows, cols] → [cols, rows] */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** Nodes and initializers of one graph, each node output named by its caller. */
class OnnxGraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly externalData: { path: string; data: Uint8Array }[] = [];
  private readonly constants = new Map<string, string>();

  op(name: string, opType: string, inputs: readonly string[], attributes?: Readonly<Record<string, AttributeValue>>): string {
    this.nodes.push({ name, opType, inputs, outputs: [name], attributes });
    return name;
  }

  /** A float32 weight stored as external data */
  weight(name: string, dims: readonly number[], data: Float32Array): string {
    const path = `${name}.bin`;
    this.initializers.push({ name, dataType: 'float', dims, data: { location: path, offset: 0, length: data.byteLength } });
    this.externalData.push({ path, data: bytesOf(data) });
    return name;
  }

  /** An inline int64 or float32 constant, shared by every use of the same value */
  constant(type: 'int64' | 'float', dims: readonly number[], values: readonly number[]): string {
    const key = `${type}[${dims.join(',')}]=${values.join(',')}`;
    const known = this.constants.get(key);
    if (known) return known;
    const name = `const.${this.constants.size}`;
    const data = type === 'int64' ? bytesOf(BigInt64Array.from(values, BigInt)) : bytesOf(Float32Array.from(values));
    this.initializers.push({ name, dataType: type, dims, data });
    this.constants.set(key, name);
    return name;
  }

  ints(...values: number[]): string {
    return this.constant('int64', [values.length], values);
  }

  scalar(value: number): string {
    return this.constant('float', [], [value]);
  }
}

/** The ONNX model of `config` with `weights` (names and shapes from llamaWeightShapes). */
export function llamaOnnx(c: ModelConfig, weights: ReadonlyMap<string, Float32Array>): OnnxModel {
  if (c.family !== 'llama' || c.attentionBias || c.qkNorm) {
    throw new Error(
      `the ONNX peer builds plain llama models, not ${c.family}${c.attentionBias ? ' with attention biases' : c.qkNorm ? ' with q/k norms' : ''}`,
    );
  }
  const hs = c.headSize;
  const kvDim = c.nKvHeads * hs;
  const group = c.nHeads / c.nKvHeads;
  const g = new OnnxGraphBuilder();
  const read = (name: string): Float32Array => {
    const w = weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    return w;
  };
  /** y = x·Wᵀ for W [out, in], stored as [in, out] */
  const linear = (out: string, x: string, name: string, rows: number): string => {
    const w = read(name);
    const cols = w.length / rows;
    return g.op(out, 'MatMul', [x, g.weight(name, [cols, rows], transpose(w, rows, cols))]);
  };
  /** x / sqrt(mean(x²) + eps) · w, in the form ORT fuses into SimplifiedLayerNormalization */
  const rmsnorm = (out: string, x: string, name: string): string => {
    const w = g.weight(name, [c.dim], read(name));
    const ms = g.op(`${out}.ms`, 'ReduceMean', [g.op(`${out}.sq`, 'Pow', [x, g.scalar(2)])], { axes: [-1], keepdims: 1 });
    const rms = g.op(`${out}.rms`, 'Sqrt', [g.op(`${out}.eps`, 'Add', [ms, g.scalar(c.normEps)])]);
    return g.op(out, 'Mul', [g.op(`${out}.unit`, 'Div', [x, rms]), w]);
  };

  const tokens = 'input_ids';
  const past0 = cacheNames(0).pastKey;
  const start = g.op('start', 'Squeeze', [g.op('past_len', 'Shape', [past0], { start: 0, end: 1 })]);
  const count = g.op('count', 'Squeeze', [g.op('new_len', 'Shape', [tokens])]);
  const end = g.op('end', 'Add', [start, count]);
  const positions = g.op('positions', 'Range', [start, end, g.constant('int64', [], [1])]);
  // RoPE on [T, heads, hs/2, 2]: the pair (x0, x1) becomes (x0·cos − x1·sin, x0·sin + x1·cos)
  const ropeTable = (name: string): string =>
    g.op(`${name}.at`, 'Reshape', [g.op(`${name}.rows`, 'Gather', [g.weight(name, [c.seqLen, hs / 2], read(name)), positions]), g.ints(-1, 1, hs / 2, 1)]);
  const cos = ropeTable('rope_cos');
  const sin = ropeTable('rope_sin');
  const rope = (out: string, x: string, heads: number): string => {
    const pairs = g.op(`${out}.pairs`, 'Reshape', [x, g.ints(-1, heads, hs / 2, 2)]);
    const x0 = g.op(`${out}.x0`, 'Slice', [pairs, g.ints(0), g.ints(1), g.ints(3)]);
    const x1 = g.op(`${out}.x1`, 'Slice', [pairs, g.ints(1), g.ints(2), g.ints(3)]);
    const y0 = g.op(`${out}.y0`, 'Sub', [g.op(`${out}.x0c`, 'Mul', [x0, cos]), g.op(`${out}.x1s`, 'Mul', [x1, sin])]);
    const y1 = g.op(`${out}.y1`, 'Add', [g.op(`${out}.x0s`, 'Mul', [x0, sin]), g.op(`${out}.x1c`, 'Mul', [x1, cos])]);
    return g.op(out, 'Reshape', [g.op(`${out}.rotated`, 'Concat', [y0, y1], { axis: 3 }), g.ints(-1, heads * hs)]);
  };
  // Additive causal mask [T, P+T]: key j is hidden from the query at position p when j > p
  const keyPositions = g.op('key_positions', 'Unsqueeze', [
    g.op('key_range', 'Range', [g.constant('int64', [], [0]), end, g.constant('int64', [], [1])]),
    g.ints(0),
  ]);
  const queryPositions = g.op('query_positions', 'Unsqueeze', [positions, g.ints(1)]);
  const hidden = g.op('hidden', 'Greater', [keyPositions, queryPositions]);
  const mask = g.op('mask', 'Where', [hidden, g.scalar(-3.4028234663852886e38), g.scalar(0)]);

  let x = g.op('embed', 'Gather', [g.weight('tok_embeddings', [c.vocabSize, c.dim], read('tok_embeddings')), tokens]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = (n: string): string => `l${l}.${n}`;
    const w = (n: string): string => `layers.${l}.${n}`;
    const names = cacheNames(l);
    const h = rmsnorm(p('attn_in'), x, w('attention_norm'));
    const q = rope(p('q_rot'), linear(p('q'), h, w('wq'), c.nHeads * hs), c.nHeads);
    const k = rope(p('k_rot'), linear(p('k'), h, w('wk'), kvDim), c.nKvHeads);
    const v = linear(p('v'), h, w('wv'), kvDim);
    const keys = g.op(names.presentKey, 'Concat', [names.pastKey, k], { axis: 0 });
    const values = g.op(names.presentValue, 'Concat', [names.pastValue, v], { axis: 0 });
    // heads grouped by the kv head they read: q [kvHeads, group, T, hs], keys [kvHeads, 1, hs, P+T], values [kvHeads, 1, P+T, hs]
    const qGrouped = g.op(p('q_heads'), 'Transpose', [g.op(p('q_split'), 'Reshape', [q, g.ints(-1, c.nKvHeads, group, hs)])], { perm: [1, 2, 0, 3] });
    const kvHeads = (name: string, cache: string, perm: number[]): string =>
      g.op(p(name), 'Transpose', [g.op(p(`${name}_split`), 'Reshape', [cache, g.ints(-1, c.nKvHeads, 1, hs)])], { perm });
    const kHeads = kvHeads('k_heads', keys, [1, 2, 3, 0]);
    const vHeads = kvHeads('v_heads', values, [1, 2, 0, 3]);
    const scores = g.op(p('scores'), 'Mul', [g.op(p('qk'), 'MatMul', [qGrouped, kHeads]), g.scalar(1 / Math.sqrt(hs))]);
    const probs = g.op(p('probs'), 'Softmax', [g.op(p('masked'), 'Add', [scores, mask])], { axis: -1 });
    const mixed = g.op(p('mixed'), 'Transpose', [g.op(p('pv'), 'MatMul', [probs, vHeads])], { perm: [2, 0, 1, 3] });
    const merged = g.op(p('merged'), 'Reshape', [mixed, g.ints(-1, c.nHeads * hs)]);
    x = g.op(p('resid_attn'), 'Add', [x, linear(p('attn_out'), merged, w('wo'), c.dim)]);
    const f = rmsnorm(p('ffn_in'), x, w('ffn_norm'));
    const gate = linear(p('gate'), f, w('w1'), c.hiddenDim);
    const up = linear(p('up'), f, w('w3'), c.hiddenDim);
    const act = g.op(p('gate_act'), 'Mul', [gate, g.op(p('gate_sigmoid'), 'Sigmoid', [gate])]);
    const gated = g.op(p('gated'), 'Mul', [act, up]);
    x = g.op(p('resid_ffn'), 'Add', [x, linear(p('down'), gated, w('w2'), c.dim)]);
  }
  linear('logits', rmsnorm('final_norm', x, 'norm'), 'output', c.vocabSize);

  const caches = Array.from({ length: c.nLayers }, (_, l) => cacheNames(l));
  const model = encodeModel({
    irVersion: 8,
    producerName: 'weft',
    opsets: [{ domain: '', version: 17 }],
    graph: {
      name: 'llama',
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: [
        { name: tokens, elemType: 'int64', shape: ['T'] },
        ...caches.flatMap((n) => [n.pastKey, n.pastValue].map((name) => ({ name, elemType: 'float' as const, shape: ['P', kvDim] }))),
      ],
      outputs: [
        { name: 'logits', elemType: 'float', shape: ['T', c.vocabSize] },
        ...caches.flatMap((n) => [n.presentKey, n.presentValue].map((name) => ({ name, elemType: 'float' as const, shape: ['P+T', kvDim] }))),
      ],
    },
  });
  return { model, externalData: g.externalData };
}
