// How fast a file's bytes reach the device through the upload ring (two reused 16 MiB MAP_WRITE staging buffers,
// copyBufferToBuffer), by how each staging buffer is filled from the file: one readSync, or 2, 4 or 8 fs.read
// calls on its parts at once (libuv's threads; UV_THREADPOOL_SIZE is set to 8 here); and the reads alone into
// host memory, without the device. The file is read once first, so that the page cache holds it. Build first:
//   bash .device/vulkan-run node scripts/device/upload-reads.mjs FILE [--gib 1]
process.env.UV_THREADPOOL_SIZE ??= '8';
const { closeSync, openSync, read, readSync, fstatSync } = await import('node:fs');
const { parseArgs } = await import('node:util');
const { openGpu } = await import('../../dist/src/runtime/gpu.js');

const { values, positionals } = parseArgs({ allowPositionals: true, options: { gib: { type: 'string', default: '1' } } });
const MB = 1 << 20;
const CHUNK = 16 * MB;
const fd = openSync(positionals[0], 'r');
const size = Math.min(fstatSync(fd).size, Number(values.gib) * 1024 * MB) & ~(CHUNK - 1);
const readAt = (into, position) =>
  new Promise((done, fail) => read(fd, into, 0, into.length, position, (e, n) => (e ? fail(e) : n === into.length ? done() : fail(new Error('short read')))));
/** `into` filled from `position`, in `ways` reads at once (1: one readSync) */
const fill = async (into, position, ways) => {
  if (ways === 1) {
    if (readSync(fd, into, 0, into.length, position) !== into.length) throw new Error('short read');
    return;
  }
  const part = into.length / ways;
  await Promise.all(Array.from({ length: ways }, (_, i) => readAt(into.subarray(i * part, (i + 1) * part), position + i * part)));
};
const host = new Uint8Array(CHUNK);
for (let at = 0; at < size; at += CHUNK) await fill(host, at, 1);

const gpu = await openGpu({ backend: process.env.WEBGPU_BACKEND });
const { device } = gpu;
const target = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
const staging = Array.from({ length: 2 }, () =>
  device.createBuffer({ size: CHUNK, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true }),
);
const report = (way, t) => {
  const s = (performance.now() - t) / 1000;
  console.log(JSON.stringify({ way, gib: size / 1024 / MB, s: +s.toFixed(3), gb_per_s: +(size / s / 1e9).toFixed(2) }));
};
for (let round = 0; round < 2; round++) {
  for (const ways of [1, 2, 4, 8]) {
    let t = performance.now();
    for (let at = 0; at < size; at += CHUNK) await fill(host, at, ways);
    report(`reads alone, ${ways} at once`, t);
    t = performance.now();
    const ready = staging.map(() => Promise.resolve());
    let k = 0;
    for (let at = 0; at < size; at += CHUNK, k++) {
      const s = staging[k % 2];
      await ready[k % 2];
      await fill(new Uint8Array(s.getMappedRange()), at, ways);
      s.unmap();
      const e = device.createCommandEncoder();
      e.copyBufferToBuffer(s, 0, target, at, CHUNK);
      device.queue.submit([e.finish()]);
      ready[k % 2] = s.mapAsync(GPUMapMode.WRITE);
    }
    await Promise.all(ready);
    await device.queue.onSubmittedWorkDone();
    report(`ring, ${ways} at once`, t);
  }
}
closeSync(fd);
gpu.destroy();
process.exit(0);
