// What a fused linear kernel computes (LinearSpec), the device and user choices that size it (LinearOptions),
// and which variant runs it: a pure function of the spec's rows, K and columns and of the options.
import * as A from '../../affine.js';
import type { Affine } from '../../affine.js';
import { weightFormats, type FormatName, type Int8Form } from '../../weights/formats.js';
import { unitRowsOf } from './epilogue.js';

export type LinearEpilogue =
  | { readonly kind: 'store'; readonly out: string }
  /** out = residual + x·wᵀ */
  | { readonly kind: 'residual'; readonly residual: string; readonly out: string }
  /** w stacks gate over up ([2F, K]): out[:, j] = silu(gate_j) · up_j, out [M, F] */
  | { readonly kind: 'glu'; readonly out: string }
  /**
   * w stacks q, k and v (or q and k alone, without vCache): q columns are rotated into `q`, k columns rotated and v
   * columns appended to the caches at rows P..
   */
  | {
      readonly kind: 'qkv';
      readonly q: string;
      readonly kCache: string;
      readonly vCache?: string;
      readonly qSize: number;
      readonly kvSize: number;
      readonly cos: string;
      readonly sin: string;
      readonly headSize: number;
    }
  /** out is appended to the cache at rows P.. */
  | { readonly kind: 'append'; readonly cache: string };

export interface LinearSpec {
  readonly x: string;
  readonly rows: Affine;
  /** inner dimension */
  readonly k: number;
  /** rows of w */
  readonly n: number;
  readonly w: string;
  readonly norm?: { readonly weight: string; readonly eps: number };
  readonly epilogue: LinearEpilogue;
}

export interface LinearOptions {
  /** how the kernel's weights are stored on the device (src/weights/formats.ts) */
  readonly weights: FormatName;
  /** the adapter's maxComputeInvocationsPerWorkgroup */
  readonly maxInvocations: number;
  /** the adapter's maxComputeWorkgroupStorageSize */
  readonly maxWorkgroupBytes: number;
  /** constant-row (decode) kernels split K across invocations from this K on; below it a column sums in order */
  readonly splitKFrom: number;
  /** at most this many K ranges for a prefill tile whose columns give few tiles (1: never split) */
  readonly splitK: number;
  /**
   * reduce with subgroup operations (the device's subgroups at most 64 wide, in local-invocation order: Gpu.subgroups);
   * otherwise through workgroup memory alone
   */
  readonly subgroups: boolean;
  /**
   * how matmuls multiply: in float32, or as int8 blocks (x quantized per row and 32-wide block on the fly, w's int8
   * blocks) where w's format has an int8 form — prefill tiles (int8.ts) and decode GEMVs (gemv-int8.ts) alike.
   * 'int8' and 'auto' choose the same kernels; they differ in what codegen does with float matrices (compile.ts:
   * 'int8' holds them as Q8_0, 'auto' keeps them float)
   */
  readonly matmul: MatmulKind;
  /**
   * int8 tiles multiply on subgroup matrices (int8-matrix.ts) where the device has an int8 16×16×32 configuration and
   * subgroups of 32, the form has a scale a block and the tile fits workgroup memory; otherwise with dot4I8Packed
   */
  readonly int8Matrix: boolean;
  /** how the device's matrix loads count offsets and strides into packed int8 words (Gpu.subgroupMatrix.int8Unit) */
  readonly int8MatrixUnit: 'int8' | 'word';
  /**
   * a GEMV's group of 64 lanes takes 2, 4 or 8 dots — the most that still leave its grid this many workgroups
   * (gemvPairs): more dots a workgroup share its norm and x's quantization, fewer workgroups hide less latency.
   * Default 2048: on an H100, one pair a group was the fastest or within 5% for every 1B and 8B decode shape
   * (scripts/device/gemv-rate.mjs, BENCHMARKS.md), so more pairs are left to grids larger than those
   */
  readonly gemvWorkgroups: number;
}

/**
 * float: float32 products; int8: int8 blocks, float matrices held as Q8_0; auto: int8 blocks where the weights are
 * quantized (their format has an int8 form), float32 where they are float — the loader's default (api.ts).
 */
export type MatmulKind = 'float' | 'int8' | 'auto';

export const defaultLinearOptions: LinearOptions = {
  weights: 'f32',
  maxInvocations: 256,
  maxWorkgroupBytes: 16384,
  splitKFrom: 512,
  splitK: 4,
  subgroups: false,
  matmul: 'float',
  int8Matrix: false,
  int8MatrixUnit: 'int8',
  gemvWorkgroups: 2048,
};

export type LinearVariant = 'tiled' | 'split' | 'tiled-int8' | 'split-int8' | 'tiled-int8-matrix' | 'split-int8-matrix' | 'gemv' | 'gemv-int8' | 'column';

/** Output columns of a prefill tile: two halves of this many (see tiled.ts). */
export const TILE_HALF = 64;

/** A prefill tile splits K only when its columns give fewer tiles than this… */
const SPLIT_BELOW_TILES = 64;
/** …and each split still gets at least this much of K. */
const SPLIT_MIN_DEPTH = 1024;

/** Rows up to this many, when constant, run as GEMV rather than as a tile. */
const GEMV_MAX_ROWS = 4;

export function linearVariant(s: Pick<LinearSpec, 'rows' | 'k'> & Partial<Pick<LinearSpec, 'n' | 'epilogue'>>, o: LinearOptions): LinearVariant {
  if (s.k % 4 !== 0) return 'column';
  const form = weightFormats[o.weights].wgsl.int8;
  const int8 = o.matmul !== 'float' && form !== undefined && s.k % INT8_BLOCK === 0;
  if (A.isConstant(s.rows) && s.rows.c <= GEMV_MAX_ROWS) {
    if (s.k < o.splitKFrom) return 'column';
    return int8 && gemvInt8Bytes(s.k, form, gemvThreads(o.maxInvocations)) <= o.maxWorkgroupBytes ? 'gemv-int8' : 'gemv';
  }
  const matrix = int8 && o.int8Matrix && form.scales === 1 && int8MatrixBytes(form.offset) <= o.maxWorkgroupBytes;
  const split = kSplits(s, o) > 1;
  if (matrix) return split ? 'split-int8-matrix' : 'tiled-int8-matrix';
  if (int8) return split ? 'split-int8' : 'tiled-int8';
  return split ? 'split' : 'tiled';
}

/** K per int8 block: the quantization block of x, and the block of w's int8 form. */
export const INT8_BLOCK = 32;

/** Invocations per GEMV group: one group's dots. */
export const GEMV_LANES = 64;

/** Invocations of a GEMV's workgroup (gemv.ts, gemv-int8.ts) on a device allowing `maxInvocations`: 1 to 4 groups. */
export const gemvThreads = (maxInvocations: number): number => GEMV_LANES * Math.max(1, Math.min(4, Math.floor(maxInvocations / GEMV_LANES)));

/** Dot pairs a GEMV group takes at most. */
const GEMV_MAX_PAIRS = 4;

/**
 * Pairs of dots per GEMV group (gemv.ts, gemv-int8.ts): the most, up to GEMV_MAX_PAIRS, whose grid (`pairs` a group,
 * `groups` groups a workgroup, `rows` rows) still has o.gemvWorkgroups workgroups; 1 where none has.
 */
export function gemvPairs(pairsNeeded: number, groups: number, rows: number, o: Pick<LinearOptions, 'gemvWorkgroups'>): number {
  for (let p = GEMV_MAX_PAIRS; p > 1; p >>= 1) if (Math.ceil(pairsNeeded / (p * groups)) * rows >= o.gemvWorkgroups) return p;
  return 1;
}

/** Workgroup memory of the int8 GEMV: the quantized x row (K bytes), its scales (and sums), the reduction's vec2s. */
export function gemvInt8Bytes(k: number, form: Pick<Int8Form, 'offset'>, threads: number): number {
  return k + 4 * (k / INT8_BLOCK) * (form.offset ? 2 : 1) + 8 * threads;
}

/**
 * The subgroup-matrix int8 tile (int8-matrix.ts): its matrix configuration (M × N results over K, int8 in,
 * int32 out), the subgroup size its invocations' layout assumes, its rows and invocations.
 */
export const INT8_MATRIX = { M: 16, N: 16, K: 32, subgroupSize: 32, BM: 64, threads: 256 } as const;

/**
 * Whether a device of these subgroup matrix configurations and subgroup size runs the subgroup-matrix int8 tile: it
 * needs the configuration, subgroups of 32, and a probe's word on how the loads count offsets (`unit`).
 */
export function int8MatrixDevice(
  configs: readonly { componentType: string; resultComponentType: string; M: number; N: number; K: number }[],
  subgroupSize?: number,
  unit?: 'int8' | 'word',
): boolean {
  const { M, N, K } = INT8_MATRIX;
  const config = configs.some((c) => c.componentType === 'i8' && c.resultComponentType === 'i32' && c.M === M && c.N === N && c.K === K);
  return config && subgroupSize === INT8_MATRIX.subgroupSize && unit !== undefined;
}

/**
 * Workgroup memory that tile takes: two buffers of x and w words, scales (and offsets), and room for `products` of a
 * subgroup's four 16×16 i32 products per block at once (1, 2 or 4: fewer barriers a block the more).
 */
export function int8MatrixBytes(offset: boolean, products = 1): number {
  const rows = INT8_MATRIX.BM + 2 * TILE_HALF;
  const perBuffer = rows * INT8_BLOCK + rows * 4 * (offset ? 2 : 1);
  return 2 * perBuffer + (INT8_MATRIX.threads / INT8_MATRIX.subgroupSize) * products * INT8_MATRIX.M * INT8_MATRIX.N * 4;
}

/**
 * The columns of prefill tiles: `per` of `across` w rows, or where a unit's rows are halves of w (glu) `per` units of
 * `across`, each tile holding their rows from both halves of w.
 */
export function tileColumns(s: Pick<LinearSpec, 'n' | 'epilogue'>): { readonly across: number; readonly per: number } {
  return unitRowsOf[s.epilogue.kind] === 'halves' ? { across: s.n / 2, per: TILE_HALF } : { across: s.n, per: 2 * TILE_HALF };
}

/** How many K ranges a prefill tile runs over: more than one when its columns give few tiles and K is deep. */
export function kSplits(s: Pick<LinearSpec, 'k'> & Partial<Pick<LinearSpec, 'n' | 'epilogue'>>, o: LinearOptions): number {
  if (s.n === undefined || s.epilogue === undefined) return 1;
  const { across, per } = tileColumns({ n: s.n, epilogue: s.epilogue });
  if (Math.ceil(across / per) >= SPLIT_BELOW_TILES) return 1;
  return Math.max(1, Math.min(o.splitK, Math.floor(s.k / SPLIT_MIN_DEPTH)));
}
