// Model.load of a checkpoint, and its phases (read, device, compile, upload, pipelines) as JSON with the whole load's
// seconds; --dist loads with another build's dist (an A/B of two builds on one file). Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/load-phases.mjs MODEL [--dist DIR]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { dist: { type: 'string' } } });
if (positionals.length !== 1) throw new Error('usage: load-phases.mjs MODEL [--dist DIR]');
const dist = values.dist ? pathToFileURL(resolve(values.dist)).href : new URL('../../dist', import.meta.url).href;
const { loadModel } = await import(`${dist}/src/api.js`);
const start = performance.now();
const model = await loadModel(positionals[0], {});
console.log(JSON.stringify({ dist: values.dist ?? 'dist', load_s: model.loadTimes, whole_s: (performance.now() - start) / 1000 }));
model.release();
process.exit(0);
