// What a checkpoint needs before any of its weights is read: its tensors by format, and what Model.load would
// put on the device (weights as the compiled plans lay them out, the KV cache, activations) and hold on the
// host, set against an adapter's limits. memoryPlan opens no GPU: the caller gives the limits (default:
// WebGPU's), which planAdapter reads from an adapter without opening a device.
import { freemem, totalmem } from 'node:os';
import type { GraphKind, ModelConfig } from '../models/llama.js';
import * as A from './affine.js';
import { compilePlans, tensorFormats, withContext, withRopeTables, type Checkpoint, type LoadOptions } from './api.js';
import { activationBuffers, bytesPerElement, bytesText, fullContextEnv, graphStats } from './codegen/stats.js';
import { UPLOAD_WAIT_BYTES } from './runtime/executor.js';
import { DEFAULT_PREFILL_CHUNK } from './runtime/generate.js';
import { openAdapter, type GpuOptions } from './runtime/gpu.js';
import type { Plan, PlanBuffer } from './runtime/plan.js';
import { bytesPerElement as formatBytesPerElement, deviceBytes, fileBytes, weightFormats, type FormatName } from './weights/formats.js';
import { elementCount, type TensorSource } from './weights/source.js';

/** The adapter limits a memory plan is set against, and those passes and codegen size kernels by. */
export type MemoryLimits = Pick<
  GPUSupportedLimits,
  | 'maxBufferSize'
  | 'maxStorageBufferBindingSize'
  | 'maxStorageBuffersPerShaderStage'
  | 'maxComputeInvocationsPerWorkgroup'
  | 'maxComputeWorkgroupSizeX'
  | 'maxComputeWorkgroupStorageSize'
>;

/** WebGPU's default limits, which every adapter offers. */
export const webgpuDefaultLimits: MemoryLimits = {
  maxBufferSize: 268_435_456,
  maxStorageBufferBindingSize: 134_217_728,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16_384,
};

/** Where a plan's limits come from. */
export interface MemoryPlanAdapter {
  /** the adapter's name and backend, or a sentence saying the limits are WebGPU's defaults and why */
  readonly name: string;
  readonly limits: MemoryLimits;
  /** a CPU adapter, for which decode matmuls compile as columns */
  readonly fallback?: boolean;
}

/** The limits of the adapter Model.load would open (no device is requested), else WebGPU's defaults, saying why. */
export async function planAdapter(options: GpuOptions = {}): Promise<MemoryPlanAdapter> {
  try {
    const a = await openAdapter(options);
    return { name: `${a.adapter} (${a.backend})`, limits: a.limits, fallback: a.fallback };
  } catch (e) {
    return { name: `WebGPU's default limits (${(e as Error).message.split('\n')[0]})`, limits: webgpuDefaultLimits };
  }
}

export interface MemoryPlanOptions extends Pick<LoadOptions, 'context' | 'weights' | 'passes' | 'kernels' | 'matmul'> {
  /** the prompt length prefill activations are sized for (default 512, capped at the context) */
  readonly promptTokens?: number;
  /** the adapter whose limits the plan is set against (default: WebGPU's default limits) */
  readonly adapter?: MemoryPlanAdapter;
  /** host memory in bytes (default: os.totalmem() and os.freemem()) */
  readonly host?: { readonly total: number; readonly free: number };
}

/** A limit the plan is set against: device limits by their WebGPU names, and the host's memory. */
export type MemoryLimit = 'maxBufferSize' | 'maxStorageBufferBindingSize' | 'maxStorageBuffersPerShaderStage' | 'hostMemory';

export interface LimitCheck {
  readonly limit: MemoryLimit;
  /** what is set against it: the largest buffer, the kernel binding the most storage buffers, the host's peak */
  readonly what: string;
  /** bytes, or storage buffers for maxStorageBuffersPerShaderStage */
  readonly needed: number;
  readonly allowed: number;
  readonly fits: boolean;
}

export interface FormatBytes {
  readonly format: FormatName;
  /** tensors in the file, or device buffers */
  readonly count: number;
  readonly bytes: number;
}

export interface MemoryPlan {
  readonly family: string;
  /** the model's sizes; seqLen is its own context */
  readonly config: Pick<ModelConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'headSize' | 'vocabSize' | 'seqLen'>;
  /** the checkpoint's tensors by the format they are stored in, with their bytes in the file */
  readonly file: { readonly tensors: number; readonly bytes: number; readonly formats: readonly FormatBytes[] };
  /** positions the KV cache and position tables are allocated for */
  readonly context: number;
  /** the prompt length prefill activations are sized for */
  readonly promptTokens: number;
  /** the format matrix weights are converted to (absent: each kept as stored) */
  readonly weights?: FormatName;
  /** int8 matmuls (float matrices held as Q8_0); absent: float */
  readonly matmul?: 'int8';
  readonly adapter: string;
  readonly limits: MemoryLimits;
  readonly device: {
    /** weight buffers by device format (RoPE tables included); a tensor bound under two names in one format counts once, as it is uploaded once */
    readonly weights: { readonly bytes: number; readonly formats: readonly FormatBytes[] };
    /** layers × 2 × context × KV dim × 4 */
    readonly kvCache: number;
    /** activation buffers of each plan (slots once, at their largest): prefill at T = promptTokens, decode at P = context − 1 */
    readonly activations: Readonly<Record<GraphKind, number>>;
    readonly total: number;
    readonly largestBuffer: { readonly name: string; readonly bytes: number };
    /** the kernel binding the most storage buffers */
    readonly mostStorageBuffers: { readonly kernel: string; readonly count: number };
  };
  /**
   * The host's peak while a streamed load uploads: over weights, the file bytes of its largest source, those
   * bytes converted (when the format changes) and twice its device bytes (its layout and the queue's copy),
   * plus `queued`: the uploads written before the loader waits for the device (UPLOAD_WAIT_BYTES, at most
   * every weight's bytes). Node and Dawn's own memory come on top.
   */
  readonly host: {
    readonly peak: number;
    readonly largestWeight: { readonly name: string; readonly read: number; readonly converted: number; readonly device: number };
    readonly queued: number;
    readonly total: number;
    readonly free: number;
  };
  readonly checks: readonly LimitCheck[];
  readonly fits: boolean;
  /** when it does not fit: what would */
  readonly fitting?: FittingChoices;
}

export interface FittingChoices {
  /** the largest context at which it fits with the same weights; absent when none does */
  readonly context?: number;
  /**
   * the largest prefill chunk (prompt tokens one run takes: run's --prefill-chunk) at which it fits with the same
   * context and weights; absent when none does
   */
  readonly promptTokens?: number;
  /**
   * weight formats of fewer bytes per element than the checkpoint's matrices now take (those some matrix converts
   * to), each with whether it fits at this context
   */
  readonly weights: readonly { readonly format: FormatName; readonly fits: boolean }[];
}

/**
 * The memory plan of a checkpoint (read with readCheckpoint: no weight is read) loaded with these options;
 * when it does not fit, also the largest context and prefill chunk that do and which smaller weight formats do.
 */
export function memoryPlan(checkpoint: Checkpoint, options: MemoryPlanOptions = {}): MemoryPlan {
  const plan = planAt(checkpoint, options);
  return plan.fits ? plan : { ...plan, fitting: fittingChoices(checkpoint, options, plan) };
}

/** The largest n in 1..below-1 for which fits(n) holds, where fits only ever turns false as n grows; undefined when fits(1) does not hold. */
function largestFitting(below: number, fits: (n: number) => boolean): number | undefined {
  if (!fits(1)) return undefined;
  let best = 1;
  let [lo, hi] = [2, below - 1];
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) [best, lo] = [mid, mid + 1];
    else hi = mid - 1;
  }
  return best;
}

/** What fits where `plan` (at these options) does not. */
function fittingChoices(checkpoint: Checkpoint, options: MemoryPlanOptions, plan: MemoryPlan): FittingChoices {
  // more context, or more tokens a prefill run, never takes less memory: the most that fit are found by bisection
  const best = largestFitting(plan.context, (c) => planAt(checkpoint, { ...options, context: c }).fits);
  const chunk = largestFitting(plan.promptTokens, (t) => planAt(checkpoint, { ...options, promptTokens: t }).fits);
  const formats = tensorFormats(checkpoint.tensors, options.weights);
  const now = Math.max(...[...formats.values()].map((f) => formatBytesPerElement(weightFormats[f])));
  // formats that take fewer bytes per element and that some matrix converts to (its rows whole blocks)
  const converts = (f: FormatName): boolean => [...tensorFormats(checkpoint.tensors, f)].some(([name, to]) => to !== formats.get(name));
  const smaller = Object.values(weightFormats)
    .filter((f) => formatBytesPerElement(f) < now && converts(f.name))
    .sort((a, b) => formatBytesPerElement(b) - formatBytesPerElement(a));
  return {
    ...(best !== undefined ? { context: best } : {}),
    ...(chunk !== undefined ? { promptTokens: chunk } : {}),
    weights: smaller.map((f) => ({ format: f.name, fits: planAt(checkpoint, { ...options, weights: f.name }).fits })),
  };
}

function planAt(checkpoint: Checkpoint, options: MemoryPlanOptions): MemoryPlan {
  const adapter = options.adapter ?? { name: "WebGPU's default limits", limits: webgpuDefaultLimits };
  const context = options.context ?? checkpoint.config.seqLen;
  const promptTokens = Math.min(options.promptTokens ?? DEFAULT_PREFILL_CHUNK, context);
  if (!Number.isInteger(promptTokens) || promptTokens < 1) throw new Error(`prompt tokens must be a positive whole number, got ${options.promptTokens}`);
  const { config, tensors } = withRopeTables(withContext(checkpoint, context));
  // subgroups change the kernels' code, not their buffers
  const { graphs, plans } = compilePlans(config, tensors, { limits: adapter.limits, fallback: adapter.fallback ?? false, subgroups: false }, options);
  const env = { prefill: { T: promptTokens, P: 0, L: 1 }, decode: fullContextEnv(graphs.decode, context) };
  const activations = {
    prefill: graphStats(graphs.prefill, plans.prefill, { env: env.prefill, layers: config.nLayers }).peakActivationBytes,
    decode: graphStats(graphs.decode, plans.decode, { env: env.decode, layers: config.nLayers }).peakActivationBytes,
  };

  const resident = residentBuffers([plans.prefill, plans.decode]);
  const weights = uploadedWeights(
    resident.filter((b) => b.role === 'weight'),
    tensors,
  );
  const states = resident.filter((b) => b.role === 'state').map((b) => ({ name: b.name, bytes: elementCount(dims(b)) * bytesPerElement(b.dtype) }));
  const kvCache = states.reduce((s, b) => s + b.bytes, 0);
  const weightBytes = weights.reduce((s, w) => s + w.device, 0);
  const buffers = [
    ...weights.map((w) => ({ name: w.name, bytes: w.device })),
    ...states,
    ...(['prefill', 'decode'] as const).flatMap((kind) =>
      activationBuffers(plans[kind], env[kind]).map((b) => ({ name: `${kind} ${b.name}`, bytes: b.bytes })),
    ),
  ];
  const largestBuffer = buffers.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const kernels = [plans.prefill, plans.decode].flatMap((p) => p.kernels.map((k) => ({ kernel: `${p.graph} ${k.name}`, count: k.bindings.length })));
  const mostStorageBuffers = kernels.reduce((a, b) => (b.count > a.count ? b : a));
  const { format: _, ...heaviest } = weights.reduce((a, w) => (hostBytes(w) > hostBytes(a) ? w : a));
  // the loader waits for the device after every UPLOAD_WAIT_BYTES written, and there are no more than all the weights
  const queued = Math.min(UPLOAD_WAIT_BYTES, weightBytes);
  const memory = options.host ?? { total: totalmem(), free: freemem() };
  const host = { peak: hostBytes(heaviest) + queued, largestWeight: heaviest, queued, total: memory.total, free: memory.free };

  const limits = adapter.limits;
  const check = (limit: MemoryLimit, what: string, needed: number, allowed: number): LimitCheck => ({ limit, what, needed, allowed, fits: needed <= allowed });
  const checks = [
    check('maxStorageBufferBindingSize', `largest buffer ${largestBuffer.name}`, largestBuffer.bytes, limits.maxStorageBufferBindingSize),
    check('maxBufferSize', `largest buffer ${largestBuffer.name}`, largestBuffer.bytes, limits.maxBufferSize),
    check('maxStorageBuffersPerShaderStage', `kernel ${mostStorageBuffers.kernel}`, mostStorageBuffers.count, limits.maxStorageBuffersPerShaderStage),
    check('hostMemory', `host peak while loading`, host.peak, host.total),
  ];
  return {
    family: config.family,
    config: {
      dim: config.dim,
      hiddenDim: config.hiddenDim,
      nLayers: config.nLayers,
      nHeads: config.nHeads,
      nKvHeads: config.nKvHeads,
      headSize: config.headSize,
      vocabSize: config.vocabSize,
      seqLen: checkpoint.config.seqLen,
    },
    file: fileFormats(checkpoint.tensors),
    context,
    promptTokens,
    ...(options.weights ? { weights: options.weights } : {}),
    ...(options.matmul === 'int8' ? { matmul: 'int8' as const } : {}),
    adapter: adapter.name,
    limits: pickLimits(limits),
    device: {
      weights: { bytes: weightBytes, formats: byFormat(weights.map((w) => ({ format: w.format, bytes: w.device }))) },
      kvCache,
      activations,
      total: weightBytes + kvCache + activations.prefill + activations.decode,
      largestBuffer,
      mostStorageBuffers,
    },
    host,
    checks,
    fits: checks.every((c) => c.fits),
  };
}

/** The limits a plan reports, as plain numbers (an adapter's own object holds others too). */
function pickLimits(l: MemoryLimits): MemoryLimits {
  return {
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
  };
}

/** A resident buffer's dims: constant, since weights and states are allocated once. */
function dims(b: PlanBuffer): number[] {
  return b.shape.map((d) => A.evaluate(d, {}));
}

/** Weights and states of the plans, each once: the plans of a model share them by name. */
function residentBuffers(plans: readonly Plan[]): PlanBuffer[] {
  const byName = new Map<string, PlanBuffer>();
  for (const p of plans) for (const b of p.buffers) if ((b.role === 'weight' || b.role === 'state') && !byName.has(b.name)) byName.set(b.name, b);
  return [...byName.values()];
}

interface UploadedWeight {
  readonly name: string;
  readonly format: FormatName;
  /** device bytes */
  readonly device: number;
  /** file bytes of its largest source, and of that source converted to `format` (0 when it is stored so) */
  readonly read: number;
  readonly converted: number;
}

/** The weight buffers ResidentBuffers creates: one source bound under two names in one format is uploaded once. */
function uploadedWeights(weights: readonly PlanBuffer[], tensors: ReadonlyMap<string, TensorSource>): UploadedWeight[] {
  const uploaded = new Map<TensorSource, Set<string>>();
  const out: UploadedWeight[] = [];
  for (const b of weights) {
    if (b.dtype === 'i32') throw new Error(`weight ${b.name}: i32 weights are not supported`);
    const format = weightFormats[b.dtype];
    const parts = (b.sources ?? [b.name]).map((n) => {
      const t = tensors.get(n);
      if (!t) throw new Error(`weight ${b.name} needs ${n}, which is not in the checkpoint`);
      return t;
    });
    if (parts.length === 1) {
      const formats = uploaded.get(parts[0]!) ?? new Set<string>();
      if (formats.has(format.name)) continue;
      uploaded.set(parts[0]!, formats.add(format.name));
    }
    const largest = parts.reduce((a, p) => (elementCount(p.shape) > elementCount(a.shape) ? p : a));
    const count = elementCount(largest.shape);
    out.push({
      name: b.name,
      format: format.name,
      device: deviceBytes(format, elementCount(dims(b))),
      read: fileBytes(largest.format, count),
      converted: largest.format === format ? 0 : fileBytes(format, count),
    });
  }
  return out;
}

/** Host bytes while one weight is uploaded: its source read, converted, laid out, and copied into the queue. */
const hostBytes = (w: Omit<UploadedWeight, 'format'>): number => w.read + w.converted + 2 * w.device;

function byFormat(items: readonly { format: FormatName; bytes: number }[]): FormatBytes[] {
  const formats = new Map<FormatName, FormatBytes>();
  for (const { format, bytes } of items) {
    const have = formats.get(format) ?? { format, count: 0, bytes: 0 };
    formats.set(format, { format, count: have.count + 1, bytes: have.bytes + bytes });
  }
  return [...formats.values()].sort((a, b) => b.bytes - a.bytes);
}

/** The file's tensors by format, each source once (a shared classifier is the embedding table). */
function fileFormats(tensors: ReadonlyMap<string, TensorSource>): MemoryPlan['file'] {
  const items = [...new Set(tensors.values())].map((t) => ({ format: t.format.name, bytes: fileBytes(t.format, elementCount(t.shape)) }));
  return { tensors: items.length, bytes: items.reduce((s, t) => s + t.bytes, 0), formats: byFormat(items) };
}

const count = (n: number): string => n.toLocaleString('en-US');
const size = (n: number): string => bytesText(n, false);

/** A check's figures: bytes, or storage buffers. */
function amount(c: LimitCheck, n: number, exact = true): string {
  return c.limit === 'maxStorageBuffersPerShaderStage' ? String(n) : bytesText(n, exact);
}

const limitName = (limit: MemoryLimit): string => (limit === 'hostMemory' ? 'host memory' : limit);

/** The limits a plan does not fit, for a reader: what needs how much, each limit it passes, and by how much. */
export function failedChecksText(checks: readonly LimitCheck[]): string {
  const failed = checks.filter((c) => !c.fits);
  const whats = [...new Set(failed.map((c) => c.what))];
  return whats
    .map((what) => {
      const over = failed.filter((c) => c.what === what);
      const limits = over.map((c) => `${limitName(c.limit)} ${amount(c, c.allowed)} by ${amount(c, c.needed - c.allowed)}`);
      return `${what} needs ${amount(over[0]!, over[0]!.needed)}, over ${limits.join(' and ')}`;
    })
    .join('; ');
}

/** What fits instead, for a reader: the largest context, the largest prefill chunk and the smaller weight formats that fit. */
export function fittingText(f: FittingChoices): string {
  const context = f.context !== undefined ? `--context ${f.context} fits` : 'no --context fits';
  const chunk = f.promptTokens !== undefined ? `prefill chunks of ${f.promptTokens} tokens fit (--prefill-chunk)` : 'no --prefill-chunk fits';
  const fit = f.weights.filter((w) => w.fits).map((w) => w.format);
  const all = f.weights.map((w) => w.format).join(', ');
  const weights =
    f.weights.length === 0 ? 'no smaller --weights format' : fit.length > 0 ? `--weights ${fit.join(' or ')} fits` : `none of --weights ${all} fits`;
  return `${context}; ${chunk}; ${weights}`;
}

/** The plan for a reader: the checkpoint's sizes and tensors, then device and host memory, each set against its limits. */
export function formatMemoryPlan(p: MemoryPlan): string {
  const c = p.config;
  const rows = (items: readonly (readonly [string, string])[]): string[] => {
    const width = Math.max(...items.map(([k]) => k.length));
    return items.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`);
  };
  const against = (limit: MemoryLimit): string => {
    const ch = p.checks.find((x) => x.limit === limit)!;
    const allowed = `${limitName(limit)} ${amount(ch, ch.allowed, false)}`;
    return ch.fits ? `≤ ${allowed}` : `> ${allowed}: over by ${amount(ch, ch.needed - ch.allowed, false)}`;
  };
  const { host: h, device: d } = p;
  const w = h.largestWeight;
  const lines = [
    `${p.family}: ${c.nLayers} layers, dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nHeads} heads of ${c.headSize}, ${c.nKvHeads} KV heads, vocab ${c.vocabSize}, context ${c.seqLen}`,
    `tensors: ${count(p.file.tensors)}, ${size(p.file.bytes)} in the file`,
    ...rows(p.file.formats.map((f) => [f.format, `${count(f.count)} tensors, ${size(f.bytes)}`])),
    `memory at context ${p.context}, prefill of ${p.promptTokens} tokens, weights ${p.weights ?? 'as stored'}${p.matmul ? ', int8 matmuls (float matrices as q8_0)' : ''}`,
    `limits: ${p.adapter}`,
    ...rows([
      ...d.weights.formats.map((f): [string, string] => [`weights ${f.format}`, `${size(f.bytes)} in ${count(f.count)} buffers`]),
      ['KV cache', `${size(d.kvCache)} (${c.nLayers} layers × 2 × ${p.context} positions × ${c.nKvHeads * c.headSize} × 4 B)`],
      ['activations', `prefill ${size(d.activations.prefill)} at T=${p.promptTokens}, decode ${size(d.activations.decode)} at P=${p.context - 1}`],
      ['device total', size(d.total)],
      ['largest buffer', `${size(d.largestBuffer.bytes)} (${d.largestBuffer.name}) ${against('maxStorageBufferBindingSize')}, ${against('maxBufferSize')}`],
      ['storage buffers', `${d.mostStorageBuffers.count} per kernel (${d.mostStorageBuffers.kernel}) ${against('maxStorageBuffersPerShaderStage')}`],
      ['host peak', `${size(h.peak)} ${against('hostMemory')}${h.peak > h.free ? `, more than the ${size(h.free)} free now` : ` (${size(h.free)} free)`}`],
      [
        '',
        `= ${w.name}: ${size(w.read)} read + ${size(w.converted)} converted + 2 × ${size(w.device)} laid out and queued, + ${size(h.queued)} of earlier uploads queued`,
      ],
    ]),
    p.fits ? 'fits' : `does not fit: ${failedChecksText(p.checks)}`,
    ...(p.fitting ? [`would fit: ${fittingText(p.fitting)}`] : []),
  ];
  return lines.join('\n') + '\n';
}
