// Lowers a verified graph to a Plan. Each kernel of the schedule (one per node when unscheduled) becomes
// one or more dispatches from its template; only values used outside their kernel, and outputs, get a
// buffer (a kv_write result lives in its cache, a planned value in its slot).
import * as A from '../affine.js';
import { materializedValues, scheduledKernels } from '../ir/schedule.js';
import { match } from 'ts-pattern';
import { kernelLayer } from '../ir/kernel-kinds.js';
import type { Graph, KernelItem, KernelKind, LinearEpilogue as LinearEpilogueKind, Op, TensorType } from '../ir/types.js';
import type { Plan, PlanBuffer, PlanKernel } from '../runtime/plan.js';
import { attentionKernels } from './attention.js';
import { elementwiseKernel } from './elementwise.js';
import { constDim, kernelFor, type KernelContext, type KernelSource } from './kernels.js';
import type { KernelParts } from './wgsl.js';
import { defaultLinearOptions, linearKernels, type LinearEpilogue, type LinearOptions, type LinearSpec } from './linear/index.js';
import { INT8_BLOCK } from './linear/spec.js';
import { weightFormats, type FormatName } from '../weights/formats.js';

/** What codegen needs of the device and the user: the adapter's workgroup limits, the weight formats, matmul and attention tiles. */
export interface CodegenOptions extends Omit<LinearOptions, 'weights'> {
  /**
   * the format each checkpoint tensor is kept in on the device (its file's, or the one asked for on load) where
   * every kernel that reads it decodes formats — linear weights and embedding tables; float32 elsewhere and by default
   */
  readonly formats?: ReadonlyMap<string, FormatName>;
  /** the format matmul weights are converted to on upload instead (where their rows are whole blocks of it) */
  readonly convert?: FormatName;
  /** the most query rows and keys of a prefill attention tile (8, 16 or 32 (default); smaller where the head does not fit) */
  readonly attentionTile: 8 | 16 | 32;
  /** keys beyond which decode attention takes the query heads of a kv head in one workgroup (default DECODE_GROUP_FROM) */
  readonly attentionGroupFrom?: number;
  /** prefill attention a query row an invocation where the head allows (AttentionOptions.prefillRows; default off) */
  readonly attentionRows?: boolean;
}
/** Workgroup memory attention tiles may use at most (a 32×32 tile of 64-wide heads takes 27 KiB). */
const ATTENTION_BYTES = 32768;

export const defaultCodegenOptions: CodegenOptions = (({ weights: _, ...linear }) => ({ ...linear, attentionTile: 32 as const }))(defaultLinearOptions);

/** The linear template's spec for a kernel of kind linear: its members picked by the kind's prologue and epilogue. */
function linearSpec(kind: Extract<KernelKind, { kind: 'linear' }>, members: readonly Op[], ctx: KernelContext): LinearSpec {
  const find = <O extends Op['op']>(op: O): Extract<Op, { op: O }>[] => members.filter((m): m is Extract<Op, { op: O }> => m.op === op);
  const mm = find('matmul')[0]!;
  const norm = kind.prologue === 'rmsnorm' ? find('rmsnorm')[0]! : undefined;
  const epilogue = match<LinearEpilogueKind, LinearEpilogue>(kind.epilogue)
    .with('store', () => ({ kind: 'store', out: ctx.bufferOf(mm.name) }))
    .with('residual', () => {
      const add = find('add')[0]!;
      return { kind: 'residual', residual: ctx.bufferOf(add.args[0] === mm.name ? add.args[1] : add.args[0]), out: ctx.bufferOf(add.name) };
    })
    .with('glu', () => ({ kind: 'glu', out: ctx.bufferOf(find('mul')[0]!.name) }))
    .with('qkv', 'qk', (stacked) => {
      const ropes = find('rope');
      const writes = find('kv_write');
      const qSlice = find('slice').find((s) => s.attrs.start === 0)!;
      const qRope = ropes.find((r) => r.args[0] === qSlice.name)!;
      const kRope = ropes.find((r) => r !== qRope)!;
      const kWrite = writes.find((w) => w.args[1] === kRope.name)!;
      const vWrite = writes.find((w) => w !== kWrite);
      return {
        kind: 'qkv',
        q: ctx.bufferOf(qRope.name),
        kCache: ctx.bufferOf(kWrite.name),
        ...(stacked === 'qkv' ? { vCache: ctx.bufferOf(vWrite!.name) } : {}),
        qSize: qSlice.attrs.size,
        kvSize: constDim(ctx.typeOf(kRope.name).shape[1]!, 'k width'),
        cos: ctx.bufferOf(qRope.args[1]),
        sin: ctx.bufferOf(qRope.args[2]),
        headSize: qRope.attrs.headSize,
      };
    })
    .with('append', () => ({ kind: 'append', cache: ctx.bufferOf(find('kv_write')[0]!.name) }))
    .exhaustive();
  const [rows, kk] = ctx.typeOf(mm.args[0]).shape;
  return {
    x: ctx.bufferOf(norm ? norm.args[0] : mm.args[0]),
    rows: rows!,
    k: constDim(kk!, 'matmul inner dimension'),
    n: constDim(mm.type.shape[1]!, 'matmul output width'),
    w: ctx.bufferOf(mm.args[1]),
    ...(norm ? { norm: { weight: ctx.bufferOf(norm.args[1]), eps: norm.attrs.eps } } : {}),
    epilogue,
  };
}

/**
 * Lowers `graph` to a plan. Weights that only linear kernels read stay quantized where the checkpoint holds
 * them so (dtype q8_0 / q4_0 in the plan), else with `weights: 'f16'` are stored as packed halves (dtype
 * f16); weights another kernel reads too keep float32.
 */
export function compileGraph(graph: Graph, options: CodegenOptions = defaultCodegenOptions): Plan {
  const types = new Map<string, TensorType>();
  const storage = new Map<string, string>();
  const buffers: PlanBuffer[] = [];
  const materialized = materializedValues(graph);
  for (const d of graph.decls) {
    types.set(d.name, d.type);
    storage.set(d.name, d.name);
    buffers.push({ name: d.name, role: d.kind, dtype: d.type.dtype, shape: d.type.shape, ...(d.from ? { sources: d.from } : {}) });
  }
  for (const n of graph.nodes) {
    types.set(n.name, n.type);
    if (n.op === 'kv_write') {
      storage.set(n.name, storage.get(n.args[0])!);
    } else {
      storage.set(n.name, n.name);
      if (materialized.has(n.name)) {
        const slot = graph.slots?.[n.name];
        buffers.push({ name: n.name, role: 'activation', dtype: n.type.dtype, shape: n.type.shape, ...(slot ? { slot } : {}) });
      }
    }
  }
  const formats = new Map<string, FormatName>();
  const ctx: KernelContext = {
    typeOf: (v) => types.get(v)!,
    bufferOf: (v) => storage.get(v)!,
    formatOf: (v) => formats.get(storage.get(v)!) ?? 'f32',
  };
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  const scheduled = scheduledKernels(graph);
  const specs = new Map(
    scheduled.flatMap((k) =>
      k.kind.kind === 'linear'
        ? [
            [
              k.name,
              linearSpec(
                k.kind,
                k.members.map((m) => nodes.get(m)!),
                ctx,
              ),
            ] as const,
          ]
        : [],
    ),
  );
  const linearWeights = new Set([...specs.values()].map((s) => s.w));
  for (const [name, format] of deviceFormats(graph, decodedWeights(graph, scheduled, specs), linearWeights, options)) formats.set(name, format);
  const kernels: PlanKernel[] = [];
  /** Appends the dispatches of schedule kernel `of`. */
  const emitter = (of: KernelItem) => {
    const layer = kernelLayer(of.members.map((m) => nodes.get(m)!));
    const emit = (name: string, op: string, k: KernelSource, after?: string, variant?: string): void => {
      kernels.push({
        name,
        scheduleKernel: of.name,
        ...(layer !== undefined ? { layer } : {}),
        op,
        ...(variant ? { variant } : {}),
        wgsl: k.wgsl,
        bindings: k.bindings.map((b, i) => ({ binding: i + 1, buffer: b.buffer, access: b.access })),
        workgroups: k.workgroups,
        ...(after ? { after } : {}),
      });
    };
    const emitParts = (name: string, op: string, parts: KernelParts, variant?: string): void => {
      for (const sc of parts.scratch) buffers.push({ name: sc.name, role: 'activation', dtype: 'f32', shape: sc.shape });
      for (const part of parts.kernels) emit(part.suffix ? `${name}.${part.suffix}` : name, op, part.source, part.after, variant);
    };
    return { emit, emitParts };
  };
  for (const k of scheduled) {
    const members = k.members.map((m) => nodes.get(m)!);
    const { emit, emitParts } = emitter(k);
    match(k.kind)
      .with({ kind: 'linear' }, () => {
        const spec = specs.get(k.name)!;
        const o = { ...options, weights: formats.get(spec.w) ?? ('f32' as const) };
        const linear = linearKernels(spec, o, k.name);
        emitParts(k.name, 'linear', linear, linear.variant);
      })
      .with({ kind: 'attention' }, () => {
        const [scores, , mix] = members as [Extract<Op, { op: 'attn_scores' }>, Op, Extract<Op, { op: 'attn_mix' }>];
        const [, rows, keys] = scores.type.shape;
        const cache = graph.decls.find((d) => d.name === ctx.bufferOf(scores.args[1]))!;
        const attn = attentionKernels(
          {
            name: mix.name,
            q: ctx.bufferOf(scores.args[0]),
            k: ctx.bufferOf(scores.args[1]),
            v: ctx.bufferOf(mix.args[1]),
            out: ctx.bufferOf(mix.name),
            heads: mix.attrs.heads,
            kvHeads: mix.attrs.kvHeads,
            headSize: mix.attrs.headSize,
            rows: rows!,
            keys: keys!,
            contextLength: constDim(cache.type.shape[0]!, 'KV cache length'),
          },
          {
            maxInvocations: options.maxInvocations,
            maxWorkgroupBytes: Math.min(options.maxWorkgroupBytes, ATTENTION_BYTES),
            maxTile: options.attentionTile,
            subgroups: options.subgroups,
            ...(options.attentionGroupFrom !== undefined ? { decodeGroupFrom: options.attentionGroupFrom } : {}),
            ...(options.attentionRows ? { prefillRows: true } : {}),
          },
        );
        emitParts(k.name, 'attention', attn);
      })
      .with({ kind: 'elementwise' }, () => emit(k.name, 'elementwise', elementwiseKernel(members, materialized, ctx)))
      .with({ kind: 'op' }, ({ op }) => emit(k.name, op, kernelFor(members[0]!, ctx)))
      .exhaustive();
  }
  return {
    graph: graph.name,
    symbols: graph.symbols,
    buffers: buffers.map((b) => {
      const dtype = formats.get(b.name);
      return dtype ? { ...b, dtype } : b;
    }),
    kernels,
    inputs: graph.decls.filter((d) => d.kind === 'input').map((d) => d.name),
    outputs: graph.outputs.map((o) => storage.get(o)!),
  };
}

/** Weights every reader of which decodes weight formats: the `w` of linear kernels and the tables of embed kernels. */
function decodedWeights(graph: Graph, scheduled: readonly KernelItem[], specs: ReadonlyMap<string, LinearSpec>): Set<string> {
  const weights = new Set(graph.decls.filter((d) => d.kind === 'weight').map((d) => d.name));
  const decoded = new Set(weights);
  const nodes = new Map(graph.nodes.map((n) => [n.name, n]));
  for (const k of scheduled) {
    const spec = specs.get(k.name);
    for (const m of k.members) {
      const n = nodes.get(m)!;
      n.args.forEach((a, i) => {
        if (!weights.has(a) || a === spec?.w || (n.op === 'embed' && i === 0 && k.members.length === 1)) return;
        decoded.delete(a);
      });
    }
  }
  return decoded;
}

/**
 * The device format of each weight that is not float32: the format every checkpoint tensor it is built from is
 * kept in, where its readers decode formats and its rows are whole blocks; float32 otherwise (converted on upload).
 */
function deviceFormats(graph: Graph, decoded: ReadonlySet<string>, linear: ReadonlySet<string>, options: CodegenOptions): Map<string, FormatName> {
  const formats = new Map<string, FormatName>();
  for (const d of graph.decls) {
    if (!decoded.has(d.name) || d.type.shape.length !== 2) continue;
    const k = d.type.shape[1]!;
    const convert =
      options.convert && linear.has(d.name) && A.isConstant(k) && k.c % weightFormats[options.convert].blockElements === 0 ? options.convert : undefined;
    // int8 matmuls read float matrices as Q8_0 (one copy on the device: decode reads the same blocks)
    const int8 = options.matmul === 'int8' && linear.has(d.name) && A.isConstant(k) && k.c % INT8_BLOCK === 0;
    const stored = (n: string): FormatName => options.formats?.get(n) ?? 'f32';
    const wanted = (d.from ?? [d.name]).map((n) => convert ?? (int8 && weightFormats[stored(n)].blockElements === 1 ? 'q8_0' : stored(n)));
    const format = weightFormats[wanted[0]!];
    if (wanted.every((f) => f === format.name) && A.isConstant(k) && k.c % format.blockElements === 0 && format.name !== 'f32')
      formats.set(d.name, format.name);
  }
  return formats;
}
