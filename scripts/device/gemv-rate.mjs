// The decode GEMVs alone, by how they are laid out: each 1B (and 8B) decode matmul shape as codegen emits it
// (gemv-int8 over Q8_0 or k-quants, gemv over f32) with 64–256 invocations a workgroup and 1, 2 or 4 pairs of dots a group of 64
// lanes, timed as a decode step runs them — a pass of dispatches one after another, each writing what the next
// reads (a barrier between every two), cycling over copies of the weights so that L2 never holds them. Timestamps,
// median of 7. One JSON line a (shape, layout). Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/gemv-rate.mjs [--backend vulkan] [--quick] [--only 8B] [--weights q8_0,q4_k,q6_k,f32]
import { parseArgs } from 'node:util';
import * as A from '../../dist/src/affine.js';
import { defaultLinearOptions, linearKernels } from '../../dist/src/codegen/linear/index.js';
import { gemvPairs, gemvThreads, GEMV_LANES } from '../../dist/src/codegen/linear/spec.js';
import { openGpu } from '../../dist/src/runtime/gpu.js';
import { planeOffsets, weightFormats } from '../../dist/src/weights/formats.js';
import { decodeShapes, gemvEntries, gemvSpec } from './gemv-kernel.mjs';
import { passTimer } from './pass-timer.mjs';

const { values } = parseArgs({
  options: { backend: { type: 'string' }, quick: { type: 'boolean', default: false }, only: { type: 'string' }, weights: { type: 'string' } },
});
const gpu = await openGpu({ backend: values.backend ?? process.env.WEBGPU_BACKEND, toggles: ['disable_robustness'] });
const { device } = gpu;
const timer = passTimer(gpu);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const shapes = decodeShapes.filter((s) => (values.only ? s[0].startsWith(values.only) : !values.quick || s[0].startsWith('1B')));
const layouts = [];
for (const threads of [256, 128]) for (const pairs of [1, 2, 4]) layouts.push({ threads, pairs });
const weightsKinds = values.weights ? values.weights.split(',') : values.quick ? ['q8_0'] : ['q8_0', 'f32'];

/** a weight's device bytes in its format (the weights' values are arbitrary bytes: the rate does not depend on them) */
const bytesOf = (weights, n, k) => {
  const format = weightFormats[weights];
  return planeOffsets(format, (n * k) / format.blockElements).bytes;
};
const round16 = (b) => Math.ceil(b / 16) * 16;
const buffer = (bytes) => device.createBuffer({ size: round16(Math.max(bytes, 16)), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
const uniform = device.createBuffer({ size: 64, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });

const passSeconds = (pipeline, groups, counts) =>
  timer.seconds((pass) => {
    pass.setPipeline(pipeline);
    for (const g of groups) {
      pass.setBindGroup(0, g);
      pass.dispatchWorkgroups(...counts);
    }
  });

const best = {};
for (const weights of weightsKinds)
  for (const [name, kind, k, n, norm] of shapes) {
    const wBytes = bytesOf(weights, n, k);
    if (wBytes > gpu.limits.maxStorageBufferBindingSize) continue;
    // enough copies that a pass reads well past L2 (50 MB on an H100)
    const copies = Math.min(8, Math.max(2, Math.ceil(200e6 / wBytes)));
    const ws = Array.from({ length: copies }, () => buffer(wBytes));
    const spec = gemvSpec(kind, k, n, norm);
    const others = { x: buffer(4 * k), normWeight: buffer(4 * k), residual: buffer(4 * n), out: buffer(4 * n) };
    for (const { threads, pairs } of layouts) {
      const groups = gemvThreads(threads) / GEMV_LANES;
      const pairsNeeded = kind === 'glu' ? n / 2 : Math.ceil(n / 2);
      // the least workgroups for which gemvPairs gives `pairs`
      const gemvWorkgroups = pairs === 1 ? Number.MAX_SAFE_INTEGER : Math.ceil(pairsNeeded / (pairs * groups));
      const options = {
        ...defaultLinearOptions,
        weights,
        matmul: weights === 'f32' ? 'float' : 'int8',
        subgroups: gpu.subgroups,
        maxInvocations: threads,
        maxWorkgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize,
        gemvWorkgroups,
      };
      const row = { shape: name, weights, k, n, threads, pairs, weight_mb: wBytes / 1e6 };
      if (gemvPairs(pairsNeeded, groups, 1, options) !== pairs) {
        console.log(JSON.stringify({ ...row, skipped: 'layout not reachable' }));
        continue;
      }
      try {
        const { variant, kernels } = linearKernels(spec, options, 'rate');
        const source = kernels[0].source;
        device.pushErrorScope('validation');
        const module = device.createShaderModule({ code: source.wgsl });
        const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
        const error = await device.popErrorScope();
        if (error) throw new Error(error.message.split('\n')[0]);
        const counts = source.workgroups.map((w) => Math.ceil(A.evaluate(w.of, {}) / w.per));
        const bindFor = (wBuffer) =>
          device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: gemvEntries(source, uniform, { ...others, w: wBuffer }) });
        const bindGroups = ws.map(bindFor);
        const dispatches = 4 * copies;
        const groupsInPass = Array.from({ length: dispatches }, (_, i) => bindGroups[i % copies]);
        const samples = [];
        for (let t = 0; t < 8; t++) {
          const s = await passSeconds(pipeline, groupsInPass, counts);
          if (t > 0) samples.push(s);
        }
        gpu.check();
        const seconds = median(samples) / dispatches;
        const out = {
          ...row,
          variant,
          workgroups: counts[0] * counts[1],
          us: seconds * 1e6,
          gb_per_s: wBytes / seconds / 1e9,
          clock: timer.clock,
        };
        console.log(JSON.stringify(out));
        const key = `${name} ${weights}`;
        if (!best[key] || out.us < best[key].us) best[key] = out;
      } catch (e) {
        console.log(JSON.stringify({ ...row, error: String(e.message ?? e) }));
      }
    }
    ws.forEach((b) => b.destroy());
    Object.values(others).forEach((b) => b.destroy());
  }
console.log(
  JSON.stringify({
    best: Object.values(best).map((b) => ({ shape: b.shape, weights: b.weights, threads: b.threads, pairs: b.pairs, us: b.us, gb_per_s: b.gb_per_s })),
    device: `${gpu.backend}: ${gpu.adapter}`,
  }),
);
gpu.destroy();
