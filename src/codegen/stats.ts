// Static cost of one run of a compiled graph, evaluated at one binding of its symbols: dispatches (per layer),
// barriers with their reasons, FLOPs (from the IR ops) and bytes (from the plan's bindings) of every kernel,
// and activation memory with and without the buffer plan. Needs no GPU; the Graph must be the one the Plan came from.
import { match } from 'ts-pattern';
import * as A from '../affine.js';
import type { Affine, Env } from '../affine.js';
import { formatKind } from '../ir/kernel-kinds.js';
import { formatBuffer } from '../ir/print.js';
import { scheduledKernels } from '../ir/schedule.js';
import type { Graph, Op, TensorType } from '../ir/types.js';
import { workgroupCount, type Plan, type PlanBuffer, type PlanKernel } from '../runtime/plan.js';
import { bytesPerElement as formatBytesPerElement, weightFormats } from '../weights/formats.js';

export interface BarrierStats {
  readonly reason: string;
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
  /** as dumps name them: `@slot` or `%value` */
  readonly buffers: readonly string[];
  readonly unfused: string;
}

/** One kernel of the schedule (one per node when unscheduled) and the plan kernels it dispatches. */
export interface KernelStats {
  readonly name: string;
  /** its kind as the text IR writes it */
  readonly kind: string;
  readonly dispatches: readonly string[];
  /** dependencies between this kernel's own dispatches (a boundary inside one fused kernel) */
  readonly internalBarriers: readonly string[];
  /** the barrier right before it in the schedule, as its index in GraphStats.barriers */
  readonly barrier?: number;
  readonly flops: number;
  /** bytes its dispatches read and write */
  readonly bytes: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface GraphStats {
  readonly graph: string;
  readonly layers: number;
  /** the symbol values every size is evaluated at */
  readonly env: Env;
  /** plan kernels dispatched per graph run */
  readonly dispatches: number;
  /** dispatches of the kernels of each layer (their nodes' layer) */
  readonly dispatchesPerLayer: readonly number[];
  readonly dispatchesOutsideLayers: number;
  readonly barriers: readonly BarrierStats[];
  readonly kernels: readonly KernelStats[];
  readonly flops: number;
  readonly bytes: number;
  /** each slot counted once at its largest value, plus every unslotted activation and scratch buffer */
  readonly peakActivationBytes: number;
  /** every activation and scratch buffer of the plan counted separately */
  readonly peakActivationBytesUnplanned: number;
}

/**
 * The sizes at the full context: prefill (symbol T) runs T = contextLength new tokens from P = 0; a graph of
 * constant rows (decode) runs them at the last positions, P = contextLength - rows; prefill returns one row's logits
 * (L = 1), as generation asks. Other symbols are 0.
 */
export function fullContextEnv(g: Graph, contextLength: number): Env {
  const input = g.decls.find((d) => d.kind === 'input');
  const rows = g.symbols.includes('T') ? contextLength : input !== undefined && A.isConstant(input.type.shape[0]!) ? input.type.shape[0]!.c : 1;
  const value = (s: string): number => (s === 'T' ? rows : s === 'P' ? contextLength - rows : s === 'L' ? 1 : 0);
  return Object.fromEntries(g.symbols.map((s) => [s, value(s)]));
}

/** bytes a plan buffer's element takes on the device (f16: packed halves) */
/** device bytes per element of a buffer's dtype */
export function bytesPerElement(dtype: PlanBuffer['dtype']): number {
  return dtype === 'i32' ? 4 : formatBytesPerElement(weightFormats[dtype]);
}

function elements(shape: readonly Affine[], env: Env): number {
  return shape.reduce((n, d) => n * A.evaluate(d, env), 1);
}

/** Score entries a causal mask keeps in a [rows, keys] block: row r sees keys 0..keys-rows+r. */
function causalEntries(rows: number, keys: number): number {
  return rows * (keys - rows) + (rows * (rows + 1)) / 2;
}

/** Causal entries of an [H, rows, keys] score tensor, over all heads. */
function causalScores(t: TensorType, env: Env): number {
  const dims = t.shape.map((d) => A.evaluate(d, env));
  const [rows, keys] = dims.slice(-2) as [number, number];
  return elements(t.shape.slice(0, -2), env) * causalEntries(rows, keys);
}

/**
 * Floating-point operations of one node: matmul 2·M·N·K; attention products 2·headSize per causal score
 * each; softmax ~5 per (causal) entry; argmax 1 per compared element; rmsnorm (of rows or of heads) ~4, silu ~5, add and mul 1 per element; rope 6 per pair;
 * embed, slice and kv_write move data only.
 */
export function nodeFlops(n: Op, typeOf: (value: string) => TensorType, env: Env): number {
  const size = elements(n.type.shape, env);
  return match<Op, number>(n)
    .with({ op: 'matmul' }, (m) => {
      const [rows, k] = typeOf(m.args[0]).shape;
      return 2 * A.evaluate(rows!, env) * A.evaluate(m.type.shape[1]!, env) * A.evaluate(k!, env);
    })
    .with({ op: 'attn_scores' }, (s) => 2 * s.attrs.headSize * causalScores(s.type, env))
    .with({ op: 'attn_mix' }, (m) => 2 * m.attrs.headSize * causalScores(typeOf(m.args[0]), env))
    .with({ op: 'softmax' }, (s) => 5 * (s.attrs.causal === 1 ? causalScores(s.type, env) : size))
    .with({ op: 'rmsnorm' }, { op: 'head_rmsnorm' }, () => 4 * size)
    .with({ op: 'layernorm' }, () => 8 * size)
    .with({ op: 'gelu' }, () => 10 * size)
    .with({ op: 'rope' }, () => 3 * size)
    .with({ op: 'silu' }, () => 5 * size)
    .with({ op: 'add' }, { op: 'mul' }, { op: 'add_bias' }, () => size)
    .with({ op: 'argmax' }, (a) => elements(typeOf(a.args[0]).shape, env))
    .with({ op: 'embed' }, { op: 'slice' }, { op: 'kv_write' }, { op: 'take_rows' }, () => 0)
    .exhaustive();
}

/**
 * Rows of a buffer one binding actually touches, where ops index it by token or position rather than
 * reading it whole: an embedding table (one row per id), RoPE tables (rows P..P+T-1), a KV cache (reads
 * its P+T valid rows, writes T). Buffers not listed are touched whole.
 */
function touchedRows(g: Graph, env: Env): Map<string, { read?: number; write?: number }> {
  const rows = new Map<string, { read?: number; write?: number }>();
  const typeOf = new Map([...g.decls, ...g.nodes].map((v) => [v.name, v.type]));
  const touch = (buffer: string, access: 'read' | 'write', dim: Affine): void => {
    const r = { ...rows.get(buffer) };
    r[access] = Math.max(r[access] ?? 0, A.evaluate(dim, env));
    rows.set(buffer, r);
  };
  for (const n of g.nodes) {
    match(n)
      .with({ op: 'embed' }, { op: 'take_rows' }, (e) => touch(e.args[0], 'read', e.type.shape[0]!))
      .with({ op: 'rope' }, (r) => {
        touch(r.args[1], 'read', r.type.shape[0]!);
        touch(r.args[2], 'read', r.type.shape[0]!);
      })
      .with({ op: 'kv_write' }, (w) => {
        touch(w.args[0], 'write', typeOf.get(w.args[1])!.shape[0]!);
        touch(w.args[0], 'read', w.type.shape[0]!);
      })
      .otherwise(() => {});
  }
  return rows;
}

function bufferBytes(b: PlanBuffer, env: Env, rows?: number): number {
  const rowElements = elements(b.shape.slice(1), env);
  const n = rows === undefined ? elements(b.shape, env) : rows * rowElements;
  return n * bytesPerElement(b.dtype);
}

/**
 * The device buffers of a plan's activations at `env`: a slot once, named after its largest value, and every
 * unslotted activation and scratch buffer.
 */
export function activationBuffers(plan: Plan, env: Env): { name: string; bytes: number }[] {
  const slots = new Map<string, { name: string; bytes: number }>();
  const unslotted: { name: string; bytes: number }[] = [];
  for (const b of plan.buffers) {
    if (b.role !== 'activation') continue;
    const buffer = { name: b.name, bytes: bufferBytes(b, env) };
    if (b.slot === undefined) unslotted.push(buffer);
    else if (buffer.bytes > (slots.get(b.slot)?.bytes ?? -1)) slots.set(b.slot, buffer);
  }
  return [...unslotted, ...slots.values()];
}

/** Activation bytes of a plan: planned (a slot once, at its largest value) and unplanned (every buffer alone). */
function activationBytes(plan: Plan, env: Env): { planned: number; unplanned: number } {
  const unplanned = plan.buffers.filter((b) => b.role === 'activation').reduce((s, b) => s + bufferBytes(b, env), 0);
  return { planned: activationBuffers(plan, env).reduce((s, b) => s + b.bytes, 0), unplanned };
}

/** Per kernel name, the index among the schedule's barriers of the barrier right before it, where one is. */
export function barrierIndices(graph: Graph): Map<string, number> {
  const before = new Map<string, number>();
  let barriers = 0;
  (graph.schedule ?? []).forEach((item, i, schedule) => {
    if (item.item === 'barrier') barriers++;
    else if (schedule[i - 1]?.item === 'barrier') before.set(item.name, barriers - 1);
  });
  return before;
}

/** Layers of a graph: one past the largest layer its nodes belong to. */
export function layerCount(graph: Graph): number {
  return Math.max(0, ...graph.nodes.map((n) => (n.layer ?? -1) + 1));
}

/** Stats of one run of `plan`, compiled from `graph`, at `env`; `layers` defaults to layerCount(graph). */
export function graphStats(graph: Graph, plan: Plan, options: { readonly env: Env; readonly layers?: number }): GraphStats {
  const { env } = options;
  const layers = options.layers ?? layerCount(graph);
  const types = new Map([...graph.decls, ...graph.nodes].map((v) => [v.name, v.type]));
  const typeOf = (v: string): TensorType => types.get(v)!;
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const buffers = new Map(plan.buffers.map((b) => [b.name, b]));
  const rows = touchedRows(graph, env);

  // each plan kernel names the schedule kernel it was emitted for; they come in schedule order
  const irKernels = scheduledKernels(graph);
  const dispatchedBy = new Map<string, PlanKernel[]>();
  for (const p of plan.kernels) dispatchedBy.set(p.scheduleKernel, [...(dispatchedBy.get(p.scheduleKernel) ?? []), p]);
  const barrierBefore = barrierIndices(graph);
  const kernels = irKernels.map((k): KernelStats => {
    const dispatched = dispatchedBy.get(k.name) ?? [];
    if (dispatched.length === 0) throw new Error(`plan ${plan.graph} does not dispatch kernel ${k.name}`);
    let read = 0;
    let written = 0;
    // bytes of the dispatches that have workgroups at env: of alternatives (decode attention's partial kernels), the one that runs
    const running = dispatched.filter((p) => p.workgroups.every((w) => workgroupCount(w, env) > 0));
    for (const b of running.flatMap((p) => p.bindings)) {
      const buffer = buffers.get(b.buffer);
      if (!buffer) throw new Error(`plan ${plan.graph}: kernel ${k.name} binds unknown buffer ${b.buffer}`);
      if (b.access === 'read') read += bufferBytes(buffer, env, rows.get(b.buffer)?.read);
      else written += bufferBytes(buffer, env, rows.get(b.buffer)?.write);
    }
    const flops = k.members.reduce((sum, m) => sum + nodeFlops(nodes.get(m)!, typeOf, env), 0);
    const internalBarriers = dispatched.flatMap((p) => (p.after ? [p.after] : []));
    const barrier = barrierBefore.get(k.name);
    return {
      name: k.name,
      kind: formatKind(k.kind),
      dispatches: dispatched.map((p) => p.name),
      internalBarriers,
      ...(barrier !== undefined ? { barrier } : {}),
      flops,
      bytes: read + written,
      bytesRead: read,
      bytesWritten: written,
    };
  });
  const order = kernels.flatMap((k) => k.dispatches);
  const stray = plan.kernels.findIndex((p, i) => p.name !== order[i]);
  if (stray >= 0) throw new Error(`plan ${plan.graph} dispatches ${plan.kernels[stray]!.name} where its schedule has ${order[stray] ?? 'no kernel'}`);

  const dispatchesPerLayer = Array.from({ length: layers }, () => 0);
  for (const p of plan.kernels) {
    if (p.layer !== undefined && p.layer < layers) dispatchesPerLayer[p.layer]!++;
  }
  const barriers = (graph.schedule ?? []).flatMap((item) =>
    item.item === 'barrier'
      ? [
          {
            reason: item.reason,
            producers: item.producers,
            consumers: item.consumers,
            buffers: item.buffers.map((b) => formatBuffer(graph, b)),
            unfused: item.unfused,
          },
        ]
      : [],
  );
  const activations = activationBytes(plan, env);
  return {
    graph: graph.name,
    layers,
    env,
    dispatches: plan.kernels.length,
    dispatchesPerLayer,
    dispatchesOutsideLayers: plan.kernels.length - dispatchesPerLayer.reduce((s, x) => s + x, 0),
    barriers,
    kernels,
    flops: kernels.reduce((s, k) => s + k.flops, 0),
    bytes: kernels.reduce((s, k) => s + k.bytes, 0),
    peakActivationBytes: activations.planned,
    peakActivationBytesUnplanned: activations.unplanned,
  };
}

const count = (n: number): string => n.toLocaleString('en-US');

/** Bytes for a reader: in the largest binary unit, with the exact count unless `exact` is false. */
export function bytesText(n: number, exact = true): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : exact ? `${v.toFixed(1)} ${units[u]} (${count(n)} B)` : `${v.toFixed(1)} ${units[u]}`;
}

/** The stats for a reader: counts, each barrier with its reason, a kernel table, activation memory. */
export function formatStats(s: GraphStats): string {
  const env = envText(s.env);
  const perLayer = new Set(s.dispatchesPerLayer);
  const layers = perLayer.size === 1 ? `${[...perLayer][0]} per layer × ${s.layers}` : `per layer ${s.dispatchesPerLayer.join(', ')}`;
  const name = Math.max(6, ...s.kernels.map((k) => k.name.length));
  const kind = Math.max(8, ...s.kernels.map((k) => k.kind.length));
  const width = Math.max(5, count(s.flops).length, count(s.bytes).length);
  const row = (a: string, b: string, c: string, d: string, e: string): string =>
    `  ${a.padEnd(name)}  ${b.padEnd(kind)}  ${c.padStart(3)}  ${d.padStart(width)}  ${e.padStart(width)}`;
  const lines = [
    `graph ${s.graph}: ${s.layers} layers, sizes at ${env}`,
    `dispatches: ${s.dispatches} per run (${layers}, ${s.dispatchesOutsideLayers} outside layers)`,
    `barriers: ${s.barriers.length}`,
    ...s.barriers.flatMap((b, i) => [
      `  ${i}: ${b.producers.join(', ')} -> ${b.consumers.join(', ')} on ${b.buffers.join(', ')}`,
      `     reason: ${b.reason}`,
      `     unfused: ${b.unfused}`,
    ]),
    `kernels: ${s.kernels.length}`,
    row('kernel', 'kind', 'n', 'FLOPs', 'bytes'),
    ...s.kernels.flatMap((k) => [
      row(k.name, k.kind, String(k.dispatches.length), count(k.flops), count(k.bytes)),
      ...k.internalBarriers.map((b) => `    between its dispatches: ${b}`),
    ]),
    row('total', '', String(s.dispatches), count(s.flops), count(s.bytes)),
    `activations: ${bytesText(s.peakActivationBytes)} planned, ${bytesText(s.peakActivationBytesUnplanned)} unplanned`,
  ];
  return lines.join('\n') + '\n';
}

function envText(env: Env): string {
  const text = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return text || 'no symbols';
}

/** The kernels of two schedules in pairs: those of one name together, in an order both keep (a longest common subsequence of names). */
function alignKernels(a: readonly KernelStats[], b: readonly KernelStats[]): [KernelStats | undefined, KernelStats | undefined][] {
  // common[i][j]: the most names a[i..] and b[j..] have in common, in order
  const common = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i]![j] = a[i]!.name === b[j]!.name ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
    }
  }
  const pairs: [KernelStats | undefined, KernelStats | undefined][] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i]!.name === b[j]!.name) pairs.push([a[i++], b[j++]]);
    else if (j === b.length || (i < a.length && common[i + 1]![j]! >= common[i]![j + 1]!)) pairs.push([a[i++], undefined]);
    else pairs.push([undefined, b[j++]]);
  }
  return pairs;
}

/**
 * Two graphs' schedules side by side for a reader, kernel by kernel, those of one name on one row: each kernel's
 * kind, dispatches and bytes read and written, and above it the reason of the barrier before it (once where both
 * graphs have the same).
 */
export function formatSchedules(left: GraphStats, right: GraphStats): string {
  const sides = [left, right] as const;
  const pairs = alignKernels(left.kernels, right.kernels);
  const cells = (k: KernelStats | undefined): string[] =>
    k ? [k.kind, String(k.dispatches.length), count(k.bytesRead), count(k.bytesWritten)] : ['', '', '', ''];
  const totals = (s: GraphStats): string[] => ['', String(s.dispatches), count(sumOf(s, 'bytesRead')), count(sumOf(s, 'bytesWritten'))];
  const rows = [
    ['kernel', ...['kind', 'n', 'read', 'written'], ...['kind', 'n', 'read', 'written']],
    ...pairs.map(([a, b]) => [(a ?? b)!.name, ...cells(a), ...cells(b)]),
    ['total', ...totals(left), ...totals(right)],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const text = (r: readonly string[]): string => {
    const cell = (c: number): string => (c % 4 === 1 || c === 0 ? r[c]!.padEnd(widths[c]!) : r[c]!.padStart(widths[c]!));
    const side = (from: number): string => [from, from + 1, from + 2, from + 3].map(cell).join('  ');
    return `  ${cell(0)}  | ${side(1)}  | ${side(5)}`.trimEnd();
  };
  const sideWidth = (from: number): number => widths.slice(from, from + 4).reduce((s, w) => s + w, 0) + 6;
  const barrierLines = (a: KernelStats | undefined, b: KernelStats | undefined): string[] => {
    const reasons = [a, b].map((k, i) => (k?.barrier !== undefined ? sides[i]!.barriers[k.barrier]!.reason : undefined));
    if (reasons[0] !== undefined && reasons[0] === reasons[1]) return [`    barrier: ${reasons[0]}`];
    return reasons.flatMap((r, i) => (r === undefined ? [] : [`    barrier in ${sides[i]!.graph}: ${r}`]));
  };
  const lines = [
    ...sides.map((s) => `${s.graph}: sizes at ${envText(s.env)}; ${s.dispatches} dispatches, ${s.barriers.length} barriers`),
    `  ${''.padEnd(widths[0]!)}  | ${left.graph.padEnd(sideWidth(1) + 2)}| ${right.graph}`,
    text(rows[0]!),
    ...pairs.flatMap(([a, b], i) => [...barrierLines(a, b), text(rows[i + 1]!)]),
    text(rows[rows.length - 1]!),
  ];
  return lines.join('\n') + '\n';
}

function sumOf(s: GraphStats, field: 'bytesRead' | 'bytesWritten'): number {
  return s.kernels.reduce((sum, k) => sum + k[field], 0);
}
