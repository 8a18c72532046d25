// The int8 tile on subgroup matrices (the tensor cores): int8.ts's computation with each block's 16×16×32 i8×i8→i32
// products stored to the subgroup's own workgroup memory and scaled from there into float32 accumulators. 8 subgroups
// of 32 own the 64×128 tile; load offsets count int8 elements or words, as the device's do (Gpu.subgroupMatrix.int8Unit).
import { kernelSource, preciseMath, type KernelSource } from '../wgsl.js';
import { epilogueOf } from './epilogue.js';
import { blockLoop, int8Tile, stagingFunctions, stagingPrivates, stagingSetup, WORDS, type StagingLayout } from './int8-staging.js';
import { INT8_BLOCK, INT8_MATRIX, int8MatrixBytes, TILE_HALF, type LinearOptions, type LinearSpec } from './spec.js';
import { emits, tileStores, type LaneColumns, type TileOutput } from './tiled.js';

const BM = INT8_MATRIX.BM;
const BN = 2 * TILE_HALF;
const THREADS = INT8_MATRIX.threads;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The invocation's columns: two adjacent from 16·(s % 4) + 2·(l % 8) in each half. */
const lane: LaneColumns = { width: 2, offset: '(sg % 4u) * 16u + 2u * (sl % 8u)' };

/**
 * How a subgroup takes a block's 16×16 product: on its subgroup matrices, or written out (each of 32 consecutive
 * invocations summing 8 of the 256 entries with dot4I8Packed from the same staged words into the same product
 * memory, as the matrix loads and store are read: x row-major, w column-major, strides of 32 int8, the product
 * row-major) — the same tile everywhere else, which the tests run on devices without subgroup matrices.
 */
export type MatrixProducts = 'subgroup-matrix' | 'written-out';

export function int8MatrixTiledKernel(s: LinearSpec, o: LinearOptions, products: MatrixProducts = 'subgroup-matrix'): KernelSource {
  const ep = epilogueOf(s);
  return int8MatrixTileKernel(s, o, { bindings: ep.bindings, functions: ep.emit, stores: (i, l) => emits(ep, i, l) }, 1, products);
}

/** The tile whose sums go to `out`; with `splits` above 1 it covers one of that many ranges of K's blocks (workgroup z). */
export function int8MatrixTileKernel(s: LinearSpec, o: LinearOptions, out: TileOutput, splits = 1, products: MatrixProducts = 'subgroup-matrix'): KernelSource {
  const { form: int8, quads, bindings, wFunctions, wRow, wLive, bBegin, bEnd, origin, workgroups } = int8Tile(s, o, BM, splits);
  if (int8.scales !== 1) throw new Error(`${o.weights} weights have no int8 form with a scale a block`);
  if (int8MatrixBytes(int8.offset) > o.maxWorkgroupBytes) throw new Error(`the int8 matrix tile does not fit ${o.maxWorkgroupBytes} bytes of workgroup memory`);
  // a block's four products a subgroup takes between two barriers: as many as workgroup memory holds
  const batch = [4, 2, 1].find((n) => int8MatrixBytes(int8.offset, n) <= o.maxWorkgroupBytes)!;
  const wordsEach = (BN * WORDS) / THREADS;
  const tileElements = INT8_MATRIX.M * INT8_MATRIX.N;
  // accumulator row i = 4a + k: row tile 2·(s / 4) + a, row l / 8 + 4k in it
  const rowOf = (i: number): string => `(2u * (sg / 4u) + ${Math.floor(i / 4)}u) * 16u + sl / 8u + ${4 * (i % 4)}u`;
  // offsets first: every read of a buffer comes before a barrier that the next write into it follows
  const offsets = int8.offset
    ? `
    {
      let wo0 = vec2<f32>(Wo[buf * ${BN}u + cl], Wo[buf * ${BN}u + cl + 1u]);
      let wo1 = vec2<f32>(Wo[buf * ${BN}u + ${TILE_HALF}u + cl], Wo[buf * ${BN}u + ${TILE_HALF}u + cl + 1u]);
${range(8)
  .map((i) => `      acc0_${i} -= Xs[buf * ${BM}u + ${rowOf(i)}] * wo0;\n      acc1_${i} -= Xs[buf * ${BM}u + ${rowOf(i)}] * wo1;`)
  .join('\n')}
    }`
    : '';
  // the first staged x row of row tile 2·(s / 4) + a, and w column of column tile s % 4 + 4h, in buffer buf
  const xTile = (a: number): string => `buf * ${BM}u + (2u * (sg / 4u) + ${a}u) * 16u`;
  const wTile = (h: number): string => `buf * ${BN}u + (sg % 4u + ${4 * h}u) * 16u`;
  // a staged row (x) or column (w) is a block: its offsets and stride, in the unit the device's loads count
  const row = o.int8MatrixUnit === 'word' ? WORDS : INT8_BLOCK;
  const product = (a: number, h: number, slot: number): string =>
    products === 'subgroup-matrix'
      ? `      let left = subgroupMatrixLoad<subgroup_matrix_left<i8, ${INT8_MATRIX.K}, ${INT8_MATRIX.M}>, row_major>(&Xq, (${xTile(a)}) * ${row}u, ${row}u);
      let right = subgroupMatrixLoad<subgroup_matrix_right<i8, ${INT8_MATRIX.N}, ${INT8_MATRIX.K}>, col_major>(&Wq, (${wTile(h)}) * ${row}u, ${row}u);
      subgroupMatrixStore<row_major>(&P, (sg * ${batch}u + ${slot}u) * ${tileElements}u, subgroupMatrixMultiply<i32>(left, right), ${INT8_MATRIX.N}u);`
      : `      for (var e = sl; e < ${tileElements}u; e += ${INT8_MATRIX.subgroupSize}u) {
        var sum = 0;
        for (var j = 0u; j < ${WORDS}u; j++) {
          sum += dot4I8Packed(bitcast<u32>(Xq[(${xTile(a)} + e / 16u) * ${WORDS}u + j]), bitcast<u32>(Wq[(${wTile(h)} + e % 16u) * ${WORDS}u + j]));
        }
        P[(sg * ${batch}u + ${slot}u) * ${tileElements}u + e] = sum;
      }`;
  // the four products (row tile a, column tile h) in batches: each batch multiplied and stored, a barrier, each
  // product scaled into the accumulators, a barrier before the next batch's stores
  const tiles = range(4).map((t) => ({ a: t >> 1, h: t & 1 }));
  const scaled = ({ a, h }: { a: number; h: number }, slot: number): string => `
      {
        let wd = vec2<f32>(Wd[buf * ${BN}u + ${h * TILE_HALF}u + cl], Wd[buf * ${BN}u + ${h * TILE_HALF}u + cl + 1u]);
${range(4)
  .map((k) => {
    const i = 4 * a + k;
    const at = `(sg * ${batch}u + ${slot}u) * ${tileElements}u + (sl / 8u + ${4 * k}u) * 16u + 2u * (sl % 8u)`;
    return `        acc${h}_${i} += vec2<f32>(vec2<i32>(P[${at}], P[${at} + 1u])) * (Xd[buf * ${BM}u + ${rowOf(i)}] * wd);`;
  })
  .join('\n')}
      }`;
  // (the last batch's reads of the products end before the barrier that ends each block in blockLoop)
  const block =
    offsets +
    range(4 / batch)
      .map((n) => {
        const group = tiles.slice(n * batch, (n + 1) * batch);
        return `
    {
${group.map((t, slot) => `      {\n${product(t.a, t.h, slot).replace(/^/gm, '  ')}\n      }`).join('\n')}
      workgroupBarrier();${group.map((t, slot) => scaled(t, slot)).join('')}${n + 1 < 4 / batch ? '\n      workgroupBarrier();' : ''}
    }`;
      })
      .join('');
  const stores = tileStores(8, rowOf, out, lane);
  // x row-major and w column-major, as the matrix loads read them
  const layout: StagingLayout = {
    xWord: (r, j) => `Xq[(buf * ${BM}u + ${r}) * ${WORDS}u + ${j}]`,
    xScale: (r) => `Xd[buf * ${BM}u + ${r}]`,
    xSum: (r) => `Xs[buf * ${BM}u + ${r}]`,
    wWord: (j) => `Wq[(buf * ${BN}u + wc) * ${WORDS}u + ${j}]`,
    wScale: () => `Wd[buf * ${BN}u + wc]`,
    wOffset: `Wo[buf * ${BN}u + wc]`,
    wordType: 'i32',
  };
  return kernelSource(
    [...bindings, ...out.bindings],
    `
// the matrix loads' offsets come from subgroup_id: uniform in each subgroup, as they must be
var<workgroup> Xq: array<i32, ${(2 * BM * INT8_BLOCK) / 4}>;
var<workgroup> Wq: array<i32, ${(2 * BN * INT8_BLOCK) / 4}>;
var<workgroup> Xd: array<f32, ${2 * BM}>;
var<workgroup> Wd: array<f32, ${2 * BN}>;${int8.offset ? `\nvar<workgroup> Xs: array<f32, ${2 * BM}>;\nvar<workgroup> Wo: array<f32, ${2 * BN}>;` : ''}
var<workgroup> P: array<i32, ${(THREADS / INT8_MATRIX.subgroupSize) * batch * tileElements}>;
${preciseMath}

${wFunctions}

${out.functions}

${stagingPrivates}

${stagingFunctions(s, int8, quads, BM, THREADS, wordsEach, layout)}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32${products === 'subgroup-matrix' ? ', @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sl: u32' : ''}) {${
      products === 'subgroup-matrix'
        ? ''
        : `
  let sg = lid / ${INT8_MATRIX.subgroupSize}u;
  let sl = lid % ${INT8_MATRIX.subgroupSize}u;`
    }
${origin}
  // this invocation's first column in its left-half column tile
  let cl = (sg % 4u) * 16u + 2u * (sl % 8u);
${stagingSetup(BM, THREADS, wordsEach, wRow, wLive)}
${range(8)
  .map((i) => `  var acc0_${i} = vec2<f32>(0.0);\n  var acc1_${i} = vec2<f32>(0.0);`)
  .join('\n')}
${blockLoop(bBegin, bEnd, block)}${stores}
}`,
    workgroups,
    products === 'subgroup-matrix',
    products === 'subgroup-matrix' ? ['chromium_experimental_subgroup_matrix'] : [],
  );
}
