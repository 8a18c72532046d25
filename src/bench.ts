// Throughput of a model on the device: prefill (one run over a prompt) and decode (one run per token),
// each the median of several timed runs after a warm-up, timed on the host clock around the readback
// of the logits (every run ends in a mapAsync, so all submitted GPU work is included).
import { loadModel, type LoadOptions, type ModelFiles } from './api.js';

export interface BenchOptions extends LoadOptions {
  /** prompt lengths to time prefill at; each at most the context length */
  readonly promptTokens: readonly number[];
  /** decode steps timed after a one-token prompt */
  readonly decodeTokens: number;
  /** timed runs per figure (the median is reported) */
  readonly runs: number;
}

export interface BenchRow {
  readonly engine: string;
  readonly model: string;
  readonly device: string;
  /** prompt length → prefill tokens per second */
  readonly prefill_tokens_per_s: Readonly<Record<string, number>>;
  readonly decode_tokens_per_s: number;
  readonly dispatches: { readonly prefill: number; readonly decode: number };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A deterministic prompt of n tokens starting with `first`, spread over the vocabulary. */
function benchPrompt(n: number, vocab: number, first: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? first : 3 + ((i * 7919) % (vocab - 3))));
}

export async function benchmark(source: string | ModelFiles, label: string, o: BenchOptions): Promise<BenchRow> {
  const model = await loadModel(source, o);
  try {
    const vocab = model.config.vocabSize;
    const ctx = model.config.seqLen;
    const first = model.config.bosId ?? 0;
    for (const n of o.promptTokens) {
      if (!Number.isInteger(n) || n < 1 || n > ctx) throw new Error(`--prompt-tokens ${n} is outside 1..${ctx} (the model's context)`);
    }
    if (!Number.isInteger(o.decodeTokens) || o.decodeTokens < 1 || o.decodeTokens + 1 > ctx) {
      throw new Error(`--decode-tokens ${o.decodeTokens} is outside 1..${ctx - 1} (the context less the prompt token)`);
    }
    const prefill: Record<string, number> = {};
    for (const n of o.promptTokens) {
      const times: number[] = [];
      for (let r = 0; r <= o.runs; r++) {
        const t0 = performance.now();
        for await (const _ of model.generate({ promptIds: benchPrompt(n, vocab, first), steps: n, temperature: 0 })) break;
        if (r > 0) times.push(performance.now() - t0);
      }
      prefill[n] = n / (median(times) / 1000);
    }
    const decodeTimes: number[] = [];
    for (let r = 0; r <= o.runs; r++) {
      let start = 0;
      let end = 0;
      let steps = 0;
      // a stop token may end a run early: count the steps that ran
      for await (const s of model.generate({ promptIds: [first], steps: o.decodeTokens + 1, temperature: 0 })) {
        if (s.position === 0) start = performance.now();
        else steps++;
        end = performance.now();
      }
      if (r > 0 && steps > 0) decodeTimes.push((end - start) / steps);
    }
    return {
      engine: 'weft',
      model: label,
      device: `${model.device.backend}: ${model.device.adapter}`,
      prefill_tokens_per_s: prefill,
      decode_tokens_per_s: 1000 / median(decodeTimes),
      dispatches: model.dispatches,
    };
  } finally {
    model.release();
  }
}
