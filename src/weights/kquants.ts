// GGUF's k-quants Q4_K, Q5_K and Q6_K: super-blocks of 256 values whose sub-blocks carry their own quantized
// scales, in ggml's block layouts, with ggml's dequantizers and reference quantizers computed float32 step for
// step (Math.fround after every operation C does in float), so encode gives ggml's bytes and dequantize its values.
import { halfToFloat } from '../../models/ieee754.js';
import { floatToHalf } from '../runtime/halves.js';
import type { Int8Form, WeightFormat } from './formats.js';
import { planeWord } from './planes.js';

const f = Math.fround;
const SUPER_BLOCK = 256;
/** ggml's GROUP_MAX_EPS: a group whose largest magnitude is below it is all zero */
const GROUP_MAX_EPS = f(1e-15);

const roundScratch = new Float32Array(1);
const roundBits = new Int32Array(roundScratch.buffer);

/** ggml's nearest_int: adds 1.5·2²³ in float32 and reads the mantissa (ties to even for |x| < 2²²). */
function nearestInt(x: number): number {
  roundScratch[0] = x + 12582912;
  return (roundBits[0]! & 0x7fffff) - 0x400000;
}

const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

/**
 * ggml's make_qkx2_quants with squared error: value ≈ scale·L − min for L in 0..nmax; tries nstep + 1 scales
 * (nmax + rmin + rdelta·step over the range) and keeps the least weighted error. Writes the quants; min ≥ 0.
 */
function scaleMinQuants(
  x: Float32Array,
  weights: Float32Array,
  nmax: number,
  quants: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): { scale: number; min: number } {
  const n = x.length;
  let min = x[0]!;
  let max = x[0]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    if (x[i]! < min) min = x[i]!;
    if (x[i]! > max) max = x[i]!;
    sumW = f(sumW + weights[i]!);
    sumX = f(sumX + f(weights[i]! * x[i]!));
  }
  if (min > 0) min = 0;
  if (max === min) {
    quants.fill(0);
    return { scale: 0, min: -min };
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  const squaredError = (s: number, m: number, q: ArrayLike<number>): number => {
    let error = 0;
    for (let i = 0; i < n; i++) {
      const diff = f(f(f(s * q[i]!) + m) - x[i]!);
      error = f(error + f(weights[i]! * f(diff * diff)));
    }
    return error;
  };
  for (let i = 0; i < n; i++) quants[i] = clamp(nearestInt(f(iscale * f(x[i]! - min))), 0, nmax);
  let bestError = squaredError(scale, min, quants);
  const trial = new Uint8Array(n);
  for (let step = 0; step <= nstep; step++) {
    iscale = f(f(f(rmin + f(rdelta * step)) + nmax) / f(max - min)); // min is the best trial's so far
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(f(iscale * f(x[i]! - min))), 0, nmax);
      trial[i] = l;
      const wl = f(weights[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(D > 0)) continue;
    let trialScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
    let trialMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
    if (trialMin > 0) {
      trialMin = 0;
      trialScale = f(sumXL / sumL2);
    }
    const error = squaredError(trialScale, trialMin, trial);
    if (error < bestError) {
      quants.set(trial);
      bestError = error;
      scale = trialScale;
      min = trialMin;
    }
  }
  return { scale, min: -min };
}

/**
 * ggml's make_qx_quants with rmse_type 1 (weights x²): value ≈ scale·(L − nmax) for L in 0..2·nmax − 1; tries
 * the scales −(nmax + 0.1·k)/max for k = −9..9 and keeps the best. Writes the quants.
 */
function symmetricQuants(x: Float32Array, nmax: number, quants: Uint8Array): number {
  const n = x.length;
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]!);
    if (ax > amax) {
      amax = ax;
      max = x[i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    quants.fill(0);
    return 0;
  }
  const quant = (iscale: number, i: number): number => clamp(nearestInt(f(iscale * x[i]!)), -nmax, nmax - 1);
  const sums = (iscale: number): { sumLX: number; sumL2: number } => {
    let sumLX = 0;
    let sumL2 = 0;
    for (let i = 0; i < n; i++) {
      const l = quant(iscale, i);
      const w = f(x[i]! * x[i]!);
      sumLX = f(sumLX + f(f(w * x[i]!) * l));
      sumL2 = f(sumL2 + f(f(w * l) * l));
    }
    return { sumLX, sumL2 };
  };
  let iscale = f(-nmax / max);
  for (let i = 0; i < n; i++) quants[i] = nmax + quant(iscale, i);
  const first = sums(iscale);
  let scale = first.sumL2 ? f(first.sumLX / first.sumL2) : 0;
  let best = f(scale * first.sumLX);
  for (let k = -9; k <= 9; k++) {
    if (k === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * k)) / max);
    const { sumLX, sumL2 } = sums(iscale);
    if (sumL2 > 0 && f(sumLX * sumLX) > f(best * sumL2)) {
      for (let i = 0; i < n; i++) quants[i] = nmax + quant(iscale, i);
      scale = f(sumLX / sumL2);
      best = f(scale * sumLX);
    }
  }
  return scale;
}

/** ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes at `at`. */
function scaleMin(b: Uint8Array, at: number, j: number): { sc: number; m: number } {
  if (j < 4) return { sc: b[at + j]! & 63, m: b[at + j + 4]! & 63 };
  return { sc: (b[at + j + 4]! & 0xf) | ((b[at + j - 4]! >> 6) << 4), m: (b[at + j + 4]! >> 4) | ((b[at + j]! >> 6) << 4) };
}

const half = (b: Uint8Array, at: number): number => halfToFloat(b[at]! | (b[at + 1]! << 8));

function putHalf(b: Uint8Array, at: number, value: number): void {
  const h = floatToHalf(value);
  b[at] = h & 0xff;
  b[at + 1] = h >> 8;
}

function superBlocks(name: string, count: number): number {
  if (count % SUPER_BLOCK !== 0) throw new Error(`${name} needs a whole number of blocks of ${SUPER_BLOCK}, got ${count} values`);
  return count / SUPER_BLOCK;
}

/**
 * The shared quantizer of Q4_K and Q5_K (ggml's quantize_row_q4_K_ref / q5_K_ref up to the quant packing):
 * per sub-block of 32, scale and min by scaleMinQuants weighted by rms + |x|; both quantized to 6 bits against
 * the super-block's largest (d, dmin as f16) and packed as get_scale_min_k4 reads them; then every quant
 * again from the stored scales. Writes d, dmin and the scales at `at`, returns the 256 quants.
 */
function quantizeScaleMin(x: Float32Array, nmax: number, rmin: number, nstep: number, out: Uint8Array, at: number): Uint8Array {
  const quants = new Uint8Array(SUPER_BLOCK);
  const weights = new Float32Array(32);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const sub = x.subarray(32 * j, 32 * j + 32);
    let sumX2 = 0;
    for (const v of sub) sumX2 = f(sumX2 + f(v * v));
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(sub[l]!));
    const { scale, min } = scaleMinQuants(sub, weights, nmax, quants.subarray(32 * j, 32 * j + 32), rmin, f(0.1), nstep);
    scales[j] = scale;
    mins[j] = min;
    if (scale > maxScale) maxScale = scale;
    if (min > maxMin) maxMin = min;
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  const packed = at + 4;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
    if (j < 4) {
      out[packed + j] = ls;
      out[packed + j + 4] = lm;
    } else {
      out[packed + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      out[packed + j - 4]! |= (ls >> 4) << 6;
      out[packed + j]! |= (lm >> 4) << 6;
    }
  }
  putHalf(out, at, f(maxScale / 63));
  putHalf(out, at + 2, f(maxMin / 63));
  const dAll = half(out, at);
  const minAll = half(out, at + 2);
  for (let j = 0; j < 8; j++) {
    const { sc, m } = scaleMin(out, packed, j);
    const d = f(dAll * sc);
    if (!d) continue;
    const dm = f(minAll * m);
    for (let i = 32 * j; i < 32 * j + 32; i++) quants[i] = clamp(nearestInt(f(f(x[i]! + dm) / d)), 0, nmax);
  }
  return quants;
}

/** Values of sub-block pairs (64 elements) of Q4_K / Q5_K: `quant(g, l, high)` is element 64g + 32·high + l's quant. */
function dequantizeScaleMin(
  file: Uint8Array,
  count: number,
  blockBytes: number,
  quant: (o: number, g: number, l: number, high: boolean) => number,
): Float32Array {
  const out = new Float32Array(count);
  for (let b = 0; b < count / SUPER_BLOCK; b++) {
    const o = b * blockBytes;
    const d = half(file, o);
    const min = half(file, o + 2);
    for (let s = 0; s < 8; s++) {
      const { sc, m } = scaleMin(file, o + 4, s);
      const ds = f(d * sc);
      const ms = f(min * m);
      for (let l = 0; l < 32; l++) out[b * SUPER_BLOCK + 32 * s + l] = f(f(ds * quant(o, s >> 1, l, (s & 1) === 1)) - ms);
    }
  }
  return out;
}

/**
 * WGSL for Q4_K / Q5_K in the file layout. The 16-byte head of a block (d and dmin as halves, then the 12
 * scale bytes) is one vec4<u32>: scale and min of sub-block s come from byte s & 3 of words y, z, w.
 */
function scaleMinWgsl(head: string, sub: string): string {
  // s < 4: scale = bits 0..5 of byte s (word y), min = bits 0..5 of byte s + 4 (word z).
  // s ≥ 4: scale = low nibble of byte s + 4 (word w) | top two bits of byte s − 4 (y) << 4;
  //        min = high nibble of byte s + 4 (w) | top two bits of byte s (z) << 4.
  return `let at = 8u * (${sub} & 3u);
  let upper = ${sub} >> 2u;
  let sc = extractBits(select(${head}.y, ${head}.w, upper == 1u), at, 4u) | (extractBits(${head}.y, at + 4u + 2u * upper, 2u) << 4u);
  let m = extractBits(select(${head}.z, ${head}.w, upper == 1u), at + 4u * upper, 4u) | (extractBits(${head}.z, at + 4u + 2u * upper, 2u) << 4u);
  let dm = unpack2x16float(${head}.x);`;
}

/** The scale-and-min scalar expression of element i (words from `base`): dm.x·sc·q − dm.y·m, with q given. */
function scaleMinScalar(base: string, q: string): string {
  const upper = '((i >> 7u) & 1u)';
  const at = '(8u * ((i >> 5u) & 3u))';
  const sc = `(extractBits(w[${base} + 1u + 2u * ${upper}], ${at}, 4u) | (extractBits(w[${base} + 1u], ${at} + 4u + 2u * ${upper}, 2u) << 4u))`;
  const m = `(extractBits(w[${base} + 2u + ${upper}], ${at} + 4u * ${upper}, 4u) | (extractBits(w[${base} + 2u], ${at} + 4u + 2u * ${upper}, 2u) << 4u))`;
  return `unpack2x16float(w[${base}]).x * f32(${sc}) * f32(${q}) - unpack2x16float(w[${base}]).y * f32(${m})`;
}

/**
 * The int8 form of Q4_K / Q5_K (super-blocks of `words` vec4<u32>): a block of 32 is a sub-block, its quants
 * 0..15 (0..31) as int8 as they are, its scale d·sc and its offset dmin·m. `quants(i)` packs the four quants of
 * group i (vec4 index i; sb: the super-block's first vec4, sub: the sub-block, word: the quant word, as wAt has them);
 * `quad` the sixteen of half h of the sub-block as one vec4<u32> (sb, sub and h as named), from whole-vec4 loads.
 */
function scaleMinInt8(words: number, quants: (i: string) => string, quad: string, pair: string): Int8Form {
  const scaleMin = `fn wScaleMin(block: u32) -> vec2<f32> {
  let sub = block & 7u;
  let head = w[(block >> 3u) * ${words}u];
  ${scaleMinWgsl('head', 'sub')}
  return vec2<f32>(dm.x * f32(sc), dm.y * f32(m));
}
fn wScale(block: u32, half: u32) -> f32 { return wScaleMin(block).x; }
fn wOffset(block: u32) -> f32 { return wScaleMin(block).y; }`;
  return {
    scales: 1,
    offset: true,
    wgsl: () => `fn wInt8(block: u32, j: u32) -> u32 {
  let i = block * 8u + j;
  let sb = (i >> 6u) * ${words}u;
  let sub = (i >> 3u) & 7u;
  let word = ((sub >> 1u) << 3u) | (i & 7u);
  return ${quants('i')};
}
${scaleMin}`,
    quads: () => `fn wQuad(block: u32, h: u32) -> vec4<u32> {
  let sb = (block >> 3u) * ${words}u;
  let sub = block & 7u;
  return ${quad};
}
${scaleMin}`,
    // unit u: half hh of sub-blocks 2p and 2p + 1, whose nibbles share the 16 bytes; the blocks' offsets go with hh = 0
    pairs: () => `${PAIR_STRUCT}
fn wPairHalf(j: u32, i: u32) -> u32 { return 2u * (j & ~1u) + (j & 1u) + 2u * i; }
fn scaleMinOf(head: vec4<u32>, sub: u32) -> vec2<f32> {
  ${scaleMinWgsl('head', 'sub')}
  return vec2<f32>(dm.x * f32(sc), dm.y * f32(m));
}
fn wPair(u: u32) -> WPair {
  let sb = (u >> 3u) * ${words}u;
  let p = (u >> 1u) & 3u;
  let hh = u & 1u;
  let head = w[sb];
  ${pair}
  let on = select(0.0, 1.0, hh == 0u);
  let a = scaleMinOf(head, 2u * p);
  let b = scaleMinOf(head, 2u * p + 1u);
  return WPair(q0, q1, vec2<f32>(a.x, a.y * on), vec2<f32>(b.x, b.y * on));
}`,
  };
}

/** what an int8 form's pairs return (formats.ts, Int8Form.pairs) */
const PAIR_STRUCT = 'struct WPair { q0: vec4<u32>, q1: vec4<u32>, s0: vec2<f32>, s1: vec2<f32> }';
const NIBBLES = 'vec4<u32>(0x0f0f0f0fu)';

/** the four bytes of a u32 as floats, byte 0 first */
const byteFloats = (v: string): string => `vec4<f32>(f32(${v} & 255u), f32((${v} >> 8u) & 255u), f32((${v} >> 16u) & 255u), f32(${v} >> 24u))`;

/**
 * Q4_K (ggml type 12): super-blocks of 256 in 144 bytes — d and dmin (f16), 12 bytes of 6-bit scales and mins
 * of the 8 sub-blocks of 32, then 128 bytes: element 64g + l (l < 32) is the low nibble of byte 32g + l, element
 * 64g + 32 + l its high nibble; value d·sc·q − dmin·m. Device: the file layout (144 bytes are 9 vec4<u32>).
 */
export const q4_k: WeightFormat = {
  name: 'q4_k',
  ggmlType: 12,
  blockElements: SUPER_BLOCK,
  blockBytes: 144,
  planes: [144],
  dequantize: (file, count) =>
    dequantizeScaleMin(file, count, 144, (o, g, l, high) => (high ? file[o + 16 + 32 * g + l]! >> 4 : file[o + 16 + 32 * g + l]! & 0xf)),
  /** ggml's quantize_row_q4_K_ref */
  encode(x) {
    const out = new Uint8Array(superBlocks('q4_k', x.length) * 144);
    for (let b = 0; b < x.length / SUPER_BLOCK; b++) {
      const o = b * 144;
      const q = quantizeScaleMin(x.subarray(b * SUPER_BLOCK, (b + 1) * SUPER_BLOCK), 15, -1, 20, out, o);
      for (let g = 0; g < 4; g++) for (let l = 0; l < 32; l++) out[o + 16 + 32 * g + l] = q[64 * g + l]! | (q[64 * g + 32 + l]! << 4);
    }
    return out;
  },
  wgsl: {
    vectorType: 'vec4<u32>',
    // group i is word (i & 7) of the 32 quant bytes of its sub-block pair, nibble (sub & 1)
    vector: () => `fn wAt(i: u32) -> vec4<f32> {
  let block = (i >> 6u) * 9u;
  let sub = (i >> 3u) & 7u;
  let head = w[block];
  ${scaleMinWgsl('head', 'sub')}
  let word = ((sub >> 1u) << 3u) | (i & 7u);
  let q = (w[block + 1u + (word >> 2u)][word & 3u] >> (4u * (sub & 1u))) & 0x0f0f0f0fu;
  return (dm.x * f32(sc)) * ${byteFloats('q')} - dm.y * f32(m);
}`,
    int8: scaleMinInt8(
      9,
      (i) => `(w[sb + 1u + (word >> 2u)][word & 3u] >> (4u * (sub & 1u))) & 0x0f0f0f0fu`,
      '(w[sb + 1u + 2u * (sub >> 1u) + h] >> vec4<u32>(4u * (sub & 1u))) & vec4<u32>(0x0f0f0f0fu)',
      `let q = w[sb + 1u + 2u * p + hh];
  let q0 = q & ${NIBBLES};
  let q1 = (q >> vec4<u32>(4u)) & ${NIBBLES};`,
    ),
    scalarType: 'u32',
    scalar: () =>
      scaleMinScalar(
        '(i >> 8u) * 36u',
        'extractBits(w[(i >> 8u) * 36u + 4u + 8u * ((i >> 6u) & 3u) + ((i >> 2u) & 7u)], 8u * (i & 3u) + 4u * ((i >> 5u) & 1u), 4u)',
      ),
  },
};

/**
 * Q5_K (ggml type 13): super-blocks of 256 in 176 bytes — d, dmin, the 12 scale bytes as Q4_K, 32 bytes of
 * high bits (bit s of byte l is element 32s + l's fifth bit), then the low nibbles as Q4_K; value d·sc·q − dmin·m.
 * Device: the file layout (176 bytes are 11 vec4<u32>).
 */
export const q5_k: WeightFormat = {
  name: 'q5_k',
  ggmlType: 13,
  blockElements: SUPER_BLOCK,
  blockBytes: 176,
  planes: [176],
  dequantize: (file, count) =>
    dequantizeScaleMin(file, count, 176, (o, g, l, high) => {
      const low = high ? file[o + 48 + 32 * g + l]! >> 4 : file[o + 48 + 32 * g + l]! & 0xf;
      return low + ((file[o + 16 + l]! >> (2 * g + (high ? 1 : 0))) & 1 ? 16 : 0);
    }),
  /** ggml's quantize_row_q5_K_ref */
  encode(x) {
    const out = new Uint8Array(superBlocks('q5_k', x.length) * 176);
    for (let b = 0; b < x.length / SUPER_BLOCK; b++) {
      const o = b * 176;
      const q = quantizeScaleMin(x.subarray(b * SUPER_BLOCK, (b + 1) * SUPER_BLOCK), 31, -0.5, 15, out, o);
      for (let g = 0; g < 4; g++)
        for (let l = 0; l < 32; l++) {
          const lo = q[64 * g + l]!;
          const hi = q[64 * g + 32 + l]!;
          out[o + 16 + l]! |= ((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1));
          out[o + 48 + 32 * g + l] = (lo & 0xf) | ((hi & 0xf) << 4);
        }
    }
    return out;
  },
  wgsl: {
    vectorType: 'vec4<u32>',
    vector: () => `fn wAt(i: u32) -> vec4<f32> {
  let block = (i >> 6u) * 11u;
  let sub = (i >> 3u) & 7u;
  let head = w[block];
  ${scaleMinWgsl('head', 'sub')}
  let word = ((sub >> 1u) << 3u) | (i & 7u);
  let low = (w[block + 3u + (word >> 2u)][word & 3u] >> (4u * (sub & 1u))) & 0x0f0f0f0fu;
  let high = (w[block + 1u + ((i & 7u) >> 2u)][i & 3u] >> sub) & 0x01010101u;
  let q = low | (high << 4u);
  return (dm.x * f32(sc)) * ${byteFloats('q')} - dm.y * f32(m);
}`,
    int8: scaleMinInt8(
      11,
      (i) =>
        `((w[sb + 3u + (word >> 2u)][word & 3u] >> (4u * (sub & 1u))) & 0x0f0f0f0fu) | (((w[sb + 1u + ((${i} & 7u) >> 2u)][${i} & 3u] >> sub) & 0x01010101u) << 4u)`,
      '((w[sb + 3u + 2u * (sub >> 1u) + h] >> vec4<u32>(4u * (sub & 1u))) & vec4<u32>(0x0f0f0f0fu)) | (((w[sb + 1u + h] >> vec4<u32>(sub)) & vec4<u32>(0x01010101u)) << vec4<u32>(4u))',
      `let q = w[sb + 3u + 2u * p + hh];
  let high = w[sb + 1u + hh];
  let q0 = (q & ${NIBBLES}) | (((high >> vec4<u32>(2u * p)) & vec4<u32>(0x01010101u)) << vec4<u32>(4u));
  let q1 = ((q >> vec4<u32>(4u)) & ${NIBBLES}) | (((high >> vec4<u32>(2u * p + 1u)) & vec4<u32>(0x01010101u)) << vec4<u32>(4u));`,
    ),
    scalarType: 'u32',
    scalar: () =>
      scaleMinScalar(
        '(i >> 8u) * 44u',
        '(extractBits(w[(i >> 8u) * 44u + 12u + 8u * ((i >> 6u) & 3u) + ((i >> 2u) & 7u)], 8u * (i & 3u) + 4u * ((i >> 5u) & 1u), 4u) | (extractBits(w[(i >> 8u) * 44u + 4u + ((i >> 2u) & 7u)], 8u * (i & 3u) + ((i >> 5u) & 7u), 1u) << 4u))',
      ),
  },
};

/**
 * Q6_K (ggml type 14): super-blocks of 256 in 210 bytes — ql[128], qh[64], 16 int8 scales (one per 16
 * elements), d (f16). Element 128h + 32p + l (p < 4, l < 32): low nibble (p < 2) or high nibble (p ≥ 2) of
 * ql[64h + 32·(p & 1) + l], top two bits at bit 2p of qh[32h + l]; value d·scale·(q − 32).
 * Device: the first 208 bytes of each block (whole words), then d in a plane of its own (two a word).
 */
export const q6_k: WeightFormat = {
  name: 'q6_k',
  ggmlType: 14,
  blockElements: SUPER_BLOCK,
  blockBytes: 210,
  planes: [208, 2],
  scaleHalfAt: 208,
  toDevice(file, out, firstBlock, totalBlocks) {
    const scales = 208 * totalBlocks;
    for (let b = 0; b < file.length / 210; b++) {
      const at = firstBlock + b;
      out.set(file.subarray(b * 210, b * 210 + 208), 208 * at);
      out[scales + 2 * at] = file[b * 210 + 208]!;
      out[scales + 2 * at + 1] = file[b * 210 + 209]!;
    }
  },
  dequantize(file, count) {
    const out = new Float32Array(count);
    for (let b = 0; b < count / SUPER_BLOCK; b++) {
      const o = b * 210;
      const d = half(file, o + 208);
      for (let e = 0; e < SUPER_BLOCK; e++) {
        const [h, p, l] = [e >> 7, (e >> 5) & 3, e & 31];
        const low = (file[o + 64 * h + 32 * (p & 1) + l]! >> (4 * (p >> 1))) & 0xf;
        const q = (low | (((file[o + 128 + 32 * h + l]! >> (2 * p)) & 3) << 4)) - 32;
        out[b * SUPER_BLOCK + e] = f(f(d * ((file[o + 192 + (e >> 4)]! << 24) >> 24)) * q);
      }
    }
    return out;
  },
  /** ggml's quantize_row_q6_K_ref */
  encode(x) {
    const out = new Uint8Array(superBlocks('q6_k', x.length) * 210);
    const quants = new Uint8Array(SUPER_BLOCK);
    const scales = new Float32Array(16);
    for (let b = 0; b < x.length / SUPER_BLOCK; b++) {
      const o = b * 210;
      const block = x.subarray(b * SUPER_BLOCK, (b + 1) * SUPER_BLOCK);
      let maxScale = 0;
      let maxAbsScale = 0;
      for (let s = 0; s < 16; s++) {
        scales[s] = symmetricQuants(block.subarray(16 * s, 16 * s + 16), 32, quants.subarray(16 * s, 16 * s + 16));
        if (Math.abs(scales[s]!) > maxAbsScale) {
          maxAbsScale = Math.abs(scales[s]!);
          maxScale = scales[s]!;
        }
      }
      if (maxAbsScale < GROUP_MAX_EPS) continue; // an all-zero block
      const iscale = f(-128 / maxScale);
      putHalf(out, o + 208, f(1 / iscale));
      const d = half(out, o + 208);
      for (let s = 0; s < 16; s++) {
        const scale = Math.min(127, nearestInt(f(iscale * scales[s]!)));
        out[o + 192 + s] = scale & 0xff;
        const ds = f(d * ((scale << 24) >> 24));
        if (!ds) continue;
        for (let i = 16 * s; i < 16 * s + 16; i++) quants[i] = clamp(nearestInt(f(block[i]! / ds)), -32, 31) + 32;
      }
      for (let h = 0; h < 2; h++)
        for (let l = 0; l < 32; l++) {
          const [q0, q1, q2, q3] = [0, 1, 2, 3].map((p) => quants[128 * h + 32 * p + l]!) as [number, number, number, number];
          out[o + 64 * h + l] = (q0 & 0xf) | ((q2 & 0xf) << 4);
          out[o + 64 * h + 32 + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
          out[o + 128 + 32 * h + l] = (q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6);
        }
    }
    return out;
  },
  wgsl: {
    vectorType: 'u32',
    // group i: half h = bit 5, quarter p = bits 3..4 of (i & 63), word (i & 7) of each array; scale byte (i & 63) >> 2
    vector: (count) => `fn wAt(i: u32) -> vec4<f32> {
  let block = (i >> 6u) * 52u;
  let h = (i >> 5u) & 1u;
  let p = (i >> 3u) & 3u;
  let low = (w[block + 16u * h + 8u * (p & 1u) + (i & 7u)] >> (4u * (p >> 1u))) & 0x0f0f0f0fu;
  let high = (w[block + 32u + 8u * h + (i & 7u)] >> (2u * p)) & 0x03030303u;
  let q = low | (high << 4u);
  let scale = f32(i32(w[block + 48u + ((i >> 4u) & 3u)] << (24u - 8u * ((i >> 2u) & 3u))) >> 24u);
  let d = unpack2x16float(w[${planeWord(q6_k, 1, count)} + (i >> 7u)])[(i >> 6u) & 1u];
  return (d * scale) * (${byteFloats('q')} - 32.0);
}`,
    // q − 32 (−32..31); a scale per 16 values
    int8: {
      scales: 2,
      offset: false,
      wgsl: (count) => `fn wInt8(block: u32, j: u32) -> u32 {
  let i = block * 8u + j;
  let sb = (i >> 6u) * 52u;
  let h = (i >> 5u) & 1u;
  let p = (i >> 3u) & 3u;
  let low = (w[sb + 16u * h + 8u * (p & 1u) + (i & 7u)] >> (4u * (p >> 1u))) & 0x0f0f0f0fu;
  let high = (w[sb + 32u + 8u * h + (i & 7u)] >> (2u * p)) & 0x03030303u;
  return pack4xI8(vec4<i32>(unpack4xU8(low | (high << 4u))) - vec4<i32>(32));
}
fn wScale(block: u32, half: u32) -> f32 {
  let i = block * 8u + half * 4u;
  let scale = f32(i32(w[(i >> 6u) * 52u + 48u + ((i >> 4u) & 3u)] << (24u - 8u * ((i >> 2u) & 3u))) >> 24u);
  return unpack2x16float(w[${planeWord(q6_k, 1, count)} + (i >> 7u)])[(i >> 6u) & 1u] * scale;
}`,
      // the same over w as vec4s (a super-block's 208 bytes are 13, and the d plane starts on a vec4): q − 32 for each
      // byte at once as ((q | 0x80) − 0x20) ^ 0x80, which borrows across no byte
      quads: (count) => `fn wQuad(block: u32, hh: u32) -> vec4<u32> {
  let sb = (block >> 3u) * 13u;
  let h = (block >> 2u) & 1u;
  let p = block & 3u;
  let low = (w[sb + 4u * h + 2u * (p & 1u) + hh] >> vec4<u32>(4u * (p >> 1u))) & vec4<u32>(0x0f0f0f0fu);
  let high = (w[sb + 8u + 2u * h + hh] >> vec4<u32>(2u * p)) & vec4<u32>(0x03030303u);
  return ((low | (high << vec4<u32>(4u)) | vec4<u32>(0x80808080u)) - vec4<u32>(0x20202020u)) ^ vec4<u32>(0x80808080u);
}
fn wScale(block: u32, half: u32) -> f32 {
  let i = block * 8u + half * 4u;
  let scale = f32(i32(w[(i >> 6u) * 13u + 12u][(i >> 4u) & 3u] << (24u - 8u * ((i >> 2u) & 3u))) >> 24u);
  let dw = ${planeWord(q6_k, 1, count)} + (i >> 7u);
  return unpack2x16float(w[dw >> 2u][dw & 3u])[(i >> 6u) & 1u] * scale;
}`,
      // unit u: half hh of 32-value groups a and a + 2 of half H, whose nibbles share the 16 bytes of ql and whose
      // top bits are in the same 16 bytes of qh
      pairs: (count) => `${PAIR_STRUCT}
fn wPairHalf(j: u32, i: u32) -> u32 { return 2u * (j & ~3u) + (j & 3u) + 4u * i; }
fn wPair(u: u32) -> WPair {
  let sb = (u >> 3u) * 13u;
  let h = (u >> 2u) & 1u;
  let a = (u >> 1u) & 1u;
  let hh = u & 1u;
  let ql = w[sb + 4u * h + 2u * a + hh];
  let qh = w[sb + 8u + 2u * h + hh];
  let low0 = ql & ${NIBBLES};
  let low1 = (ql >> vec4<u32>(4u)) & ${NIBBLES};
  let high0 = (qh >> vec4<u32>(2u * a)) & vec4<u32>(0x03030303u);
  let high1 = (qh >> vec4<u32>(2u * a + 4u)) & vec4<u32>(0x03030303u);
  let q0 = ((low0 | (high0 << vec4<u32>(4u)) | vec4<u32>(0x80808080u)) - vec4<u32>(0x20202020u)) ^ vec4<u32>(0x80808080u);
  let q1 = ((low1 | (high1 << vec4<u32>(4u)) | vec4<u32>(0x80808080u)) - vec4<u32>(0x20202020u)) ^ vec4<u32>(0x80808080u);
  // the scales of the two halves: bytes 8h + 2a + hh and 4 further of the super-block's 16
  let at = 8u * (2u * a + hh);
  let scales = w[sb + 12u];
  let s0 = f32(i32(scales[2u * h] << (24u - at)) >> 24u);
  let s1 = f32(i32(scales[2u * h + 1u] << (24u - at)) >> 24u);
  let dw = ${planeWord(q6_k, 1, count)} + (u >> 4u);
  let d = unpack2x16float(w[dw >> 2u][dw & 3u])[(u >> 3u) & 1u];
  return WPair(q0, q1, vec2<f32>(d * s0, 0.0), vec2<f32>(d * s1, 0.0));
}`,
    },
    scalarType: 'u32',
    scalar: (count) => {
      const block = '(i >> 8u) * 52u';
      const low = `extractBits(w[${block} + 16u * ((i >> 7u) & 1u) + 8u * ((i >> 5u) & 1u) + ((i >> 2u) & 7u)], 8u * (i & 3u) + 4u * ((i >> 6u) & 1u), 4u)`;
      const high = `extractBits(w[${block} + 32u + 8u * ((i >> 7u) & 1u) + ((i >> 2u) & 7u)], 8u * (i & 3u) + 2u * ((i >> 5u) & 3u), 2u)`;
      const scale = `f32(i32(w[${block} + 48u + ((i >> 6u) & 3u)] << (24u - 8u * ((i >> 4u) & 3u))) >> 24u)`;
      return `unpack2x16float(w[${planeWord(q6_k, 1, count)} + (i >> 9u)])[(i >> 8u) & 1u] * ${scale} * (f32(${low} | (${high} << 4u)) - 32.0)`;
    },
  },
};
