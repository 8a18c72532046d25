// How the device's int8 subgroup matrix builtins read and write memory: 16×16×32 i8 products of known random
// tiles, loaded from storage or from workgroup memory (array<i32> of packed int8), with offsets and strides counted
// in int8 elements or in i32 words, stored to storage or through workgroup memory — each case against the CPU's
// products, and the layouts its result matches. One JSON line a case. Usage (GPU machine, after `npm run build`):
//   bash .device/vulkan-run node scripts/device/subgroup-matrix-probe.mjs [--out FILE]
import { writeFileSync } from 'node:fs';
import { openGpu } from '../../dist/src/runtime/gpu.js';

const out = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : undefined;
const gpu = await openGpu({ backend: process.env.WEBGPU_BACKEND ?? 'vulkan', toggles: ['allow_unsafe_apis', 'use_vulkan_memory_model'] });
const { device } = gpu;
console.log(JSON.stringify({ adapter: gpu.adapter, configs: gpu.subgroupMatrix.configs, subgroupSize: gpu.subgroupMatrix.subgroupSize }));
if (!gpu.subgroupMatrix.configs.some((c) => c.componentType === 'i8' && c.M === 16 && c.N === 16 && c.K === 32)) {
  console.log(JSON.stringify({ skipped: 'no i8 16×16×32 configuration' }));
  process.exit(0);
}

// X: 64 rows × 32 int8 (row-major), W: 64 columns × 32 int8 (column-major); tile t = (row tile t % 4, column tile ⌊t / 4⌋ % 4)
const ROWS = 64;
const K = 32;
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
const int8s = (n) => Int8Array.from({ length: n }, () => Math.floor(rand() * 255) - 127);
const X = int8s(ROWS * K);
const W = int8s(ROWS * K);
const words = (a) => new Int32Array(a.buffer.slice(0));
const TILES = 8;
const tileOf = (t) => ({ r: t % 4, c: Math.floor(t / 4) % 4 });
/** the 16×16 product of tile t, row-major; `transposed` gives its transpose */
function expected(t, transposed = false) {
  const { r, c } = tileOf(t);
  const p = new Int32Array(256);
  for (let i = 0; i < 16; i++)
    for (let j = 0; j < 16; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += X[(16 * r + i) * K + k] * W[(16 * c + j) * K + k];
      p[transposed ? j * 16 + i : i * 16 + j] = s;
    }
  return p;
}

/**
 * A kernel computing the TILES products: `src` where the tiles are loaded from, `dst` where the result goes,
 * `unit` 1 (offsets and strides in int8 elements) or 4 (in i32 words), `threads` 32 or 256 (each subgroup takes
 * tiles sg, sg + subgroups, …), `at` the first element of the staged copy in workgroup memory (a second buffer).
 */
function kernel({ src, dst, unit, threads, at }) {
  const off = (e) => `(${e}) / ${unit}u`;
  const stride = (e) => `${e / unit}u`;
  const xs = src === 'storage' ? '&xs' : '&Xw';
  const ws = src === 'storage' ? '&ws' : '&Ww';
  const wgBase = src === 'storage' ? 0 : at;
  return `enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> xs: array<i32>;
@group(0) @binding(1) var<storage, read> ws: array<i32>;
@group(0) @binding(2) var<storage, read_write> res: array<i32>;
var<workgroup> Xw: array<i32, ${(2 * ROWS * K) / 4}>;
var<workgroup> Ww: array<i32, ${(2 * ROWS * K) / 4}>;
var<workgroup> P: array<i32, ${TILES * 256}>;
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(subgroup_id) sg: u32) {
  for (var i = tid; i < ${(ROWS * K) / 4}u; i += ${threads}u) {
    Xw[${at / 4}u + i] = xs[i];
    Ww[${at / 4}u + i] = ws[i];
  }
  workgroupBarrier();
  for (var t = sg; t < ${TILES}u; t += ${threads / 32}u) {
    let r = t % 4u;
    let c = (t / 4u) % 4u;
    let left = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>(${xs}, ${off(`${wgBase}u + r * 512u`)}, ${stride(32)});
    let right = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, col_major>(${ws}, ${off(`${wgBase}u + c * 512u`)}, ${stride(32)});
    ${dst === 'storage' ? 'subgroupMatrixStore<row_major>(&res, t * 256u, subgroupMatrixMultiply<i32>(left, right), 16u);' : 'subgroupMatrixStore<row_major>(&P, t * 256u, subgroupMatrixMultiply<i32>(left, right), 16u);'}
  }
  ${dst === 'storage' ? '' : `workgroupBarrier();\n  for (var i = tid; i < ${TILES * 256}u; i += ${threads}u) { res[i] = P[i]; }`}
}`;
}

function buffer(data, usage) {
  const b = device.createBuffer({ size: Math.max(16, data.byteLength), usage: usage | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(b, 0, data);
  return b;
}
const xb = buffer(words(X), GPUBufferUsage.STORAGE);
const wb = buffer(words(W), GPUBufferUsage.STORAGE);
const results = [];
for (const unit of [1, 4])
  for (const src of ['storage', 'workgroup'])
    for (const dst of ['storage', 'workgroup'])
      for (const threads of [32, 256])
        for (const at of src === 'workgroup' ? [0, ROWS * K] : [0]) {
          const c = { unit, src, dst, threads, at };
          const row = { ...c };
          try {
            device.pushErrorScope('validation');
            const module = device.createShaderModule({ code: kernel(c) });
            const info = await module.getCompilationInfo();
            const errors = info.messages.filter((m) => m.type === 'error');
            if (errors.length) throw new Error(errors.map((m) => `${m.lineNum}: ${m.message}`).join(' | '));
            const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
            const rb = device.createBuffer({ size: TILES * 256 * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
            const rd = device.createBuffer({ size: TILES * 256 * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
            device.queue.writeBuffer(rb, 0, new Int32Array(TILES * 256).fill(-7));
            const enc = device.createCommandEncoder();
            const pass = enc.beginComputePass();
            pass.setPipeline(pipeline);
            pass.setBindGroup(
              0,
              device.createBindGroup({
                layout: pipeline.getBindGroupLayout(0),
                entries: [xb, wb, rb].map((buffer, binding) => ({ binding, resource: { buffer } })),
              }),
            );
            pass.dispatchWorkgroups(1);
            pass.end();
            enc.copyBufferToBuffer(rb, 0, rd, 0, TILES * 256 * 4);
            device.queue.submit([enc.finish()]);
            const err = await device.popErrorScope();
            if (err) throw new Error(err.message.split('\n')[0]);
            await rd.mapAsync(GPUMapMode.READ);
            const got = new Int32Array(rd.getMappedRange().slice(0));
            rd.unmap();
            row.tiles = [];
            for (let t = 0; t < TILES; t++) {
              const g = got.subarray(t * 256, (t + 1) * 256);
              const same = (e) => e.every((v, i) => v === g[i]);
              const matches = [same(expected(t)) && 'product', same(expected(t, true)) && 'transposed'].filter(Boolean);
              // where it differs: which other tile's product it is, if any
              for (let u = 0; u < TILES && !matches.length; u++) if (u !== t && same(expected(u))) matches.push(`tile ${u}`);
              const wrong = g.reduce((n, v, i) => n + (v !== expected(t)[i] ? 1 : 0), 0);
              row.tiles.push(matches.length ? matches.join('|') : `${wrong} of 256 wrong`);
            }
            row.ok = row.tiles.every((m) => m.startsWith('product'));
            if (!row.ok) row.first = { got: Array.from(got.subarray(0, 16)), want: Array.from(expected(0).subarray(0, 16)) };
          } catch (e) {
            row.error = e.message.split('\n')[0];
          }
          results.push(row);
          console.log(JSON.stringify(row));
        }
if (out) writeFileSync(out, JSON.stringify({ X: Array.from(X), W: Array.from(W), results }));
gpu.destroy();
