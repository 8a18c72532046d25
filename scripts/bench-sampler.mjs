// Host time of one sampled token (temperature 0.8, top-p 0.9, run.c's sampler) at the vocabularies of Llama 2,
// Llama 3 and Qwen2.5, over logits spread as a model's (near N(0, 3), a few tokens 12–22 above, one at 24):
// the median of 9 runs of 100 draws after a warm-up. Build first (npm run bench:sampler does).
import { Sampler } from '../dist/src/runtime/sampler.js';

const RUNS = 9;
const DRAWS = 100;
let state = 1;
const uniform = () => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return state / 2 ** 32;
};

for (const vocab of [32000, 128256, 151936]) {
  const rows = Array.from({ length: 8 }, () => {
    const logits = Float32Array.from({ length: vocab }, () => (uniform() + uniform() + uniform() + uniform() - 2) * 3);
    for (let k = 0; k < 20; k++) logits[Math.floor(uniform() * vocab)] = 12 + 10 * uniform();
    logits[Math.floor(uniform() * vocab)] = 24;
    return logits;
  });
  const sampler = new Sampler(vocab, 0.8, 0.9, 42);
  for (let i = 0; i < 20; i++) sampler.sample(rows[i % rows.length]);
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < DRAWS; i++) sampler.sample(rows[i % rows.length]);
    runs.push((performance.now() - t0) / DRAWS);
  }
  runs.sort((a, b) => a - b);
  console.log(`vocabulary ${vocab}: ${runs[RUNS >> 1].toFixed(3)} ms a token`);
}
