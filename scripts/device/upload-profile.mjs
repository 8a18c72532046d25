// Where a load's upload phase goes: Model.load of a checkpoint with the upload ring's steps timed (waiting for a
// staging buffer to map again, filling it, encoding and submitting its copies and layout), weight buffers'
// creation, and the rest. Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/upload-profile.mjs MODEL [--dist DIR]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { dist: { type: 'string' } } });
const dist = values.dist ? pathToFileURL(resolve(values.dist)).href : new URL('../../dist', import.meta.url).href;
const { loadModel } = await import(`${dist}/src/api.js`);
const { UploadRing } = await import(`${dist}/src/runtime/upload.js`);
const { ResidentBuffers } = await import(`${dist}/src/runtime/executor.js`);

const ms = { wait: 0, fill: 0, submit: 0, allocate: 0, sends: 0, bytes: 0 };
const now = () => performance.now();
// the ring's send timed around its fill: before it, the wait for a staging buffer to map again; after it, the
// unmap, the copies' encoding and the submit
const sendNow = UploadRing.prototype.sendNow;
UploadRing.prototype.sendNow = async function (size, fill, copies, after) {
  const t0 = now();
  let filling = t0;
  let filled = t0;
  await sendNow.call(
    this,
    size,
    async (into) => {
      filling = now();
      await fill(into);
      filled = now();
    },
    copies,
    after,
  );
  ms.wait += filling - t0;
  ms.fill += filled - filling;
  ms.submit += now() - filled;
  ms.sends++;
  ms.bytes += size;
};
const allocate = ResidentBuffers.prototype.allocate;
ResidentBuffers.prototype.allocate = function (...args) {
  const t = now();
  const b = allocate.apply(this, args);
  ms.allocate += now() - t;
  return b;
};
const start = now();
const model = await loadModel(positionals[0], {});
const round = (x) => +x.toFixed(1);
console.log(
  JSON.stringify({
    dist: values.dist ?? 'dist',
    load_s: model.loadTimes,
    whole_s: round((now() - start) / 1000),
    upload_ms: { wait: round(ms.wait), fill: round(ms.fill), submit: round(ms.submit), allocate: round(ms.allocate) },
    sends: ms.sends,
    gb: +(ms.bytes / 1e9).toFixed(3),
  }),
);
model.release();
process.exit(0);
