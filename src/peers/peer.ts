// What a peer engine for `weft bench` takes and reports: the same figures as weft's own row (prefill
// tokens per second per prompt length, decode tokens per second), so rows from every engine line up.

export interface PeerBenchOptions {
  /** prompt lengths to time prefill at; each at most the context length */
  readonly promptTokens: readonly number[];
  /** decode steps timed after each prompt length of decodeAfter */
  readonly decodeTokens: number;
  /**
   * prompt lengths to time decode after (default [1], a one-token prompt): decode at the context a conversation has
   * reached, its attention reading that many keys and more
   */
  readonly decodeAfter?: readonly number[];
  /** timed runs per figure (the median is reported) */
  readonly runs: number;
  /** least wall time of the warm-ups after the first of each figure, seconds (default WARMUP_SECONDS) */
  readonly warmupSeconds?: number;
  /** Dawn backend; defaults to the first that works, as for weft */
  readonly backend?: string;
}

export interface PeerRow {
  readonly engine: string;
  readonly model: string;
  readonly device: string;
  /** prompt length → prefill tokens per second */
  readonly prefill_tokens_per_s: Readonly<Record<string, number>>;
  /** decode tokens per second after the shortest prompt of decodeAfter (a one-token prompt by default) */
  readonly decode_tokens_per_s: number;
  /** prompt length → decode tokens per second after it, for every length of decodeAfter */
  readonly decode_after_tokens_per_s: Readonly<Record<string, number>>;
  /** the formats of the model's matrices, as weft's rows name them (f32+q8_0) */
  readonly weights?: string;
  /** the GGUF file it ran, where it ran the file weft's row ran */
  readonly file?: string;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A deterministic prompt of n tokens starting with `first`, spread over the vocabulary (as weft's bench feeds). */
export function benchPrompt(n: number, vocab: number, first: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? first : 3 + ((i * 7919) % (vocab - 3))));
}

/** The prompt lengths decode is timed after, shortest first: o.decodeAfter, else a one-token prompt. */
export function decodeAfter(o: Pick<PeerBenchOptions, 'decodeAfter'>): readonly number[] {
  return o.decodeAfter !== undefined && o.decodeAfter.length > 0 ? [...new Set(o.decodeAfter)].sort((a, b) => a - b) : [1];
}

/**
 * Prompt length → decode tokens per second after it, each from timeRuns of the run `once(n)` gives (milliseconds a
 * step after the first generated token); the row's decode figure is the rate after the shortest.
 */
export async function decodeRates(
  o: Pick<PeerBenchOptions, 'decodeAfter' | 'runs' | 'warmupSeconds'>,
  once: (n: number) => () => Promise<number | undefined>,
): Promise<Pick<PeerRow, 'decode_tokens_per_s' | 'decode_after_tokens_per_s'>> {
  const rates: Record<string, number> = {};
  for (const n of decodeAfter(o)) rates[n] = 1000 / (await timeRuns(once(n), o.runs, o.warmupSeconds));
  return { decode_tokens_per_s: rates[decodeAfter(o)[0]!]!, decode_after_tokens_per_s: rates };
}

/** Throws unless every prompt length and the decode count fit a context of `contextLength` positions. */
export function checkBenchOptions(o: PeerBenchOptions, contextLength: number): void {
  for (const n of o.promptTokens) {
    if (!Number.isInteger(n) || n < 1 || n > contextLength) throw new Error(`--prompt-tokens ${n} is outside 1..${contextLength} (the model's context)`);
  }
  if (!Number.isInteger(o.decodeTokens) || o.decodeTokens < 1 || o.decodeTokens + 1 > contextLength) {
    throw new Error(`--decode-tokens ${o.decodeTokens} is outside 1..${contextLength - 1} (the context less the prompt token)`);
  }
  for (const n of decodeAfter(o)) {
    if (!Number.isInteger(n) || n < 1 || n + o.decodeTokens > contextLength) {
      throw new Error(`--decode-after ${n} is outside 1..${contextLength - o.decodeTokens} (the context less --decode-tokens ${o.decodeTokens})`);
    }
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error(`--runs must be a positive whole number, got ${o.runs}`);
  if (o.warmupSeconds !== undefined && !(Number.isFinite(o.warmupSeconds) && o.warmupSeconds >= 0)) {
    throw new Error(`--warmup-seconds must be a number ≥ 0, got ${o.warmupSeconds}`);
  }
}

function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** A peer's model as the bench drives it: a run over tokens after a cache (undefined: none yet), giving the last position's logits and the grown cache. */
export interface PeerModel<Cache> {
  run(tokens: readonly number[], cache: Cache | undefined): Promise<{ logits: Float32Array; cache: Cache }>;
  dispose(cache: Cache): void;
}

/**
 * Untimed runs before the timed ones, for every engine alike: the first runs after a model loads can be
 * several times slower than the rest (1B f32 prefill on Vulkan: one warm-up was not enough).
 */
export const WARMUP_RUNS = 3;
/**
 * Warm-ups after the first run (which also compiles and initializes lazily) last at least this long: the
 * runs just after it can be slow for a while, longer than three short runs take (110M prefill of 128 tokens
 * with f16 or Q4_0 weights on Dawn's OpenGL ES backend, H200: about 45 ms a run for the first 0.3 s, then
 * 13 ms), and a GPU that idled while the model loaded starts at a low clock.
 */
export const WARMUP_SECONDS = 1;

/** Prompt length → prefill tokens per second, each from timeRuns of the run `once(n)` gives (milliseconds a run). */
export async function prefillRates(
  o: Pick<PeerBenchOptions, 'promptTokens' | 'runs' | 'warmupSeconds'>,
  once: (n: number) => () => Promise<number | undefined>,
): Promise<Record<string, number>> {
  const rates: Record<string, number> = {};
  for (const n of o.promptTokens) rates[n] = n / ((await timeRuns(once(n), o.runs, o.warmupSeconds)) / 1000);
  return rates;
}

/**
 * The median of `runs` timings of `once` (milliseconds; undefined: a run that gave no time), after
 * warm-ups: at least WARMUP_RUNS of them, those after the first lasting at least `warmupSeconds`.
 */
export async function timeRuns(once: () => Promise<number | undefined>, runs: number, warmupSeconds = WARMUP_SECONDS): Promise<number> {
  await once();
  const start = performance.now();
  for (let r = 1; r < WARMUP_RUNS || performance.now() - start < warmupSeconds * 1000; r++) await once();
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const ms = await once();
    if (ms !== undefined) times.push(ms);
  }
  if (times.length === 0) throw new Error(`none of the ${runs} timed runs gave a time (a stop token ended each at its first step)`);
  return median(times);
}

/**
 * Prefill and decode throughput of a peer, timed as weft's bench times itself: prefill is one run over
 * the prompt ending in the readback of its logits; decode feeds the greedy choice after each prompt of
 * decodeAfter, reading each step's logits back. Warm-ups as timeRuns does them, then the median of `runs`.
 */
export async function timePeer<Cache>(
  m: PeerModel<Cache>,
  vocabSize: number,
  first: number,
  o: PeerBenchOptions,
): Promise<Pick<PeerRow, 'prefill_tokens_per_s' | 'decode_tokens_per_s' | 'decode_after_tokens_per_s'>> {
  const prefill = await prefillRates(o, (n) => {
    const prompt = benchPrompt(n, vocabSize, first);
    return async () => {
      const t0 = performance.now();
      const { cache } = await m.run(prompt, undefined);
      const elapsed = performance.now() - t0;
      m.dispose(cache);
      return elapsed;
    };
  });
  const decode = await decodeRates(o, (n) => {
    const prompt = benchPrompt(n, vocabSize, first);
    return async () => {
      let { logits, cache } = await m.run(prompt, undefined);
      const t0 = performance.now();
      for (let s = 0; s < o.decodeTokens; s++) ({ logits, cache } = await m.run([argmax(logits)], cache));
      const elapsed = (performance.now() - t0) / o.decodeTokens;
      m.dispose(cache);
      return elapsed;
    };
  });
  return { prefill_tokens_per_s: prefill, ...decode };
}
