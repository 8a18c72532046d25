// Throughput of a model on the device: prefill (the prompt, in runs of at most a prefill chunk) and decode (one run
// per token), each the median of several timed runs after warm-ups, timed on the host clock around the readback
// of the logits (every run ends in a mapAsync, so all submitted GPU work is included) — the rate a
// caller of generate sees. Per-kernel GPU time comes from a separate profile run (timestamp queries
// where the adapter has them), grouped by kernel kind, with achieved FLOP/s and bytes/s from each
// kernel's static cost.
import { loadModel, type LoadOptions, type LoadTimes, type Model, type ModelFiles, type ProfiledKernel } from './api.js';
import { benchPrompt, checkBenchOptions, decodeAfter, decodeRates, timeRuns } from './peers/peer.js';

export interface DeviceLimits {
  /** peak FLOP/s of the device (fp32) */
  readonly flops?: number;
  /** peak memory bandwidth, bytes/s */
  readonly bandwidth?: number;
}

export interface BenchOptions extends LoadOptions {
  /** prompt lengths to time prefill at; each at most the context length */
  readonly promptTokens: readonly number[];
  /** decode steps timed after each prompt length of decodeAfter */
  readonly decodeTokens: number;
  /** prompt lengths to time decode after (default [1], a one-token prompt) */
  readonly decodeAfter?: readonly number[];
  /** timed runs per figure (the median is reported) */
  readonly runs: number;
  /** least wall time of the warm-ups after the first of each figure, seconds (default WARMUP_SECONDS) */
  readonly warmupSeconds?: number;
  /** decode samples each token on the host at this temperature and top-p (default: greedy, chosen on the device) */
  readonly sampling?: { readonly temperature: number; readonly topp: number };
  /** profile each kernel (default true) */
  readonly profile?: boolean;
  readonly limits?: DeviceLimits;
}

export interface ColdStart {
  /** from the start of Model.load to the first token of a one-token prompt, seconds */
  readonly time_to_first_token_s: number;
  /** the load's phases, seconds */
  readonly load_s: LoadTimes;
  /** the first run after the load, seconds */
  readonly first_run_s: number;
}

export interface DecodeStepCost {
  readonly wall_ms: number;
  readonly record_ms: number;
  readonly submit_ms: number;
  /** the step's pass, start to end (timestamp clock only) */
  readonly pass_ms?: number;
  /** the step's kernels, each timed alone (profile) */
  readonly kernels_ms?: number;
  /** dispatches the step ran (those with workgroups) */
  readonly dispatches: number;
  /**
   * what each kernel (l*.name: that kernel of every layer) costs the step's pass where it runs: the pass's time less
   * its time without that kernel — its share in place, overlap and barriers included (timestamp clock only)
   */
  readonly in_pass_ms?: Readonly<Record<string, number>>;
}

export interface KernelKindRow {
  readonly kind: string;
  readonly dispatches: number;
  readonly ms: number;
  /** of the graph's summed kernel time */
  readonly share: number;
  readonly gflop_per_s: number;
  readonly gb_per_s: number;
}

export interface BenchRow {
  readonly engine: string;
  readonly model: string;
  readonly device: string;
  /** prompt length → prefill tokens per second */
  readonly prefill_tokens_per_s: Readonly<Record<string, number>>;
  /** decode tokens per second after the shortest prompt of decodeAfter (a one-token prompt by default) */
  readonly decode_tokens_per_s: number;
  /** prompt length → decode tokens per second after it */
  readonly decode_after_tokens_per_s: Readonly<Record<string, number>>;
  /** how decode chose each token: greedy (on the device), or sampled on the host */
  readonly decode_sampling?: string;
  readonly weights?: string;
  /** how weft's prefill matmuls multiplied: float (float32), int8 (dot4I8Packed), or int8 on subgroup matrices */
  readonly matmul?: string;
  /** the GGUF file the row ran, where weft and a peer ran one file */
  readonly file?: string;
  /** weft's kernels reduced with subgroup operations */
  readonly subgroups?: boolean;
  readonly dispatches?: { readonly prefill: number; readonly decode: number };
  /** a one-token prompt's first token after the load began (files already read, when given as ModelFiles) */
  readonly cold_start?: ColdStart;
  /** prompt length → FLOP/s of the prefill graph (static FLOPs over the measured time) */
  readonly prefill_gflop_per_s?: Readonly<Record<string, number>>;
  readonly prefill_flops_ratio?: Readonly<Record<string, number>>;
  /** weight bytes one decode step reads, over the measured time per token */
  readonly decode_weight_bytes?: number;
  readonly decode_gb_per_s?: number;
  readonly decode_bandwidth_ratio?: number;
  readonly clock?: 'timestamp' | 'host';
  /** per kernel kind: prefill at each prompt length, and one decode step at the middle of the timed steps */
  readonly kernels?: { readonly prefill: Readonly<Record<string, readonly KernelKindRow[]>>; readonly decode: readonly KernelKindRow[] };
  /**
   * Where a decode step's time goes: its time per token (wall), the host's recording and submit of one step, and
   * the GPU's time over the step's one pass (timestamps) beside the sum of its kernels' own times (profile):
   * what the pass takes beyond them is spent between dispatches. Milliseconds.
   */
  readonly decode_step?: DecodeStepCost;
  /** the same, per kernel with its layer left out (l*.ffn_in: that kernel of every layer) */
  readonly kernels_by_name?: { readonly prefill: Readonly<Record<string, readonly KernelKindRow[]>>; readonly decode: readonly KernelKindRow[] };
}

/** A kernel's name with its layer left out: l*.ffn_in for every layer's ffn_in. */
const layerless = (name: string): string => name.replace(/^l\d+\./, 'l*.');

function byKind(kernels: readonly ProfiledKernel[], key: (k: ProfiledKernel) => string = (k) => k.kind): KernelKindRow[] {
  const total = kernels.reduce((s, k) => s + k.seconds, 0);
  const kinds = new Map<string, ProfiledKernel[]>();
  for (const k of kernels) kinds.set(key(k), [...(kinds.get(key(k)) ?? []), k]);
  return [...kinds]
    .map(([kind, ks]) => {
      const seconds = ks.reduce((s, k) => s + k.seconds, 0);
      const per = (x: number): number => (seconds > 0 ? x / seconds / 1e9 : 0);
      return {
        kind,
        dispatches: ks.length,
        ms: seconds * 1000,
        share: total > 0 ? seconds / total : 0,
        gflop_per_s: per(ks.reduce((s, k) => s + k.flops, 0)),
        gb_per_s: per(ks.reduce((s, k) => s + k.bytes, 0)),
      };
    })
    .sort((a, b) => b.ms - a.ms);
}

async function timePrefill(model: Model, n: number, o: BenchOptions): Promise<number> {
  const first = model.config.bosId ?? 0;
  const ms = await timeRuns(
    async () => {
      const t0 = performance.now();
      for await (const _ of model.generate({ promptIds: benchPrompt(n, model.config.vocabSize, first), steps: n, temperature: 0 })) break;
      return performance.now() - t0;
    },
    o.runs,
    o.warmupSeconds,
  );
  return ms / 1000;
}

/**
 * Decode tokens per second after each prompt of decodeAfter: decodeTokens steps after the bench prompt of that
 * length, timed from the step that gave the first generated token.
 */
async function timeDecode(model: Model, o: BenchOptions): Promise<Pick<BenchRow, 'decode_tokens_per_s' | 'decode_after_tokens_per_s'>> {
  const first = model.config.bosId ?? 0;
  const sampled = sampledDecode(o);
  const sampling = sampled ? { ...sampled, seed: 1 } : { temperature: 0 };
  return decodeRates(o, (n) => {
    const promptIds = benchPrompt(n, model.config.vocabSize, first);
    return async () => {
      let start = 0;
      let end = 0;
      let count = 0;
      // a stop token may end a run early: count the steps that ran
      for await (const s of model.generate({ promptIds, steps: n + o.decodeTokens, ...sampling })) {
        if (s.position < n - 1) continue;
        if (s.position === n - 1) start = performance.now();
        else count++;
        end = performance.now();
      }
      return count > 0 ? (end - start) / count : undefined;
    };
  });
}

/** Time to the first token of a one-token prompt from the start of the load: the load's phases, then that run. */
async function firstToken(model: Model, loadStart: number): Promise<ColdStart> {
  const runStart = performance.now();
  for await (const _ of model.generate({ promptIds: [model.config.bosId ?? 0], steps: 1, temperature: 0 })) break;
  const end = performance.now();
  return { time_to_first_token_s: (end - loadStart) / 1000, load_s: model.loadTimes, first_run_s: (end - runStart) / 1000 };
}

export async function benchmark(source: string | ModelFiles, label: string, o: BenchOptions): Promise<BenchRow> {
  const loadStart = performance.now();
  const model = await loadModel(source, o);
  try {
    checkBenchOptions(o, model.config.seqLen);
    // before any other run: the first one after a load pays for what the device does lazily
    const cold = await firstToken(model, loadStart);
    const prefill: Record<string, number> = {};
    const gflops: Record<string, number> = {};
    const flopsRatio: Record<string, number> = {};
    const prefillKernels: Record<string, KernelKindRow[]> = {};
    const prefillNames: Record<string, KernelKindRow[]> = {};
    const byName = (k: ProfiledKernel): string => `${layerless(k.name)} (${k.kind})`;
    let clock: 'timestamp' | 'host' | undefined;
    for (const n of o.promptTokens) {
      const seconds = await timePrefill(model, n, o);
      prefill[n] = n / seconds;
      const flops = model.cost('prefill', n).flops;
      gflops[n] = flops / seconds / 1e9;
      if (o.limits?.flops) flopsRatio[n] = flops / seconds / o.limits.flops;
      if (o.profile !== false) {
        const p = await model.profile('prefill', n);
        prefillKernels[n] = byKind(p.kernels);
        prefillNames[n] = byKind(p.kernels, byName);
        clock = p.clock;
      }
    }
    const decode = await timeDecode(model, o);
    const perToken = 1 / decode.decode_tokens_per_s;
    const weightBytes = model.decodeWeightBytes;
    let decodeKernels: KernelKindRow[] | undefined;
    let decodeNames: KernelKindRow[] = [];
    let step: DecodeStepCost | undefined;
    if (o.profile !== false) {
      const position = decodeAfter(o)[0]! - 1 + Math.ceil(o.decodeTokens / 2);
      const p = await model.profile('decode', 1, position);
      decodeKernels = byKind(p.kernels);
      decodeNames = byKind(p.kernels, byName);
      clock = p.clock;
      const cost = await model.runCost('decode', 1, position);
      const inPass: Record<string, number> = {};
      if (cost.gpu !== undefined) {
        const names = new Map<string, Set<string>>();
        for (const k of p.kernels) names.set(layerless(k.name), (names.get(layerless(k.name)) ?? new Set()).add(k.name));
        for (const [name, group] of names) {
          const without = await model.runCost('decode', 1, position, group);
          if (without.gpu !== undefined) inPass[name] = (cost.gpu - without.gpu) * 1000;
        }
      }
      step = {
        wall_ms: perToken * 1000,
        record_ms: cost.record * 1000,
        submit_ms: cost.submit * 1000,
        ...(cost.gpu !== undefined ? { pass_ms: cost.gpu * 1000 } : {}),
        ...(p.clock === 'timestamp' ? { kernels_ms: p.kernels.reduce((sum, k) => sum + k.seconds, 0) * 1000 } : {}),
        dispatches: cost.dispatches,
        ...(Object.keys(inPass).length ? { in_pass_ms: inPass } : {}),
      };
    }
    return {
      engine: 'weft',
      model: label,
      device: `${model.device.backend}: ${model.device.adapter}`,
      prefill_tokens_per_s: prefill,
      ...decode,
      decode_sampling: samplingLabel(o),
      weights: model.weightFormats.join('+'),
      matmul: model.matmul,
      subgroups: model.subgroups,
      dispatches: model.dispatches,
      cold_start: cold,
      prefill_gflop_per_s: gflops,
      ...(o.limits?.flops ? { prefill_flops_ratio: flopsRatio } : {}),
      decode_weight_bytes: weightBytes,
      decode_gb_per_s: weightBytes / perToken / 1e9,
      ...(o.limits?.bandwidth ? { decode_bandwidth_ratio: weightBytes / perToken / o.limits.bandwidth } : {}),
      ...(clock ? { clock } : {}),
      ...(step ? { decode_step: step } : {}),
      ...(decodeKernels
        ? { kernels: { prefill: prefillKernels, decode: decodeKernels }, kernels_by_name: { prefill: prefillNames, decode: decodeNames } }
        : {}),
    };
  } finally {
    model.release();
  }
}

/** The host sampling decode is timed with; undefined: greedy, chosen on the device. */
function sampledDecode(o: BenchOptions): BenchOptions['sampling'] {
  return o.sampling && o.sampling.temperature > 0 ? o.sampling : undefined;
}

function samplingLabel(o: BenchOptions): string {
  const sampled = sampledDecode(o);
  return sampled ? `temperature ${sampled.temperature}, top-p ${sampled.topp}` : 'greedy';
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** A row as text: one line of figures, then the kernel kinds of each graph. */
export function formatBenchRow(row: BenchRow): string {
  const figures = [
    ...Object.entries(row.prefill_tokens_per_s).map(([n, r]) => {
      const g = row.prefill_gflop_per_s?.[n];
      const ratio = row.prefill_flops_ratio?.[n];
      return `prefill ${n}: ${r.toFixed(1)} tok/s${g !== undefined ? ` (${g.toFixed(1)} GFLOP/s${ratio !== undefined ? `, ${pct(ratio)} of peak` : ''})` : ''}`;
    }),
    ...Object.entries(row.decode_after_tokens_per_s).map(
      ([n, r], i) =>
        `decode${n === '1' ? '' : ` after ${n}`}${row.decode_sampling && row.decode_sampling !== 'greedy' ? ` (sampled: ${row.decode_sampling})` : ''}: ${r.toFixed(1)} tok/s${
          // the weights' share is the shortest prompt's figure's, the row's decode rate
          i === 0 && row.decode_gb_per_s !== undefined
            ? ` (${row.decode_gb_per_s.toFixed(1)} GB/s of weights${row.decode_bandwidth_ratio !== undefined ? `, ${pct(row.decode_bandwidth_ratio)} of peak` : ''})`
            : ''
        }`,
    ),
  ];
  const kernels = [
    ...(row.weights ? [`${row.weights} weights`] : []),
    ...(row.matmul && row.matmul !== 'float' ? [`${row.matmul} matmuls`] : []),
    ...(row.subgroups ? ['subgroups'] : []),
  ];
  const lines = [`${row.engine} ${row.model}${kernels.length ? ` [${kernels.join(', ')}]` : ''}: ${figures.join(', ')} (${row.device})`];
  if (row.file) lines.push(`  file: ${row.file}`);
  if (row.dispatches) lines.push(`  dispatches per run: prefill ${row.dispatches.prefill}, decode ${row.dispatches.decode}`);
  if (row.cold_start) {
    const c = row.cold_start;
    const phases = Object.entries(c.load_s).map(([phase, sec]) => `${phase} ${sec.toFixed(3)}`);
    lines.push(
      `  cold start: first token ${c.time_to_first_token_s.toFixed(3)} s after the load began (load: ${phases.join(', ')}; first run ${c.first_run_s.toFixed(3)}) s`,
    );
  }
  if (row.decode_step) {
    const d = row.decode_step;
    const gpu =
      d.pass_ms !== undefined
        ? `; GPU ${d.pass_ms.toFixed(3)} ms over its pass` +
          (d.kernels_ms !== undefined
            ? ` (kernels alone ${d.kernels_ms.toFixed(3)} ms, ${(((d.pass_ms - d.kernels_ms) / Math.max(1, d.dispatches)) * 1000).toFixed(2)} µs more a dispatch)`
            : '')
        : '';
    lines.push(
      `  decode step: ${d.wall_ms.toFixed(3)} ms a token; host records ${d.record_ms.toFixed(3)} ms and submits ${d.submit_ms.toFixed(3)} ms of ${d.dispatches} dispatches${gpu}`,
    );
    if (d.in_pass_ms) {
      const parts = Object.entries(d.in_pass_ms)
        .sort((a, b) => b[1] - a[1])
        .map(([name, ms]) => `${name} ${ms.toFixed(3)}`);
      lines.push(`  decode step's pass, what each kernel costs it in place (ms): ${parts.join(', ')}`);
    }
  }
  const table = (title: string, kinds: readonly KernelKindRow[]): void => {
    lines.push(`  ${title}:`);
    for (const k of kinds) {
      lines.push(
        `    ${k.kind.padEnd(18)} ${String(k.dispatches).padStart(4)}×  ${k.ms.toFixed(3).padStart(9)} ms  ${pct(k.share).padStart(6)}  ` +
          `${k.gflop_per_s.toFixed(1).padStart(9)} GFLOP/s  ${k.gb_per_s.toFixed(1).padStart(8)} GB/s`,
      );
    }
  };
  if (row.kernels) {
    for (const [n, kinds] of Object.entries(row.kernels.prefill)) table(`prefill ${n} kernels (${row.clock} clock)`, kinds);
    table(`decode step kernels (${row.clock} clock)`, row.kernels.decode);
  }
  return lines.join('\n') + '\n';
}
