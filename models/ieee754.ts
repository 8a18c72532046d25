// Exact IEEE 754 building blocks: C hexadecimal floating constants and a fused multiply-add for porting
// C libm code (hexDouble parses without rounding, fma rounds once like the instruction), and half-precision
// values for F16 tensors.

/** Parses a C hexadecimal floating constant such as `-0x1.921FB54442D18p0` or `0x1p+0`; exact for doubles. */
export function hexDouble(literal: string): number {
  const m = /^(-?)0x([01])(?:\.([0-9a-f]{1,13}))?p([+-]?\d+)$/i.exec(literal);
  if (!m) throw new Error(`hexDouble: not a normalized double literal: ${literal}`);
  const significand = Number(m[2]) * 2 ** 52 + Number.parseInt((m[3] ?? '').padEnd(13, '0'), 16);
  return (m[1] ? -1 : 1) * significand * 2 ** (Number(m[4]) - 52);
}

const doubleScratch = new Float64Array(1);
const doubleWords = new Uint32Array(doubleScratch.buffer);
const LOW_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HIGH_WORD = 1 - LOW_WORD;

/** 2^27 + 1: Veltkamp's splitter, cuts a double into two halves whose products are exact. */
const SPLITTER = 134217729;

/**
 * a * b + c rounded once, as the FMA instruction does. The product is split exactly (Dekker), the three
 * parts summed error-free, and the low part rounded to odd before the last rounding (Boldo and Melquiond),
 * which makes the result correctly rounded. Exact for finite operands whose product neither overflows
 * nor underflows (|a|, |b| < 2^995 and |a * b| > 2^-969).
 */
export function fma(a: number, b: number, c: number): number {
  const p = a * b;
  let t = SPLITTER * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b);
  const bl = b - bh;
  const pLow = ah * bh - p + ah * bl + al * bh + al * bl;
  if (pLow === 0 || !Number.isFinite(pLow)) return p + c;

  // c + pLow = th + tl and p + th = vh + vl exactly (TwoSum).
  const th = c + pLow;
  t = th - c;
  const tl = c - (th - t) + (pLow - t);
  const vh = p + th;
  t = vh - p;
  const vl = p - (vh - t) + (th - t);
  // w = tl + vl rounded to odd: when inexact and even, the other neighbour of the exact sum.
  const w = tl + vl;
  t = w - tl;
  const wError = tl - (w - t) + (vl - t);
  return vh + (wError === 0 ? w : roundedToOdd(w, wError));
}

/** The neighbour of w on the side of wError whose last significand bit is odd, or w if that bit is odd. */
function roundedToOdd(w: number, wError: number): number {
  doubleScratch[0] = w;
  if ((doubleWords[LOW_WORD] & 1) === 1) return w;
  if (w > 0 === wError > 0) doubleWords[LOW_WORD] += 1;
  else if (doubleWords[LOW_WORD] !== 0) doubleWords[LOW_WORD] -= 1;
  else {
    doubleWords[LOW_WORD] = 0xffffffff;
    doubleWords[HIGH_WORD] -= 1;
  }
  return doubleScratch[0];
}

const halfValues = (() => {
  const out = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[h] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? Number.NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
})();

/** The value of IEEE half-precision bits (F16 tensors, GGUF block scales). */
export function halfToFloat(bits: number): number {
  return halfValues[bits & 0xffff]!;
}
