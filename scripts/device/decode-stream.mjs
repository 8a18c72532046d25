// Greedy decode steps back to back on the GPU, without the generation loop: recorded runs of steps (each fed the
// token the step before chose) submitted at once and timed until the last is read back, against the same
// steps from model.generate and the GPU's time over one step's pass alone (runCost). Where the generation loop
// takes longer a step than the stream, the host or its waits set the rate; where the stream takes longer than
// the pass, the GPU spends the difference between passes. Build first.
//   node scripts/device/decode-stream.mjs MODEL.gguf [--steps 32] [--toggles a,b]
import { parseArgs } from 'node:util';
import { loadModel } from '../../dist/src/api.js';
import { RECORD_SLOTS, RUN_STEPS } from '../../dist/src/runtime/executor.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { steps: { type: 'string', default: '32' }, toggles: { type: 'string' }, backend: { type: 'string', default: 'vulkan' } },
});
const steps = Number(values.steps);
const model = await loadModel(positionals[0], {
  backend: values.backend,
  ...(values.toggles !== undefined ? { toggles: values.toggles.split(',').filter(Boolean) } : {}),
});
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
try {
  const loop = [];
  for (let r = 0; r < 7; r++) {
    let t0 = 0;
    let n = 0;
    let t1 = 0;
    for await (const s of model.generate({ promptIds: [1], steps: steps + 1, temperature: 0 })) {
      if (s.position === 0) t0 = performance.now();
      else n++;
      t1 = performance.now();
    }
    loop.push((t1 - t0) / n);
  }
  // the executor behind generate (a private member: this script measures the runtime itself)
  const decode = await model.decodeReady;
  const nextOut = decode.plan.outputs.find((o) => decode.plan.buffers.find((b) => b.name === o)?.dtype === 'i32');
  // the stream: as many runs as record slots, of RUN_STEPS steps each, recorded, then submitted back to back
  const runs = Math.ceil(steps / RUN_STEPS);
  if (runs > RECORD_SLOTS) throw new Error(`--steps takes at most ${RECORD_SLOTS * RUN_STEPS} steps`);
  const stream = { record: [], submit: [], gpu: [] };
  for (let r = 0; r < 7; r++) {
    const firsts = Array.from({ length: runs }, (_, i) => 1 + i * RUN_STEPS);
    const lengths = firsts.map((first) => Math.min(RUN_STEPS, 1 + steps - first));
    const t0 = performance.now();
    const recorded = firsts.map((first, i) =>
      decode.record(
        Array.from({ length: lengths[i] }, (_, j) => ({ P: first + j })),
        [{ name: nextOut, start: 0, count: 1 }],
        { from: nextOut, to: 'tokens' },
        i > 0,
      ),
    );
    const t1 = performance.now();
    recorded.forEach((run, i) =>
      decode.submit(
        run,
        Array.from({ length: lengths[i] }, (_, j) => ({
          positions: Int32Array.of(firsts[i] + j),
          ...(i === 0 && j === 0 ? { tokens: Int32Array.of(1) } : {}),
        })),
      ),
    );
    const t2 = performance.now();
    for (const run of recorded) await decode.readBack(run);
    const t3 = performance.now();
    stream.record.push((t1 - t0) / steps);
    stream.submit.push((t2 - t1) / steps);
    stream.gpu.push((t3 - t2) / steps);
  }
  const cost = await model.runCost('decode', 1, steps >> 1);
  console.log(
    JSON.stringify({
      model: positionals[0],
      toggles: values.toggles ?? 'default',
      steps,
      loop_ms_a_step: median(loop),
      stream_record_ms_a_step: median(stream.record),
      stream_submit_ms_a_step: median(stream.submit),
      stream_wait_ms_a_step: median(stream.gpu),
      pass_ms: cost.gpu === undefined ? null : cost.gpu * 1000,
      one_step_record_ms: cost.record * 1000,
      one_step_submit_ms: cost.submit * 1000,
    }),
  );
} finally {
  model.release();
}
