// The host's share of a decode step, without a GPU: a model with the 1B shape's structure (16 layers, 99 decode
// dispatches with their bindings and pipelines) at small sizes, run greedily on Dawn's null backend (every API
// call, no GPU work): the median time a step over 11 generations of 256 steps, and one step's recording
// (every dispatch into its pass, and finish) and queue.submit (Model.runCost). Build first.
//   node scripts/decode-host-cost.mjs [--backend null] [--toggles a,b]  (toggles: Dawn's, in place of weft's defaults)
import { parseArgs } from 'node:util';
import { loadModel } from '../dist/src/api.js';
import { llamaWeightShapes } from '../dist/models/llama.js';
import { ropeTables } from '../dist/models/llama2c.js';
import { randomTensor } from '../dist/models/synthetic.js';
import { computedSource } from '../dist/src/weights/source.js';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'null' }, toggles: { type: 'string' } } });
const config = {
  family: 'llama',
  vocabSize: 1000,
  seqLen: 1024,
  normEps: 1e-5,
  ropeTheta: 10000,
  bosId: 1,
  dim: 256,
  hiddenDim: 512,
  nLayers: 16,
  nHeads: 4,
  nKvHeads: 2,
  headSize: 64,
};
const rope = ropeTables(config.headSize, config.seqLen, config.ropeTheta);
const tensor = (name, shape) =>
  name === 'rope_cos'
    ? rope.cos
    : name === 'rope_sin'
      ? rope.sin
      : randomTensor(
          name,
          shape.reduce((a, b) => a * b, 1),
          0.05,
          shape.length === 1 ? 1 : 0,
        );
const tensors = new Map([...llamaWeightShapes(config)].map(([name, shape]) => [name, computedSource(shape, () => tensor(name, shape))]));
// decode matmuls as GEMVs (as on a GPU) from K 256, whatever the adapter
const model = await loadModel(
  { config, tensors },
  {
    backend: values.backend,
    kernels: { splitKFrom: 256 },
    ...(values.toggles !== undefined ? { toggles: values.toggles.split(',').filter(Boolean) } : {}),
  },
);
try {
  const steps = [];
  for (let run = 0; run < 80; run++) {
    const t0 = performance.now();
    let n = 0;
    for await (const _ of model.generate({ promptIds: [1], steps: 256, temperature: 0 })) n++;
    steps.push((performance.now() - t0) / n);
  }
  steps.sort((a, b) => a - b);
  const cost = await model.runCost('decode', 1, 100);
  console.log(
    `${model.device.backend} (${model.device.adapter})${values.toggles !== undefined ? ` toggles ${values.toggles}` : ''}: ${model.dispatches.decode} decode dispatches, ${steps[5].toFixed(3)} ms a step ` +
      `(${((steps[5] * 1000) / model.dispatches.decode).toFixed(2)} µs a dispatch); one step recorded in ${(cost.record * 1000).toFixed(3)} ms, ` +
      `submitted in ${(cost.submit * 1000).toFixed(3)} ms`,
  );
} finally {
  model.release();
}
