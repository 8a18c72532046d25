// Float32 to IEEE binary16, for weights stored as packed halves on the device.
const f32Bits = new Uint32Array(1);
const f32View = new Float32Array(f32Bits.buffer);

/** IEEE binary16 bits nearest a float32 value (ties to even; overflow to infinity, NaN kept quiet). */
export function floatToHalf(value: number): number {
  f32View[0] = value;
  const x = f32Bits[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  let h: number;
  let rest: number;
  let halfway: number;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    h = m >>> shift;
    rest = m & ((1 << shift) - 1);
    halfway = 1 << (shift - 1);
  } else {
    h = (e << 10) | (mant >>> 13);
    rest = mant & 0x1fff;
    halfway = 0x1000;
  }
  // a carry out of the mantissa lands in the exponent, as rounding up should
  if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
  return sign | h;
}
