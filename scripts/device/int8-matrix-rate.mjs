// Rate of a plain int8 GEMM C[M,N] (i32) = A[M,K] (i8) × B[N,K]ᵀ on Dawn's subgroup matrices (the tensor cores): kernel
// variants checked exactly against the CPU, then timed on 1B-Llama prefill shapes; one JSON line a (variant, shape), then
// the best a shape. --compile-only: pipelines only (WEBGPU_BACKEND=null); --emulate: scalar builtins (SwiftShader). GPU:
//   bash .device/vulkan-run node scripts/device/int8-matrix-rate.mjs [--variants name,...] [--quick] [--compile-only] [--emulate] [--robust]
import { parseArgs } from 'node:util';
import { openGpu } from '../../dist/src/runtime/gpu.js';
import { passTimer } from './pass-timer.mjs';

const { values } = parseArgs({
  options: {
    variants: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'compile-only': { type: 'boolean', default: false },
    // the matrix builtins replaced by scalar WGSL (matrixOps), to check the kernels' addressing where there are none
    emulate: { type: 'boolean', default: false },
    // keep Dawn's bounds clamps (off by default, as weft runs its models: every index here is in range)
    robust: { type: 'boolean', default: false },
    backend: { type: 'string' },
  },
});
const compileOnly = values['compile-only'];
const emulate = values.emulate;
const toggles = ['allow_unsafe_apis', 'use_vulkan_memory_model', ...(values.robust ? [] : ['disable_robustness'])];
const gpu = await openGpu({ backend: values.backend ?? process.env.WEBGPU_BACKEND, toggles });
const { device } = gpu;
const line = (o) => console.log(JSON.stringify(o));
const done = (code = 0) => {
  gpu.destroy();
  process.exit(code);
};
line({
  device: `${gpu.backend}: ${gpu.adapter}`,
  configs: gpu.subgroupMatrix.configs,
  subgroupSize: gpu.subgroupMatrix.subgroupSize,
  int8Unit: gpu.subgroupMatrix.int8Unit,
  toggles,
});

// ---- variants --------------------------------------------------------------------------------------------------
// SGM × SGN subgroups own a BM × BN tile (BM = SGM·TM·16, BN = SGN·TN·16), each a TM × TN grid of 16×16 i32
// accumulators; K advances KS a step (KS/32 matrix products per accumulator a step). Loads: `direct` (each subgroup
// loads its matrices from the storage buffers), `staged` (the workgroup copies the step's A and B slices to workgroup
// memory with vec4 loads, rows padded by `pad` bytes against bank conflicts: two barriers a step), `staged2` (as
// staged, double-buffered: the next slice is read into registers while this one is multiplied; one barrier a step).
const v = (load, SGM, SGN, TM, TN, KS, pad = load === 'direct' ? 0 : 16) => {
  const BM = SGM * TM * 16;
  const BN = SGN * TN * 16;
  return {
    name: `${load}-${BM}x${BN}-${SGM * SGN}sg-${TM}x${TN}-k${KS}${load !== 'direct' && pad !== 16 ? `-pad${pad}` : ''}`,
    load,
    SGM,
    SGN,
    TM,
    TN,
    KS,
    pad,
    BM,
    BN,
  };
};
const ALL = [
  v('direct', 2, 2, 2, 2, 32),
  v('direct', 2, 2, 2, 2, 64),
  v('direct', 4, 2, 2, 2, 64),
  v('direct', 2, 2, 4, 4, 32),
  v('direct', 2, 4, 4, 2, 64),
  v('staged', 2, 2, 2, 2, 64),
  v('staged', 4, 2, 2, 2, 64),
  v('staged', 2, 4, 4, 2, 64),
  v('staged2', 4, 2, 2, 2, 64),
  v('staged2', 2, 2, 2, 4, 64),
  v('staged2', 2, 4, 4, 2, 32),
  v('staged2', 2, 2, 4, 4, 32),
  v('staged2', 2, 4, 4, 2, 64),
];
const QUICK = ['direct-64x64-4sg-2x2-k32', 'direct-128x128-8sg-4x2-k64', 'staged-128x64-8sg-2x2-k64', 'staged2-128x128-8sg-4x2-k32'];
let variants = values.quick ? ALL.filter((x) => QUICK.includes(x.name)) : ALL;
if (values.variants) {
  const names = values.variants.split(',');
  const unknown = names.filter((n) => !ALL.some((x) => x.name === n));
  if (unknown.length) {
    line({ error: `unknown variants ${unknown.join(', ')}`, variants: ALL.map((x) => x.name) });
    done(1);
  }
  variants = ALL.filter((x) => names.includes(x.name));
}
// 1B Llama prefill at 512 tokens (QKV, O, gate+up, down), and a big square
const SHAPES = [
  { M: 512, N: 3072, K: 2048 },
  { M: 512, N: 2048, K: 2048 },
  { M: 512, N: 16384, K: 2048 },
  { M: 512, N: 2048, K: 8192 },
  { M: 4096, N: 4096, K: 4096 },
];
const shapes = values.quick ? [SHAPES[0], SHAPES[4]] : SHAPES;

/** workgroup memory of a variant: its A and B slices, padded rows, one or two buffers */
const workgroupBytes = (x) => (x.load === 'direct' ? 0 : (x.load === 'staged2' ? 2 : 1) * (x.BM + x.BN) * (x.KS + x.pad));
const params = (x) => ({
  variant: x.name,
  load: x.load,
  BM: x.BM,
  BN: x.BN,
  subgroups: x.SGM * x.SGN,
  tiles: `${x.TM}x${x.TN}`,
  KS: x.KS,
  pad: x.pad,
  workgroupBytes: workgroupBytes(x),
});

// ---- WGSL ------------------------------------------------------------------------------------------------------
const LEFT = 'subgroup_matrix_left<i8, 32, 16>'; // 16 rows × 32 columns (K)
const RIGHT = 'subgroup_matrix_right<i8, 16, 32>'; // 32 rows (K) × 16 columns
const RESULT = 'subgroup_matrix_result<i32, 16, 16>';
const range = (n) => Array.from({ length: n }, (_, i) => i);

/**
 * The subgroup matrix operations a kernel is written with: Dawn's builtins, or (`emulate`) scalar WGSL for devices
 * without them. Emulated, a left or right matrix is its offset and stride (read in `unit` as the builtins would read
 * them), read from memory when multiplied (which follows its load with no write to that memory between); each
 * invocation of a virtual subgroup of 32 (tid / 32) computes and stores entries sl, sl + 32, … of the 16×16 result.
 * `ptrs` the left and right matrices' arrays.
 */
function matrixOps(emulate, unit, [lp, rp]) {
  if (!emulate)
    return {
      left: (ptr, off, stride) => `subgroupMatrixLoad<${LEFT}, row_major>(&${ptr}, ${off}, ${stride})`,
      right: (ptr, off, stride) => `subgroupMatrixLoad<${RIGHT}, col_major>(&${ptr}, ${off}, ${stride})`,
      zero: `${RESULT}()`,
      mma: (a, b, acc) => `subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${acc})`,
      store: (off, acc, stride) => `subgroupMatrixStore<row_major>(&C, ${off}, ${acc}, ${stride})`,
      enable: 'enable subgroups;\nenable chromium_experimental_subgroup_matrix;',
      functions: '',
      sg: ', @builtin(subgroup_id) sg: u32',
      prelude: '',
    };
  // the int8 element that a left row (right column) starts at
  const element = (e) => (unit === 'word' ? `(${e}) * 4u` : `(${e})`);
  const byte = (p, i) => `extractBits(${p}[(${i}) / 4u], 8u * ((${i}) % 4u), 8u)`;
  return {
    // left row-major: row r at off + r·stride; right column-major: column c at off + c·stride
    left: (ptr, off, stride) => `vec2<u32>(${off}, ${stride})`,
    right: (ptr, off, stride) => `vec2<u32>(${off}, ${stride})`,
    zero: 'array<i32, 8>()',
    mma: (a, b, acc) => `emuMma(${a}, ${b}, ${acc}, sl)`,
    store: (off, acc, stride) => `emuStore(${off}, ${acc}, ${stride}, sl)`,
    enable: '',
    functions: `fn emuMma(a: vec2<u32>, b: vec2<u32>, acc: array<i32, 8>, sl: u32) -> array<i32, 8> {
  var r = acc;
  for (var t = 0u; t < 8u; t++) {
    let e = sl + 32u * t;
    let ra = ${element('a.x + (e / 16u) * a.y')};
    let cb = ${element('b.x + (e % 16u) * b.y')};
    var s = 0;
    for (var k = 0u; k < 32u; k++) { s += ${byte(lp, 'ra + k')} * ${byte(rp, 'cb + k')}; }
    r[t] += s;
  }
  return r;
}
fn emuStore(off: u32, acc: array<i32, 8>, stride: u32, sl: u32) {
  var v = acc;
  for (var t = 0u; t < 8u; t++) { let e = sl + 32u * t; C[off + (e / 16u) * stride + e % 16u] = v[t]; }
}`,
    sg: '',
    prelude: '\n  let sg = tid / 32u;\n  let sl = tid % 32u;',
  };
}

/**
 * The kernel of variant x for shape s. Every i8 offset and stride is computed in i32 words (4 int8) and handed to the
 * loads in the device's unit: words, or int8 elements (×4). The loads' offsets come from workgroup_id, subgroup_id and
 * loop counters only: uniform in each subgroup, as they must be.
 */
function kernel(x, { M, N, K }, unit, sgSize, emulate = false) {
  const { load, SGN, TM, TN, KS, BM, BN, pad } = x;
  const threads = x.SGM * SGN * (emulate ? 32 : sgSize);
  const ops = matrixOps(emulate, unit, load === 'direct' ? ['A', 'B'] : ['As', 'Bs']);
  const u = (words) => (unit === 'word' ? `${words}` : `(${words}) * 4u`);
  const us = (words) => `${unit === 'word' ? words : words * 4}u`;
  const accs = range(TM).flatMap((i) => range(TN).map((j) => `  var acc_${i}_${j} = ${ops.zero};`));
  const stores = range(TM).flatMap((i) =>
    range(TN).map((j) => `  ${ops.store(`(m0 + rs + ${16 * i}u) * ${N}u + n0 + cs + ${16 * j}u`, `acc_${i}_${j}`, `${N}u`)};`),
  );
  /** one K step's products: KS/32 sub-steps of TM lefts, TN rights, TM·TN multiply-accumulates */
  const products = (leftPtr, leftWord, rightPtr, rightWord, strideWords) =>
    range(KS / 32)
      .map(
        (kk) => `    {
${range(TM)
  .map((i) => `      let a${i} = ${ops.left(leftPtr, u(leftWord(i, kk)), us(strideWords))};`)
  .join('\n')}
${range(TN)
  .map((j) => `      let b${j} = ${ops.right(rightPtr, u(rightWord(j, kk)), us(strideWords))};`)
  .join('\n')}
${range(TM)
  .flatMap((i) => range(TN).map((j) => `      acc_${i}_${j} = ${ops.mma(`a${i}`, `b${j}`, `acc_${i}_${j}`)};`))
  .join('\n')}
    }`,
      )
      .join('\n');
  const head = `${ops.enable}
// ${x.name}: C[${M}, ${N}] = A[${M}, ${K}] × B[${N}, ${K}]ᵀ, offsets in ${unit === 'word' ? 'i32 words' : 'int8 elements'}${emulate ? ', emulated' : ''}`;
  const signature = `fn main(@builtin(workgroup_id) wid: vec3u${load !== 'direct' || emulate ? ', @builtin(local_invocation_index) tid: u32' : ''}${ops.sg}) {${ops.prelude}`;
  const origin = `  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  // this subgroup's rows and columns in the tile
  let rs = (sg / ${SGN}u) * ${16 * TM}u;
  let cs = (sg % ${SGN}u) * ${16 * TN}u;`;
  const Kw = K / 4;
  if (load === 'direct') {
    return `${head}
@group(0) @binding(0) var<storage, read> A: array<i32>;
@group(0) @binding(1) var<storage, read> B: array<i32>;
@group(0) @binding(2) var<storage, read_write> C: array<i32>;
${ops.functions}
@compute @workgroup_size(${threads})
${signature}
${origin}
${accs.join('\n')}
  for (var kw = 0u; kw < ${Kw}u; kw += ${KS / 4}u) {
${products(
  'A',
  (i, kk) => `(m0 + rs + ${16 * i}u) * ${Kw}u + kw + ${8 * kk}u`,
  'B',
  (j, kk) => `(n0 + cs + ${16 * j}u) * ${Kw}u + kw + ${8 * kk}u`,
  Kw,
)}
  }
${stores.join('\n')}
}`;
  }
  // staged: slices of BM (BN) rows × KS int8, row stride SW words, copied a vec4 (16 int8) at a time
  const SW = (KS + pad) / 4;
  const Q = KS / 16; // vec4 of a slice row
  const steps = K / KS;
  const copies = (rows) => ({ count: rows * Q, each: Math.ceil((rows * Q) / threads) });
  const ca = copies(BM);
  const cb = copies(BN);
  const bufs = load === 'staged2' ? 2 : 1;
  /** copy number p of this invocation: slice row and vec4 in it (guarded where the copies do not divide evenly) */
  const copy = (c, p, body) => {
    const idx = `tid + ${p * threads}u`;
    const inner = `{ let r = (${idx}) / ${Q}u; let q = (${idx}) % ${Q}u; ${body} }`;
    return (p + 1) * threads > c.count ? `if (${idx} < ${c.count}u) ${inner}` : inner;
  };
  const globalA = (step) => `A4[(m0 + r) * ${K / 16}u + (${step}) * ${Q}u + q]`;
  const globalB = (step) => `B4[(n0 + r) * ${K / 16}u + (${step}) * ${Q}u + q]`;
  const put = (arr, rows, buf, val) =>
    `let w = ${buf === '0' ? '' : `(${buf}) * ${rows * SW}u + `}r * ${SW}u + q * 4u; ${arr}[w] = ${val}.x; ${arr}[w + 1u] = ${val}.y; ${arr}[w + 2u] = ${val}.z; ${arr}[w + 3u] = ${val}.w;`;
  /** direct copies of step `step` into buffer `buf` */
  const copyStep = (step, buf) =>
    [
      ...range(ca.each).map((p) => `    ${copy(ca, p, `let v = ${globalA(step)}; ${put('As', BM, buf, 'v')}`)}`),
      ...range(cb.each).map((p) => `    ${copy(cb, p, `let v = ${globalB(step)}; ${put('Bs', BN, buf, 'v')}`)}`),
    ].join('\n');
  const compute = (buf) =>
    products(
      'As',
      (i, kk) => `${buf === '0' ? '' : `(${buf}) * ${BM * SW}u + `}(rs + ${16 * i}u) * ${SW}u + ${8 * kk}u`,
      'Bs',
      (j, kk) => `${buf === '0' ? '' : `(${buf}) * ${BN * SW}u + `}(cs + ${16 * j}u) * ${SW}u + ${8 * kk}u`,
      SW,
    );
  const decl = `${head}
@group(0) @binding(0) var<storage, read> A4: array<vec4<i32>>;
@group(0) @binding(1) var<storage, read> B4: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> C: array<i32>;
var<workgroup> As: array<i32, ${bufs * BM * SW}>;
var<workgroup> Bs: array<i32, ${bufs * BN * SW}>;
${ops.functions}
@compute @workgroup_size(${threads})
${signature}
${origin}
${accs.join('\n')}`;
  if (load === 'staged')
    return `${decl}
  for (var t = 0u; t < ${steps}u; t++) {
${copyStep('t', '0')}
    workgroupBarrier();
${compute('0')}
    workgroupBarrier();
  }
${stores.join('\n')}
}`;
  // staged2: the next step's vec4 read into registers before this step's products, written to the other buffer after
  // them; one barrier a step (the other buffer's last reads were before the previous step's barrier)
  const regs = [...range(ca.each).map((p) => `  var ra${p} = vec4<i32>();`), ...range(cb.each).map((p) => `  var rb${p} = vec4<i32>();`)];
  const fetch = (step) =>
    [
      ...range(ca.each).map((p) => `    ${copy(ca, p, `ra${p} = ${globalA(step)};`)}`),
      ...range(cb.each).map((p) => `    ${copy(cb, p, `rb${p} = ${globalB(step)};`)}`),
    ].join('\n');
  const spill = (buf) =>
    [
      ...range(ca.each).map((p) => `    ${copy(ca, p, put('As', BM, buf, `ra${p}`))}`),
      ...range(cb.each).map((p) => `    ${copy(cb, p, put('Bs', BN, buf, `rb${p}`))}`),
    ].join('\n');
  return `${decl}
${regs.join('\n')}
  {
${copyStep('0u', '0')}
  }
  workgroupBarrier();
  for (var t = 0u; t < ${steps}u; t++) {
    let cur = t & 1u;
    // the last step reads its own slice again (into a buffer nobody reads): no branch
    let next = min(t + 1u, ${steps - 1}u);
${fetch('next')}
${compute('cur')}
${spill('cur ^ 1u')}
    workgroupBarrier();
  }
${stores.join('\n')}
}`;
}

/** validation and internal errors of creating the variant's pipeline: the pipeline, or the message */
async function pipelineOf(code) {
  device.pushErrorScope('internal');
  device.pushErrorScope('validation');
  let pipeline;
  let thrown;
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (!errors.length) {
    try {
      pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    } catch (e) {
      thrown = e;
    }
  }
  const validation = await device.popErrorScope();
  const internal = await device.popErrorScope();
  if (errors.length) return { error: `compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join(' | ')}` };
  const err = thrown ?? validation ?? internal;
  if (err) return { error: `pipeline: ${String(err.message).split('\n').slice(0, 3).join(' / ')}` };
  return { pipeline };
}

// ---- which device ----------------------------------------------------------------------------------------------
const hasFeature = device.features.has('chromium-experimental-subgroup-matrix');
const i8 = gpu.subgroupMatrix.configs.some((c) => c.componentType === 'i8' && c.resultComponentType === 'i32' && c.M === 16 && c.N === 16 && c.K === 32);
const maxBytes = gpu.limits.maxComputeWorkgroupStorageSize;
const maxThreads = gpu.limits.maxComputeInvocationsPerWorkgroup;

if (compileOnly) {
  // Tint checks every kernel (both units; the null backend offers the feature without configurations); pipelines
  // are created where the variant fits this adapter's limits (their code generation is the real backend's)
  if (!hasFeature && !emulate) {
    line({ skipped: 'no chromium-experimental-subgroup-matrix feature' });
    done(0);
  }
  const sgSize = emulate ? 32 : (gpu.subgroupMatrix.subgroupSize ?? 32);
  let failed = 0;
  for (const x of variants) {
    const threads = x.SGM * x.SGN * sgSize;
    const fits = workgroupBytes(x) <= maxBytes && threads <= maxThreads;
    const row = { ...params(x), threads, fits, compiled: 0 };
    for (const unit of ['int8', 'word'])
      for (const s of [{ M: 2 * x.BM, N: 3 * x.BN, K: 256 }, ...SHAPES]) {
        const code = kernel(x, s, unit, sgSize, emulate);
        if (fits) {
          const r = await pipelineOf(code);
          if (r.error) row.error ??= `${unit} ${s.M}x${s.N}x${s.K}: ${r.error}`;
          else row.compiled++;
        } else {
          device.pushErrorScope('validation');
          const info = await device.createShaderModule({ code }).getCompilationInfo();
          await device.popErrorScope();
          const errors = info.messages.filter((m) => m.type === 'error');
          if (errors.length) row.error ??= `${unit} ${s.M}x${s.N}x${s.K}: compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join(' | ')}`;
          else row.compiled++;
        }
      }
    row.ok = !row.error;
    if (!row.ok) failed++;
    line(row);
  }
  line({ compileOnly: true, emulate, variants: variants.length, failed });
  done(failed ? 1 : 0);
}

if (!emulate && (!i8 || !gpu.subgroupMatrix.int8Unit || !gpu.subgroupMatrix.subgroupSize)) {
  line({
    skipped: !i8
      ? 'no i8 16×16×32 subgroup matrix configuration'
      : !gpu.subgroupMatrix.subgroupSize
        ? 'no single subgroup size'
        : 'no int8 load unit (the probe found no exact reading)',
  });
  done(0);
}
// emulated: both units' readings, virtual subgroups of 32, one small shape (a CPU device is slow)
const units = emulate ? ['int8', 'word'] : [gpu.subgroupMatrix.int8Unit];
const sgSize = emulate ? 32 : gpu.subgroupMatrix.subgroupSize;
const timedShapes = emulate ? [{ M: 256, N: 384, K: 512 }] : shapes;

// ---- data ------------------------------------------------------------------------------------------------------
let seed = 20240607;
/** random int8 (the whole range), packed 4 a word, low byte first */
function randomInt8(n) {
  const w = new Uint32Array(n / 4);
  for (let i = 0; i < w.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    let x = seed ^ (seed >>> 15);
    x = Math.imul(x, 0x2c1b3c6d) >>> 0;
    w[i] = (x ^ (x >>> 12)) >>> 0;
  }
  return new Int8Array(w.buffer);
}
const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
function upload(bytes) {
  const b = device.createBuffer({ size: bytes.byteLength, usage: STORAGE });
  device.queue.writeBuffer(b, 0, bytes);
  return b;
}
const dot = (a, b, m, n, K) => {
  let s = 0;
  for (let k = 0, i = m * K, j = n * K; k < K; k++) s += a[i + k] * b[j + k];
  return s;
};

function setup({ M, N, K }) {
  const a = randomInt8(M * K);
  const b = randomInt8(N * K);
  return { M, N, K, a, b, A: upload(a), B: upload(b), C: device.createBuffer({ size: M * N * 4, usage: STORAGE }) };
}
function release(d) {
  for (const buf of [d.A, d.B, d.C]) buf.destroy();
}
function bindGroup(pipeline, d) {
  return device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [d.A, d.B, d.C].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
}

/** the whole of C, after one dispatch over a C holding -7 everywhere */
async function runOnce(x, pipeline, d) {
  device.queue.writeBuffer(d.C, 0, new Int32Array(d.M * d.N).fill(-7));
  const read = device.createBuffer({ size: d.M * d.N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup(pipeline, d));
  pass.dispatchWorkgroups(d.N / x.BN, d.M / x.BM);
  pass.end();
  enc.copyBufferToBuffer(d.C, 0, read, 0, d.M * d.N * 4);
  device.queue.submit([enc.finish()]);
  await gpu.mapRead(read);
  const got = new Int32Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  return got;
}

/** every output of a small case against the CPU's: ok, or the first mismatch */
async function check(x, d, pipeline) {
  const got = await runOnce(x, pipeline, d);
  let wrong = 0;
  let first;
  for (let m = 0; m < d.M; m++)
    for (let n = 0; n < d.N; n++) {
      const want = dot(d.a, d.b, m, n, d.K);
      if (got[m * d.N + n] !== want) {
        wrong++;
        first ??= { m, n, got: got[m * d.N + n], want };
      }
    }
  return wrong ? { ok: false, wrong, of: d.M * d.N, first } : { ok: true };
}

/** SPOT outputs of a timed shape (its C after the timing runs) against the CPU's */
const SPOT = 64;
async function spotCheck(d) {
  const read = device.createBuffer({ size: SPOT * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const at = range(SPOT).map((i) => ({ m: (i * 7919 + 13) % d.M, n: (i * 104729 + 71) % d.N }));
  const enc = device.createCommandEncoder();
  at.forEach(({ m, n }, i) => enc.copyBufferToBuffer(d.C, (m * d.N + n) * 4, read, i * 4, 4));
  device.queue.submit([enc.finish()]);
  await gpu.mapRead(read);
  const got = new Int32Array(read.getMappedRange().slice(0));
  read.unmap();
  read.destroy();
  const bad = at.map(({ m, n }, i) => ({ m, n, got: got[i], want: dot(d.a, d.b, m, n, d.K) })).filter((e) => e.got !== e.want);
  return bad.length ? { ok: false, wrong: bad.length, of: SPOT, first: bad[0] } : { ok: true };
}

// ---- timing ----------------------------------------------------------------------------------------------------
const timer = passTimer(gpu);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** seconds of one pass of `repeat` dispatches (timestamps at the pass's start and end, else the host clock) */
const passSeconds = (x, pipeline, group, d, repeat) =>
  timer.seconds((pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    for (let r = 0; r < repeat; r++) pass.dispatchWorkgroups(d.N / x.BN, d.M / x.BM);
  });

const RUN_S = 0.0025;
const MAX_REPEAT = 400;
/** seconds a dispatch: repeats chosen so a pass takes RUN_S or more, 3 warm-up passes, the median of 11 */
async function time(x, pipeline, d) {
  const group = bindGroup(pipeline, d);
  const one = emulate
    ? 1
    : (await passSeconds(x, pipeline, group, d, 1), Math.min(await passSeconds(x, pipeline, group, d, 1), (await passSeconds(x, pipeline, group, d, 2)) / 2));
  const repeat = Math.max(1, Math.min(MAX_REPEAT, Math.ceil(RUN_S / Math.max(one, 1e-7))));
  // emulated, the path only: one sample
  for (let i = 0; i < (emulate ? 0 : 3); i++) await passSeconds(x, pipeline, group, d, repeat);
  const samples = [];
  for (let i = 0; i < (emulate ? 1 : 11); i++) samples.push(await passSeconds(x, pipeline, group, d, repeat));
  return { seconds: median(samples) / repeat, repeat };
}

// ---- run -------------------------------------------------------------------------------------------------------
const t0 = performance.now();
const usable = [];
for (const x of variants)
  for (const unit of units) {
    const threads = x.SGM * x.SGN * sgSize;
    const at = { ...params(x), ...(emulate ? { unit, emulated: true } : {}) };
    if (workgroupBytes(x) > maxBytes || threads > maxThreads) {
      line({ ...at, skipped: `needs ${workgroupBytes(x)} bytes of workgroup memory (limit ${maxBytes}) and ${threads} invocations (limit ${maxThreads})` });
      continue;
    }
    const d = setup({ M: 2 * x.BM, N: 3 * x.BN, K: 256 });
    try {
      const r = await pipelineOf(kernel(x, d, unit, sgSize, emulate));
      if (r.error) {
        line({ ...at, skipped: r.error });
        continue;
      }
      const c = await check(x, d, r.pipeline);
      line({ ...at, check: `${d.M}x${d.N}x${d.K}`, ...c });
      usable.push({ x, unit, at, ok: c.ok });
    } catch (e) {
      line({ ...at, skipped: `check: ${String(e.message).split('\n')[0]}` });
    } finally {
      release(d);
    }
  }

const best = [];
for (const s of timedShapes) {
  const d = setup(s);
  const rows = [];
  for (const { x, unit, at, ok } of usable) {
    const row = { ...at, M: s.M, N: s.N, K: s.K };
    try {
      if (s.M % x.BM || s.N % x.BN || s.K % x.KS) throw new Error(`the shape is not a multiple of ${x.BM}x${x.BN}x${x.KS}`);
      const r = await pipelineOf(kernel(x, s, unit, sgSize, emulate));
      if (r.error) throw new Error(r.error);
      const enc = device.createCommandEncoder();
      enc.clearBuffer(d.C);
      device.queue.submit([enc.finish()]);
      const { seconds, repeat } = await time(x, r.pipeline, d);
      const spot = await spotCheck(d);
      gpu.check();
      Object.assign(row, {
        ok: ok && spot.ok,
        ...(spot.ok ? {} : { spot }),
        ms: +(seconds * 1000).toFixed(4),
        tops: +((2 * s.M * s.N * s.K) / seconds / 1e12).toFixed(2),
        repeat,
        clock: timer.clock,
      });
      rows.push(row);
    } catch (e) {
      row.skipped = String(e.message).split('\n')[0];
    }
    line(row);
  }
  release(d);
  const top = rows.filter((r) => r.ok).sort((a, b) => b.tops - a.tops)[0];
  best.push({ M: s.M, N: s.N, K: s.K, ...(top ? { variant: top.variant, ms: top.ms, tops: top.tops } : { variant: null }) });
}
line({
  summary: best,
  unit: units.join(','),
  subgroupSize: sgSize,
  ...(emulate ? { emulated: true } : {}),
  seconds: +((performance.now() - t0) / 1000).toFixed(1),
  device: `${gpu.backend}: ${gpu.adapter}`,
});
done(0);
