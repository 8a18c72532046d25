// Where opening a device goes, step by step as openGpu takes them: Dawn's instance, requestAdapter (the Vulkan
// instance and the driver), requestDevice, a probe pipeline made synchronously and run, then eight small pipelines
// made asynchronously at once and eight synchronously. Run it as a machine's first process to see a cold driver.
//   bash .device/vulkan-run node scripts/device/open-steps.mjs [--backend vulkan]
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'vulkan' } } });
const t0 = performance.now();
let last = t0;
const lap = (step) => {
  const now = performance.now();
  console.log(`${step}: ${(now - last).toFixed(1)} ms`);
  last = now;
};
const { create, globals } = await import('webgpu');
Object.assign(globalThis, globals);
lap('import webgpu');
const gpu = create([`backend=${values.backend}`, 'enable-dawn-features=disable_robustness', 'disable-dawn-features=timestamp_quantization']);
lap('create instance');
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error(`no ${values.backend} adapter`);
lap('requestAdapter');
const device = await adapter.requestDevice({ requiredFeatures: ['timestamp-query', 'subgroups'].filter((f) => adapter.features.has(f)) });
lap('requestDevice');
const probe = device.createComputePipeline({
  layout: 'auto',
  compute: {
    module: device.createShaderModule({
      // openGpu's probe of the subgroups' layout
      code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<vec4<u32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32, @builtin(subgroup_size) size: u32, @builtin(subgroup_invocation_id) id: u32) {
  out[tid] = vec4<u32>(size, id, subgroupMin(tid), subgroupMax(tid));
}`,
    }),
    entryPoint: 'main',
  },
});
lap('a probe pipeline, synchronously');
const out = device.createBuffer({ size: 4096, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const read = device.createBuffer({ size: 4096, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const encoder = device.createCommandEncoder();
const pass = encoder.beginComputePass();
pass.setPipeline(probe);
pass.setBindGroup(0, device.createBindGroup({ layout: probe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] }));
pass.dispatchWorkgroups(1);
pass.end();
encoder.copyBufferToBuffer(out, 0, read, 0, 4096);
device.queue.submit([encoder.finish()]);
await read.mapAsync(GPUMapMode.READ);
lap('the probe run and read back');
const kernel = (i, fn) => `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  var s = 0.0;
  for (var k = 0u; k < ${100 + i}u; k++) { s += ${fn}(f32(k) * o[g.x]); }
  o[g.x] = s;
}`;
const made = (i, fn) => ({ layout: 'auto', compute: { module: device.createShaderModule({ code: kernel(i, fn) }), entryPoint: 'main' } });
await Promise.all(Array.from({ length: 8 }, (_, i) => device.createComputePipelineAsync(made(i, 'sin'))));
lap('8 pipelines, asynchronously at once');
for (let i = 0; i < 8; i++) device.createComputePipeline(made(i, 'cos'));
lap('8 pipelines, synchronously');
device.destroy();
console.log(`in all: ${(performance.now() - t0).toFixed(1)} ms`);
