// GGUF's Q8_0 and Q4_0 weights in the layout the kernels read: every block's quants first, in element order
// (Q8_0 four int8 per u32, Q4_0 eight 4-bit values per u32, element 8w+j in bits 4j..4j+3), then every
// block's f16 scale, two per u32 (block 2s in the low half), as unpack2x16float reads them. And ggml's
// reference quantizers, for checkpoints quantized here.
import { floatToHalf } from './halves.js';

/** Blocks of 32 values along a row: Q8_0 an f16 scale d and 32 int8 q (value d·q); Q4_0 an f16 scale and 32 nibbles (value d·(q − 8)). */
export type QuantType = 'q8_0' | 'q4_0';

/** A tensor as its GGUF blocks (little-endian, row-major, rows a whole number of blocks). */
export interface QuantizedTensor {
  readonly type: QuantType;
  /** elements */
  readonly count: number;
  readonly blocks: Uint8Array;
}

export const QUANT_BLOCK = 32;
const BLOCK_BYTES: Readonly<Record<QuantType, number>> = { q8_0: 34, q4_0: 18 };

/** u32 words of quants for `count` elements (the scales follow them). */
export function quantWords(type: QuantType, count: number): number {
  return type === 'q8_0' ? count / 4 : count / 8;
}

/** The device layout of tensors stacked along their rows (one type, each a whole number of blocks). */
export function quantizedLayout(parts: readonly QuantizedTensor[]): Uint32Array {
  const type = parts[0]!.type;
  const count = parts.reduce((n, p) => n + p.count, 0);
  const blocks = count / QUANT_BLOCK;
  const qWords = quantWords(type, count);
  const out = new Uint32Array(qWords + Math.ceil(blocks / 2));
  const bytes = new Uint8Array(out.buffer);
  const scales = new Uint16Array(out.buffer, qWords * 4, 2 * Math.ceil(blocks / 2));
  let b = 0;
  for (const p of parts) {
    if (p.type !== type) throw new Error(`stacked quantized tensors must share one type, got ${type} and ${p.type}`);
    if (p.count % QUANT_BLOCK !== 0 || p.blocks.length !== (p.count / QUANT_BLOCK) * BLOCK_BYTES[type]) {
      throw new Error(`a ${type} tensor of ${p.count} values needs ${(p.count / QUANT_BLOCK) * BLOCK_BYTES[type]} bytes, has ${p.blocks.length}`);
    }
    for (let pb = 0; pb < p.count / QUANT_BLOCK; pb++, b++) {
      const o = pb * BLOCK_BYTES[type];
      scales[b] = p.blocks[o]! | (p.blocks[o + 1]! << 8);
      if (type === 'q8_0') {
        bytes.set(p.blocks.subarray(o + 2, o + 34), b * 32);
      } else {
        // GGUF: byte j holds element j (low nibble) and element j + 16 (high nibble)
        for (let j = 0; j < 16; j++) {
          const q = p.blocks[o + 2 + j]!;
          const lo = b * 32 + j;
          const hi = lo + 16;
          out[lo >>> 3] = (out[lo >>> 3]! | ((q & 0xf) << (4 * (lo & 7)))) >>> 0;
          out[hi >>> 3] = (out[hi >>> 3]! | ((q >>> 4) << (4 * (hi & 7)))) >>> 0;
        }
      }
    }
  }
  return out;
}

/**
 * ggml's reference quantizers share their block walk: per block of 32 values, `scale` picks d (stored as f16)
 * and `pack` writes the quants at `at`, given the block's values and 1/d as ggml computes it.
 */
function quantizeBlocks(
  type: QuantType,
  x: Float32Array,
  scale: (block: Float32Array) => number,
  pack: (out: Uint8Array, at: number, block: Float32Array, id: number) => void,
): Uint8Array {
  if (x.length % QUANT_BLOCK !== 0) throw new Error(`${type} needs a whole number of blocks of ${QUANT_BLOCK}, got ${x.length} values`);
  const size = BLOCK_BYTES[type];
  const out = new Uint8Array((x.length / QUANT_BLOCK) * size);
  for (let b = 0; b < x.length / QUANT_BLOCK; b++) {
    const block = x.subarray(b * QUANT_BLOCK, (b + 1) * QUANT_BLOCK);
    const d = scale(block);
    const dh = floatToHalf(d);
    out[b * size] = dh & 0xff;
    out[b * size + 1] = dh >> 8;
    pack(out, b * size + 2, block, d ? Math.fround(1 / d) : 0);
  }
  return out;
}

/** ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127 (stored as f16), q = round(x / d), ties away from zero. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  return quantizeBlocks(
    'q8_0',
    x,
    (block) => Math.fround(block.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127),
    (out, at, block, id) => {
      for (let j = 0; j < 32; j++) {
        const v = Math.fround(block[j]! * id);
        out[at + j] = (Math.sign(v) * Math.round(Math.abs(v))) & 0xff;
      }
    },
  );
}

/** ggml's quantize_row_q4_0_ref: per block of 32, d = (the value of largest magnitude) / −8, q = min(15, trunc(x / d + 8.5)). */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  return quantizeBlocks(
    'q4_0',
    x,
    (block) => {
      let amax = 0;
      let max = 0;
      for (const v of block) {
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      return Math.fround(max / -8);
    },
    (out, at, block, id) => {
      const q = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
      for (let j = 0; j < 16; j++) out[at + j] = q(block[j]!) | (q(block[16 + j]!) << 4);
    },
  );
}
