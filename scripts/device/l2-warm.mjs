// Whether a decode GEMV gains from L2 holding its weights, and whether reading them in can hide behind a kernel that
// leaves HBM idle. Each 1B decode matmul shape (int8 GEMV over Q8_0, as codegen emits it) in a chain of dispatches
// (a barrier between every two): `cold`, cycling over weight copies that together pass L2; `warm`, one copy, which
// the dispatch before read; `read`, a kernel that reads a copy and nothing else (vec4s, 8 loads in flight an
// invocation; it writes only where their XOR is a value it never is). Then rounds of the q_k_v GEMV followed by the
// gate_up GEMV (each reading what the other wrote): `plain`; `ahead`, the q_k_v GEMV given extra workgroups that read
// gate_up's weights as `read` does (a kernel that cannot do without HBM beside one that leaves it idle: one dispatch,
// so no barrier between them); `ahead-half`, half of them. Timestamps, median of 7; µs a dispatch (a round for rounds).
//   bash .device/vulkan-run node scripts/device/l2-warm.mjs [--backend vulkan] [--rounds-only]
import { parseArgs } from 'node:util';
import * as A from '../../dist/src/affine.js';
import { defaultLinearOptions, linearKernels } from '../../dist/src/codegen/linear/index.js';
import { openGpu } from '../../dist/src/runtime/gpu.js';
import { decodeShapes, gemvEntries, gemvSpec } from './gemv-kernel.mjs';
import { passTimer } from './pass-timer.mjs';

const { values } = parseArgs({ options: { backend: { type: 'string' }, 'rounds-only': { type: 'boolean', default: false } } });
const gpu = await openGpu({ backend: values.backend ?? process.env.WEBGPU_BACKEND, toggles: ['disable_robustness'] });
const { device } = gpu;
const timer = passTimer(gpu);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// the 1B's, by their names without the model's
const shapes = Object.fromEntries(
  decodeShapes.filter(([name]) => name.startsWith('1B ') && name !== '1B logits').map(([name, ...rest]) => [name.slice(3), rest]),
);
const round16 = (b) => Math.ceil(b / 16) * 16;
const buffer = (bytes) => device.createBuffer({ size: round16(Math.max(bytes, 16)), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
const uniform = device.createBuffer({ size: 64, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const weightBytes = (k, n) => n * k + (n * k) / 16;

const READ_THREADS = 256;
const READ_WORKGROUPS = 132 * 4;
const UNROLL = 8;
const sink = buffer(16);
/** WGSL: `fn readAhead(g, t)`, invocation t of workgroup g of `workgroups` reading all of `pw` (vec4s), 8 loads at a time. */
const readAhead = (threads, workgroups) => `fn readAhead(g: u32, t: u32) {
  let n = arrayLength(&pw);
  let stride = ${threads * workgroups}u;
  var acc = vec4<u32>(0u);
  for (var i = g * ${threads}u + t; i < n; i += ${UNROLL}u * stride) {
${Array.from({ length: UNROLL }, (_, u) => `    let v${u} = pw[min(i + ${u}u * stride, n - 1u)];`).join('\n')}
    acc ^= ${Array.from({ length: UNROLL }, (_, u) => `v${u}`).join(' ^ ')};
  }
  if (all(acc == vec4<u32>(0x9e3779b9u))) { sink[0] = acc.x; }
}`;
const readPipeline = device.createComputePipeline({
  layout: 'auto',
  compute: {
    module: device.createShaderModule({
      code: `@group(0) @binding(0) var<storage, read> pw: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;
${readAhead(READ_THREADS, READ_WORKGROUPS)}
@compute @workgroup_size(${READ_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) { readAhead(wid.x, tid); }`,
    }),
    entryPoint: 'main',
  },
});

/**
 * A GEMV of `shape` over Q8_0 as codegen emits it, reading x from `x` and writing `out` (buffers); with `ahead`, its
 * dispatch also has READ_WORKGROUPS workgroups after its own that read a buffer it is given (group(w, pw)).
 */
function gemvOf(name, x, out, ahead = false) {
  const [kind, k, n, norm] = shapes[name];
  const spec = gemvSpec(kind, k, n, norm);
  const options = {
    ...defaultLinearOptions,
    weights: 'q8_0',
    matmul: 'int8',
    subgroups: gpu.subgroups,
    maxWorkgroupBytes: gpu.limits.maxComputeWorkgroupStorageSize,
  };
  const source = linearKernels(spec, options, 'rate').kernels[0].source;
  const counts = source.workgroups.map((w) => Math.ceil(A.evaluate(w.of, {}) / w.per));
  let code = source.wgsl;
  const slots = source.bindings.length + 1;
  if (ahead) {
    const threads = Number(/@workgroup_size\((\d+)\)/.exec(code)[1]);
    code = code.replace(
      /(fn main\(@builtin\(workgroup_id\) wid: vec3u, @builtin\(local_invocation_index\) tid: u32[^{]*\{)/,
      `$1\n  if (wid.x >= ${counts[0]}u) { readAhead(wid.x - ${counts[0]}u, tid); return; }`,
    );
    // directives first, then the read's bindings and function
    const enables = code.match(/^enable [^;]+;$/gm) ?? [];
    const extra = `@group(0) @binding(${slots}) var<storage, read> pw: array<vec4<u32>>;\n@group(0) @binding(${slots + 1}) var<storage, read_write> sink: array<u32>;\n${readAhead(threads, READ_WORKGROUPS)}`;
    code = `${enables.join('\n')}\n${extra}\n${code.replace(/^enable [^;]+;$/gm, '')}`;
    counts[0] += READ_WORKGROUPS;
  }
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const others = { x, out, normWeight: buffer(4 * k), residual: buffer(4 * n) };
  const group = (w, pw) =>
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        ...gemvEntries(source, uniform, { ...others, w }),
        ...(ahead
          ? [
              { binding: slots, resource: pw },
              { binding: slots + 1, resource: { buffer: sink } },
            ]
          : []),
      ],
    });
  return {
    bytes: weightBytes(k, n),
    group,
    record(pass, g) {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, g);
      pass.dispatchWorkgroups(...counts);
    },
  };
}
const readGroup = (w) =>
  device.createBindGroup({
    layout: readPipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: w } },
      { binding: 1, resource: { buffer: sink } },
    ],
  });
const read = (pass, g) => {
  pass.setPipeline(readPipeline);
  pass.setBindGroup(0, g);
  pass.dispatchWorkgroups(READ_WORKGROUPS);
};
const time = async (record) => {
  const samples = [];
  for (let t = 0; t < 8; t++) {
    const s = await timer.seconds(record);
    if (t > 0) samples.push(s);
  }
  gpu.check();
  return median(samples);
};
const copiesOf = (bytes) => Math.max(2, Math.ceil(200e6 / bytes));

for (const name of values['rounds-only'] ? [] : Object.keys(shapes)) {
  const gemv = gemvOf(name, buffer(4 * 16384), buffer(4 * 16384));
  const copies = copiesOf(gemv.bytes);
  const ws = Array.from({ length: copies }, () => buffer(gemv.bytes));
  const groups = ws.map(gemv.group);
  const reads = ws.map((w) => readGroup(w));
  const dispatches = 4 * copies;
  const each = (f) => (pass) => {
    for (let i = 0; i < dispatches; i++) f(pass, i % copies);
  };
  const us = {
    cold: await time(each((pass, c) => gemv.record(pass, groups[c]))),
    warm: await time(each((pass) => gemv.record(pass, groups[0]))),
    read: await time(each((pass, c) => read(pass, reads[c]))),
  };
  for (const key of Object.keys(us)) us[key] = (us[key] / dispatches) * 1e6;
  console.log(JSON.stringify({ shape: `1B ${name}`, weight_mb: gemv.bytes / 1e6, us, clock: timer.clock }));
  ws.forEach((b) => b.destroy());
}

// rounds of q_k_v then gate_up, each reading the other's output
{
  const a = buffer(4 * 16384);
  const b = buffer(4 * 16384);
  const qkv = gemvOf('q_k_v', a, b);
  const qkvAhead = gemvOf('q_k_v', a, b, true);
  const gateUp = gemvOf('gate_up', b, a);
  const copies = copiesOf(qkv.bytes + gateUp.bytes);
  const wq = Array.from({ length: copies }, () => buffer(qkv.bytes));
  const wg = Array.from({ length: copies }, () => buffer(gateUp.bytes));
  const gGroups = wg.map((w) => gateUp.group(w));
  const variants = {
    plain: wq.map((w) => qkv.group(w)),
    ahead: wq.map((w, c) => qkvAhead.group(w, { buffer: wg[c] })),
    'ahead-half': wq.map((w, c) => qkvAhead.group(w, { buffer: wg[c], size: Math.floor(gateUp.bytes / 2 / 256) * 256 })),
  };
  const rounds = 4 * copies;
  const us = {};
  for (const [key, qGroups] of Object.entries(variants)) {
    const host = key === 'plain' ? qkv : qkvAhead;
    const seconds = await time((pass) => {
      for (let i = 0; i < rounds; i++) {
        host.record(pass, qGroups[i % copies]);
        gateUp.record(pass, gGroups[i % copies]);
      }
    });
    us[key] = (seconds / rounds) * 1e6;
  }
  console.log(JSON.stringify({ rounds: '1B q_k_v then gate_up', us, clock: timer.clock }));
}
console.log(JSON.stringify({ device: `${gpu.backend}: ${gpu.adapter}` }));
gpu.destroy();
