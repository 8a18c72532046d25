// glibc's powf as x86-64 runs it (ARM optimized-routines: log2 from a 16-entry table and a degree-5
// polynomial, then exp2 from a 32-entry table), bit for bit: each a * b + c of the C source is one fused
// multiply-add, as in the build glibc's ifunc picks on CPUs with FMA and AVX2. Inputs and results are float32.

import { fma, hexDouble } from './ieee754.js';

const f32 = Math.fround;

/** __powf_log2_data.tab: 1/c and log2(c) for the 16 subintervals of [0x3f330000, 2 * 0x3f330000]. */
const LOG2_TABLE: readonly { readonly invc: number; readonly logc: number }[] = [
  ['0x1.661ec79f8f3bep+0', '-0x1.efec65b963019p-2'],
  ['0x1.571ed4aaf883dp+0', '-0x1.b0b6832d4fca4p-2'],
  ['0x1.49539f0f010bp+0', '-0x1.7418b0a1fb77bp-2'],
  ['0x1.3c995b0b80385p+0', '-0x1.39de91a6dcf7bp-2'],
  ['0x1.30d190c8864a5p+0', '-0x1.01d9bf3f2b631p-2'],
  ['0x1.25e227b0b8eap+0', '-0x1.97c1d1b3b7afp-3'],
  ['0x1.1bb4a4a1a343fp+0', '-0x1.2f9e393af3c9fp-3'],
  ['0x1.12358f08ae5bap+0', '-0x1.960cbbf788d5cp-4'],
  ['0x1.0953f419900a7p+0', '-0x1.a6f9db6475fcep-5'],
  ['0x1p+0', '0x0p+0'],
  ['0x1.e608cfd9a47acp-1', '0x1.338ca9f24f53dp-4'],
  ['0x1.ca4b31f026aap-1', '0x1.476a9543891bap-3'],
  ['0x1.b2036576afce6p-1', '0x1.e840b4ac4e4d2p-3'],
  ['0x1.9c2d163a1aa2dp-1', '0x1.40645f0c6651cp-2'],
  ['0x1.886e6037841edp-1', '0x1.88e9c2c1b9ff8p-2'],
  ['0x1.767dcf5534862p-1', '0x1.ce0a44eb17bccp-2'],
].map(([invc, logc]) => ({ invc: hexDouble(invc), logc: hexDouble(logc) }));

/** __powf_log2_data.poly: log1p(r) / ln2 ~ A0 r^5 + A1 r^4 + A2 r^3 + A3 r^2 + A4 r. */
const [A0, A1, A2, A3, A4] = ['0x1.27616c9496e0bp-2', '-0x1.71969a075c67ap-2', '0x1.ec70a6ca7baddp-2', '-0x1.7154748bef6c8p-1', '0x1.71547652ab82bp0'].map(
  hexDouble,
);

/** The base of the table subintervals (log2_inline's OFF). */
const LOG2_OFF = 0x3f330000;

/** __exp2f_data.tab as [high, low] 32-bit words: bits of 2^(i/32) minus i << 47. */
const EXP2_TABLE: readonly (readonly [number, number])[] = [
  0x3ff0000000000000n,
  0x3fefd9b0d3158574n,
  0x3fefb5586cf9890fn,
  0x3fef9301d0125b51n,
  0x3fef72b83c7d517bn,
  0x3fef54873168b9aan,
  0x3fef387a6e756238n,
  0x3fef1e9df51fdee1n,
  0x3fef06fe0a31b715n,
  0x3feef1a7373aa9cbn,
  0x3feedea64c123422n,
  0x3feece086061892dn,
  0x3feebfdad5362a27n,
  0x3feeb42b569d4f82n,
  0x3feeab07dd485429n,
  0x3feea47eb03a5585n,
  0x3feea09e667f3bcdn,
  0x3fee9f75e8ec5f74n,
  0x3feea11473eb0187n,
  0x3feea589994cce13n,
  0x3feeace5422aa0dbn,
  0x3feeb737b0cdc5e5n,
  0x3feec49182a3f090n,
  0x3feed503b23e255dn,
  0x3feee89f995ad3adn,
  0x3feeff76f2fb5e47n,
  0x3fef199bdd85529cn,
  0x3fef3720dcef9069n,
  0x3fef5818dcfba487n,
  0x3fef7c97337b9b5fn,
  0x3fefa4afa2a490dan,
  0x3fefd0765b6e4540n,
].map((bits) => [Number(bits >> 32n), Number(bits & 0xffffffffn)] as const);

/** __exp2f_data.shift_scaled: 0x1.8p52 / 32, so adding it rounds x to a multiple of 1/32 in the low bits. */
const EXP2_SHIFT = hexDouble('0x1.8p+47');
/** __exp2f_data.poly: 2^r ~ C0 r^3 + C1 r^2 + C2 r + 1. */
const [C0, C1, C2] = ['0x1.c6af84b912394p-5', '0x1.ebfce50fac4f3p-3', '0x1.62e42ff0c52d6p-1'].map(hexDouble);
/** Added to the exponent word of the scale to make the result negative (1 << (EXP2F_TABLE_BITS + 11)). */
const SIGN_BIAS = 1 << 16;

/** The top 16 bits below the sign of 126.0, and the overflow and underflow limits of y * log2(x). */
const TOP16_126 = 0x80bf;
const OVERFLOW_BOUND = hexDouble('0x1.fffffffd1d571p+6');
const UNDERFLOW_BOUND = -150;
const MAY_UNDERFLOW_BOUND = -149;

const floatScratch = new Float32Array(1);
const floatBits = new Uint32Array(floatScratch.buffer);
const doubleScratch = new Float64Array(1);
const doubleWords = new Uint32Array(doubleScratch.buffer);
const LOW_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HIGH_WORD = 1 - LOW_WORD;

const bitsOfFloat = (x: number): number => {
  floatScratch[0] = x;
  return floatBits[0];
};
const floatOfBits = (bits: number): number => {
  floatBits[0] = bits;
  return floatScratch[0];
};

/** log2(x) for the float bits ix of a positive x; subnormals come normalized with a negative exponent. */
function log2Inline(ix: number): number {
  const tmp = (ix - LOG2_OFF) >>> 0;
  const i = (tmp >>> 19) % 16;
  const top = (tmp & 0xff800000) >>> 0;
  const iz = (ix - top) >>> 0;
  const k = (top | 0) >> 23;
  const { invc, logc } = LOG2_TABLE[i];
  const z = floatOfBits(iz);

  // log2(x) = log1p(z/c-1)/ln2 + log2(c) + k
  const r = fma(z, invc, -1);
  const y0 = logc + k;
  const r2 = r * r;
  let y = fma(A0, r, A1);
  const p = fma(A2, r, A3);
  const r4 = r2 * r2;
  let q = fma(A4, r, y0);
  q = fma(p, r2, q);
  y = fma(y, r4, q);
  return y;
}

/** 2^xd for xd in [-1021, 1023], negated when signBias is SIGN_BIAS. */
function exp2Inline(xd: number, signBias: number): number {
  // x = k/N + r with r in [-1/(2N), 1/(2N)]
  doubleScratch[0] = xd + EXP2_SHIFT;
  const kiLow = doubleWords[LOW_WORD];
  const kd = doubleScratch[0] - EXP2_SHIFT;
  const r = xd - kd;

  // exp2(x) = 2^(k/N) * 2^r ~= s * (C0*r^3 + C1*r^2 + C2*r + 1); s's bits are T[ki % N] + ((ki + signBias) << 47).
  const [tHigh, tLow] = EXP2_TABLE[kiLow % 32];
  doubleWords[HIGH_WORD] = tHigh + ((((kiLow + signBias) & 0x1ffff) << 15) >>> 0);
  doubleWords[LOW_WORD] = tLow;
  const s = doubleScratch[0];
  const z = fma(C0, r, C1);
  const r2 = r * r;
  let y = fma(C2, r, 1);
  y = fma(z, r2, y);
  return y * s;
}

/** 0 if the float with bits iy is not an integer, 1 if odd, 2 if even. */
function checkint(iy: number): number {
  const e = (iy >>> 23) & 0xff;
  if (e < 0x7f) return 0;
  if (e > 0x7f + 23) return 2;
  if (iy & ((1 << (0x7f + 23 - e)) - 1)) return 0;
  if (iy & (1 << (0x7f + 23 - e))) return 1;
  return 2;
}

/** Zero, infinity or NaN. */
const zeroInfNan = (ix: number): boolean => (2 * ix - 1) >>> 0 >= 2 * 0x7f800000 - 1;
const isSignalingNan = (ix: number): boolean => (2 * (ix ^ 0x00400000)) >>> 0 > 2 * 0x7fc00000;

/** The result of an overflow or underflow in the sign of signBias (__math_oflowf, __math_uflowf). */
const withSign = (signBias: number, magnitude: number): number => (signBias ? -magnitude : magnitude);

/** powf(x, y) of glibc. */
export function powf(x: number, y: number): number {
  let signBias = 0;
  let ix = bitsOfFloat(x);
  const iy = bitsOfFloat(y);
  x = f32(x);
  y = f32(y);

  if ((ix - 0x00800000) >>> 0 >= 0x7f800000 - 0x00800000 || zeroInfNan(iy)) {
    // Either (x < 0x1p-126 or inf or nan) or (y is 0 or inf or nan).
    if (zeroInfNan(iy)) {
      if ((2 * iy) >>> 0 === 0) return isSignalingNan(ix) ? x + y : 1;
      if (ix === 0x3f800000) return isSignalingNan(iy) ? x + y : 1;
      if ((2 * ix) >>> 0 > 2 * 0x7f800000 || (2 * iy) >>> 0 > 2 * 0x7f800000) return f32(x + y);
      if ((2 * ix) >>> 0 === 2 * 0x3f800000) return 1;
      // |x| < 1 && y == inf or |x| > 1 && y == -inf.
      if ((2 * ix) >>> 0 < 2 * 0x3f800000 === !(iy & 0x80000000)) return 0;
      return y * y;
    }
    if (zeroInfNan(ix)) {
      let x2 = f32(x * x);
      if (ix & 0x80000000 && checkint(iy) === 1) {
        x2 = -x2;
        signBias = 1;
      }
      if ((2 * ix) >>> 0 === 0 && iy & 0x80000000) return withSign(signBias, Infinity);
      return iy & 0x80000000 ? f32(1 / x2) : x2;
    }
    // x and y are non-zero finite.
    if (ix & 0x80000000) {
      const yint = checkint(iy);
      if (yint === 0) return Number.NaN;
      if (yint === 1) signBias = SIGN_BIAS;
      ix = (ix & 0x7fffffff) >>> 0;
    }
    if (ix < 0x00800000) {
      // Normalize subnormal x so exponent becomes negative.
      ix = bitsOfFloat(f32(x * 2 ** 23)) & 0x7fffffff;
      ix = (ix - (23 << 23)) >>> 0;
    }
  }
  const logx = log2Inline(ix);
  const ylogx = y * logx;
  doubleScratch[0] = ylogx;
  if (((doubleWords[HIGH_WORD] >>> 15) & 0xffff) >= TOP16_126) {
    // |y*log(x)| >= 126.
    if (ylogx > OVERFLOW_BOUND) return withSign(signBias, Infinity);
    if (ylogx <= UNDERFLOW_BOUND) return withSign(signBias, 0);
    if (ylogx < MAY_UNDERFLOW_BOUND) return withSign(signBias, 2 ** -149);
  }
  return f32(exp2Inline(ylogx, signBias));
}
