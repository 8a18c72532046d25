// The int8 GEMV (decode with matmul 'int8', where w has an int8 form): each workgroup quantizes its x row per
// 32-wide block into workgroup memory as the int8 tiles do, then each lane takes half-blocks of w 16 bytes at a
// time and sums dot4I8Packed's exact integer products times the two scales; groups of 64 lanes as in gemv.ts.
import { kernelSource, preciseMath, type KernelSource } from '../wgsl.js';
import { weightFormats } from '../../weights/formats.js';
import { epilogueOf } from './epilogue.js';
import { gemvFrame } from './gemv.js';
import { linearInputs, rowScale, xElement } from './inputs.js';
import { int8QuantizeWgsl } from './int8-staging.js';
import { GEMV_LANES as LANES, INT8_BLOCK, type LinearOptions, type LinearSpec } from './spec.js';

/**
 * Half-blocks a lane keeps in flight over all its dots' rows, 16 bytes each (an H100 read an 8B down projection,
 * K 14336, at 561 GB/s with one pair of dots a group and 8 in flight, 768 GB/s with two pairs and 16, and at
 * 2,085 GB/s with one pair and 16 once the scales loaded with the quants: scripts/device/gemv-rate.mjs).
 */
const IN_FLIGHT = 16;

/**
 * Quarter-blocks of x (8 values, and as many of the norm weight) an invocation holds in registers at most: read at
 * once, before the norm's reduction; beyond, it reads them in a loop, after the norm's own pass over x.
 */
const HELD_QUARTERS = 4;

export function gemvInt8Kernel(s: LinearSpec, o: LinearOptions): KernelSource {
  const format = weightFormats[o.weights];
  const form = format.wgsl.int8;
  if (!form) throw new Error(`${o.weights} weights have no int8 form`);
  if (s.k % INT8_BLOCK !== 0) throw new Error(`int8 matmuls need K a multiple of ${INT8_BLOCK}, K is ${s.k}`);
  const blocks = s.k / INT8_BLOCK;
  const halves = 2 * blocks;
  const ep = epilogueOf(s);
  const { threads, pairs, entry, finish, prologue, reductions, workgroups } = gemvFrame(s, o, ep);
  const ps = Array.from({ length: pairs }, (_, p) => p);
  // w as vec4<u32> where the form reads quads from that binding, else as the format binds it
  const inputs = linearInputs(s, o.weights, 'vec4s');
  // a lane's unit: a half-block, or two read by one load where the form has pairs
  const paired = form.pairs !== undefined;
  const vec4s = paired || form.quads !== undefined;
  const bindings = vec4s ? inputs.bindings.map((b) => (b.var === 'w' ? { ...b, type: 'vec4<u32>' as const } : b)) : inputs.bindings;
  const count = s.n * s.k;
  const span = paired ? 2 : 1;
  const units = halves / span;
  const wFunctions = form.pairs
    ? form.pairs(count)
    : form.quads
      ? form.quads(count)
      : `${form.wgsl(count)}
fn wQuad(block: u32, h: u32) -> vec4<u32> { return vec4<u32>(wInt8(block, 4u * h), wInt8(block, 4u * h + 1u), wInt8(block, 4u * h + 2u), wInt8(block, 4u * h + 3u)); }`;
  // Each lane keeps `unroll` units of each of its 2·pairs rows in flight — units lane, lane + 64, … — loading the
  // next before it multiplies these, and the first before the norm's reduction and the quantization
  const unroll = Math.min(Math.max(1, IN_FLIGHT / (2 * pairs * span)), Math.ceil(units / LANES));
  const stride = LANES * unroll;
  const exact = units % stride === 0;
  const js = Array.from({ length: unroll }, (_, j) => j);
  const at = (j: number, h: string): string => (exact ? `(${h} + ${j * LANES}u)` : `min(${h} + ${j * LANES}u, ${units - 1}u)`);
  // the scale of a lane's half: the block's, or the half's own where the form has one per 16 values
  const halfOf = (hb: string): string => (form.scales === 2 ? `${hb} & 1u` : '0u');
  // a half-block's quads and its scale (and the block's offset) are loaded together, so that no read of w waits
  // until its products are due
  const scaleOf = (r: string, hb: string): string =>
    form.offset ? `vec2<f32>(wScale(${r} + (${hb} >> 1u), ${halfOf(hb)}), wOffset(${r} + (${hb} >> 1u)))` : `wScale(${r} + (${hb} >> 1u), ${halfOf(hb)})`;
  const scaleType = form.offset ? 'vec2<f32>' : 'f32';
  const load = (h: string, indent: string): string =>
    ps
      .flatMap((p) =>
        js.map((j) =>
          ['a', 'b']
            .map((r) =>
              paired
                ? `${indent}t${r}${p}_${j} = wPair(r${r}${p} + ${at(j, h)});`
                : `${indent}q${r}${p}_${j} = wQuad(r${r}${p} + (${at(j, h)} >> 1u), ${at(j, h)} & 1u);\n${indent}s${r}${p}_${j} = ${scaleOf(`r${r}${p}`, at(j, h))};`,
            )
            .join('\n'),
        ),
      )
      .join('\n');
  const uses = js
    .map((j) => {
      const pair = (p: number): string => {
        const [sa, sb] = form.offset ? [`sa${p}_${j}.x`, `sb${p}_${j}.x`] : [`sa${p}_${j}`, `sb${p}_${j}`];
        const offset = form.offset ? `\n      if ((hb & 1u) == 0u) { part${p} -= xs[b] * vec2<f32>(sa${p}_${j}.y, sb${p}_${j}.y); }` : '';
        return `var part${p} = xd[b] * vec2<f32>(f32(dots(xv, qa${p}_${j})) * ${sa}, f32(dots(xv, qb${p}_${j})) * ${sb});${offset}
      acc${p} += part${p};`;
      };
      // a pair's two half-blocks: each one's dots and scales, then the offsets of their blocks
      const paired2 = (p: number): string => {
        const [ta, tb] = [`ta${p}_${j}`, `tb${p}_${j}`];
        const offset = form.offset ? `\n      acc${p} -= o0 * vec2<f32>(${ta}.s0.y, ${tb}.s0.y) + o1 * vec2<f32>(${ta}.s1.y, ${tb}.s1.y);` : '';
        return `acc${p} += d0 * vec2<f32>(f32(dots(x0, ${ta}.q0)) * ${ta}.s0.x, f32(dots(x0, ${tb}.q0)) * ${tb}.s0.x) + d1 * vec2<f32>(f32(dots(x1, ${ta}.q1)) * ${ta}.s1.x, f32(dots(x1, ${tb}.q1)) * ${tb}.s1.x);${offset}`;
      };
      const body = paired
        ? `let un = h0 + ${j * LANES}u;
      let h0_ = wPairHalf(un, 0u);
      let h1_ = wPairHalf(un, 1u);
      let x0 = xq[h0_];
      let x1 = xq[h1_];
      let d0 = xd[h0_ >> 1u];
      let d1 = xd[h1_ >> 1u];${form.offset ? '\n      let o0 = xs[h0_ >> 1u];\n      let o1 = xs[h1_ >> 1u];' : ''}
      ${ps.map(paired2).join('\n      ')}`
        : `let hb = h0 + ${j * LANES}u;
      let b = hb >> 1u;
      let xv = xq[hb];
      ${ps.map(pair).join('\n      ')}`;
      return exact || j === 0 ? `    {\n      ${body}\n    }` : `    if (h0 + ${j * LANES}u < ${units}u) {\n      ${body}\n    }`;
    })
    .join('\n');
  // x quantized as quantizeBlock (int8-staging.ts) does it, a quarter-block of 8 values an invocation: each block's
  // largest |x| and its sum of q over its four invocations (subgroup shuffles, else through workgroup memory), so
  // every invocation quantizes; the scale and rounding are int8QuantizeWgsl's, as quantizeBlock's are
  const quarters = s.k / 8;
  const iterations = Math.ceil(quarters / threads);
  // x (and the norm weight) read at once, so that the reads wait together (the 1B down projection's four in a row
  // took four read latencies); with a norm, before its reduction, which sums the same values' squares, so that they
  // are not read again after its barrier
  const held = iterations <= HELD_QUARTERS;
  const acrossBlock = (v: string, op: (a: string, b: string) => string, type: string): string =>
    o.subgroups
      ? `${v} = ${op(v, `subgroupShuffleXor(${v}, 1u)`)};\n    ${v} = ${op(v, `subgroupShuffleXor(${v}, 2u)`)};`
      : `red[tid] = vec2<f32>(f32(${v}), 0.0);
    workgroupBarrier();
    let q4_${v} = tid & ~3u;
    ${v} = ${op(op(`${type}(red[q4_${v}].x)`, `${type}(red[q4_${v} + 1u].x)`), op(`${type}(red[q4_${v} + 2u].x)`, `${type}(red[q4_${v} + 3u].x)`))};
    workgroupBarrier();`;
  const max = (a: string, b: string): string => `max(${a}, ${b})`;
  const plus = (a: string, b: string): string => `${a} + ${b}`;
  // quarter qi (its values v0, v1) quantized into xq, and its block's scale (and sum) by the block's first quarter
  const quantizeQuarter = `    let live = qi < ${quarters}u;
    let m = max(abs(v0), abs(v1));
    var amax = max(max(m.x, m.y), max(m.z, m.w));
    ${acrossBlock('amax', max, 'f32')}
    let di = int8Scale(amax);
    let d = di.x;
    let q0 = int8Round(v0, di.y);
    let q1 = int8Round(v1, di.y);${
      form.offset
        ? `
    let qs = q0 + q1;
    var qsum = qs.x + qs.y + qs.z + qs.w;
    ${acrossBlock('qsum', plus, 'i32')}`
        : ''
    }
    let b = qi / 4u;
    let r = qi % 4u;
    if (live) {
      xq[2u * b + r / 2u][2u * (r % 2u)] = pack4xI8(q0);
      xq[2u * b + r / 2u][2u * (r % 2u) + 1u] = pack4xI8(q1);
      if (r == 0u) {
        xd[b] = d;${form.offset ? '\n        xs[b] = d * f32(qsum);' : ''}
      }
    }`;
  const kkOf = (qi: string): string => `2u * min(${qi}, ${quarters - 1}u)`;
  const its = Array.from({ length: iterations }, (_, i) => i);
  const quantizeQuarters = held
    ? `${its
        .map(
          (i) => `  let kk${i} = ${kkOf(`${i * threads}u + tid`)};
  let x${i}a = x[xBase + kk${i}];
  let x${i}b = x[xBase + kk${i} + 1u];${
    s.norm
      ? `
  let n${i}a = normWeight[kk${i}];
  let n${i}b = normWeight[kk${i} + 1u];`
      : ''
  }`,
        )
        .join('\n')}${
        s.norm
          ? `
  var ss = 0.0;
${its.map((i) => `  ss += select(0.0, dot(x${i}a, x${i}a) + dot(x${i}b, x${i}b), ${i * threads}u + tid < ${quarters}u);`).join('\n')}
  let squares = sumWorkgroup(tid, vec2<f32>(ss, 0.0)${o.subgroups ? ', sgSize, sgLane' : ''}).x;
  scale = ${rowScale(s, 'squares')};`
          : ''
      }
${its
  .map(
    (i) => `  {
    let qi = ${i * threads}u + tid;
    let v0 = ${s.norm ? `n${i}a * (scale * x${i}a)` : `x${i}a`};
    let v1 = ${s.norm ? `n${i}b * (scale * x${i}b)` : `x${i}b`};
${quantizeQuarter}
  }`,
  )
  .join('\n')}`
    : `${prologue}
  for (var base = 0u; base < ${quarters}u; base += ${threads}u) {
    let qi = base + tid;
    let kk = ${kkOf('qi')};
    let v0 = ${xElement(s, 'xBase + kk', 'kk')};
    let v1 = ${xElement(s, 'xBase + kk + 1u', 'kk + 1u')};
${quantizeQuarter}
  }`;
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

${int8QuantizeWgsl}

fn dots(a: vec4<u32>, b: vec4<u32>) -> i32 {
  return dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y) + dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w);
}

${ep.emit}

${entry}
${ps.map((p) => `  let ra${p} = w0_${p} * ${blocks}u;\n  let rb${p} = w1_${p} * ${blocks}u;`).join('\n')}
${ps
  .flatMap((p) =>
    js.map((j) =>
      paired
        ? `  var ta${p}_${j}: WPair;\n  var tb${p}_${j}: WPair;`
        : `  var qa${p}_${j}: vec4<u32>;\n  var qb${p}_${j}: vec4<u32>;\n  var sa${p}_${j}: ${scaleType};\n  var sb${p}_${j}: ${scaleType};`,
    ),
  )
  .join('\n')}
${load('lane', '  ')}
${quantizeQuarters}
  workgroupBarrier();
${ps.map((p) => `  var acc${p} = vec2<f32>(0.0);`).join('\n')}
  for (var h0 = lane; h0 < ${units}u; h0 += ${stride}u) {
${uses}
    if (h0 + ${stride}u < ${units}u) {
${load(`h0 + ${stride}u`, '      ')}
    }
  }
${finish}`,
    workgroups,
    o.subgroups,
  );
}
