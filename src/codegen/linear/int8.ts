// The int8 tile (prefill with int8 matmuls): the tiled variant's 64×128 tile and accumulators over x quantized per
// row and 32-wide block and w's int8 blocks; per block, dot4I8Packed's exact integer products times the two scales,
// less w's offset times the x block's sum (docs/architecture.md). Blocks are double-buffered, one barrier a block.
import { kernelSource, preciseMath, type KernelSource } from '../wgsl.js';
import { epilogueOf } from './epilogue.js';
import { blockLoop, int8Tile, stagingFunctions, stagingPrivates, stagingSetup, WORDS, type StagingLayout } from './int8-staging.js';
import { TILE_HALF, type LinearOptions, type LinearSpec } from './spec.js';
import { emits, tileLane, tileStores, type TileOutput } from './tiled.js';

const HALF = TILE_HALF;
const BN = 2 * HALF;
/** output rows per invocation */
const TM = 4;
/** invocations per tile row: four columns of each half each */
const TX = HALF / 4;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * The rows of the tile, and the invocations: 256 (64 rows) where the adapter allows, else 128 (32 rows). Every
 * invocation stages x words and w words of a block, the first BM also an x row's scale and sum (stagingSetup).
 */
function tileFor(o: LinearOptions): { threads: number; BM: number } {
  const threads = o.maxInvocations >= 256 ? 256 : 128;
  const BM = (threads / TX) * TM;
  // two buffers of: x words, scales and sums, w words, scales and offsets (at most two scales a block)
  const bytes = 2 * (BM * WORDS * 4 + 2 * BM * 4 + BN * WORDS * 4 + 3 * BN * 4);
  if (bytes > o.maxWorkgroupBytes) throw new Error(`no ${BM}×${BN} int8 matmul tile fits ${o.maxWorkgroupBytes} bytes of workgroup memory`);
  return { threads, BM };
}

/** The int8 tile whose sums go to `out`; with `splits` above 1 it covers one of that many ranges of K's blocks (workgroup z). */
export function int8TiledKernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const ep = epilogueOf(s);
  return int8TileKernel(s, o, { bindings: ep.bindings, functions: ep.emit, stores: (i, lane) => emits(ep, i, lane) });
}

export function int8TileKernel(s: LinearSpec, o: LinearOptions, out: TileOutput, splits = 1): KernelSource {
  const { threads, BM } = tileFor(o);
  const { form: int8, quads, bindings, wFunctions, wRow, wLive, bBegin, bEnd, origin, workgroups } = int8Tile(s, o, BM, splits);
  // w words: each invocation stages `wordsEach` consecutive words of one column's block
  const wordsEach = (BN * WORDS) / threads;
  const stores = tileStores(TM, (i) => `ty * ${TM}u + ${i}u`, out, tileLane);
  // per part of a block (the whole block, or each half where w has a scale per 16 values): the integer dot products
  // of 4 x rows (a vec4 of words) with 4 w columns of each half, then added times the scales
  const parts = int8.scales;
  const partWords = WORDS / parts;
  // one half's sums at a time: 16 integer sums live rather than 32 (x's words are read once a half)
  const products = range(parts)
    .flatMap((part) => [0, 1].map((h) => [part, h] as const))
    .map(
      ([part, h]) => `
    {
      let xd = Xd[buf * ${BM / 4}u + ty];
      let wd = Wd[(buf * ${parts}u + ${part}u) * ${BN / 4}u + ${h ? `${TX}u + ` : ''}tx];
${range(TM)
  .map((i) => `      var s_${i} = vec4<i32>(0);`)
  .join('\n')}
      for (var j = ${part * partWords}u; j < ${(part + 1) * partWords}u; j++) {
        let a = Xq[(buf * ${WORDS}u + j) * ${BM / 4}u + ty];
        let b = Wq[(buf * ${WORDS}u + j) * ${BN / 4}u + ${h ? `${TX}u + ` : ''}tx];
${range(TM)
  .map((i) => `        s_${i} += vec4<i32>(dot4I8Packed(a[${i}], b.x), dot4I8Packed(a[${i}], b.y), dot4I8Packed(a[${i}], b.z), dot4I8Packed(a[${i}], b.w));`)
  .join('\n')}
      }
${range(TM)
  .map((i) => `      acc${h}_${i} += vec4<f32>(s_${i}) * (xd[${i}] * wd);`)
  .join('\n')}
    }`,
    )
    .join('')
    // offsets: each value less its block's offset, times the x block's sum (the dequantized x values')
    .concat(
      int8.offset
        ? `
    {
      let xs = Xs[buf * ${BM / 4}u + ty];
      let wo0 = Wo[buf * ${BN / 4}u + tx];
      let wo1 = Wo[buf * ${BN / 4}u + ${TX}u + tx];
${range(TM)
  .map((i) => `      acc0_${i} -= xs[${i}] * wo0;\n      acc1_${i} -= xs[${i}] * wo1;`)
  .join('\n')}
    }`
        : '',
    );
  const layout: StagingLayout = {
    xWord: (r, j) => `Xq[(buf * ${WORDS}u + ${j}) * ${BM / 4}u + ${r} / 4u][${r} % 4u]`,
    xScale: (r) => `Xd[buf * ${BM / 4}u + ${r} / 4u][${r} % 4u]`,
    xSum: (r) => `Xs[buf * ${BM / 4}u + ${r} / 4u][${r} % 4u]`,
    wWord: (j) => `Wq[(buf * ${WORDS}u + ${j}) * ${BN / 4}u + wc / 4u][wc % 4u]`,
    wScale: (part) => `Wd[(buf * ${parts}u + ${part}u) * ${BN / 4}u + wc / 4u][wc % 4u]`,
    wOffset: `Wo[buf * ${BN / 4}u + wc / 4u][wc % 4u]`,
    wordType: 'u32',
  };
  return kernelSource(
    [...bindings, ...out.bindings],
    `
var<workgroup> Xq: array<vec4<u32>, ${(2 * WORDS * BM) / 4}>;
var<workgroup> Xd: array<vec4<f32>, ${(2 * BM) / 4}>;
var<workgroup> Wq: array<vec4<u32>, ${(2 * WORDS * BN) / 4}>;
var<workgroup> Wd: array<vec4<f32>, ${(2 * parts * BN) / 4}>;${
      int8.offset ? `\nvar<workgroup> Xs: array<vec4<f32>, ${(2 * BM) / 4}>;\nvar<workgroup> Wo: array<vec4<f32>, ${(2 * BN) / 4}>;` : ''
    }
${preciseMath}

${wFunctions}

${out.functions}

${stagingPrivates}

${stagingFunctions(s, int8, quads, BM, threads, wordsEach, layout)}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % ${TX}u;
  let ty = lid / ${TX}u;
${origin}
${stagingSetup(BM, threads, wordsEach, wRow, wLive)}
${range(TM)
  .map((i) => `  var acc0_${i} = vec4<f32>(0.0);\n  var acc1_${i} = vec4<f32>(0.0);`)
  .join('\n')}
${blockLoop(bBegin, bEnd, products)}${stores}
}`,
    workgroups,
  );
}
