// What a peer engine for `weft bench` takes and reports: the same figures as weft's own row (prefill
// tokens per second per prompt length, decode tokens per second), so rows from every engine line up.

export interface PeerBenchOptions {
  /** prompt lengths to time prefill at; each at most the context length */
  readonly promptTokens: readonly number[];
  /** decode steps timed after a one-token prompt */
  readonly decodeTokens: number;
  /** timed runs per figure (the median is reported) */
  readonly runs: number;
  /** Dawn backend; defaults to the first that works, as for weft */
  readonly backend?: string;
}

export interface PeerRow {
  readonly engine: string;
  readonly model: string;
  readonly device: string;
  /** prompt length → prefill tokens per second */
  readonly prefill_tokens_per_s: Readonly<Record<string, number>>;
  readonly decode_tokens_per_s: number;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A deterministic prompt of n tokens starting with `first`, spread over the vocabulary (as weft's bench feeds). */
export function benchPrompt(n: number, vocab: number, first: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? first : 3 + ((i * 7919) % (vocab - 3))));
}

/** Throws unless every prompt length and the decode count fit a context of `contextLength` positions. */
export function checkBenchOptions(o: PeerBenchOptions, contextLength: number): void {
  for (const n of o.promptTokens) {
    if (!Number.isInteger(n) || n < 1 || n > contextLength) throw new Error(`--prompt-tokens ${n} is outside 1..${contextLength} (the model's context)`);
  }
  if (!Number.isInteger(o.decodeTokens) || o.decodeTokens < 1 || o.decodeTokens + 1 > contextLength) {
    throw new Error(`--decode-tokens ${o.decodeTokens} is outside 1..${contextLength - 1} (the context less the prompt token)`);
  }
  if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error(`--runs must be a positive whole number, got ${o.runs}`);
}
