// Encodes the subset of ONNX's ModelProto that weft's peer graphs use into protobuf bytes. Large tensors are
// never copied while nesting: a message is a list of byte chunks, joined once at the end.

/** TensorProto.DataType values */
export const DataType = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
export type ElemType = keyof typeof DataType;

/** A tensor whose bytes are inline (`raw_data`) or at `offset`..`offset+length` of the file `location`. */
export interface TensorProto {
  readonly name: string;
  readonly dataType: ElemType;
  readonly dims: readonly number[];
  readonly data: Uint8Array | { readonly location: string; readonly offset: number; readonly length: number };
}

/** A graph input or output; a dim is a size or a symbolic name */
export interface ValueInfoProto {
  readonly name: string;
  readonly elemType: ElemType;
  readonly shape: readonly (number | string)[];
}

export type AttributeValue = number | string | readonly number[] | { readonly float: number };

export interface NodeProto {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  /** integers become INT/INTS, `{ float }` FLOAT, strings STRING */
  readonly attributes?: Readonly<Record<string, AttributeValue>>;
}

export interface GraphProto {
  readonly name: string;
  readonly nodes: readonly NodeProto[];
  readonly initializers: readonly TensorProto[];
  readonly inputs: readonly ValueInfoProto[];
  readonly outputs: readonly ValueInfoProto[];
}

export interface ModelProto {
  readonly irVersion: number;
  readonly opsets: readonly { readonly domain: string; readonly version: number }[];
  readonly producerName: string;
  readonly graph: GraphProto;
}

/** Encoded message bytes, kept as chunks */
class Message {
  readonly chunks: Uint8Array[] = [];
  size = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wireType: 0 | 1 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): this {
    this.tag(field, 0);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, value: Message): this {
    this.tag(field, 2);
    this.varint(value.size);
    for (const c of value.chunks) this.push(c);
    return this;
  }

  join(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

const attributeType = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

function attribute(name: string, value: AttributeValue): Message {
  const m = new Message().string(1, name);
  if (typeof value === 'number') return m.int(3, value).int(20, attributeType.int);
  if (typeof value === 'string') return m.string(4, value).int(20, attributeType.string);
  if ('float' in value) return m.float(2, value.float).int(20, attributeType.float);
  for (const v of value) m.int(8, v);
  return m.int(20, attributeType.ints);
}

function node(n: NodeProto): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  if (n.name) m.string(3, n.name);
  m.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) m.message(5, attribute(k, v));
  if (n.domain) m.string(7, n.domain);
  return m;
}

function tensor(t: TensorProto): Message {
  const m = new Message();
  for (const d of t.dims) m.int(1, d);
  m.int(2, DataType[t.dataType]).string(8, t.name);
  if (t.data instanceof Uint8Array) return m.bytes(9, t.data);
  const entry = (key: string, value: string): Message => new Message().string(1, key).string(2, value);
  m.message(13, entry('location', t.data.location));
  m.message(13, entry('offset', String(t.data.offset)));
  m.message(13, entry('length', String(t.data.length)));
  return m.int(14, 1);
}

function valueInfo(v: ValueInfoProto): Message {
  const shape = new Message();
  for (const d of v.shape) shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, DataType[v.elemType]).message(2, shape);
  return new Message().string(1, v.name).message(2, new Message().message(1, tensorType));
}

function graph(g: GraphProto): Message {
  const m = new Message();
  for (const n of g.nodes) m.message(1, node(n));
  m.string(2, g.name);
  for (const t of g.initializers) m.message(5, tensor(t));
  for (const i of g.inputs) m.message(11, valueInfo(i));
  for (const o of g.outputs) m.message(12, valueInfo(o));
  return m;
}

/** The protobuf bytes of `model`. */
export function encodeModel(model: ModelProto): Uint8Array {
  const m = new Message().int(1, model.irVersion).string(2, model.producerName).message(7, graph(model.graph));
  for (const o of model.opsets) m.message(8, new Message().string(1, o.domain).int(2, o.version));
  return m.join();
}
