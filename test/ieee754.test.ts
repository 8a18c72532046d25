// Exact double-precision helpers: hexadecimal constants parse exactly, and fma rounds once, checked
// against C's fma on cancellation, on the reduction step of sinf, and on a sum that needs rounding to odd.
import { describe, expect, it } from 'vitest';
import { fma, hexDouble } from '../models/ieee754.js';

describe('hexDouble', () => {
  it('parses C hexadecimal floating constants exactly', () => {
    expect(hexDouble('0x1p+0')).toBe(1);
    expect(hexDouble('0x0p+0')).toBe(0);
    expect(hexDouble('-0x1.8p+1')).toBe(-3);
    expect(hexDouble('0x1.921FB54442D18p0')).toBe(1.5707963267948966);
    expect(hexDouble('0x1.fffffffffffffp-1')).toBe(1 - 2 ** -53);
    expect(() => hexDouble('1.5')).toThrow(/hexDouble/);
  });
});

describe('fma', () => {
  it.each([
    // a * b = 1 - 2^-60 exactly; the separate product rounds to 1.
    ['0x1.00000004p+0', '0x1.fffffff8p-1', '-0x1p+0', '-0x1p-60'],
    // x - n * pi/2 as in sinf's reduction: the separate product loses the last bit.
    ['-0x1.34p+6', '0x1.921fb54442d18p+0', '0x1.e3a9ap+6', '-0x1.2430b103207p-5'],
    // The exact sum is 1 + 2^-53 + 2^-120: just above a tie, which only rounding to odd preserves.
    ['0x1.fffffffffffffp-1', '0x1.0000000000001p+0', '0x1.0002p-105', '0x1.0000000000001p+0'],
    // Just below the same tie.
    ['0x1.fffffffffffffp-1', '0x1.0000000000001p+0', '0x1.fffcp-106', '0x1p+0'],
    ['0x1.fffffffffffffp-1', '0x1.0000000000001p+0', '-0x1.0002p-105', '0x1p+0'],
  ])('fma(%s, %s, %s) = %s', (a, b, c, result) => {
    expect(fma(hexDouble(a), hexDouble(b), hexDouble(c))).toBe(hexDouble(result));
  });
});
