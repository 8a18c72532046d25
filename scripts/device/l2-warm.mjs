// How much a decode GEMV gains when L2 already holds its weights, and what reading them in ahead costs: each 1B decode
// matmul shape (int8 GEMV over Q8_0, as codegen emits it) timed in a chain of dispatches (a barrier between every
// two) — `cold`: cycling over weight copies that together pass L2; `warm`: one copy, which the dispatch before read;
// `read`: a kernel that only reads a copy (vec4s, as many workgroups as an H100 holds at once); `read+gemv`: that
// read, a barrier, then the GEMV over the same copy. Timestamps, median of 7; µs a dispatch (a pair for read+gemv).
//   bash .device/vulkan-run node scripts/device/l2-warm.mjs [--backend vulkan]
import { parseArgs } from 'node:util';
import * as A from '../../dist/src/affine.js';
import { defaultLinearOptions, linearKernels } from '../../dist/src/codegen/linear/index.js';
import { openGpu } from '../../dist/src/runtime/gpu.js';
import { passTimer } from './pass-timer.mjs';

const { values } = parseArgs({ options: { backend: { type: 'string' } } });
const gpu = await openGpu({ backend: values.backend ?? process.env.WEBGPU_BACKEND, toggles: ['disable_robustness'] });
const { device } = gpu;
const timer = passTimer(gpu);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// name, epilogue, K, stacked rows N, norm
const shapes = [
  ['1B q_k_v', 'store', 2048, 3072, true],
  ['1B attn_out', 'residual', 2048, 2048, false],
  ['1B gate_up', 'glu', 2048, 16384, true],
  ['1B down', 'residual', 8192, 2048, false],
];
const round16 = (b) => Math.ceil(b / 16) * 16;
const buffer = (bytes) => device.createBuffer({ size: round16(Math.max(bytes, 16)), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
const uniform = device.createBuffer({ size: 64, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const sink = buffer(16);

const READ_THREADS = 256;
const READ_WORKGROUPS = 132 * 8;
const readModule = device.createShaderModule({
  code: `@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;
@compute @workgroup_size(${READ_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  var acc = vec4<u32>(0u);
  let n = arrayLength(&w);
  for (var i = gid.x; i < n; i += ${READ_THREADS * READ_WORKGROUPS}u) { acc ^= w[i]; }
  if (all(acc == vec4<u32>(0x9e3779b9u))) { sink[0] = acc.x; }
}`,
});
const readPipeline = device.createComputePipeline({ layout: 'auto', compute: { module: readModule, entryPoint: 'main' } });

const time = async (record) => {
  const samples = [];
  for (let t = 0; t < 8; t++) {
    const s = await timer.seconds(record);
    if (t > 0) samples.push(s);
  }
  gpu.check();
  return median(samples);
};

for (const [name, kind, k, n, norm] of shapes) {
  const wBytes = n * k + (n * k) / 16;
  const copies = Math.max(2, Math.ceil(200e6 / wBytes));
  const ws = Array.from({ length: copies }, () => buffer(wBytes));
  const epilogue = kind === 'store' ? { kind, out: 'out' } : kind === 'residual' ? { kind, residual: 'residual', out: 'out' } : { kind, out: 'out' };
  const spec = { x: 'x', rows: A.constant(1), k, n, w: 'w', ...(norm ? { norm: { weight: 'normWeight', eps: 1e-5 } } : {}), epilogue };
  const others = { x: buffer(4 * k), normWeight: buffer(4 * k), residual: buffer(4 * n), out: buffer(4 * n) };
  const options = {
    ...defaultLinearOptions,
    weights: 'q8_0',
    matmul: 'int8',
    subgroups: gpu.subgroups,
    maxWorkgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize,
  };
  const source = linearKernels(spec, options, 'rate').kernels[0].source;
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: source.wgsl }), entryPoint: 'main' } });
  const counts = source.workgroups.map((w) => Math.ceil(A.evaluate(w.of, {}) / w.per));
  const gemvGroup = (wBuffer) =>
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        ...(/\bdims\./.test(source.wgsl) ? [{ binding: 0, resource: { buffer: uniform } }] : []),
        ...source.bindings.map((b, i) => ({ binding: i + 1, resource: { buffer: b.buffer === 'w' ? wBuffer : others[b.buffer] } })),
      ],
    });
  const readGroup = (wBuffer) =>
    device.createBindGroup({
      layout: readPipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: wBuffer } },
        { binding: 1, resource: { buffer: sink } },
      ],
    });
  const gemvs = ws.map(gemvGroup);
  const reads = ws.map(readGroup);
  const dispatches = 4 * copies;
  const gemv = (pass, g) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, g);
    pass.dispatchWorkgroups(...counts);
  };
  const read = (pass, g) => {
    pass.setPipeline(readPipeline);
    pass.setBindGroup(0, g);
    pass.dispatchWorkgroups(READ_WORKGROUPS);
  };
  const each = (f) => (pass) => {
    for (let i = 0; i < dispatches; i++) f(pass, i % copies);
  };
  const us = {
    cold: await time(each((pass, c) => gemv(pass, gemvs[c]))),
    warm: await time(each((pass) => gemv(pass, gemvs[0]))),
    read: await time(each((pass, c) => read(pass, reads[c]))),
    'read+gemv': await time(
      each((pass, c) => {
        read(pass, reads[c]);
        gemv(pass, gemvs[c]);
      }),
    ),
  };
  for (const key of Object.keys(us)) us[key] = (us[key] / dispatches) * 1e6;
  console.log(JSON.stringify({ shape: name, weight_mb: wBytes / 1e6, us, clock: timer.clock }));
  ws.forEach((b) => b.destroy());
  Object.values(others).forEach((b) => b.destroy());
}
console.log(JSON.stringify({ device: `${gpu.backend}: ${gpu.adapter}` }));
gpu.destroy();
