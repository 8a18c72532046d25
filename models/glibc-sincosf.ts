// glibc's sinf and cosf as x86-64 runs them (ARM optimized-routines: double-precision polynomials after a
// single-step or 4/pi-table range reduction), bit for bit: each a + b * c of the C source is one fused
// multiply-add, as in the build glibc's ifunc picks on CPUs with FMA and AVX2. Inputs and results are float32.

import { fma, hexDouble } from './ieee754.js';

const f32 = Math.fround;

/** The polynomials of one __sincosf_table entry: cosine c0..c4, sine s1..s3. */
interface SincosPolynomials {
  readonly c0: number;
  readonly c1: number;
  readonly c2: number;
  readonly c3: number;
  readonly c4: number;
  readonly s1: number;
  readonly s2: number;
  readonly s3: number;
}

/** The first entry evaluates cos, the second -cos, so quadrants 2 and 3 get their sign for free. */
const TABLE: readonly [SincosPolynomials, SincosPolynomials] = [
  {
    c0: hexDouble('0x1.0000000000000p0'),
    c1: hexDouble('-0x1.ffffffd0c621cp-2'),
    c2: hexDouble('0x1.55553e1068f19p-5'),
    c3: hexDouble('-0x1.6c087e89a359dp-10'),
    c4: hexDouble('0x1.99343027bf8c3p-16'),
    s1: hexDouble('-0x1.555545995a603p-3'),
    s2: hexDouble('0x1.1107605230bc4p-7'),
    s3: hexDouble('-0x1.994eb3774cf24p-13'),
  },
  {
    c0: hexDouble('-0x1.0000000000000p0'),
    c1: hexDouble('0x1.ffffffd0c621cp-2'),
    c2: hexDouble('-0x1.55553e1068f19p-5'),
    c3: hexDouble('0x1.6c087e89a359dp-10'),
    c4: hexDouble('-0x1.99343027bf8c3p-16'),
    s1: hexDouble('-0x1.555545995a603p-3'),
    s2: hexDouble('0x1.1107605230bc4p-7'),
    s3: hexDouble('-0x1.994eb3774cf24p-13'),
  },
];

/** Sign of the sine in quadrants 0..3. */
const SIGN = [1, -1, -1, 1] as const;
/** 2/pi * 2^24 (reduce_fast's quadrant lands in bits 24..31) and pi/2. */
const HPI_INV = hexDouble('0x1.45F306DC9C883p+23');
const HPI = hexDouble('0x1.921FB54442D18p0');

/** 4/pi to 192 bits; entry i + 4 holds 8 bits more than entry i (__inv_pio4). */
const INV_PIO4 = new Uint32Array([
  0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529, 0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534,
  0xd1f534dd, 0xf534ddc0, 0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
]);

/** 2pi * 2^-64: one unit of reduce_large's 2.62 fixed-point remainder, in radians. */
const PI63 = hexDouble('0x1.921FB54442D18p-62');

/** abstop12 of pi/4, 2^-12, 120 and infinity as floats. */
const TOP12_PIO4 = 0x3f4;
const TOP12_TINY = 0x398;
const TOP12_LARGE = 0x42f;
const TOP12_INFINITY = 0x7f8;

const floatScratch = new Float32Array(1);
const floatBits = new Uint32Array(floatScratch.buffer);

/** sin(x) for even quadrant n, else cos(x) (negated by the second table), from x and x2 = x * x. */
function sinfPoly(x: number, x2: number, p: SincosPolynomials, n: number): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = fma(x2, p.s3, p.s2);
    const x7 = x3 * x2;
    const s = fma(x3, p.s1, x);
    return f32(fma(x7, s1, s));
  }
  const x4 = x2 * x2;
  const c2 = fma(x2, p.c4, p.c3);
  const c1 = fma(x2, p.c1, p.c0);
  const x6 = x4 * x2;
  const c = fma(x4, p.c2, c1);
  return f32(fma(x6, c2, c));
}

/** The low and high 32 bits of the exact product of a < 2^31 and b < 2^32. */
function mul32(a: number, b: number): { low: number; high: number } {
  const byLow = a * (b & 0xffff);
  const byHigh = a * (b >>> 16);
  const lowFull = (byHigh % 0x10000) * 0x10000 + byLow;
  return { low: lowFull % 0x100000000, high: Math.floor(byHigh / 0x10000) + Math.floor(lowFull / 0x100000000) };
}

/**
 * reduce_large: x mod pi/2 in [-pi/4, pi/4] and its quadrant, for the float with bits `xi` and |x| >= 120
 * (the sign is ignored). The 64-bit fixed-point arithmetic of the C source is carried in 32-bit halves.
 */
function reduceLarge(xi: number): { r: number; n: number } {
  const k = (xi >>> 26) & 15;
  const shift = (xi >>> 23) & 7;
  const m = (((xi & 0xffffff) | 0x800000) << shift) >>> 0;

  // res0 = (uint32)(m * arr[0]) << 32 | (m * arr[8]) >> 32, then res0 += m * arr[4], all mod 2^64.
  const top = Math.imul(m, INV_PIO4[k]) >>> 0;
  const middle = mul32(m, INV_PIO4[k + 4]);
  const bottom = mul32(m, INV_PIO4[k + 8]);
  const lowSum = bottom.high + middle.low;
  const carry = lowSum >= 0x100000000 ? 1 : 0;
  const low = lowSum - carry * 0x100000000;
  const high = (top + middle.high + carry) >>> 0;

  // n = (res0 + 2^61) >> 62; res0 -= n << 62; x = (int64_t)res0.
  const n = ((high + 0x20000000) >>> 0) >>> 30;
  const signedHigh = (high - n * 0x40000000) | 0;
  return { r: (signedHigh * 0x100000000 + low) * PI63, n };
}

/** sinf(y) of glibc; NaN for infinities and NaN. */
export function sinf(y: number): number {
  floatScratch[0] = y;
  const xi = floatBits[0];
  const x = floatScratch[0];
  const top12 = (xi >>> 20) & 0x7ff;
  let p = TABLE[0];

  if (top12 < TOP12_PIO4) {
    if (top12 < TOP12_TINY) return x;
    return sinfPoly(x, x * x, p, 0);
  }
  if (top12 < TOP12_LARGE) {
    const n = (((x * HPI_INV) | 0) + 0x800000) >> 24;
    const r = fma(-n, HPI, x);
    const s = SIGN[n & 3];
    if (n & 2) p = TABLE[1];
    return sinfPoly(r * s, r * r, p, n);
  }
  if (top12 < TOP12_INFINITY) {
    const sign = xi >>> 31;
    const { r, n } = reduceLarge(xi);
    const s = SIGN[(n + sign) & 3];
    if ((n + sign) & 2) p = TABLE[1];
    return sinfPoly(r * s, r * r, p, n);
  }
  return Number.NaN;
}

/** cosf(y) of glibc; NaN for infinities and NaN. */
export function cosf(y: number): number {
  floatScratch[0] = y;
  const xi = floatBits[0];
  const x = floatScratch[0];
  const top12 = (xi >>> 20) & 0x7ff;
  let p = TABLE[0];

  if (top12 < TOP12_PIO4) {
    if (top12 < TOP12_TINY) return 1;
    return sinfPoly(x, x * x, p, 1);
  }
  if (top12 < TOP12_LARGE) {
    const n = (((x * HPI_INV) | 0) + 0x800000) >> 24;
    const r = fma(-n, HPI, x);
    const s = SIGN[n & 3];
    if (n & 2) p = TABLE[1];
    return sinfPoly(r * s, r * r, p, n ^ 1);
  }
  if (top12 < TOP12_INFINITY) {
    const sign = xi >>> 31;
    const { r, n } = reduceLarge(xi);
    const s = SIGN[(n + sign) & 3];
    if ((n + sign) & 2) p = TABLE[1];
    return sinfPoly(r * s, r * r, p, n ^ 1);
  }
  return Number.NaN;
}
