// The generation loop of llama2.c's run.c: prefill the prompt in one run of the prefill plan, then one
// decode run per position; a prompt token is forced until the prompt ends, then the sampler chooses.
import type { PlanExecutor } from './executor.js';
import { checkSamplerSettings, Sampler } from './sampler.js';

/** llama2.c's BOS; run.c also stops when it is about to feed it */
export const BOS = 1;

/** Tokens that end generation: `ids`; with `inPrompt`, also when the prompt feeds one (run.c's rule). */
export interface StopRule {
  readonly ids: readonly number[];
  readonly inPrompt: boolean;
}

/** run.c's rule: stop at BOS, sampled or from the prompt. */
export const runcStop: StopRule = { ids: [BOS], inPrompt: true };

export interface GenerateOptions {
  /** token ids fed from position 0 (a text prompt is encoded with BOS first) */
  readonly promptIds: readonly number[];
  /** positions to run, prompt included (run.c's -n); at most the context length */
  readonly steps: number;
  readonly temperature: number;
  readonly topp: number;
  readonly seed: number;
  /** attach each position's logits to its step */
  readonly logits?: boolean;
  /** default: run.c's */
  readonly stop?: StopRule;
}

/** One forward position: `token` was fed at `position`, and `next` was taken from its logits. */
export interface GenerationStep {
  readonly position: number;
  readonly token: number;
  readonly next: number;
  /** next came from the sampler (false: it was the following prompt token) */
  readonly sampled: boolean;
  /** the position ran in the prefill graph (false: in a decode step) */
  readonly prefill: boolean;
  /** next ends generation (it is never fed or printed) */
  readonly stop: boolean;
  readonly logits?: Float32Array;
}

export interface GenerationGraphs {
  readonly prefill: PlanExecutor;
  readonly decode: PlanExecutor;
  readonly vocabSize: number;
  readonly contextLength: number;
}

export function checkGenerateOptions(o: GenerateOptions, vocabSize: number, contextLength: number): void {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`steps must be a positive whole number, got ${o.steps}`);
  if (o.steps > contextLength) throw new Error(`steps ${o.steps} is beyond the model's context of ${contextLength} positions`);
  if (o.promptIds.length === 0) throw new Error(`the prompt has no tokens`);
  if (o.promptIds.length > contextLength) {
    throw new Error(`the prompt has ${o.promptIds.length} tokens, longer than the model's context of ${contextLength}`);
  }
  o.promptIds.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`prompt token ${i} is ${id}, outside the vocabulary 0..${vocabSize - 1}`);
  });
  checkSamplerSettings(o.temperature, o.topp, o.seed);
}

export async function* generateSteps(g: GenerationGraphs, o: GenerateOptions): AsyncGenerator<GenerationStep> {
  checkGenerateOptions(o, g.vocabSize, g.contextLength);
  const sampler = new Sampler(g.vocabSize, o.temperature, o.topp, o.seed);
  const V = g.vocabSize;
  const fed = o.promptIds.slice(0, o.steps);
  const T = fed.length;

  g.prefill.run({ T, P: 0 }, { tokens: Int32Array.from(fed), positions: Int32Array.from(fed, (_, i) => i) });
  const out = g.prefill.plan.outputs[0]!;
  const rows = o.logits ? await g.prefill.read(out, 0, T * V) : await g.prefill.read(out, (T - 1) * V, V);
  const rowAt = (p: number): Float32Array => (o.logits ? rows.subarray(p * V, (p + 1) * V) : rows);

  const stop = o.stop ?? runcStop;
  let token = fed[0]!;
  let position = 0;
  for (; position < T - 1; position++) {
    const next = o.promptIds[position + 1]!;
    const ends = stop.inPrompt && stop.ids.includes(next);
    yield { position, token, next, sampled: false, prefill: true, stop: ends, ...(o.logits ? { logits: rowAt(position) } : {}) };
    if (ends) return;
    token = next;
  }
  let logits = rowAt(T - 1);
  // each decode step is recorded while the step before runs
  const logitsOut = { name: g.decode.plan.outputs[0]!, start: 0, count: V };
  let recorded = position + 1 < o.steps ? g.decode.record({ P: position + 1 }, logitsOut) : undefined;
  for (;;) {
    const forced = position + 1 < o.promptIds.length;
    const next = forced ? o.promptIds[position + 1]! : sampler.sample(logits);
    const ends = (!forced || stop.inPrompt) && stop.ids.includes(next);
    yield { position, token, next, sampled: !forced, prefill: position < T, stop: ends, ...(o.logits ? { logits } : {}) };
    position++;
    if (position >= o.steps || ends) return;
    token = next;
    const pending = g.decode.submitAndRead(recorded!, { tokens: Int32Array.of(token), positions: Int32Array.of(position) });
    recorded = position + 1 < o.steps ? g.decode.record({ P: position + 1 }, logitsOut) : undefined;
    logits = await pending;
  }
}
