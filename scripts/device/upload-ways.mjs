// Ways to fill 1 GiB of device buffers (64 MiB each) from the host: mapped at creation, filled and unmapped; through a
// ring of reused MAP_WRITE staging buffers (mapAsync, fill, copyBufferToBuffer); queue.writeBuffer from one host array.
// Seconds and GB/s of each, twice. Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/upload-ways.mjs
import { openGpu } from '../../dist/src/runtime/gpu.js';

const gpu = await openGpu({ backend: process.env.WEBGPU_BACKEND });
const { device } = gpu;
const MB = 1 << 20;
const SIZE = 64 * MB;
const N = 16;
const src = new Uint8Array(SIZE);
for (let i = 0; i < SIZE; i += 4096) src[i] = i & 255;
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const time = async (name, f) => {
  const bufs = [];
  const t = performance.now();
  await f(bufs);
  await device.queue.onSubmittedWorkDone();
  const s = (performance.now() - t) / 1000;
  console.log(JSON.stringify({ way: name, s: +s.toFixed(3), gb_per_s: +((N * SIZE) / s / 1e9).toFixed(2) }));
  bufs.forEach((b) => b.destroy());
};
for (let round = 0; round < 2; round++) {
  await time('mappedAtCreation', async (bufs) => {
    for (let i = 0; i < N; i++) {
      const b = device.createBuffer({ size: SIZE, usage, mappedAtCreation: true });
      new Uint8Array(b.getMappedRange()).set(src);
      b.unmap();
      bufs.push(b);
    }
  });
  for (const [ring, chunk] of [
    [2, 16 * MB],
    [4, 16 * MB],
    [2, 64 * MB],
  ]) {
    const staging = Array.from({ length: ring }, () =>
      device.createBuffer({ size: chunk, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true }),
    );
    await time(`ring ${ring}×${chunk / MB} MiB`, async (bufs) => {
      const ready = staging.map(() => Promise.resolve());
      let k = 0;
      for (let i = 0; i < N; i++) {
        const b = device.createBuffer({ size: SIZE, usage });
        bufs.push(b);
        for (let at = 0; at < SIZE; at += chunk) {
          const s = staging[k % ring];
          await ready[k % ring];
          new Uint8Array(s.getMappedRange()).set(src.subarray(at, at + chunk));
          s.unmap();
          const e = device.createCommandEncoder();
          e.copyBufferToBuffer(s, 0, b, at, chunk);
          device.queue.submit([e.finish()]);
          ready[k % ring] = s.mapAsync(GPUMapMode.WRITE);
          k++;
        }
      }
      await Promise.all(ready);
    });
    staging.forEach((s) => s.destroy());
  }
  await time('writeBuffer', async (bufs) => {
    for (let i = 0; i < N; i++) {
      const b = device.createBuffer({ size: SIZE, usage });
      device.queue.writeBuffer(b, 0, src);
      bufs.push(b);
      if (i % 4 === 3) await device.queue.onSubmittedWorkDone();
    }
  });
}
gpu.destroy();
process.exit(0);
