// glibc sinf/cosf port against values printed by the real glibc 2.36 (x86-64, FMA build) for each path:
// tiny and |x| < 0.75 polynomials, |x| < 120 single-step reduction, |x| >= 120 4/pi-table reduction.
import { describe, expect, it } from 'vitest';
import { cosf, sinf } from '../models/glibc-sincosf.js';

const floatOfBits = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const bitsOfFloat = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0];
const hex = (bits: number): string => bits.toString(16).padStart(8, '0');

/** [x, sinf(x), cosf(x)] as float32 bits. */
type Vector = readonly [number, number, number];

const PATHS: Record<string, readonly Vector[]> = {
  'tiny (|x| < 2^-12: x and 1)': [
    [0x00000000, 0x00000000, 0x3f800000],
    [0x80000000, 0x80000000, 0x3f800000],
    [0x00000001, 0x00000001, 0x3f800000],
    [0x80800000, 0x80800000, 0x3f800000],
    [0x39000000, 0x39000000, 0x3f800000],
    [0x397fffff, 0x397fffff, 0x3f800000],
  ],
  'polynomial only (|x| < 0.75)': [
    [0x39800000, 0x39800000, 0x3f800000],
    [0x3f3fffff, 0x3f2e7fe0, 0x3f3b4ff7],
  ],
  'single-step reduction (0.75 <= |x| < 120)': [
    [0x3f400000, 0x3f2e7fe1, 0x3f3b4ff6],
    [0x3fc90fdb, 0x3f800000, 0xb33bbd2e],
    [0x40490fdb, 0xb3bbbd2e, 0xbf800000],
    [0x42effffe, 0x3f14a21f, 0x3f506ebf],
  ],
  '4/pi-table reduction (|x| >= 120)': [
    [0x42f00000, 0x3f14a2ef, 0x3f506e2a],
    [0xc2f00000, 0xbf14a2ef, 0x3f506e2a],
    [0x49742400, 0xbeb33259, 0x3f6fcefd],
    [0xc9742400, 0x3eb33259, 0x3f6fcefd],
    [0x5d5e0b6b, 0xbe5df089, 0x3f79ea33],
    [0x7f7fffff, 0xbf0599b3, 0x3f5a5f96],
    [0xff7fffff, 0x3f0599b3, 0x3f5a5f96],
  ],
  // Each has one result that is not the correctly rounded sine or cosine.
  'not correctly rounded': [
    [0x3e7443a6, 0x3e71f451, 0x3f78c04b],
    [0x3e00f90c, 0x3e00a1d3, 0x3f7df8e0],
    [0x3ef59210, 0x3eec434c, 0x3f631d4b],
    [0x3df21642, 0x3df18609, 0x3f7e36ac],
    [0x3ee4d01d, 0x3edd45b0, 0x3f66dbc7],
    [0x3ebfd773, 0x3ebb6257, 0x3f6e3d2c],
    [0x42d5286f, 0xbe6e9bdd, 0x3f78f3fa],
    [0x42643686, 0x3ef7852b, 0x3f6018d1],
    [0x420126c9, 0x3f43fd5b, 0x3f24b19e],
    [0x429e0c11, 0xbeee21f8, 0xbf62a02d],
    [0x42c174f2, 0x3f1d2717, 0xbf4a1632],
    [0x42c0ac55, 0x3f5e6a16, 0xbefd8498],
    [0x46085e1c, 0x3e3a4cb1, 0x3f7bba43],
    [0x45264ac0, 0x3e8230eb, 0xbf7795e2],
    [0x4615eed3, 0x3f7567ac, 0x3e91c5bd],
    [0x4456e21f, 0xbf73fce6, 0x3e9afee0],
    [0x45c3923c, 0x3e663039, 0x3f7972b4],
    [0x45cd7d47, 0xbe9a5b87, 0xbf7416c9],
    [0x491dca29, 0xbf2a4a19, 0x3f3f25db],
    [0x4910687c, 0x3e307f32, 0xbf7c2b30],
    [0x48ede90e, 0xbf7c9e4b, 0xbe25e3f6],
    [0x4959fb5f, 0x3f2c6cb5, 0x3f3d395c],
    [0x49300db3, 0x3e93de7d, 0x3f751757],
    [0x4789eca4, 0x3f0853a6, 0x3f58ae8c],
  ],
  // RoPE angles (theta 10000 head 80 pos 8235 pair 19; theta 500000 head 48 pos 99783 pair 13; theta
  // 500000 head 256 pos 56865 pair 79) where glibc's build without FMA gives 382ee64f, badaa3b5, b7b4f76f.
  'fused multiply-adds change the result': [
    [0x42cf5854, 0x382ee64e, 0xbf800000],
    [0x42a35c07, 0xbadaa3b4, 0x3f7fffe9],
    [0x418a3adb, 0xbf800000, 0xb7b4f770],
  ],
};

describe('glibc sinf and cosf', () => {
  for (const [path, vectors] of Object.entries(PATHS)) {
    it(`match glibc bit for bit: ${path}`, () => {
      for (const [x, sin, cos] of vectors) {
        expect(hex(bitsOfFloat(sinf(floatOfBits(x)))), `sinf(${hex(x)})`).toBe(hex(sin));
        expect(hex(bitsOfFloat(cosf(floatOfBits(x)))), `cosf(${hex(x)})`).toBe(hex(cos));
      }
    });
  }

  it('give NaN for infinities and NaN', () => {
    for (const x of [Infinity, -Infinity, Number.NaN]) {
      expect(sinf(x)).toBeNaN();
      expect(cosf(x)).toBeNaN();
    }
  });
});
