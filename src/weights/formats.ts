// The weight formats: one entry per way a tensor's values are stored — in a file (block size and bytes),
// on the device (planes of each block, and the WGSL that decodes them) and on the CPU (the reference
// dequantizer and encoder). Adding a format is one entry here and its tests.
import { halfToFloat } from '../../models/ieee754.js';
import { floatToHalf } from '../runtime/halves.js';
import { q4_k, q5_k, q6_k } from './kquants.js';
import { planeOffsets, planeWord } from './planes.js';

export { planeOffsets, planeWord } from './planes.js';

/** vec4<u32> offset of plane 1 (the scales) for `count` elements, as a WGSL literal: quads' reads of it. */
function quadOf(format: Pick<WeightFormat, 'planes' | 'blockElements'>, count: number): string {
  const at = planeOffsets(format, count / format.blockElements).offsets[1]!;
  if (at % 16 !== 0) throw new Error(`plane 1 of ${count} elements starts at byte ${at}, not a whole vec4`);
  return `${at / 16}u`;
}

export type FormatName = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_k' | 'q5_k' | 'q6_k';

/** The WGSL that reads a weight of this format bound as `w`. */
export interface FormatWgsl {
  /** element type of `w` when read four elements at a time */
  readonly vectorType: 'vec4<f32>' | 'vec4<u32>' | 'vec2<u32>' | 'u32';
  /** `fn wAt(i: u32) -> vec4<f32>`: elements 4i..4i+3 of a weight of `count` elements (a block never splits them) */
  vector(count: number): string;
  /** element type of `w` when read one element at a time */
  readonly scalarType: 'f32' | 'u32';
  /** a WGSL expression for element `i` (a u32 expression named i) of a weight of `count` elements */
  scalar(count: number): string;
  /** the format as int8 blocks of 32, for int8 matmuls; absent: it has none */
  readonly int8?: Int8Form;
}

/**
 * A format read as blocks of 32 int8 values q with scales (and offsets): value = scale·q (− offset), the scale
 * one per block or one per 16 values.
 */
export interface Int8Form {
  /** scales a block: one, or one per 16 values */
  readonly scales: 1 | 2;
  /** values are scale·q − offset (k-quants' mins), an offset a block */
  readonly offset: boolean;
  /** its int8 words are stored as they are, wInt8 being one 4-byte load (Q8_0): the int8 tiles stage them word by word */
  readonly stored?: boolean;
  /**
   * For a weight of `count` elements: `fn wInt8(block: u32, j: u32) -> u32`, values 4j..4j+3 of block `block` as four
   * int8 (pack4xI8's order); `fn wScale(block: u32, half: u32) -> f32`, the scale of the block (of its half);
   * `fn wOffset(block: u32) -> f32` where the form has offsets.
   */
  wgsl(count: number): string;
  /**
   * The form read four words at a time with w bound as array<vec4<u32>> (16-byte loads, for the int8 GEMV): for a
   * weight of `count` elements, `fn wQuad(block: u32, h: u32) -> vec4<u32>`, words 4h..4h+3 of block `block`, with
   * wScale (and wOffset) as above over that binding. Absent: wQuad is four wInt8 over the format's own binding.
   */
  quads?(count: number): string;
  /**
   * The form read two half-blocks a 16-byte load, where one load of its quants holds two sub-blocks' bits (k-quants):
   * for a weight of `count` elements bound as array<vec4<u32>>, `struct WPair { q0, q1: vec4<u32>, s0, s1: vec2<f32> }`,
   * `fn wPair(unit: u32) -> WPair` and `fn wPairHalf(j: u32, i: u32) -> u32`. A row of B blocks has B units, unit j
   * of the row whose first block is r being unit r + j; its half-block i (q_i, as wQuad reads it) is half-block
   * wPairHalf(j, i) of the row, s_i its scale and the offset to subtract for its block (0 on all but one of the
   * block's halves, and where the form has no offsets). Absent: the GEMV reads a half-block at a time.
   */
  pairs?(count: number): string;
}

export interface WeightFormat {
  readonly name: FormatName;
  /** ggml's type id, where GGUF files store this format */
  readonly ggmlType?: number;
  /** safetensors' dtype name, where safetensors files store it */
  readonly safetensors?: string;
  /** elements per block (1 for float formats) */
  readonly blockElements: number;
  /** bytes per block in a file */
  readonly blockBytes: number;
  /**
   * The device layout: each block puts planes[p] bytes into plane p; plane p of a buffer of B blocks starts at
   * the sum over earlier planes of ceil(planes[q]·B / 4)·4 bytes. One plane of blockBytes is the file layout.
   */
  readonly planes: readonly number[];
  /**
   * Writes blocks firstBlock.. of a buffer of totalBlocks from their file bytes into `out` (the whole device
   * buffer, planeBytes(totalBlocks) long); absent: the file layout is the device layout.
   */
  toDevice?(file: Uint8Array, out: Uint8Array, firstBlock: number, totalBlocks: number): void;
  /**
   * Where toDevice only moves each block's halfword at this byte (its scale) to a second plane and keeps the other
   * bytes in order: the upload may lay the blocks out on the device instead (src/runtime/upload.ts).
   */
  readonly scaleHalfAt?: number;
  /** the CPU reference: values of `count` elements from their file bytes */
  dequantize(file: Uint8Array, count: number): Float32Array;
  /** file bytes standing for `values` (a whole number of blocks): ggml's reference quantizer for blocks, nearest-even rounding for halves */
  encode(values: Float32Array): Uint8Array;
  readonly wgsl: FormatWgsl;
}

/** Device bytes for `count` elements of this format. */
export function deviceBytes(format: WeightFormat, count: number): number {
  return planeOffsets(format, count / format.blockElements).bytes;
}

/** File bytes for `count` elements of this format. */
export function fileBytes(format: WeightFormat, count: number): number {
  return (count / format.blockElements) * format.blockBytes;
}

/** Device bytes per element (for stats and memory plans). */
export function bytesPerElement(format: WeightFormat): number {
  return format.planes.reduce((a, b) => a + b, 0) / format.blockElements;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const f32: WeightFormat = {
  name: 'f32',
  ggmlType: 0,
  safetensors: 'F32',
  blockElements: 1,
  blockBytes: 4,
  planes: [4],
  dequantize(file, count) {
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(file.subarray(0, count * 4));
    return out;
  },
  encode: (values) => new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
  wgsl: {
    vectorType: 'vec4<f32>',
    vector: () => 'fn wAt(i: u32) -> vec4<f32> { return w[i]; }',
    scalarType: 'f32',
    scalar: () => 'w[i]',
  },
};

const f16: WeightFormat = {
  name: 'f16',
  ggmlType: 1,
  safetensors: 'F16',
  blockElements: 1,
  blockBytes: 2,
  planes: [2],
  dequantize(file, count) {
    const v = view(file);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = halfToFloat(v.getUint16(2 * i, true));
    return out;
  },
  encode(values) {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
    return new Uint8Array(out.buffer);
  },
  wgsl: {
    vectorType: 'vec2<u32>',
    vector: () => 'fn wAt(i: u32) -> vec4<f32> { let p = w[i]; return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y)); }',
    scalarType: 'u32',
    scalar: () => 'unpack2x16float(w[i >> 1u])[i & 1u]',
  },
};

/** bf16 is the top half of a float32: decoding is exact, encoding rounds to nearest even (NaN kept quiet), as PyTorch does. */
const bf16: WeightFormat = {
  name: 'bf16',
  ggmlType: 30,
  safetensors: 'BF16',
  blockElements: 1,
  blockBytes: 2,
  planes: [2],
  dequantize(file, count) {
    const v = view(file);
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = v.getUint16(2 * i, true) << 16;
    return new Float32Array(out.buffer);
  },
  encode(values) {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const x = bits[i]!;
      out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
    return new Uint8Array(out.buffer);
  },
  wgsl: {
    vectorType: 'vec2<u32>',
    vector: () =>
      'fn wAt(i: u32) -> vec4<f32> { let p = w[i]; return bitcast<vec4<f32>>(vec4<u32>(p.x << 16u, p.x & 0xffff0000u, p.y << 16u, p.y & 0xffff0000u)); }',
    scalarType: 'u32',
    scalar: () => 'bitcast<f32>((w[i >> 1u] << (16u - 16u * (i & 1u))) & 0xffff0000u)',
  },
};

/**
 * ggml's reference quantizers share their block walk: per block of 32 values (x[from..from+32)), `scale` picks d
 * (stored as f16) and `pack` writes the quants at `at`, given the block's values and 1/d as ggml computes it.
 */
function quantizeBlocks(
  name: string,
  blockBytes: number,
  x: Float32Array,
  scale: (x: Float32Array, from: number) => number,
  pack: (out: Uint8Array, at: number, x: Float32Array, from: number, id: number) => void,
): Uint8Array {
  if (x.length % 32 !== 0) throw new Error(`${name} needs a whole number of blocks of 32, got ${x.length} values`);
  const out = new Uint8Array((x.length / 32) * blockBytes);
  for (let b = 0; b < x.length / 32; b++) {
    const d = scale(x, 32 * b);
    const dh = floatToHalf(d);
    out[b * blockBytes] = dh & 0xff;
    out[b * blockBytes + 1] = dh >> 8;
    pack(out, b * blockBytes + 2, x, 32 * b, d ? Math.fround(1 / d) : 0);
  }
  return out;
}

/** Blocks of 32 with an f16 scale first: the scale to the last plane (two bytes a block), the quants through `quants`. */
function scaleLastToDevice(blockBytes: number, quantBytes: number, quants: (file: Uint8Array, at: number, out: Uint8Array, to: number) => void) {
  return (file: Uint8Array, out: Uint8Array, firstBlock: number, totalBlocks: number): void => {
    const scales = Math.ceil((quantBytes * totalBlocks) / 4) * 4;
    const blocks = file.length / blockBytes;
    for (let b = 0; b < blocks; b++) {
      const o = b * blockBytes;
      const at = firstBlock + b;
      out[scales + 2 * at] = file[o]!;
      out[scales + 2 * at + 1] = file[o + 1]!;
      quants(file, o + 2, out, at * quantBytes);
    }
  };
}

const q8_0BytesToDevice = scaleLastToDevice(34, 32, (file, at, out, to) => {
  for (let j = 0; j < 32; j++) out[to + j] = file[at + j]!;
});

/**
 * Q8_0's device layout copied two bytes at a time, where both arrays start on an even byte: a block is 17 halfwords,
 * its scale then 16 of quants.
 */
function q8_0HalvesToDevice(file: Uint8Array, out: Uint8Array, firstBlock: number, totalBlocks: number): void {
  const blocks = file.length / 34;
  const from = new Uint16Array(file.buffer, file.byteOffset, blocks * 17);
  const to = new Uint16Array(out.buffer, out.byteOffset, out.length / 2);
  const scales = Math.ceil((32 * totalBlocks) / 4) * 2 + firstBlock;
  for (let b = 0, o = 0, q = firstBlock * 16; b < blocks; b++, o += 17, q += 16) {
    to[scales + b] = from[o]!;
    for (let j = 0; j < 16; j++) to[q + j] = from[o + 1 + j]!;
  }
}

/** Q8_0: blocks of 32 values, an f16 scale d then 32 int8 q; value d·q. Device: the quants (four a word), then the scales (two a word). */
const q8_0: WeightFormat = {
  name: 'q8_0',
  ggmlType: 8,
  blockElements: 32,
  blockBytes: 34,
  planes: [32, 2],
  scaleHalfAt: 0,
  toDevice: (file, out, firstBlock, totalBlocks) =>
    file.byteOffset % 2 === 0 && out.byteOffset % 2 === 0 && out.length % 2 === 0
      ? q8_0HalvesToDevice(file, out, firstBlock, totalBlocks)
      : q8_0BytesToDevice(file, out, firstBlock, totalBlocks),
  dequantize(file, count) {
    const out = new Float32Array(count);
    for (let b = 0; b < count / 32; b++) {
      const o = b * 34;
      const d = halfToFloat(file[o]! | (file[o + 1]! << 8));
      for (let j = 0; j < 32; j++) out[b * 32 + j] = d * ((file[o + 2 + j]! << 24) >> 24);
    }
    return out;
  },
  /** ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d), ties away from zero */
  encode: (x) =>
    quantizeBlocks(
      'q8_0',
      34,
      x,
      (x, from) => {
        let amax = 0;
        for (let j = from; j < from + 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
        return Math.fround(amax / 127);
      },
      (out, at, x, from, id) => {
        for (let j = 0; j < 32; j++) {
          const v = Math.fround(x[from + j]! * id);
          out[at + j] = (Math.sign(v) * Math.round(Math.abs(v))) & 0xff;
        }
      },
    ),
  wgsl: {
    vectorType: 'u32',
    // a block is 8 groups of four; its scale is half (block & 1) of word (block >> 1) of the scale plane
    vector: (count) => `fn wAt(i: u32) -> vec4<f32> {
  let q = w[i];
  return unpack2x16float(w[${planeWord(q8_0, 1, count)} + (i >> 4u)])[(i >> 3u) & 1u] * vec4<f32>(f32(i32(q << 24u) >> 24u), f32(i32(q << 16u) >> 24u), f32(i32(q << 8u) >> 24u), f32(i32(q) >> 24u));
}`,
    scalarType: 'u32',
    scalar: (count) => `unpack2x16float(w[${planeWord(q8_0, 1, count)} + (i >> 6u)])[(i >> 5u) & 1u] * f32(i32(w[i >> 2u] << (24u - 8u * (i & 3u))) >> 24u)`,
    // the quants as stored: eight words a block
    int8: {
      scales: 1,
      offset: false,
      stored: true,
      wgsl: (count) => `fn wInt8(block: u32, j: u32) -> u32 { return w[block * 8u + j]; }
fn wScale(block: u32, half: u32) -> f32 { return unpack2x16float(w[${planeWord(q8_0, 1, count)} + (block >> 1u)])[block & 1u]; }`,
      // two vec4s a block; the scale plane starts at a multiple of 16 bytes (32 a block)
      quads: (count) => `fn wQuad(block: u32, h: u32) -> vec4<u32> { return w[block * 2u + h]; }
fn wScale(block: u32, half: u32) -> f32 { return unpack2x16float(w[${quadOf(q8_0, count)} + (block >> 3u)][(block >> 1u) & 3u])[block & 1u]; }`,
    },
  },
};

/** A WGSL u32 expression: the low four nibbles of `q` (bits 0..15), each less 8, as four int8 (pack4xI8's order). */
const nibbleInt8 = (q: string): string =>
  `pack4xI8(vec4<i32>(i32(${q} & 15u), i32((${q} >> 4u) & 15u), i32((${q} >> 8u) & 15u), i32((${q} >> 12u) & 15u)) - vec4<i32>(8))`;

/**
 * Q4_0: blocks of 32 values, an f16 scale d then 16 bytes — element j < 16 is byte j's low nibble, j + 16 its
 * high one; value d·(nibble − 8). Device: the nibbles in element order (element 8w+j in bits 4j..4j+3 of word w),
 * then the scales.
 */
const q4_0: WeightFormat = {
  name: 'q4_0',
  ggmlType: 2,
  blockElements: 32,
  blockBytes: 18,
  planes: [16, 2],
  toDevice: scaleLastToDevice(18, 16, (file, at, out, to) => {
    for (let j = 0; j < 8; j++) {
      const a = file[at + 2 * j]!;
      const b = file[at + 2 * j + 1]!;
      out[to + j] = (a & 0xf) | ((b & 0xf) << 4);
      out[to + 8 + j] = (a >> 4) | (b & 0xf0);
    }
  }),
  dequantize(file, count) {
    const out = new Float32Array(count);
    for (let b = 0; b < count / 32; b++) {
      const o = b * 18;
      const d = halfToFloat(file[o]! | (file[o + 1]! << 8));
      for (let j = 0; j < 16; j++) {
        const q = file[o + 2 + j]!;
        out[b * 32 + j] = d * ((q & 0xf) - 8);
        out[b * 32 + j + 16] = d * ((q >> 4) - 8);
      }
    }
    return out;
  },
  /** ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / −8, q = min(15, trunc(x / d + 8.5)) */
  encode: (x) =>
    quantizeBlocks(
      'q4_0',
      18,
      x,
      (x, from) => {
        let amax = 0;
        let max = 0;
        for (let j = from; j < from + 32; j++) {
          const v = x[j]!;
          if (amax < Math.abs(v)) {
            amax = Math.abs(v);
            max = v;
          }
        }
        return Math.fround(max / -8);
      },
      (out, at, x, from, id) => {
        const q = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
        for (let j = 0; j < 16; j++) out[at + j] = q(x[from + j]!) | (q(x[from + 16 + j]!) << 4);
      },
    ),
  wgsl: {
    vectorType: 'u32',
    vector: (count) => `fn wAt(i: u32) -> vec4<f32> {
  let q = w[i >> 1u] >> ((i & 1u) * 16u);
  return unpack2x16float(w[${planeWord(q4_0, 1, count)} + (i >> 4u)])[(i >> 3u) & 1u] * (vec4<f32>(f32(q & 15u), f32((q >> 4u) & 15u), f32((q >> 8u) & 15u), f32((q >> 12u) & 15u)) - 8.0);
}`,
    scalarType: 'u32',
    scalar: (count) => `unpack2x16float(w[${planeWord(q4_0, 1, count)} + (i >> 6u)])[(i >> 5u) & 1u] * (f32((w[i >> 3u] >> (4u * (i & 7u))) & 15u) - 8.0)`,
    // four nibbles less 8 (−8..7) a word of int8: half of one of the block's four words
    int8: {
      scales: 1,
      offset: false,
      wgsl: (count) => `fn wInt8(block: u32, j: u32) -> u32 {
  let q = w[block * 4u + (j >> 1u)] >> ((j & 1u) * 16u);
  return ${nibbleInt8('q')};
}
fn wScale(block: u32, half: u32) -> f32 { return unpack2x16float(w[${planeWord(q4_0, 1, count)} + (block >> 1u)])[block & 1u]; }`,
      // a vec4 a block: half h is its words 2h and 2h + 1, eight nibbles each; the scale plane starts at a multiple of 16 bytes
      quads: (count) => `fn nibbles(q: u32) -> u32 { return ${nibbleInt8('q')}; }
fn wQuad(block: u32, h: u32) -> vec4<u32> {
  let q = w[block];
  let a = select(q.x, q.z, h == 1u);
  let b = select(q.y, q.w, h == 1u);
  return vec4<u32>(nibbles(a), nibbles(a >> 16u), nibbles(b), nibbles(b >> 16u));
}
fn wScale(block: u32, half: u32) -> f32 { return unpack2x16float(w[${quadOf(q4_0, count)} + (block >> 3u)][(block >> 1u) & 3u])[block & 1u]; }`,
    },
  },
};

/** Every weight format, by name. */
export const weightFormats: Readonly<Record<FormatName, WeightFormat>> = { f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k };

/** The format GGUF's type id names, if weft reads it. */
export function formatOfGgmlType(type: number): WeightFormat | undefined {
  return Object.values(weightFormats).find((f) => f.ggmlType === type);
}

/** The format a safetensors dtype names, if weft reads it. */
export function formatOfSafetensors(dtype: string): WeightFormat | undefined {
  return Object.values(weightFormats).find((f) => f.safetensors === dtype);
}

/** Converts file bytes of `count` elements from one format to another, through float32 values. */
export function convert(file: Uint8Array, count: number, from: WeightFormat, to: WeightFormat): Uint8Array {
  if (from === to) return file;
  return to.encode(from.dequantize(file, count));
}

/**
 * Writes tensor bytes in `format` as blocks firstBlock.. of a device buffer of totalBlocks blocks (`out`, the
 * whole buffer): tensors stacked along their rows are written one after another.
 */
export function writeDevice(format: WeightFormat, file: Uint8Array, out: Uint8Array, firstBlock: number, totalBlocks: number): void {
  if (format.toDevice) format.toDevice(file, out, firstBlock, totalBlocks);
  else out.set(file, firstBlock * format.blockBytes);
}

/** Device bytes of tensors stacked along their rows, each given as its file bytes in `format`. */
export function deviceLayout(format: WeightFormat, parts: readonly { readonly file: Uint8Array; readonly count: number }[]): Uint8Array {
  const count = parts.reduce((n, p) => n + p.count, 0);
  const total = count / format.blockElements;
  const out = new Uint8Array(planeOffsets(format, total).bytes);
  let block = 0;
  for (const p of parts) {
    if (p.count % format.blockElements !== 0 || p.file.length !== fileBytes(format, p.count)) {
      throw new Error(`a ${format.name} tensor of ${p.count} values needs ${fileBytes(format, p.count)} bytes, has ${p.file.length}`);
    }
    writeDevice(format, p.file, out, block, total);
    block += p.count / format.blockElements;
  }
  return out;
}
