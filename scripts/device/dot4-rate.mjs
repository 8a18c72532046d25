// The rate of the arithmetic the prefill tiles are made of, alone: every invocation runs CHAINS independent chains
// of dot4I8Packed (each result fed back as the next packed operand, so nothing folds), of i32 multiply-adds, or of
// f32 fma, over registers only; 8 ops a dot4I8Packed, 2 a multiply-add or fma. One JSON line a kind, median of 11.
//   bash .device/vulkan-run node scripts/device/dot4-rate.mjs [--backend vulkan] [--workgroups 4224]
import { parseArgs } from 'node:util';
import { openGpu } from '../../dist/src/runtime/gpu.js';
import { passTimer } from './pass-timer.mjs';

const { values } = parseArgs({ options: { backend: { type: 'string' }, workgroups: { type: 'string', default: '4224' } } });
const gpu = await openGpu({ backend: values.backend ?? process.env.WEBGPU_BACKEND, toggles: ['disable_robustness'] });
const { device } = gpu;
const timer = passTimer(gpu);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const THREADS = 256;
const CHAINS = 16;
const STEPS = 1024;
const workgroups = Number(values.workgroups);

const kinds = {
  dot4I8Packed: { type: 'i32', ops: 8, step: (a) => `${a} = ${a} + dot4I8Packed(bitcast<u32>(${a}), k)`, init: (i) => `i32(lid * 2654435761u + ${i}u)` },
  'i32 multiply-add': { type: 'i32', ops: 2, step: (a) => `${a} = ${a} * kk + ki`, init: (i) => `i32(lid + ${i}u)` },
  'f32 fma': { type: 'f32', ops: 2, step: (a) => `${a} = fma(${a}, kf, kg)`, init: (i) => `f32(lid + ${i}u)` },
};

const buffer = device.createBuffer({ size: 4 * THREADS * workgroups, usage: GPUBufferUsage.STORAGE });
const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
new Uint32Array(params.getMappedRange()).set([0x01ff02fe, 3, 0x3f7ffffe, 0x3a83126f]);
params.unmap();

for (const [name, kind] of Object.entries(kinds)) {
  const chains = Array.from({ length: CHAINS }, (_, i) => i);
  const code = `@group(0) @binding(0) var<storage, read_write> out: array<${kind.type}>;
@group(0) @binding(1) var<storage, read> p: array<u32, 4>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let k = p[0];
  let kk = i32(p[1]);
  let ki = i32(p[0]);
  let kf = bitcast<f32>(p[2]);
  let kg = bitcast<f32>(p[3]);
${chains.map((i) => `  var a${i} = ${kind.init(i)};`).join('\n')}
  for (var s = 0u; s < ${STEPS}u; s++) {
${chains.map((i) => `    ${kind.step(`a${i}`)};`).join('\n')}
  }
  out[gid.x] = ${chains.map((i) => `a${i}`).join(' + ')};
}`;
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer } },
      { binding: 1, resource: { buffer: params } },
    ],
  });
  const samples = [];
  for (let t = 0; t <= 11; t++) {
    const s = await timer.seconds((pass) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(workgroups);
    });
    if (t > 0) samples.push(s);
  }
  gpu.check();
  const seconds = median(samples);
  const ops = THREADS * workgroups * CHAINS * STEPS * kind.ops;
  console.log(
    JSON.stringify({ kind: name, workgroups, ms: seconds * 1000, tops: ops / seconds / 1e12, clock: timer.clock, device: `${gpu.backend}: ${gpu.adapter}` }),
  );
}
gpu.destroy();
