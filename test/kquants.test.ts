// The k-quant weight formats (src/weights/kquants.ts): hand-built blocks decoded as ggml's structs lay them out;
// the quantizers against ggml's own bytes and values (test/reference/kquants-ggml.json, made by
// scripts/kquants-reference.c) and on their error and optimality; and every format's WGSL decoders against its
// CPU dequantizer on the device, bit for bit, on weights stacked from several tensors.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { halfToFloat } from '../models/ieee754.js';
import { openGpu, type Gpu } from '../src/runtime/gpu.js';
import { q4_k, q5_k, q6_k } from '../src/weights/kquants.js';
import { deviceLayout, formatOfGgmlType, weightFormats, type WeightFormat } from '../src/weights/formats.js';
import { randomArray } from './reference.js';

const f = Math.fround;
const kquants = { q4_k, q5_k, q6_k };

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openGpu();
});
afterAll(() => gpu?.destroy());

/** The 12 scale bytes of a Q4_K / Q5_K block and the (scale, min) pairs get_scale_min_k4 reads from them, worked by hand. */
const packedScales = [0xc1, 0x42, 0x87, 0x3f, 0x80, 0x03, 0x7e, 0x3f, 0xa5, 0x50, 0x11, 0x10];
const scaleMins: readonly [number, number][] = [
  [1, 0], // byte 0 & 63, byte 4 & 63
  [2, 3],
  [7, 62],
  [63, 63],
  [53, 42], // byte 8 = 0xa5: low nibble 5 | (byte 0 >> 6 = 3) << 4; high nibble 10 | (byte 4 >> 6 = 2) << 4
  [16, 5], // byte 9 = 0x50: 0 | (byte 1 >> 6 = 1) << 4; 5 | (byte 5 >> 6 = 0) << 4
  [33, 17], // byte 10 = 0x11: 1 | 2 << 4; 1 | 1 << 4
  [0, 1], // byte 11 = 0x10
];

const halfBytes = (bits: number): number[] => [bits & 0xff, bits >> 8];

/** block_q4_K / block_q5_K: d, dmin, scales[12], (qh[32]), qs[128]; quant(e) is element e's 4- or 5-bit quant */
function scaleMinBlock(d: number, dmin: number, quant: (e: number) => number, fifthBit: boolean): number[] {
  const qh = new Array<number>(32).fill(0);
  const qs = new Array<number>(128).fill(0);
  // dequantize_row_q4_K: each 64 elements use 32 bytes, the first 32 elements low nibbles, the next 32 high ones
  for (let e = 0; e < 256; e++) {
    const [g, l, high] = [e >> 6, e & 31, (e & 32) !== 0];
    qs[32 * g + l]! |= (quant(e) & 15) << (high ? 4 : 0);
    // dequantize_row_q5_K: masks u1 = 1, u2 = 2, shifted left by 2 per 64 elements
    if (quant(e) & 16) qh[l]! |= (high ? 2 : 1) << (2 * g);
  }
  return [...halfBytes(d), ...halfBytes(dmin), ...packedScales, ...(fifthBit ? qh : []), ...qs];
}

/** block_q6_K: ql[128], qh[64], scales[16], d — packed as dequantize_row_q6_K reads, 128 elements at a time */
function q6Block(d: number, scales: readonly number[], quant: (e: number) => number): number[] {
  const ql = new Array<number>(128).fill(0);
  const qh = new Array<number>(64).fill(0);
  for (let n = 0; n < 2; n++)
    for (let l = 0; l < 32; l++) {
      const [q1, q2, q3, q4] = [0, 32, 64, 96].map((k) => quant(128 * n + k + l)) as [number, number, number, number];
      ql[64 * n + l] = (q1 & 15) | ((q3 & 15) << 4);
      ql[64 * n + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
      qh[32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  return [...ql, ...qh, ...scales.map((s) => s & 0xff), ...halfBytes(d)];
}

describe('k-quant blocks built by hand', () => {
  it('Q4_K: d·scale·q − dmin·min per sub-block of 32, nibbles low then high per 64', () => {
    const q = (e: number): number => (e * 5 + 3) % 16;
    // block 0: d = 0.5, dmin = 0.25; block 1: d = −2, dmin = 1, every quant 15
    const file = Uint8Array.from([...scaleMinBlock(0x3800, 0x3400, q, false), ...scaleMinBlock(0xc000, 0x3c00, () => 15, false)]);
    expect(file.length).toBe(2 * q4_k.blockBytes);
    const got = q4_k.dequantize(file, 512);
    expect([got[0], got[32], got[133], got[255]]).toEqual([1.5, 2.25, 307.5, -0.25]);
    for (let e = 0; e < 256; e++) {
      const [sc, m] = scaleMins[e >> 5]!;
      expect(got[e]).toBe(f(f(f(0.5 * sc) * q(e)) - f(0.25 * m)));
      expect(got[256 + e]).toBe(f(f(-2 * sc * 15) - m));
    }
  });

  it('Q5_K: the fifth bit from qh, bit s of byte l for element 32s + l', () => {
    const q = (e: number): number => (e * 7 + 1) % 32;
    const file = Uint8Array.from(scaleMinBlock(0x3800, 0x3400, q, true));
    expect(file.length).toBe(q5_k.blockBytes);
    const got = q5_k.dequantize(file, 256);
    expect([got[0], got[37], got[200]]).toEqual([0.5, 3.25, 408.25]);
    for (let e = 0; e < 256; e++) {
      const [sc, m] = scaleMins[e >> 5]!;
      expect(got[e]).toBe(f(f(f(0.5 * sc) * q(e)) - f(0.25 * m)));
    }
  });

  it('Q6_K: d·scale·(q − 32) with an int8 scale per 16 elements', () => {
    const scales = [-128, 127, -1, 0, 1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, -31];
    const q = (e: number): number => (e * 11 + 7) % 64;
    // block 0: d = 0.125; block 1: d = −1, every scale 1, every quant 63
    const file = Uint8Array.from([...q6Block(0x3000, scales, q), ...q6Block(0xbc00, new Array(16).fill(1), () => 63)]);
    expect(file.length).toBe(2 * q6_k.blockBytes);
    const got = q6_k.dequantize(file, 512);
    expect([got[0], got[100], got[200], got[255]]).toEqual([400, -4.875, -2.375, -108.5]);
    for (let e = 0; e < 256; e++) {
      expect(got[e]).toBe(f(f(0.125 * scales[e >> 4]!) * (q(e) - 32)));
      expect(got[256 + e]).toBe(-31);
    }
  });

  it('the table names them by ggml type and sizes them as ggml does', () => {
    expect([12, 13, 14].map((t) => formatOfGgmlType(t)?.name)).toEqual(['q4_k', 'q5_k', 'q6_k']);
    expect([q4_k, q5_k, q6_k].map((k) => [k.blockElements, k.blockBytes])).toEqual([
      [256, 144],
      [256, 176],
      [256, 210],
    ]);
    expect(() => q4_k.encode(new Float32Array(255))).toThrow(/256/);
  });
});

/** The input rows of test/reference/kquants-ggml.json: `case_values` in scripts/kquants-reference.c. */
const kquantCases: Record<string, () => Float32Array> = {
  random: () => randomArray(512, 1, 1),
  wide: () => randomArray(512, 2, 1000),
  zeros: () => new Float32Array(512),
  tiny: () => randomArray(512, 3, 1e-6),
  huge: () => randomArray(512, 4, 1e9),
  positive: () => randomArray(512, 5, 1).map(Math.abs),
  negative: () => randomArray(512, 6, 1).map((v) => -Math.abs(v)),
  sparse: () => {
    const x = randomArray(512, 7, 1).map((v, i) => ((i >> 4) % 3 === 0 ? 0 : v));
    x[100] = 50;
    return x;
  },
  steps: () => Float32Array.from({ length: 512 }, (_, i) => ((i % 17) - 8) * 0.25),
  constant: () => new Float32Array(512).fill(0.5),
};

/** `random_blocks` of scripts/kquants-reference.c: xorshift bytes, bit 14 of each f16 scale cleared (finite) */
function randomBlocks(format: WeightFormat, blocks: number, seed: number): Uint8Array {
  const out = new Uint8Array(blocks * format.blockBytes);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s >>> 24;
  }
  const halves = format === q6_k ? [208] : [0, 2];
  for (let b = 0; b < blocks; b++) for (const h of halves) out[b * format.blockBytes + h + 1]! &= 0xbf;
  return out;
}
const randomBlockSeeds = { q4_k: 11, q5_k: 12, q6_k: 13 };

function fnv1a(values: Float32Array): string {
  let h = 0x811c9dc5;
  for (const b of new Uint8Array(values.buffer, values.byteOffset, values.byteLength)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface GgmlReference {
  readonly ggml: string;
  readonly [format: string]: { readonly encode: Record<string, string>; readonly dequantize: Record<string, string> } | string;
}
const ggml = JSON.parse(readFileSync(new URL('./reference/kquants-ggml.json', import.meta.url), 'utf8')) as GgmlReference;

describe.each(Object.values(kquants))('$name against ggml', (format) => {
  const reference = ggml[format.name] as { encode: Record<string, string>; dequantize: Record<string, string> };

  it.each(Object.keys(kquantCases))("encode gives quantize_row_*_ref's bytes and dequantize its values: %s", (name) => {
    const bytes = format.encode(kquantCases[name]!());
    expect(hex(bytes)).toBe(reference.encode[name]);
    expect(fnv1a(format.dequantize(bytes, 512))).toBe(reference.dequantize[name]);
  });

  it("dequantize gives dequantize_row_*'s values for blocks of random bytes", () => {
    expect(fnv1a(format.dequantize(randomBlocks(format, 2, randomBlockSeeds[format.name as keyof typeof randomBlockSeeds]), 512))).toBe(
      reference.dequantize['random-bytes'],
    );
  });
});

/** The values element e can take in a block of these bytes, for every quant, in the order of the quants. */
function levels(format: WeightFormat, file: Uint8Array, e: number): number[] {
  const o = (e >> 8) * format.blockBytes;
  if (format === q6_k) {
    const ds = f(halfToFloat(file[o + 208]! | (file[o + 209]! << 8)) * ((file[o + 192 + ((e & 255) >> 4)]! << 24) >> 24));
    return Array.from({ length: 64 }, (_, q) => f(ds * (q - 32)));
  }
  const block = file.subarray(o, o + format.blockBytes);
  const nmax = format === q4_k ? 15 : 31;
  const d = halfToFloat(block[0]! | (block[1]! << 8));
  const dmin = halfToFloat(block[2]! | (block[3]! << 8));
  // get_scale_min_k4 on the scale bytes (4..15 of the block) for sub-block j
  const j = (e >> 5) & 7;
  const [sc, m] =
    j < 4 ? [block[4 + j]! & 63, block[8 + j]! & 63] : [(block[8 + j]! & 15) | ((block[j]! >> 6) << 4), (block[8 + j]! >> 4) | ((block[4 + j]! >> 6) << 4)];
  return Array.from({ length: nmax + 1 }, (_, q) => f(f(f(d * sc) * q) - f(dmin * m)));
}

/** rows of 256·8 values: uniform at several scales, one sign per sub-block, zeros with spikes, a constant */
function roundTripRows(): Float32Array[] {
  const rows = [1, 1e-3, 1e4, 0.02].map((scale, k) => randomArray(256 * 8, 31 + k, scale));
  rows.push(randomArray(256 * 8, 41, 1).map((v, i) => ((i >> 5) % 2 ? Math.abs(v) : -Math.abs(v))));
  const spikes = new Float32Array(256 * 8);
  for (let i = 0; i < spikes.length; i += 97) spikes[i] = i % 2 ? 300 : -7;
  rows.push(spikes, new Float32Array(256 * 8).fill(-3.25));
  return rows;
}

/**
 * per format: the largest error in a super-block as a share of its range (Q6_K: of twice its largest magnitude),
 * and the RMS error of uniform rows as a share of their RMS (ggml's quantizers here: 0.043, 0.036, 0.030; 0.057, 0.030, 0.023)
 */
const errorBounds = { q4_k: { largest: 0.05, rms: 0.065 }, q5_k: { largest: 0.042, rms: 0.035 }, q6_k: { largest: 0.035, rms: 0.027 } };

describe.each(Object.values(kquants))('$name round trip', (format) => {
  it('every quant is the nearest of its values given the stored scales', () => {
    for (const x of roundTripRows()) {
      const file = format.encode(x);
      const y = format.dequantize(file, x.length);
      for (let e = 0; e < x.length; e++) {
        const nearest = Math.min(...levels(format, file, e).map((v) => Math.abs(x[e]! - v)));
        expect(Math.abs(x[e]! - y[e]!)).toBe(nearest);
      }
    }
  });

  it("errors stay within a share of each super-block's range; zeros stay zeros", () => {
    const bounds = errorBounds[format.name as keyof typeof errorBounds];
    for (const x of roundTripRows()) {
      const y = format.dequantize(format.encode(x), x.length);
      for (let b = 0; b < x.length / 256; b++) {
        const part = x.subarray(b * 256, (b + 1) * 256);
        const [lo, hi] = [Math.min(0, ...part), Math.max(0, ...part)];
        const range = format === q6_k ? 2 * Math.max(hi, -lo) : hi - lo;
        let error = 0;
        for (let i = b * 256; i < (b + 1) * 256; i++) error = Math.max(error, Math.abs(x[i]! - y[i]!));
        expect(error).toBeLessThanOrEqual(bounds.largest * range);
      }
    }
    for (const x of roundTripRows().slice(0, 4)) {
      const y = format.dequantize(format.encode(x), x.length);
      let squaredError = 0;
      let squares = 0;
      for (let i = 0; i < x.length; i++) {
        squaredError += (x[i]! - y[i]!) ** 2;
        squares += x[i]! ** 2;
      }
      expect(Math.sqrt(squaredError / squares)).toBeLessThanOrEqual(bounds.rms);
    }
    expect(format.dequantize(format.encode(new Float32Array(512)), 512).every((v) => v === 0)).toBe(true);
    // scales below the smallest f16 (6·10⁻⁸) round to zero: values of 10⁻⁹ come back as zeros
    expect(format.dequantize(format.encode(randomArray(512, 51, 1e-9)), 512).every((v) => v === 0)).toBe(true);
  });

  // ggml's k-quants are not idempotent: quantizing dequantized values may choose other scales. Of 600 random
  // super-blocks, Q4_K gave other bytes for 3, Q5_K for 69 (2 of them again on a third pass), Q6_K for 239
  // (76 with other values); no value moved by a step
  it('quantizing dequantized values again moves no value by more than a step', () => {
    for (const x of roundTripRows()) {
      const first = format.encode(x);
      const y1 = format.dequantize(first, x.length);
      const y2 = format.dequantize(format.encode(y1), x.length);
      for (let e = 0; e < x.length; e++) {
        const l = levels(format, first, e);
        expect(Math.abs(y2[e]! - y1[e]!)).toBeLessThanOrEqual(Math.abs(l[1]! - l[0]!));
      }
    }
  });
});

/** Runs `format`'s WGSL over a weight of `count` elements (device bytes): wAt(i) for every i, or the scalar expression for every element. */
async function decodeOnDevice(format: WeightFormat, bytes: Uint8Array, count: number, way: 'vector' | 'scalar'): Promise<Float32Array> {
  const vector = way === 'vector';
  const invocations = vector ? count / 4 : count;
  const code = `@group(0) @binding(0) var<storage, read> w: array<${vector ? format.wgsl.vectorType : format.wgsl.scalarType}>;
@group(0) @binding(1) var<storage, read_write> out: array<${vector ? 'vec4<f32>' : 'f32'}>;
${vector ? format.wgsl.vector(count) : ''}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x;
  if (i >= ${invocations}u) { return; }
  out[i] = ${vector ? 'wAt(i)' : format.wgsl.scalar(count)};
}`;
  const { device } = gpu;
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const weight = device.createBuffer({ size: Math.ceil(bytes.length / 16) * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const padded = new Uint8Array(weight.size);
  padded.set(bytes);
  device.queue.writeBuffer(weight, 0, padded);
  const out = device.createBuffer({ size: count * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: count * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: weight } },
          { binding: 1, resource: { buffer: out } },
        ],
      }),
    );
    pass.dispatchWorkgroups(Math.ceil(invocations / 64));
    pass.end();
    encoder.copyBufferToBuffer(out, 0, read, 0, count * 4);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const values = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    gpu.check();
    return values;
  } finally {
    weight.destroy();
    out.destroy();
    read.destroy();
  }
}

/** The first elements whose float32 bits differ, as text (an empty list when all agree). */
function bitMismatches(got: Float32Array, want: Float32Array): string[] {
  const [g, w] = [new Uint32Array(got.buffer, got.byteOffset, got.length), new Uint32Array(want.buffer, want.byteOffset, want.length)];
  const out: string[] = [];
  for (let i = 0; i < w.length && out.length < 8; i++)
    if (g[i] !== w[i]) out.push(`element ${i}: ${got[i]} (0x${g[i]!.toString(16)}), want ${want[i]} (0x${w[i]!.toString(16)})`);
  return got.length === want.length ? out : [`${got.length} elements, want ${want.length}`, ...out];
}

describe.each(Object.values(kquants))('$name WGSL decoders', (format) => {
  // six quantized super-blocks at different scales, then three of random bytes (every scale and quant bit pattern)
  const quantized = format.encode(randomArray(256 * 6, 61, 1).map((v, i) => v * 10 ** ((i >> 8) - 3)));
  const file = Uint8Array.from([...quantized, ...randomBlocks(format, 3, 71)]);
  const count = 256 * 9;
  const want = format.dequantize(file, count);
  const bytes = deviceLayout(format, [{ file, count }]);

  it.each(['vector', 'scalar'] as const)('%s decode equals dequantize bit for bit', async (way) => {
    expect(bitMismatches(await decodeOnDevice(format, bytes, count, way), want)).toEqual([]);
  });
});

describe.each(Object.values(weightFormats))('$name stacked on the device', (format) => {
  // three tensors of 256·3, 256·5 and 256 elements, rows stacked into one weight
  const parts = [3, 5, 1].map((blocks, k) => {
    const count = 256 * blocks;
    return { file: format.encode(randomArray(count, 81 + k, 2 ** (2 * k - 1))), count };
  });
  const count = 256 * 9;
  const want = new Float32Array(count);
  let at = 0;
  for (const p of parts) {
    want.set(format.dequantize(p.file, p.count), at);
    at += p.count;
  }
  const bytes = deviceLayout(format, parts);

  it.each(['vector', 'scalar'] as const)("%s decode of the stacked weight equals each part's dequantize", async (way) => {
    expect(bitMismatches(await decodeOnDevice(format, bytes, count, way), want)).toEqual([]);
  });
});
