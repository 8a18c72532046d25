// RoPE frequencies against transformers (5.17, LlamaRotaryEmbedding; scripts/rope-reference.py wrote
// test/reference/rope-transformers.json on the GPU machine): a head of 64, theta 500000, unscaled, linear
// (factor 2) and llama3 (factor 32, low 1, high 4, original context 8192), bit for bit.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RopeScaling } from '../models/llama.js';
import { ropeFrequencies, ropeTables } from '../models/llama2c.js';
import { cosf, sinf } from '../models/glibc-sincosf.js';

const reference = JSON.parse(readFileSync(new URL('./reference/rope-transformers.json', import.meta.url), 'utf8')) as Record<
  'default' | 'linear' | 'llama3',
  { inv_freq: number[]; attention_factor: number }
>;
const scalings: Record<keyof typeof reference, RopeScaling | undefined> = {
  default: undefined,
  linear: { kind: 'linear', factor: 2 },
  llama3: { kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 },
};

describe('RoPE frequencies', () => {
  for (const kind of ['default', 'linear', 'llama3'] as const) {
    it(`${kind}: the inverse frequencies transformers computes`, () => {
      expect(Array.from(ropeFrequencies(64, 500000, scalings[kind]))).toEqual(reference[kind].inv_freq);
      // these rope types leave cos and sin unscaled
      expect(reference[kind].attention_factor).toBe(1);
    });
  }

  it('llama3 keeps high frequencies, divides low ones by the factor, and ramps between', () => {
    const plain = ropeFrequencies(64, 500000);
    const scaled = ropeFrequencies(64, 500000, scalings.llama3);
    const kept = [...scaled].filter((f, j) => f === plain[j]).length;
    const divided = [...scaled].filter((f, j) => f === Math.fround(plain[j]! / 32)).length;
    expect(kept).toBeGreaterThan(0);
    expect(divided).toBeGreaterThan(0);
    expect(kept + divided).toBeLessThan(32);
  });

  it('divisors divide frequency j by divisor j, and must be one per frequency', () => {
    const divisors = Array.from({ length: 8 }, (_, j) => 1 + j);
    expect(Array.from(ropeFrequencies(16, 10000, { kind: 'divisors', divisors }))).toEqual(
      Array.from(ropeFrequencies(16, 10000), (f, j) => Math.fround(f / divisors[j]!)),
    );
    expect(() => ropeFrequencies(16, 10000, { kind: 'divisors', divisors: [1, 2] })).toThrow(/2 frequency divisors for 8 frequencies/);
  });

  it('tables rotate position p by p times the scaled frequency', () => {
    const freqs = ropeFrequencies(64, 500000, scalings.llama3);
    const { cos, sin } = ropeTables(64, 100, 500000, scalings.llama3);
    for (const [p, j] of [
      [0, 0],
      [7, 3],
      [99, 31],
      [50, 20],
    ] as const) {
      const angle = Math.fround(p * freqs[j]!);
      expect(cos[p * 32 + j]).toBe(cosf(angle));
      expect(sin[p * 32 + j]).toBe(sinf(angle));
    }
  });
});
