// The dataflow IR: a graph of SSA tensor values with symbolic dimensions. Nodes are plain readonly data,
// discriminated on `op`; every value is defined once, before its uses.
import type { Affine } from '../affine.js';

export type DType = 'f32' | 'i32';

export interface TensorType {
  readonly dtype: DType;
  readonly shape: readonly Affine[];
}

/** Values that exist outside the node list: per-run inputs, resident weights, resident state (KV cache). */
export type DeclKind = 'input' | 'weight' | 'state';

export interface Decl {
  readonly kind: DeclKind;
  readonly name: string;
  readonly type: TensorType;
  /** a weight built from these checkpoint tensors stacked along the first axis (default: the tensor of its own name) */
  readonly from?: readonly string[];
}

type Node<O extends string, A extends readonly string[], T extends object = Record<never, never>> = {
  readonly op: O;
  readonly name: string;
  readonly args: Readonly<A>;
  readonly attrs: Readonly<T>;
  readonly type: TensorType;
  /** the transformer layer the node belongs to, where it belongs to one (set by the model's builder) */
  readonly layer?: number;
};

/** rows of `table` [V, D] picked by `ids` i32[T] → [T, D] */
export type Embed = Node<'embed', [table: string, ids: string]>;
/** x / sqrt(mean(x²) + eps) · weight over the last axis */
export type RmsNorm = Node<'rmsnorm', [x: string, weight: string], { eps: number }>;
/** rmsnorm over each head of a row: every headSize values of x [M, H·headSize] normalized alone, weight [headSize] */
export type HeadRmsNorm = Node<'head_rmsnorm', [x: string, weight: string], { eps: number; headSize: number }>;
/** x [M, K] · wᵀ, w stored [N, K] (K contiguous) → [M, N] */
export type Matmul = Node<'matmul', [x: string, w: string]>;
/** rotates adjacent pairs (x[2i], x[2i+1]) of each head by the angle of row r at position P+r; tables [S, headSize/2] */
export type Rope = Node<'rope', [x: string, cos: string, sin: string], { headSize: number }>;
/** writes x [T, D] into rows P..P+T-1 of the state `cache` [S, D]; the result is rows 0..P+T-1 of the cache */
export type KvWrite = Node<'kv_write', [cache: string, x: string]>;
/** q [T, H·hs] · k [P+T, KV·hs] per head (query head h reads kv head h / (H/KV)), scaled by 1/sqrt(hs),
 *  causal: row r sees keys 0..P+r → [H, T, P+T] */
export type AttnScores = Node<'attn_scores', [q: string, k: string], { heads: number; kvHeads: number; headSize: number }>;
/** softmax over the last axis; with causal=1 row r of [.., T, P+T] covers columns 0..P+r and the rest is 0 */
export type Softmax = Node<'softmax', [x: string], { causal: number }>;
/** p [H, T, P+T] · v [P+T, KV·hs] per head → [T, H·hs] */
export type AttnMix = Node<'attn_mix', [p: string, v: string], { heads: number; kvHeads: number; headSize: number }>;
export type Add = Node<'add', [a: string, b: string]>;
export type Mul = Node<'mul', [a: string, b: string]>;
/** x · sigmoid(x) */
export type Silu = Node<'silu', [x: string]>;
/** (x − mean) / sqrt(var + eps) · weight + bias over the last axis */
export type LayerNorm = Node<'layernorm', [x: string, weight: string, bias: string], { eps: number }>;
/** GELU, tanh approximation: 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))) */
export type Gelu = Node<'gelu', [x: string]>;
/** x [M, N] + bias [N] on every row */
export type AddBias = Node<'add_bias', [x: string, bias: string]>;
/** columns start..start+size-1 of x [M, N] → [M, size] */
export type Slice = Node<'slice', [x: string], { start: number; size: number }>;
/** rows of x [T, D] picked by `ids` i32[L] → [L, D]: the rows whose logits a prefill run returns */
export type TakeRows = Node<'take_rows', [x: string, ids: string]>;
/** the column of each row's largest value, the first on ties (run.c's greedy choice): x [M, N] → i32 [M] */
export type Argmax = Node<'argmax', [x: string]>;

export type Op =
  | Embed
  | RmsNorm
  | HeadRmsNorm
  | Matmul
  | Rope
  | KvWrite
  | AttnScores
  | Softmax
  | AttnMix
  | Add
  | Mul
  | Silu
  | Slice
  | LayerNorm
  | Gelu
  | AddBias
  | TakeRows
  | Argmax;
export type OpName = Op['op'];

export const elementwiseOps: ReadonlySet<OpName> = new Set(['add', 'mul', 'silu', 'gelu']);
export const reduceOps: ReadonlySet<OpName> = new Set(['rmsnorm', 'head_rmsnorm', 'layernorm', 'softmax', 'argmax']);
export const movementOps: ReadonlySet<OpName> = new Set(['embed', 'kv_write', 'slice', 'take_rows']);

/**
 * What an op needs of its inputs, which decides where kernel boundaries must fall:
 * token-parallel ops compute each row from the same row of their inputs; row-reductions need a whole
 * row (norms, softmax, and a matmul's dot products over the input row); cross-token ops need other
 * rows (attention reads the K/V of every position up to the row's).
 */
export type Parallelism = 'token-parallel' | 'row-reduction' | 'cross-token';

type OpOf<O extends OpName> = Extract<Op, { op: O }>;

/** Argument names (one per operand) and attribute names of an op, tied to its node type. */
export interface OpSignature<O extends OpName> {
  readonly args: OpOf<O>['args'];
  readonly attrs: readonly (keyof OpOf<O>['attrs'])[];
}

/** Arity and attribute names of every op: what the parser accepts and the printer writes. */
export const opSignatures: { readonly [O in OpName]: OpSignature<O> } = {
  embed: { args: ['table', 'ids'], attrs: [] },
  rmsnorm: { args: ['x', 'weight'], attrs: ['eps'] },
  head_rmsnorm: { args: ['x', 'weight'], attrs: ['eps', 'headSize'] },
  matmul: { args: ['x', 'w'], attrs: [] },
  rope: { args: ['x', 'cos', 'sin'], attrs: ['headSize'] },
  kv_write: { args: ['cache', 'x'], attrs: [] },
  attn_scores: { args: ['q', 'k'], attrs: ['heads', 'kvHeads', 'headSize'] },
  softmax: { args: ['x'], attrs: ['causal'] },
  attn_mix: { args: ['p', 'v'], attrs: ['heads', 'kvHeads', 'headSize'] },
  add: { args: ['a', 'b'], attrs: [] },
  mul: { args: ['a', 'b'], attrs: [] },
  silu: { args: ['x'], attrs: [] },
  slice: { args: ['x'], attrs: ['start', 'size'] },
  layernorm: { args: ['x', 'weight', 'bias'], attrs: ['eps'] },
  gelu: { args: ['x'], attrs: [] },
  add_bias: { args: ['x', 'bias'], attrs: [] },
  take_rows: { args: ['x', 'ids'], attrs: [] },
  argmax: { args: ['x'], attrs: [] },
};

/** What a fused linear kernel computes before its matmul: the RMSNorm of its input row, or nothing. */
export type LinearPrologue = 'none' | 'rmsnorm';
/**
 * What it does with each output: store it, add it to a residual, SiLU(gate)·up of a stacked gate/up, RoPE + KV append
 * of a stacked q/k/v or of a stacked q/k (v stacked apart: a Q4_K_M layer), or append it to a KV cache (that v).
 */
export type LinearEpilogue = 'store' | 'residual' | 'glu' | 'qkv' | 'qk' | 'append';

/**
 * The kind of a kernel: which codegen template emits it, as data the verifier checks against the kernel's
 * members (src/ir/kernel-kinds.ts) and codegen matches on exhaustively.
 */
export type KernelKind =
  /** one node by its op's own template */
  | { readonly kind: 'op'; readonly op: OpName }
  /** [rmsnorm,] matmul [, epilogue ops] */
  | { readonly kind: 'linear'; readonly prologue: LinearPrologue; readonly epilogue: LinearEpilogue }
  /** attn_scores, softmax {causal=1}, attn_mix: flash attention */
  | { readonly kind: 'attention'; readonly variant: 'causal' }
  /** a chain of elementwise ops over one shape */
  | { readonly kind: 'elementwise' };

/** A fusion a pass did not take, recorded where it decided: which nodes stayed out of the kernel, and why. */
export interface FusionDecline {
  readonly pass: string;
  /** the nodes the kernel did not take in (its readers or writers outside it) */
  readonly nodes: readonly string[];
  readonly reason: string;
}

/** One dispatch group: the nodes one kernel template computes, in graph order. */
export interface KernelItem {
  readonly item: 'kernel';
  readonly name: string;
  readonly kind: KernelKind;
  readonly members: readonly string[];
  /** fusions of this kernel with its neighbours that passes declined, with their reasons */
  readonly declined?: readonly FusionDecline[];
}

/**
 * A dependency between kernels: everything before it completes before anything after it starts.
 * `producers` wrote `buffers` that `consumers` read or overwrite; `reason` says which dependency it
 * guards, `unfused` why the kernels on either side are not one.
 */
export interface BarrierItem {
  readonly item: 'barrier';
  readonly reason: string;
  readonly producers: readonly string[];
  readonly consumers: readonly string[];
  readonly buffers: readonly string[];
  readonly unfused: string;
}

export type ScheduleItem = KernelItem | BarrierItem;

/**
 * One graph: symbols (e.g. T new tokens, P cache position), declarations, nodes in order, outputs.
 * After scheduling, `schedule` groups every node into kernels (in node order) separated by barriers;
 * after buffer planning, `slots` maps each materialized node to the activation buffer it lives in.
 */
export interface Graph {
  readonly name: string;
  readonly symbols: readonly string[];
  readonly decls: readonly Decl[];
  readonly nodes: readonly Op[];
  readonly outputs: readonly string[];
  readonly schedule?: readonly ScheduleItem[];
  readonly slots?: Readonly<Record<string, string>>;
}
