// What one dispatch of a pass costs the GPU, by what the dispatches share: N dispatches of a kernel doing next to
// nothing in one compute pass, timed by timestamps at the pass's start and end (else the host clock around the
// submit), median of 21 after a warm-up. Patterns: `read` (every dispatch reads one buffer: no hazard between them),
// `distinct` (each writes a buffer of its own: none either), `chain` (each reads and writes the same buffer: a
// barrier between every two), `chain-wide` (as chain, 1,056 workgroups a dispatch: a full wave of an H100).
// One JSON line a pattern. Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/dispatch-cost.mjs [--dispatches 83] [--backend vulkan]
import { parseArgs } from 'node:util';
import { openGpu } from '../../dist/src/runtime/gpu.js';
import { passTimer } from './pass-timer.mjs';

const { values } = parseArgs({ options: { dispatches: { type: 'string', default: '83' }, backend: { type: 'string' } } });
const n = Number(values.dispatches);
const gpu = await openGpu({ backend: values.backend ?? process.env.WEBGPU_BACKEND, toggles: ['disable_robustness'] });
const { device } = gpu;
const timer = passTimer(gpu);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const kernel = (access) =>
  device.createShaderModule({
    code: `@group(0) @binding(0) var<storage, ${access}> b: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  ${access === 'read' ? 'if (b[0] == 12345u && id.x == 0u) { return; }' : 'if (id.x == 0u) { b[0] = b[0] + 1u; }'}
}`,
  });
const pipelines = {
  read: device.createComputePipeline({ layout: 'auto', compute: { module: kernel('read'), entryPoint: 'main' } }),
  write: device.createComputePipeline({ layout: 'auto', compute: { module: kernel('read_write'), entryPoint: 'main' } }),
};
const buffers = Array.from({ length: n }, () => device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }));
const group = (pipeline, buffer) => device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer } }] });
const patterns = {
  read: { pipeline: pipelines.read, groups: Array(n).fill(group(pipelines.read, buffers[0])), workgroups: 1 },
  distinct: { pipeline: pipelines.write, groups: buffers.map((b) => group(pipelines.write, b)), workgroups: 1 },
  chain: { pipeline: pipelines.write, groups: Array(n).fill(group(pipelines.write, buffers[0])), workgroups: 1 },
  'chain-wide': { pipeline: pipelines.write, groups: Array(n).fill(group(pipelines.write, buffers[0])), workgroups: 1056 },
};

const passSeconds = ({ pipeline, groups, workgroups }) =>
  timer.seconds((pass) => {
    pass.setPipeline(pipeline);
    for (const g of groups) {
      pass.setBindGroup(0, g);
      pass.dispatchWorkgroups(workgroups);
    }
  });

for (const [name, pattern] of Object.entries(patterns)) {
  const samples = [];
  for (let t = 0; t <= 21; t++) {
    const s = await passSeconds(pattern);
    if (t > 0) samples.push(s);
  }
  gpu.check();
  const pass = median(samples);
  console.log(
    JSON.stringify({
      pattern: name,
      dispatches: n,
      workgroups: pattern.workgroups,
      pass_ms: pass * 1000,
      per_dispatch_us: (pass * 1e6) / n,
      clock: timer.clock,
      device: `${gpu.backend}: ${gpu.adapter}`,
    }),
  );
}
gpu.destroy();
