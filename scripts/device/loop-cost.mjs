// Where a greedy decode step's host time goes inside the generation loop: PlanExecutor's record, submit and
// readBack (its wait) per step over generations of 64 and 256 steps, beside runCost's one step alone. Build first;
// on the GPU machine (1B: the synthetic 1B's Q8_0 GGUF, written into weft's GGUF cache where it is missing):
//   bash .device/vulkan-run node scripts/device/loop-cost.mjs MODEL|1B [--dist DIR]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { timeMethod } from './time-method.mjs';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { dist: { type: 'string' } } });
const dist = values.dist ? pathToFileURL(resolve(values.dist)).href : new URL('../../dist', import.meta.url).href;
const { loadModel } = await import(`${dist}/src/api.js`);
const { PlanExecutor } = await import(`${dist}/src/runtime/executor.js`);

let path = positionals[0] ?? '1B';
if (path === '1B') {
  const { syntheticModel } = await import(`${dist}/models/synthetic.js`);
  const { planBenchGguf, ensureBenchGguf, defaultGgufDir } = await import(`${dist}/src/bench-gguf.js`);
  const { EncodePool } = await import(`${dist}/src/weights/encode-pool.js`);
  const plan = planBenchGguf('1B', { ...syntheticModel('1B'), tokenizer: undefined }, 'q8_0', defaultGgufDir());
  let pool;
  await ensureBenchGguf(
    plan,
    (p) => console.log(`writing ${p}`),
    () => (pool ??= new EncodePool()),
  );
  await pool?.close();
  path = plan.path;
}

// milliseconds and calls of each timed part since the last reset; readBack's time runs until its promise settles
const spent = {};
const calls = {};
for (const [name, key] of [
  ['record', 'record'],
  ['submit', 'submit'],
  ['readBack', 'readBackWait'],
]) {
  timeMethod(PlanExecutor, name, (t) => {
    spent[key] = (spent[key] ?? 0) + t;
    calls[key] = (calls[key] ?? 0) + 1;
  });
}

const model = await loadModel(path);
try {
  for (let round = 0; round < 2; round++) {
    for (const steps of [64, 256]) {
      const gens = [];
      for (let g = 0; g < 5; g++) {
        for (const key of Object.keys(spent)) spent[key] = calls[key] = 0;
        let n = 0;
        let first = 0;
        for await (const _ of model.generate({ promptIds: [model.config.bosId ?? 0], steps, temperature: 0 })) if (n++ === 0) first = performance.now();
        // time a step after the first, as weft bench's decode rate; the host's parts over every step
        const per = (key) => (spent[key] ?? 0) / n;
        const stepMs = (performance.now() - first) / (n - 1);
        gens.push({ stepMs, record: per('record'), submit: per('submit'), wait: per('readBackWait'), runs: calls.submit });
      }
      gens.sort((a, b) => a.stepMs - b.stepMs);
      const m = gens[2];
      console.log(
        `round ${round}, ${steps} steps: median ${(1000 / m.stepMs).toFixed(1)} tok/s (${m.stepMs.toFixed(3)} ms a step); ` +
          `a step's record ${m.record.toFixed(3)}, submit ${m.submit.toFixed(3)}, readBack's wait ${m.wait.toFixed(3)} ms; ${m.runs} runs; ` +
          `each generation: ${gens.map((x) => (1000 / x.stepMs).toFixed(0)).join(' ')} tok/s`,
      );
    }
    const c = await model.runCost('decode', 1, 100);
    console.log(
      `runCost, one step alone: record ${(c.record * 1000).toFixed(3)} ms, submit ${(c.submit * 1000).toFixed(3)} ms, GPU pass ${c.gpu !== undefined ? `${(c.gpu * 1000).toFixed(3)} ms` : 'untimed (no timestamps)'}`,
    );
  }
} finally {
  model.release();
}
