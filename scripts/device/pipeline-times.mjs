// How long each of a model's distinct pipelines takes to make, one at a time (createComputePipelineAsync awaited
// before the next is asked for), then all of one graph at once as Model.load asks for them. Run it with an empty
// shader cache (NVIDIA: __GL_SHADER_DISK_CACHE_PATH=$(mktemp -d)) to see a machine's first run of the kernels.
//   bash .device/vulkan-run node scripts/device/pipeline-times.mjs MODEL [--backend NAME] [--dist DIR] [--at-once]
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { backend: { type: 'string' }, dist: { type: 'string', default: 'dist' }, 'at-once': { type: 'boolean', default: false } },
});
const dist = resolve(values.dist);
const api = await import(`${dist}/src/api.js`);
const { openGpu } = await import(`${dist}/src/runtime/gpu.js`);
const files = api.readModelFiles(positionals[0]);
const { config, tensors } = api.withRopeTables(files);
const gpu = await openGpu({ backend: values.backend, toggles: api.defaultToggles });
const { plans } = api.compilePlans(config, tensors, gpu);
const device = gpu.device;

/** One pipeline of a kernel, as PlanExecutor makes it; milliseconds. */
async function make(k) {
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
      ...k.bindings.map((b) => ({
        binding: b.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' },
      })),
    ],
  });
  const module = device.createShaderModule({ code: k.wgsl });
  await device.createComputePipelineAsync({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: 'main' } });
}

for (const graph of ['prefill', 'decode']) {
  const seen = new Map();
  for (const k of plans[graph].kernels) {
    const key = `${k.wgsl}\u0000${k.bindings.map((b) => b.access).join(',')}`;
    if (!seen.has(key)) seen.set(key, k);
  }
  const kernels = [...seen.values()];
  const t0 = performance.now();
  if (values['at-once']) {
    await Promise.all(kernels.map(make));
    console.log(`${graph}: ${kernels.length} pipelines at once: ${(performance.now() - t0).toFixed(1)} ms`);
    continue;
  }
  const rows = [];
  for (const k of kernels) {
    const t = performance.now();
    await make(k);
    rows.push([performance.now() - t, k.name, k.op, k.wgsl.length]);
  }
  rows.sort((a, b) => b[0] - a[0]);
  console.log(`${graph}: ${kernels.length} pipelines one at a time: ${(performance.now() - t0).toFixed(1)} ms`);
  for (const [ms, name, op, chars] of rows) console.log(`  ${ms.toFixed(1).padStart(7)} ms  ${name} (${op}, ${chars} chars of WGSL)`);
}
gpu.destroy();
