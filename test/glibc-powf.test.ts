// glibc powf port against values printed by the real glibc 2.36 (x86-64, FMA build): RoPE frequencies
// (theta^(2j/headSize)) where Math.pow rounds differently, exact powers, and the special cases.
import { describe, expect, it } from 'vitest';
import { powf } from '../models/glibc-powf.js';

const floatOfBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const bitsOfFloat = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];
const hex = (bits: number): string => bits.toString(16).padStart(8, '0');

/** [x, y, powf(x, y)] as float32 bits. */
const VECTORS: readonly (readonly [number, number, number])[] = [
  // Math.fround(Math.pow(x, y)) is one float step off on these.
  [0x461c4000, 0x3eda740e, 0x424b9379], // 10000 ^ (64/150)
  [0x461c4000, 0x3f3376c3, 0x441f3e85], // 10000 ^ (136/194)
  [0x461c4000, 0x3d33a62d, 0x3fbfb631], // 10000 ^ (10/228)
  [0x48f42400, 0x3f66db6e, 0x4806920d], // 500000 ^ (202/224)
  [0x49742400, 0x3e924925, 0x424f2dd5], // 1000000 ^ (4/14)
  [0x47435000, 0x3f155555, 0x4409b908], // 50000 ^ (14/24)
  // RoPE frequencies of head size 8 and 128.
  [0x461c4000, 0x3e800000, 0x41200000],
  [0x461c4000, 0x3f000000, 0x42c80000],
  [0x461c4000, 0x3f400000, 0x447a0000],
  [0x461c4000, 0x3ef00000, 0x4295fa95],
  [0x461c4000, 0x3f7c0000, 0x46074e93],
  // Integer and negative bases, subnormal base, overflow and underflow.
  [0x40000000, 0x41200000, 0x44800000],
  [0x40000000, 0x3f000000, 0x3fb504f3],
  [0xc0000000, 0x40400000, 0xc1000000],
  [0x00000000, 0xbf800000, 0x7f800000],
  [0x80000000, 0xc0400000, 0xff800000],
  [0x000116c2, 0x3f000000, 0x1e3ce4e7],
  [0x7f7fc99e, 0x40000000, 0x7f800000],
  [0x3f000000, 0x43480000, 0x00000000],
  [0x501502f9, 0xc0a00000, 0x00000000],
  [0x40000000, 0xc3158000, 0x00000001],
];

describe('glibc powf', () => {
  it('matches glibc bit for bit', () => {
    for (const [x, y, result] of VECTORS) {
      expect(hex(bitsOfFloat(powf(floatOfBits(x), floatOfBits(y)))), `powf(${hex(x)}, ${hex(y)})`).toBe(hex(result));
    }
  });

  it('follows C99 for zero exponents, one, NaN and negative bases', () => {
    expect(powf(Number.NaN, 0)).toBe(1);
    expect(powf(1, Number.NaN)).toBe(1);
    expect(powf(2, Number.NaN)).toBeNaN();
    expect(powf(-2, 0.5)).toBeNaN();
    expect(powf(0.5, Infinity)).toBe(0);
    expect(powf(2, Infinity)).toBe(Infinity);
    expect(powf(-1, Infinity)).toBe(1);
  });
});
