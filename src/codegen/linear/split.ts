// The split variant (prefill when the columns give few tiles and K is deep): the tile over one of S ranges of
// K writes raw sums by w row to a scratch buffer, and a reduce dispatch adds them in split order, then emits.
import * as A from '../../affine.js';
import { kernelSource, preciseMath, readBinding, u32Expr, wg, writeBinding, type KernelParts, type KernelSource } from '../wgsl.js';
import { epilogueOf } from './epilogue.js';
import { kSplits, TILE_HALF, type LinearOptions, type LinearSpec } from './spec.js';
import { accumulator, tileKernel, tileRows, type LaneColumns } from './tiled.js';

const THREADS = 64;

/** The partial tile (float32's, or `tile`) and the reduce; `name` names the scratch buffer of partial sums [splits, rows, n]. */
export function splitKernels(s: LinearSpec, o: LinearOptions, name: string, tile: typeof tileKernel = tileKernel): KernelParts {
  const splits = kSplits(s, o);
  const partial = { name: `${name}.partial`, shape: [A.constant(splits), s.rows, A.constant(s.n)] };
  const { wRow, wLive } = tileRows(s, epilogueOf(s));
  // raw sums by w row: local column h·TILE_HALF + the lane's offset + c
  const stores = (i: number, lane: LaneColumns): string[] =>
    [0, 1].flatMap((h) =>
      Array.from({ length: lane.width }, (_, c) => {
        const lc = `(${h * TILE_HALF + c}u + ${lane.offset})`;
        return `if (${wLive(lc)}) { partial[(wid.z * M + row) * ${s.n}u + ${wRow(lc)}] = ${accumulator(h, i, c)}; }`;
      }),
    );
  return {
    kernels: [
      { suffix: 'partial', source: tile(s, o, { bindings: [writeBinding(partial.name, 'partial')], functions: '', stores }, splits) },
      { suffix: 'reduce', source: reduceKernel(s, splits, partial.name), after: 'split-K: the reduce adds the partial sums of every K range' },
    ],
    scratch: [partial],
  };
}

/** Adds the `splits` partial sums of each output in split order and applies the epilogue: one invocation per (row, unit). */
function reduceKernel(s: LinearSpec, splits: number, partial: string): KernelSource {
  const ep = epilogueOf(s);
  const [r0, r1] = ep.wRows('unit');
  return kernelSource(
    [readBinding(partial, 'partial'), ...ep.bindings],
    `
${preciseMath}

${ep.emit}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let M = ${u32Expr(s.rows)};
  let row = wid.y;
  let unit = wid.x * ${THREADS}u + lane;
  if (unit >= ${ep.units}u || row >= M) { return; }
  var a = 0.0;
  var b = 0.0;
  for (var k = 0u; k < ${splits}u; k++) {
    let at = (k * M + row) * ${s.n}u;
    a += partial[at + ${r0}];${ep.dots === 2 ? `\n    b += partial[at + ${r1}];` : ''}
  }
  emit(row, unit, a, b);
}`,
    [wg(ep.units, THREADS), wg(s.rows), wg(1)],
  );
}
