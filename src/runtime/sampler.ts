// run.c's sampler: greedy argmax at temperature 0, else softmax(logits / temperature) sampled with a coin
// from its xorshift64* generator, from the whole distribution or from the top-p nucleus. Every arithmetic
// step is rounded to float32 (Math.fround / Float32Array stores) so choices match C float code exactly; a
// top-p draw skips the elements that could change neither the softmax's float32 sum nor the nucleus.

const U64 = (1n << 64n) - 1n;
const XORSHIFT_MULTIPLIER = 0x2545f4914f6cdd1dn;

/**
 * The generator state run.c starts from for `-s seed`: atoi's int (the value wrapped to 32 bits)
 * stored in an unsigned 64-bit integer, so negative and large seeds sign-extend. 0 means "use the time".
 */
export function generatorState(seed: number): bigint {
  return BigInt.asUintN(64, BigInt(seed | 0));
}

/** run.c's random_u32 / random_f32 on a 64-bit unsigned state. */
export class Xorshift64Star {
  private state: bigint;

  constructor(seed: number | bigint) {
    this.state = BigInt(seed) & U64;
  }

  nextU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s ^= (s << 25n) & U64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * XORSHIFT_MULTIPLIER) & U64) >> 32n);
  }

  /** A float32 in [0, 1): the top 24 bits of nextU32 over 2^24. */
  nextF32(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
}

export class Sampler {
  /** Stored as float32, as run.c keeps them. */
  readonly temperature: number;
  readonly topp: number;
  private readonly rng: Xorshift64Star;
  /** the scaled logits, then the probabilities, and the elements a top-p draw computes: kept between draws */
  private readonly work: Float32Array;
  private readonly kept: Uint32Array;

  constructor(
    readonly vocabSize: number,
    temperature: number,
    topp: number,
    seed: number,
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) {
      throw new Error(`sampler: vocabulary size must be a positive integer, got ${vocabSize}`);
    }
    checkSamplerSettings(temperature, topp, seed);
    this.temperature = Math.fround(temperature);
    this.topp = Math.fround(topp);
    this.rng = new Xorshift64Star(generatorState(seed));
    this.work = new Float32Array(vocabSize);
    this.kept = new Uint32Array(vocabSize);
  }

  /** Whether every choice is the first maximum (temperature 0), which needs no random draws. */
  get greedy(): boolean {
    return this.temperature === 0;
  }

  /** The next token for `logits` (length vocabSize); `logits` is left untouched. */
  sample(logits: Float32Array): number {
    if (logits.length !== this.vocabSize) {
      throw new Error(`sampler: got ${logits.length} logits, vocabulary is ${this.vocabSize}`);
    }
    if (this.temperature === 0) return argmax(logits);
    const probabilities = this.work;
    for (let i = 0; i < probabilities.length; i++) probabilities[i] = logits[i] / this.temperature;
    const coin = this.rng.nextF32();
    if (this.topp <= 0 || this.topp >= 1) {
      softmaxInPlace(probabilities);
      return sampleMultinomial(probabilities, coin);
    }
    const cutoff = Math.fround(Math.fround(1 - this.topp) / (probabilities.length - 1));
    const kept = this.kept.subarray(0, softmaxNucleus(probabilities, cutoff, this.kept));
    return sampleTopP(probabilities, kept, this.topp, cutoff, coin);
  }
}

/** Throws unless the sampler can run with these settings. */
export function checkSamplerSettings(temperature: number, topp: number, seed: number): void {
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new Error(`sampler: temperature must be a finite number >= 0, got ${temperature}`);
  }
  if (!(topp >= 0 && topp <= 1)) throw new Error(`sampler: top-p must be in [0, 1], got ${topp}`);
  if (!Number.isSafeInteger(seed) || generatorState(seed) === 0n) {
    throw new Error(`sampler: seed must be a whole number whose low 32 bits are not all zero (run.c's state 0 never changes), got ${seed}`);
  }
}

/** The index of the first maximum. */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function softmaxInPlace(x: Float32Array): void {
  let max = x[0];
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(Math.fround(x[i] - max));
    sum = Math.fround(sum + x[i]);
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] / sum;
}

/**
 * run.c's softmax for a top-p draw: the probabilities of the elements it writes into `kept` (in index order; their
 * count is returned), which include every element whose probability reaches `cutoff`, bit for bit as
 * softmaxInPlace gives them; the others' values are left as they were. An element is left out when its
 * exponential is below both the cutoff and a quarter of the float32 sum's last place so far: adding it could not
 * change that sum (an addend below half its last place rounds back to it), and its probability (at most its
 * exponential: the largest is 1) stays below the cutoff. Logits spread as a model's leave a few hundred of a
 * vocabulary of 128k to compute.
 */
export function softmaxNucleus(x: Float32Array, cutoff: number, kept: Uint32Array): number {
  let max = x[0];
  for (let i = 1; i < x.length; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  let count = 0;
  // an element whose logit less the maximum is below this is left out (-Infinity: none)
  let skipBelow = -Infinity;
  const logCutoff = Math.log(cutoff);
  for (let i = 0; i < x.length; i++) {
    const v = Math.fround(x[i] - max);
    if (v < skipBelow) continue;
    x[i] = Math.exp(v);
    kept[count++] = i;
    const next = Math.fround(sum + x[i]);
    if (next !== sum && next > 0) skipBelow = negligibleBelow(next, logCutoff);
    sum = next;
  }
  for (let j = 0; j < count; j++) x[kept[j]] = x[kept[j]] / sum;
  return count;
}

const exponentView = new Float32Array(1);
const exponentBits = new Uint32Array(exponentView.buffer);

/** The log below which an exponential is under both the cutoff (its log given) and a quarter of float32 `sum`'s last place (a normal sum's). */
function negligibleBelow(sum: number, logCutoff: number): number {
  exponentView[0] = sum;
  const exponent = ((exponentBits[0]! >>> 23) & 0xff) - 127;
  if (exponent === -127 || exponent === 128) return -Infinity;
  // sum's last place is 2^(exponent - 23); less a margin for the logarithm's and the exponential's rounding
  return Math.min(Math.LN2 * (exponent - 25), logCutoff) - 1e-6;
}

function sampleMultinomial(probabilities: Float32Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < probabilities.length; i++) {
    cdf = Math.fround(cdf + probabilities[i]);
    if (coin < cdf) return i;
  }
  return probabilities.length - 1;
}

/** run.c's top-p draw over the probabilities of the `kept` elements (every one that can reach the cutoff). */
function sampleTopP(probabilities: Float32Array, kept: Uint32Array, topp: number, cutoff: number, coin: number): number {
  const candidates = nucleusOrder(probabilities, kept, cutoff);
  if (candidates.length === 0) throw new Error(`sampler: no token has probability >= the top-p cutoff ${cutoff}`);

  let cumulative = 0;
  let last = candidates.length - 1;
  for (let i = 0; i < candidates.length; i++) {
    cumulative = Math.fround(cumulative + probabilities[candidates[i]]);
    if (cumulative > topp) {
      last = i;
      break;
    }
  }

  const r = Math.fround(coin * cumulative);
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf = Math.fround(cdf + probabilities[candidates[i]]);
    if (r < cdf) return candidates[i];
  }
  return candidates[last];
}

const RADIX_BITS = 11;
const RADIX = 1 << RADIX_BITS;

/**
 * The `kept` indices whose probability is at least `cutoff`, in the order run.c's qsort leaves them with glibc
 * (a merge sort, so stable): descending probability, equal ones in index order. A top-p draw over a flat
 * distribution sorts nearly every token, so this is a stable least-significant-digit radix sort on the
 * complement of each probability's float32 bits (the bits of non-negative floats order as their values),
 * three passes of 11 bits, over the candidates taken in index order.
 */
function nucleusOrder(probabilities: Float32Array, kept: Uint32Array, cutoff: number): Uint32Array {
  const bits = new Uint32Array(probabilities.buffer, probabilities.byteOffset, probabilities.length);
  let count = 0;
  for (const i of kept) if (probabilities[i] >= cutoff) count++;
  let order = new Uint32Array(count);
  let keys = new Uint32Array(count);
  let k = 0;
  for (const i of kept) {
    if (probabilities[i] >= cutoff) {
      order[k] = i;
      keys[k++] = ~bits[i] >>> 0;
    }
  }
  let nextOrder = new Uint32Array(count);
  let nextKeys = new Uint32Array(count);
  const starts = new Uint32Array(RADIX);
  for (let shift = 0; shift < 32; shift += RADIX_BITS) {
    starts.fill(0);
    for (let j = 0; j < count; j++) starts[(keys[j] >>> shift) & (RADIX - 1)]++;
    for (let d = 0, sum = 0; d < RADIX; d++) {
      const c = starts[d];
      starts[d] = sum;
      sum += c;
    }
    for (let j = 0; j < count; j++) {
      const at = starts[(keys[j] >>> shift) & (RADIX - 1)]++;
      nextOrder[at] = order[j];
      nextKeys[at] = keys[j];
    }
    [order, nextOrder] = [nextOrder, order];
    [keys, nextKeys] = [nextKeys, keys];
  }
  return order;
}
