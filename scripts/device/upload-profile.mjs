// Where a load's upload phase goes: Model.load of a checkpoint with the upload ring's sends timed (each one's wait
// for a staging buffer, and its fill: fills may overlap), weight buffers' creation, each weight's whole creation,
// the upload around them, and the garbage collector's pauses. Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/upload-profile.mjs MODEL [--dist DIR]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { PerformanceObserver } from 'node:perf_hooks';
import { timeMethod } from './time-method.mjs';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { dist: { type: 'string' } } });
const dist = values.dist ? pathToFileURL(resolve(values.dist)).href : new URL('../../dist', import.meta.url).href;
const { loadModel } = await import(`${dist}/src/api.js`);
const { UploadRing } = await import(`${dist}/src/runtime/upload.js`);
const { ResidentBuffers } = await import(`${dist}/src/runtime/executor.js`);

const ms = { wait: 0, fill: 0, allocate: 0, create: 0, upload: 0, gc: 0, gcs: 0, sends: 0, bytes: 0 };
const now = () => performance.now();
// the ring's sends: the wait from each send's call to its fill's start (for a staging buffer to be free and the
// sends before it to be taken), and its fill
const send = UploadRing.prototype.send;
UploadRing.prototype.send = function (size, fill, copies, after) {
  const asked = now();
  ms.sends++;
  ms.bytes += size;
  const timed = async (into) => {
    const filling = now();
    ms.wait += filling - asked;
    await fill(into);
    ms.fill += now() - filling;
  };
  return send.call(this, size, timed, copies, after);
};
// each weight buffer's allocation
timeMethod(ResidentBuffers, 'allocate', (t) => (ms.allocate += t));
// each weight's whole creation (allocation, reads, sends), and the upload around them (its waits for the device)
timeMethod(ResidentBuffers, 'create', (t) => (ms.create += t));
timeMethod(ResidentBuffers, 'upload', (t) => (ms.upload += t));
// the garbage collector's pauses during the load
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    ms.gc += e.duration;
    ms.gcs++;
  }
}).observe({ entryTypes: ['gc'] });
const start = now();
const model = await loadModel(positionals[0], {});
const round = (x) => +x.toFixed(1);
console.log(
  JSON.stringify({
    dist: values.dist ?? 'dist',
    load_s: model.loadTimes,
    whole_s: round((now() - start) / 1000),
    upload_ms: {
      upload: round(ms.upload),
      create: round(ms.create),
      wait: round(ms.wait),
      fill: round(ms.fill),
      allocate: round(ms.allocate),
      gc: round(ms.gc),
      gcs: ms.gcs,
    },
    sends: ms.sends,
    gb: +(ms.bytes / 1e9).toFixed(3),
  }),
);
model.release();
process.exit(0);
