// The generation loop of llama2.c's run.c: prefill the prompt in runs of the prefill plan of at most a chunk's
// tokens each (a prompt of one token runs as a decode step), then one decode run per position; a prompt token is
// forced until the prompt ends, then the sampler chooses. A generation may start past position 0, continuing the
// keys and values an earlier one left in the cache.
import { RECORD_SLOTS, RUN_STEPS, type PlanExecutor, type RecordedRun } from './executor.js';
import { checkSamplerSettings, Sampler } from './sampler.js';
import type { Plan } from './plan.js';

/**
 * The GPU time a run of greedy steps may hold unless the load says otherwise, by the step time read back so far:
 * runs are long where steps are short (a 1B step of 0.7 ms on an H100: 8 steps), one step where a step takes
 * longer, so that the steps a stop or an abort waits out (every run in flight) stay within a few of these on
 * any device.
 */
export const DEFAULT_DECODE_RUN_MS = 8;

/**
 * Prompt tokens one prefill run takes unless the load says otherwise: enough rows that the prefill tiles fill the
 * device (the 1B's 512-token prefill runs at 16.6k tok/s on an H100, its 128-token one at 11.7k: BENCHMARKS.md),
 * few enough that a Llama 3 8B's activations for them stay near 0.1 GB.
 */
export const DEFAULT_PREFILL_CHUNK = 512;

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
  /** token ids fed from position `start` (a text prompt is encoded with BOS first) */
  readonly promptIds: readonly number[];
  /**
   * the positions before this one hold the keys and values of an earlier generation, which this one continues
   * (a conversation's next turn prefills only its new tokens); default 0
   */
  readonly start?: number;
  /** positions to run from `start`, prompt included (run.c's -n); start + steps is at most the context length */
  readonly steps: number;
  readonly temperature: number;
  readonly topp: number;
  readonly seed: number;
  /** attach each position's logits to its step */
  readonly logits?: boolean;
  /** default: run.c's */
  readonly stop?: StopRule;
  /** ends the generation between two steps, with the signal's reason as the error */
  readonly signal?: AbortSignal;
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
  /** token came from the prompt (false: it was sampled at the position before) */
  readonly prompt: boolean;
  /** next ends generation (it is never fed or printed) */
  readonly stop: boolean;
  readonly logits?: Float32Array;
}

export interface GenerationGraphs {
  /** the prefill graph's executor, awaited before the first prefill run (its pipelines may still be compiling) */
  readonly prefill: () => Promise<PlanExecutor>;
  /** the most prompt tokens one prefill run takes: a longer prompt runs as several, each after the one before */
  readonly prefillChunk: number;
  /** the GPU time a run of greedy decode steps may hold, in milliseconds */
  readonly decodeRunMs: number;
  readonly decodePlan: Plan;
  /** the decode graph's executor, awaited before the first decode step (its pipelines may still be compiling) */
  readonly decode: () => Promise<PlanExecutor>;
  readonly vocabSize: number;
  readonly contextLength: number;
}

export function checkGenerateOptions(o: GenerateOptions, vocabSize: number, contextLength: number): void {
  const start = o.start ?? 0;
  if (!Number.isInteger(start) || start < 0 || start >= contextLength) throw new Error(`start ${start} is outside the context of ${contextLength} positions`);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`steps must be a positive whole number, got ${o.steps}`);
  if (start + o.steps > contextLength) {
    throw new Error(`steps ${o.steps}${start ? ` from position ${start}` : ''} is beyond the model's context of ${contextLength} positions`);
  }
  if (o.promptIds.length === 0) throw new Error(`the prompt has no tokens`);
  if (start + o.promptIds.length > contextLength) {
    throw new Error(
      `the prompt has ${o.promptIds.length} tokens${start ? ` after ${start} positions` : ''}, longer than the model's context of ${contextLength}`,
    );
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
  const start = o.start ?? 0;
  const end = start + o.steps;
  const fed = o.promptIds.slice(0, o.steps);
  const T = fed.length;
  const aborted = (): void => o.signal?.throwIfAborted();
  aborted();

  /** the prompt token fed at position p + 1, if the prompt reaches it */
  const promptAfter = (p: number): number | undefined => o.promptIds[p + 1 - start];
  const stop = o.stop ?? runcStop;
  let token = fed[0]!;
  let logits!: Float32Array;
  // A prompt of one token is a decode step: the same product at one row, from the graph every generation past
  // its first token needs anyway, so a one-token prompt never waits for the prefill graph's pipelines (a cold
  // start's largest part: BENCHMARKS.md).
  const prefilled = T > 1 ? start + T : start;
  // the prompt in runs of at most prefillChunk tokens, so that no activation outgrows a chunk's rows; each run
  // returns the logits of every row where they are asked for, else of the prompt's last row alone. A position's
  // step is yielded once a read shows its run done.
  let unreported = start;
  for (let first = 0; first < prefilled - start; first += g.prefillChunk) {
    const prefill = await g.prefill();
    const n = Math.min(g.prefillChunk, T - first);
    const picked = o.logits ? Array.from({ length: n }, (_, i) => i) : first + n === T ? [n - 1] : [];
    const tokens = Int32Array.from(fed.slice(first, first + n));
    const P = start + first;
    prefill.run({ T: n, P, L: picked.length }, { tokens, positions: Int32Array.from(tokens, (_, i) => P + i), logit_rows: Int32Array.from(picked) });
    if (picked.length === 0) continue;
    const rows = await prefill.read(prefill.plan.outputs[0]!, 0, picked.length * V);
    for (let position = unreported; position < P + n; position++) {
      const row = o.logits ? rows.subarray((position - P) * V, (position - P + 1) * V) : rows;
      if (position === start + T - 1) {
        logits = row;
        break;
      }
      const next = promptAfter(position)!;
      const ends = stop.inPrompt && stop.ids.includes(next);
      aborted();
      yield { position, token, next, sampled: false, prefill: true, prompt: true, stop: ends, ...(o.logits ? { logits: row } : {}) };
      if (ends) return;
      token = next;
    }
    unreported = P + n;
  }
  let position = start + T - 1;
  const plan = g.decodePlan;
  /** the step at `position` has not run: its token is fed to the first decode step below (a one-token prompt) */
  let pending = prefilled === start;
  let decode!: PlanExecutor;
  const logitsOut = { name: plan.outputs[0]!, start: 0, count: V };
  // the decode graph's greedy token (an i32 output), fed on the device to the step after
  const nextOut = plan.outputs.find((o) => plan.buffers.find((b) => b.name === o)?.dtype === 'i32');
  const forcedAt = (p: number): boolean => promptAfter(p) !== undefined;
  // greedy steps chain on the device: each is submitted before the one before it is read back
  const chained = sampler.greedy && nextOut !== undefined;
  const inFlight: RecordedRun[] = [];
  const reads = chained ? [{ name: nextOut, start: 0, count: 1 }, ...(o.logits ? [logitsOut] : [])] : [logitsOut];
  /** steps `first`..`first + n - 1` as one run; `fedFirst`: the run before feeds the first one's token */
  const record = (first: number, n: number, fedFirst: boolean): RecordedRun =>
    decode.record(
      Array.from({ length: n }, (_, j) => ({ P: first + j })),
      reads,
      chained ? { from: nextOut, to: 'tokens' } : undefined,
      fedFirst,
    );
  /** submits a run of steps from `first`, given the first one's token where the run before does not feed it */
  const submit = (run: RecordedRun, first: number, token?: number): void => {
    decode.submit(
      run,
      run.envs.map((_, j) => ({ positions: Int32Array.of(first + j), ...(j === 0 && token !== undefined ? { tokens: Int32Array.of(token) } : {}) })),
    );
    inFlight.push(run);
  };
  // the host samples every token: the step after the one running is recorded while it runs (its token is
  // written when it is submitted), so only the submit stands between a readback and the next step
  let recordedAhead: { readonly position: number; readonly run: RecordedRun } | undefined;
  try {
    for (;;) {
      if (!pending) {
        const forced = forcedAt(position);
        const next = forced ? promptAfter(position)! : sampler.sample(logits);
        const ends = (!forced || stop.inPrompt) && stop.ids.includes(next);
        aborted();
        yield {
          position,
          token,
          next,
          sampled: !forced,
          prefill: position < prefilled,
          prompt: position < start + T,
          stop: ends,
          ...(o.logits ? { logits } : {}),
        };
        position++;
        if (position >= end || ends) return;
        token = next;
      }
      pending = false;
      decode ??= await g.decode();
      if (!chained || forcedAt(position)) {
        // the host chooses each token: one step at a time
        submit(recordedAhead?.position === position ? recordedAhead.run : record(position, 1, false), position, token);
        recordedAhead = !chained && position + 1 < end ? { position: position + 1, run: record(position + 1, 1, false) } : undefined;
        const [[row]] = (await decode.readBack(inFlight.shift()!)) as [ArrayBuffer[]];
        logits = new Float32Array(row!);
        continue;
      }
      // the steps after this one run on device-chosen tokens while a run is read: runs of one step until one is
      // read back, then of as many as decodeRunMs holds at the time a step has taken since
      let submitted = position;
      let stepMs = Number.POSITIVE_INFINITY;
      let lastRead = performance.now();
      submit(record(submitted, 1, false), submitted, token);
      submitted++;
      for (;;) {
        while (submitted < end && inFlight.length < RECORD_SLOTS) {
          const n = Math.min(end - submitted, RUN_STEPS, Math.max(1, Math.floor(g.decodeRunMs / stepMs)));
          submit(record(submitted, n, true), submitted);
          submitted += n;
        }
        const run = inFlight.shift()!;
        const read = await decode.readBack(run);
        const now = performance.now();
        stepMs = (now - lastRead) / run.envs.length;
        lastRead = now;
        for (const [chosen, row] of read) {
          const greedy = new Int32Array(chosen!)[0]!;
          const done = stop.ids.includes(greedy);
          aborted();
          yield {
            position,
            token,
            next: greedy,
            sampled: true,
            prefill: false,
            prompt: position < start + T,
            stop: done,
            ...(o.logits ? { logits: new Float32Array(row!) } : {}),
          };
          position++;
          if (position >= end || done) return;
          token = greedy;
        }
      }
    }
  } finally {
    // steps submitted ahead of a stop still run; let them finish before their buffers are reused
    await Promise.allSettled(inFlight.map((run) => decode.readBack(run)));
  }
}
