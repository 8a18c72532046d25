// Sampler against run.c (llama2.c d986206): the reference runs' logits must give back their tokens,
// and the generator, multinomial and top-p paths must match values produced by run.c's C code.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { argmax, generatorState, Sampler, softmaxNucleus, Xorshift64Star } from '../src/runtime/sampler.js';

const fixtures = new URL('../../shared/fixtures/llama2c/', import.meta.url);
const fixtureTokens = (name: string): number[] => readFileSync(new URL(name, fixtures), 'utf8').trim().split('\n').map(Number);
const fixtureLogits = (name: string, vocab: number): Float32Array[] => {
  const bytes = readFileSync(new URL(name, fixtures));
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  expect(all.length % vocab).toBe(0);
  return Array.from({ length: all.length / vocab }, (_, p) => all.subarray(p * vocab, (p + 1) * vocab));
};

describe('Xorshift64Star', () => {
  // Values printed by run.c's random_u32 / random_f32 compiled with gcc.
  it('produces run.c random_u32 values for seeds 42 and 1', () => {
    const rng = new Xorshift64Star(42);
    expect(Array.from({ length: 6 }, () => rng.nextU32())).toEqual([1456360119, 3359763283, 3393612768, 4054632243, 3283045847, 3589475362]);
    const one = new Xorshift64Star(1);
    expect(Array.from({ length: 3 }, () => one.nextU32())).toEqual([1206177355, 2882512552, 3117485455]);
  });

  it('produces run.c random_f32 values: the top 24 bits over 2^24', () => {
    const rng = new Xorshift64Star(42);
    const coins = Array.from({ length: 6 }, () => rng.nextF32());
    [0.339085221, 0.782255828, 0.790136993, 0.944042623, 0.764393628, 0.835739851].forEach((c, i) => expect(coins[i]).toBeCloseTo(c, 9));
    expect(coins[0]).toBe((1456360119 >>> 8) / 16777216);
    for (const coin of coins) expect(Math.fround(coin)).toBe(coin);
  });
});

describe('Sampler on the run.c reference runs', () => {
  it('reproduces aidreams-topp (temperature 1, top-p 0.9, seed 42) token for token, ending on BOS', () => {
    const tokens = fixtureTokens('aidreams-topp.tokens.txt');
    const logits = fixtureLogits('aidreams-topp.logits.f32', 512);
    expect(logits).toHaveLength(tokens.length);
    const sampler = new Sampler(512, 1.0, 0.9, 42);
    const sampled = logits.map((row) => sampler.sample(row));
    expect(sampled.slice(0, -1)).toEqual(tokens.slice(1));
    expect(sampled[sampled.length - 1]).toBe(1);
  });

  it.each([
    ['aidreams-greedy', 0],
    ['aidreams-prompt', 15],
    ['stories-greedy', 0],
  ])('reproduces %s greedily from position %i', (name, firstSampled) => {
    const tokens = fixtureTokens(`${name}.tokens.txt`);
    const logits = fixtureLogits(`${name}.logits.f32`, 512);
    expect(logits).toHaveLength(tokens.length);
    const sampler = new Sampler(512, 0, 0.9, 42);
    for (let p = firstSampled; p < tokens.length - 1; p++) expect(sampler.sample(logits[p]), `position ${p}`).toBe(tokens[p + 1]);
  });

  it('leaves the logits untouched', () => {
    const [row] = fixtureLogits('aidreams-topp.logits.f32', 512);
    const before = row.slice();
    new Sampler(512, 0.8, 0.9, 42).sample(row);
    new Sampler(512, 0.8, 1, 42).sample(row);
    expect(row).toEqual(before);
  });
});

describe('Sampler paths', () => {
  // Coins for seed 42: 0.339, 0.782, 0.790, 0.944, 0.764, 0.836.
  const sampleSix = (sampler: Sampler, logits: number[]): number[] => Array.from({ length: 6 }, () => sampler.sample(Float32Array.from(logits)));

  it('samples the whole distribution when top-p is 0 or 1', () => {
    // Equal logits: probabilities are exactly 1/4, so the token is floor(coin * 4).
    expect(sampleSix(new Sampler(4, 1, 1, 42), [0, 0, 0, 0])).toEqual([1, 3, 3, 3, 3, 3]);
    expect(sampleSix(new Sampler(4, 1, 0, 42), [0, 0, 0, 0])).toEqual([1, 3, 3, 3, 3, 3]);
    // Probabilities [1/2, 0, 1/2, 0]: token 0 for a coin below 1/2, else 2.
    expect(sampleSix(new Sampler(4, 1, 1, 42), [0, -Infinity, 0, -Infinity])).toEqual([0, 2, 2, 2, 2, 2]);
  });

  it('keeps equal probabilities in index order inside the top-p nucleus', () => {
    // Probabilities [a, b, b, a] with a below the cutoff 0.5 / 3: the nucleus is [1, 2], r = coin * 2b.
    expect(sampleSix(new Sampler(4, 1, 0.5, 42), [0, 1, 1, 0])).toEqual([1, 2, 2, 2, 2, 2]);
  });

  it('matches run.c with temperature 0.5 over 8 draws (seed 7)', () => {
    const sampler = new Sampler(5, 0.5, 1, 7);
    const draws = Array.from({ length: 8 }, () => sampler.sample(Float32Array.of(0.1, 0.2, 0.3, 0.4, 0.5)));
    expect(draws).toEqual([4, 4, 0, 0, 2, 2, 4, 1]);
  });

  it('is greedy (first maximum) at temperature 0, including temperatures that round to float32 zero', () => {
    expect(new Sampler(4, 0, 0.9, 1).sample(Float32Array.of(0, 3, 1, 3))).toBe(1);
    expect(new Sampler(4, 1e-46, 0.9, 1).sample(Float32Array.of(0, 3, 1, 3))).toBe(1);
    expect(argmax(Float32Array.of(-1, -1))).toBe(0);
  });

  it("seeds the generator as run.c's atoi does: low 32 bits, sign-extended to 64", () => {
    expect(generatorState(42)).toBe(42n);
    expect(generatorState(-5)).toBe(2n ** 64n - 5n);
    expect(generatorState(4294967295)).toBe(2n ** 64n - 1n);
    expect(generatorState(3000000000)).toBe(2n ** 64n - (2n ** 32n - 3000000000n));
    expect(generatorState(2 ** 32)).toBe(0n);
  });

  it('rejects bad settings and logits of the wrong length with one-line errors', () => {
    const bad = [
      () => new Sampler(4, -0.1, 0.9, 1),
      () => new Sampler(4, Number.NaN, 0.9, 1),
      () => new Sampler(4, 1, 1.5, 1),
      () => new Sampler(4, 1, -0.1, 1),
      () => new Sampler(4, 1, 0.9, 2 ** 32),
      () => new Sampler(4, 1, 0.9, 1.5),
      () => new Sampler(4, 1, 0.9, 0),
      () => new Sampler(0, 1, 0.9, 1),
      () => new Sampler(4, 1, 0.9, 1).sample(new Float32Array(5)),
    ];
    for (const run of bad) {
      expect(run).toThrow(/^sampler: [^\n]+$/);
    }
  });
});

/** run.c's softmax: every exponential, added in order in float32. */
function referenceSoftmax(p: Float32Array): Float32Array {
  let max = p[0]!;
  for (const x of p) if (x > max) max = x;
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    p[i] = Math.exp(Math.fround(p[i]! - max));
    sum = Math.fround(sum + p[i]!);
  }
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / sum;
  return p;
}

/** run.c's sample_topp as written there: candidates by a comparator sort (stable, as glibc's qsort). */
function referenceTopP(logits: Float32Array, temperature: number, topp: number, coin: number): number {
  const t = Math.fround(temperature);
  const p = referenceSoftmax(Float32Array.from(logits, (x) => x / t));
  const tp = Math.fround(topp);
  const cutoff = Math.fround(Math.fround(1 - tp) / (p.length - 1));
  const candidates = [...p.keys()].filter((i) => p[i]! >= cutoff).sort((a, b) => p[b]! - p[a]!);
  let cumulative = 0;
  let last = candidates.length - 1;
  for (let i = 0; i < candidates.length; i++) {
    cumulative = Math.fround(cumulative + p[candidates[i]!]!);
    if (cumulative > tp) {
      last = i;
      break;
    }
  }
  const r = Math.fround(coin * cumulative);
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf = Math.fround(cdf + p[candidates[i]!]!);
    if (r < cdf) return candidates[i]!;
  }
  return candidates[last]!;
}

describe('top-p over a whole vocabulary', () => {
  it('chooses what run.c would, flat and peaked distributions with many equal probabilities alike', () => {
    const vocab = 32000;
    const values = new Xorshift64Star(99n);
    for (const [temperature, topp, spread, levels] of [
      [1, 0.9, 0.5, 0], // nearly flat: almost every token is a candidate
      [0.8, 0.95, 4, 0],
      [1, 0.9, 3, 7], // few distinct logits: long runs of equal probabilities
      [0.7, 0.5, 8, 40],
    ] as const) {
      const sampler = new Sampler(vocab, temperature, topp, 5);
      const coins = new Xorshift64Star(generatorState(5));
      for (let draw = 0; draw < 6; draw++) {
        const logits = Float32Array.from({ length: vocab }, () => {
          const u = values.nextF32();
          return levels ? Math.floor(u * levels) * (spread / levels) : u * spread;
        });
        const expected = referenceTopP(logits, temperature, topp, coins.nextF32());
        expect(sampler.sample(logits), `temperature ${temperature}, top-p ${topp}, draw ${draw}`).toBe(expected);
      }
    }
  });

  it("chooses what run.c would where most exponentials are skipped: logits spread as a model's, a vocabulary of 128k", () => {
    // logits near N(0, 3) with a few tokens far above (as a model's next-token logits are), the largest anywhere —
    // first, last, or between — so the float32 sum the skipping must leave unchanged is small or large before it
    const vocab = 128256;
    const values = new Xorshift64Star(1234n);
    const normal = (): number => (values.nextF32() + values.nextF32() + values.nextF32() + values.nextF32() - 2) * 3;
    for (const [temperature, topp, peak] of [
      [1, 0.9, 0],
      [0.7, 0.95, vocab - 1],
      [0.6, 0.99999, vocab >> 1], // a cutoff below the sum's last place: the cutoff bounds what is skipped
      [1.3, 0.5, 17],
    ] as const) {
      const sampler = new Sampler(vocab, temperature, topp, 11);
      const coins = new Xorshift64Star(generatorState(11));
      for (let draw = 0; draw < 12; draw++) {
        const logits = Float32Array.from({ length: vocab }, normal);
        for (let k = 0; k < 20; k++) logits[(values.nextU32() % vocab) >>> 0] = 12 + 10 * values.nextF32();
        logits[peak] = 24;
        const expected = referenceTopP(logits, temperature, topp, coins.nextF32());
        expect(sampler.sample(logits), `temperature ${temperature}, top-p ${topp}, draw ${draw}`).toBe(expected);
        // the probabilities a draw reads, bit for bit: every one at or above the cutoff is run.c's, the rest stay below it
        const t = Math.fround(temperature);
        const full = referenceSoftmax(Float32Array.from(logits, (x) => x / t));
        const nucleus = Float32Array.from(logits, (x) => x / t);
        const cutoff = Math.fround(Math.fround(1 - Math.fround(topp)) / (vocab - 1));
        const kept = new Uint32Array(vocab);
        const count = softmaxNucleus(nucleus, cutoff, kept);
        const keptSet = new Set(kept.subarray(0, count));
        expect([...kept.subarray(0, count)]).toEqual([...keptSet].sort((a, b) => a - b));
        for (const i of keptSet) expect(nucleus[i], `token ${i}`).toBe(full[i]);
        for (let i = 0; i < vocab; i++) if (full[i]! >= cutoff) expect(keptSet.has(i), `token ${i}`).toBe(true);
        // and most of the vocabulary's exponentials were skipped
        expect(count).toBeLessThan(vocab / 2);
      }
    }
  });
});
