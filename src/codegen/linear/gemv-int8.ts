// The int8 GEMV (decode with matmul 'int8', where w has an int8 form): each workgroup quantizes its x row per
// 32-wide block into workgroup memory as the int8 tiles do, then each lane takes half-blocks of w 16 bytes at a
// time and sums dot4I8Packed's exact integer products times the two scales; groups of 64 lanes as in gemv.ts.
import { kernelSource, preciseMath, type KernelSource } from '../wgsl.js';
import { weightFormats } from '../../weights/formats.js';
import { epilogueOf } from './epilogue.js';
import { gemvFrame } from './gemv.js';
import { linearInputs } from './inputs.js';
import { quantizeBlockWgsl } from './int8-staging.js';
import { GEMV_LANES as LANES, INT8_BLOCK, type LinearOptions, type LinearSpec } from './spec.js';

/** Half-blocks per lane and per dot a lane loads before it multiplies. */
const UNROLL = 4;

export function gemvInt8Kernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const format = weightFormats[o.weights];
  const form = format.wgsl.int8;
  if (!form) throw new Error(`${o.weights} weights have no int8 form`);
  if (s.k % INT8_BLOCK !== 0) throw new Error(`int8 matmuls need K a multiple of ${INT8_BLOCK}, K is ${s.k}`);
  const blocks = s.k / INT8_BLOCK;
  const halves = 2 * blocks;
  const ep = epilogueOf(s);
  const { threads, entry, finish, prologue, reductions, workgroups } = gemvFrame(s, o, ep);
  // w as vec4<u32> where the form reads quads from that binding, else as the format binds it
  const inputs = linearInputs(s, o.weights, 'vec4s');
  const bindings = form.quads ? inputs.bindings.map((b) => (b.var === 'w' ? { ...b, type: 'vec4<u32>' as const } : b)) : inputs.bindings;
  const count = s.n * s.k;
  const wFunctions = form.quads
    ? form.quads(count)
    : `${form.wgsl(count)}
fn wQuad(block: u32, h: u32) -> vec4<u32> { return vec4<u32>(wInt8(block, 4u * h), wInt8(block, 4u * h + 1u), wInt8(block, 4u * h + 2u), wInt8(block, 4u * h + 3u)); }`;
  // Each lane keeps `unroll` half-blocks of both dots' rows in flight — half-blocks lane, lane + 64, … — loading
  // the next before it multiplies these, and the first before the norm's reduction and the quantization
  const unroll = Math.min(UNROLL, Math.ceil(halves / LANES));
  const stride = LANES * unroll;
  const exact = halves % stride === 0;
  const js = Array.from({ length: unroll }, (_, j) => j);
  const at = (j: number, h: string): string => (exact ? `(${h} + ${j * LANES}u)` : `min(${h} + ${j * LANES}u, ${halves - 1}u)`);
  const load = (h: string, indent: string): string =>
    js
      .map((j) => `${indent}qa${j} = wQuad(r0 + (${at(j, h)} >> 1u), ${at(j, h)} & 1u);\n${indent}qb${j} = wQuad(r1 + (${at(j, h)} >> 1u), ${at(j, h)} & 1u);`)
      .join('\n');
  // the scale of a lane's half: the block's, or the half's own where the form has one per 16 values
  const halfOf = (hb: string): string => (form.scales === 2 ? `${hb} & 1u` : '0u');
  const uses = js
    .map((j) => {
      const offset = form.offset ? `\n      if ((hb & 1u) == 0u) { part -= xs[b] * vec2<f32>(wOffset(r0 + b), wOffset(r1 + b)); }` : '';
      const body = `let hb = h0 + ${j * LANES}u;
      let b = hb >> 1u;
      let xv = xq[hb];
      var part = xd[b] * vec2<f32>(f32(dots(xv, qa${j})) * wScale(r0 + b, ${halfOf('hb')}), f32(dots(xv, qb${j})) * wScale(r1 + b, ${halfOf('hb')}));${offset}
      acc += part;`;
      return exact || j === 0 ? `    {\n      ${body}\n    }` : `    if (h0 + ${j * LANES}u < ${halves}u) {\n      ${body}\n    }`;
    })
    .join('\n');
  return kernelSource(
    [...bindings, ...ep.bindings],
    `
${reductions}
// the x row quantized: half-block h of block b at 2b + h (four words of four int8), each block's scale${form.offset ? ' and sum' : ''}
var<workgroup> xq: array<vec4<u32>, ${halves}>;
var<workgroup> xd: array<f32, ${blocks}>;${form.offset ? `\nvar<workgroup> xs: array<f32, ${blocks}>;` : ''}
var<private> xBase: u32;
${preciseMath}

${wFunctions}

fn dots(a: vec4<u32>, b: vec4<u32>) -> i32 {
  return dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y) + dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w);
}

${quantizeBlockWgsl(s)}

${ep.emit}

${entry}
  let r0 = w0 * ${blocks}u;
  let r1 = w1 * ${blocks}u;
${js.map((j) => `  var qa${j}: vec4<u32>;\n  var qb${j}: vec4<u32>;`).join('\n')}
${load('lane', '  ')}${prologue}
  for (var b = tid; b < ${blocks}u; b += ${threads}u) {
    let q = quantizeBlock(b);
    xq[2u * b] = vec4<u32>(q.words[0], q.words[1], q.words[2], q.words[3]);
    xq[2u * b + 1u] = vec4<u32>(q.words[4], q.words[5], q.words[6], q.words[7]);
    xd[b] = q.d;${form.offset ? '\n    xs[b] = q.sum;' : ''}
  }
  workgroupBarrier();
  var acc = vec2<f32>(0.0);
  for (var h0 = lane; h0 < ${halves}u; h0 += ${stride}u) {
${uses}
    if (h0 + ${stride}u < ${halves}u) {
${load(`h0 + ${stride}u`, '      ')}
    }
  }
${finish}`,
    workgroups,
    o.subgroups,
  );
}
