// Reader for Hugging Face safetensors files: an 8-byte little-endian header length, a JSON header of
// tensors {dtype, shape, data_offsets}, then the data. F32, F16 and BF16 tensors come out as float32;
// every offset, size and shape is checked against the file before anything is read.
import { halfToFloat } from './ieee754.js';

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const BYTES = { F32: 4, F16: 2, BF16: 2 } as const;
type DType = keyof typeof BYTES;

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}


function decode(dtype: DType, bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = view.getUint16(i * 2, true) << 16;
  }
  return out;
}

/** Every tensor of one safetensors file, by name. */
export function readSafetensors(bytes: Uint8Array, source: string): Map<string, Tensor> {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, not even a header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) fail(`truncated: the header claims ${headerLength} bytes, the file has ${bytes.length - 8} after its length`);
  let header: Record<string, Entry | Record<string, string>>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    return fail(`the header is not JSON`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail(`the header is not a JSON object`);
  const dataStart = 8 + headerLength;
  const dataBytes = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const entry = e as Entry;
    if (!(entry.dtype in BYTES)) fail(`tensor ${name} has dtype ${String(entry.dtype)}; weft reads F32, F16 and BF16`);
    const dtype = entry.dtype as DType;
    if (!Array.isArray(entry.shape) || entry.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(`tensor ${name} has a malformed shape`);
    const [begin, end] = Array.isArray(entry.data_offsets) ? entry.data_offsets : [NaN, NaN];
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin || end > dataBytes) {
      fail(`tensor ${name}: data offsets [${begin}, ${end}] are outside the ${dataBytes} data bytes`);
    }
    const count = entry.shape.reduce((p, d) => p * d, 1);
    if ((end - begin) !== count * BYTES[dtype]) fail(`tensor ${name}: ${end - begin} bytes do not hold ${entry.shape.join('×')} ${dtype} values`);
    tensors.set(name, { shape: entry.shape, data: decode(dtype, bytes.subarray(dataStart + begin, dataStart + end)) });
  }
  return tensors;
}
