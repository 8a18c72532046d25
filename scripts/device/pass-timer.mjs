// What the device scripts time a compute pass with: `passTimer(gpu)` gives `seconds(record)`, which records one pass
// through `record(pass)`, submits it and returns its GPU seconds between timestamps at the pass's start and end
// (else the host clock around the submit, up to onSubmittedWorkDone), and `clock`, which of the two it is.
export function passTimer(gpu) {
  const { device } = gpu;
  const timestamps = device.features.has('timestamp-query');
  const querySet = timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : undefined;
  const resolved = timestamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : undefined;
  const readBack = timestamps ? device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : undefined;
  return {
    clock: timestamps ? 'timestamp' : 'host',
    async seconds(record) {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass(querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
      record(pass);
      pass.end();
      if (querySet) {
        encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
        encoder.copyBufferToBuffer(resolved, 0, readBack, 0, 16);
      }
      const t0 = performance.now();
      device.queue.submit([encoder.finish()]);
      if (!querySet) {
        await device.queue.onSubmittedWorkDone();
        return (performance.now() - t0) / 1000;
      }
      await gpu.mapRead(readBack);
      const [begin, end] = new BigUint64Array(readBack.getMappedRange().slice(0));
      readBack.unmap();
      return Number(end - begin) / 1e9;
    },
  };
}
