// Each prefill kernel's time, its layers' dispatches added up: Model.profile (each dispatch alone, timestamps where
// the adapter has them; a dispatch alone carries about 8 µs more than inside a pass) at 128 and 512 tokens, the
// median of 5 after one. Build first; on the GPU machine:
//   bash .device/vulkan-run node scripts/device/prefill-kernels.mjs MODEL [--backend vulkan]
import { parseArgs } from 'node:util';
import { loadModel } from '../../dist/src/api.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { backend: { type: 'string' } } });
if (positionals.length !== 1) throw new Error('usage: prefill-kernels.mjs MODEL [--backend vulkan]');
const model = await loadModel(positionals[0], { backend: values.backend });
try {
  for (const tokens of [128, 512]) {
    const runs = [];
    for (let r = 0; r < 6; r++) runs.push((await model.profile('prefill', tokens)).kernels);
    runs.shift();
    const groups = new Map();
    runs[0].forEach((k, i) => {
      const name = k.name.replace(/^l\d+\./, 'l*.');
      const seconds = runs.map((run) => run[i].seconds).sort((a, b) => a - b)[2];
      const g = groups.get(name) ?? { count: 0, seconds: 0, kind: k.kind };
      g.count++;
      g.seconds += seconds;
      groups.set(name, g);
    });
    console.log(`prefill ${tokens}:`);
    for (const [name, g] of [...groups].sort((a, b) => b[1].seconds - a[1].seconds)) {
      console.log(
        `  ${name.padEnd(22)} ${g.kind.padEnd(22)} ${String(g.count).padStart(3)}× ${(g.seconds * 1e3).toFixed(3)} ms (${((g.seconds / g.count) * 1e6).toFixed(1)} µs each)`,
      );
    }
  }
} finally {
  model.release();
}
