// Reader for Hugging Face safetensors files: an 8-byte little-endian header length, a JSON header of
// tensors {dtype, shape, data_offsets}, then the data. Only the header is read here; every offset, size
// and shape is checked against the file's size, and each tensor becomes a source read by offset later.
import { excerpt, isJsonObject, parseJson } from '../src/file-input.js';
import { formatOfSafetensors } from '../src/weights/formats.js';
import { elementCount, fileSource, readRegion, regularFileSize, type TensorSource } from '../src/weights/source.js';

/** Headers above this are refused before they are read (the largest hub checkpoints' are a few MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Every tensor of one safetensors file, by name, as sources read from the file when needed. */
export function readSafetensors(path: string): Map<string, TensorSource> {
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  const size = regularFileSize(path);
  if (size < 8) fail(`truncated: ${size} bytes, not even a header length`);
  const headerLength = Number(new DataView(readRegion(path, 0, 8).buffer).getBigUint64(0, true));
  if (headerLength > size - 8) fail(`truncated: the header claims ${headerLength} bytes, the file has ${size - 8} after its length`);
  if (headerLength > MAX_HEADER_BYTES) fail(`a header of ${headerLength} bytes is beyond the ${MAX_HEADER_BYTES} weft reads`);
  const header = parseJson(new TextDecoder().decode(readRegion(path, 8, headerLength)), `${path} header`);
  if (!isJsonObject(header)) return fail(`the header is not a JSON object`);
  const dataStart = 8 + headerLength;
  const dataBytes = size - dataStart;
  const tensors = new Map<string, TensorSource>();
  const taken: [number, number, string][] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (!isJsonObject(e)) fail(`tensor ${excerpt(name)} is not an object`);
    const entry = e as Record<string, unknown>;
    const dtype = entry.dtype;
    const format = typeof dtype === 'string' ? formatOfSafetensors(dtype) : undefined;
    if (!format) return fail(`tensor ${excerpt(name)} has dtype ${excerpt(dtype)}; weft reads F32, F16 and BF16`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || shape.length > 8 || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
      return fail(`tensor ${excerpt(name)} has a malformed shape ${excerpt(shape)}`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail(`tensor ${excerpt(name)}: data_offsets must be two byte offsets, is ${excerpt(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin || end > dataBytes) fail(`tensor ${excerpt(name)}: data offsets [${begin}, ${end}] are outside the ${dataBytes} data bytes`);
    const count = elementCount(shape as number[]);
    if (end - begin !== count * format.blockBytes)
      fail(`tensor ${excerpt(name)}: ${end - begin} bytes do not hold ${(shape as number[]).join('×')} ${dtype} values`);
    taken.push([begin, end, name]);
    tensors.set(name, fileSource(path, dataStart + begin, shape as number[], format));
  }
  taken.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < taken.length; i++) {
    if (taken[i]![0] < taken[i - 1]![1]) fail(`tensors ${excerpt(taken[i - 1]![2])} and ${excerpt(taken[i]![2])} overlap`);
  }
  return tensors;
}
