// Every run's time rather than a median: loads the synthetic 110M model once per weight format, one load
// after another in one process, and prints for each load the time of each of 60 prefills of 128 tokens,
// then the median µs per decode step of 10 runs of 64 greedy steps (after 4 warm-ups) and of 4 runs whose
// tokens the host chooses, one step read back before the next is recorded (after 2).
//   npm run build && node scripts/run-times.mjs [BACKEND] [FORMAT,…]      (formats: f32, f16, q4_0)
import { loadModel } from '../dist/src/index.js';
import { quantizeCheckpoint } from '../dist/src/api.js';
import { syntheticModel } from '../dist/models/synthetic.js';
import { benchPrompt } from '../dist/src/peers/peer.js';

const backend = process.argv[2];
const formats = (process.argv[3] ?? 'f32,f16,q4_0,f32,f16').split(',');
const files = { ...syntheticModel('110M'), tokenizer: undefined };
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const t00 = performance.now();
const at = () => `${((performance.now() - t00) / 1000).toFixed(2)} s`;

/** µs per step of one generation of 64 steps after a one-token prompt */
async function stepMicros(model, request) {
  let start = 0;
  let end = 0;
  let steps = 0;
  for await (const s of model.generate({ promptIds: [1], steps: 65, ...request })) {
    if (s.position === 0) start = performance.now();
    else steps++;
    end = performance.now();
  }
  return ((end - start) / steps) * 1000;
}

for (const format of formats) {
  const source = format === 'q4_0' ? quantizeCheckpoint(files, 'q4_0') : files;
  const model = await loadModel(source, { backend, weights: format === 'f16' ? 'f16' : 'f32' });
  console.log(`# ${format} loaded at ${at()} (${model.device.backend})`);
  const prompt = benchPrompt(128, model.config.vocabSize, 1);
  const prefill = [];
  for (let r = 0; r < 60; r++) {
    const t0 = performance.now();
    for await (const _ of model.generate({ promptIds: prompt, steps: 128, temperature: 0 })) break;
    prefill.push((performance.now() - t0).toFixed(1));
  }
  console.log(`${format} prefill 128, ms per run, from ${at()}: ${prefill.join(' ')}`);
  const chained = [];
  for (let r = 0; r < 14; r++) {
    const us = await stepMicros(model, { temperature: 0 });
    if (r >= 4) chained.push(us);
  }
  // a temperature above 0 makes the host sample each token
  const hostChosen = [];
  for (let r = 0; r < 6; r++) {
    const us = await stepMicros(model, { temperature: 1e-6, seed: 1 });
    if (r >= 2) hostChosen.push(us);
  }
  console.log(
    `${format} decode, µs per step: greedy ${median(chained).toFixed(0)} (${Math.min(...chained).toFixed(0)}–${Math.max(...chained).toFixed(0)}), ` +
      `host-chosen tokens ${median(hostChosen).toFixed(0)}`,
  );
  model.release();
}
