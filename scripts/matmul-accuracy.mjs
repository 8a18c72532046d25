// The int8 matmuls' accuracy against the float32 path: one prompt through prefill (where the int8 tiles run)
// on each path, and per path its logits at every position against the float32 path's with the weights as the
// file stores them: the largest |Δ logit|, the largest reference logit, and greedy agreement (positions whose
// largest logit is the same token). Paths: float32 matmuls over Q8_0 weights (the weights' rounding alone, for
// float checkpoints) and int8 matmuls (the weights' and the activations' rounding), with dot4I8Packed and on
// subgroup matrices where the device has them (whose logits should equal dot4's: the same integer products); for
// int8, also decode steps (the int8 GEMVs) against prefill of the same tokens, which should differ only by rounding
// (with and without subgroup reductions).
//   npm run build && node scripts/matmul-accuracy.mjs MODEL [--prompt-tokens N] [--backend NAME]
// MODEL: a checkpoint path or a synthetic model name (110M, 1B). Prints one JSON line per path.
import { parseArgs } from 'node:util';
import { loadModel, readModelFiles } from '../dist/src/api.js';
import { syntheticModel } from '../dist/models/synthetic.js';
import { benchPrompt } from '../dist/src/peers/peer.js';

const { values, positionals } = parseArgs({
  options: { 'prompt-tokens': { type: 'string', default: '64' }, backend: { type: 'string' } },
  allowPositionals: true,
});
const source = positionals[0];
const n = Number(values['prompt-tokens']);
if (!source || !(Number.isInteger(n) && n > 0)) {
  console.error('usage: node scripts/matmul-accuracy.mjs MODEL [--prompt-tokens N] [--backend NAME]');
  process.exit(2);
}
const files = syntheticModel(source) ?? readModelFiles(source);

/** Logits at every prompt position of one load of the model. */
async function prefillLogits(options) {
  const model = await loadModel(files, { ...options, backend: values.backend });
  try {
    const ids = benchPrompt(Math.min(n, model.config.seqLen), model.config.vocabSize, model.config.bosId ?? 1);
    const rows = [];
    for await (const s of model.generate({ promptIds: ids, steps: ids.length, temperature: 0, logits: true })) rows.push(s.logits.slice());
    return { rows, weights: model.weightFormats.join('+'), int8Matrix: model.int8Matrix, device: `${model.device.backend}: ${model.device.adapter}` };
  } finally {
    model.release();
  }
}

/**
 * Decode against prefill on one load: a greedy generation's decode steps (where the decode GEMVs run), then the tokens
 * it fed as one prompt (the prefill tiles); the largest |Δ logit| over the decode positions. Both quantize each
 * row's activations alike under int8 matmuls, so they differ only by summation order.
 */
async function decodeAgainstPrefill(options) {
  const model = await loadModel(files, { ...options, backend: values.backend });
  try {
    const { kernels } = await model.profile('decode', 1, 1);
    const variants = [...new Set(kernels.filter((k) => k.kind.startsWith('linear')).map((k) => k.kind.slice('linear:'.length)))];
    const steps = Math.min(n, 64, model.config.seqLen);
    const decoded = [];
    const first = model.config.bosId ?? 1;
    for await (const s of model.generate({ promptIds: [first], steps, temperature: 0, logits: true })) decoded.push({ ...s, logits: s.logits.slice() });
    const fed = decoded.map((s) => s.token);
    let worst = 0;
    let p = 0;
    for await (const s of model.generate({ promptIds: fed, steps: fed.length, temperature: 0, logits: true })) {
      if (!decoded[p].prefill)
        worst = Math.max(
          worst,
          s.logits.reduce((m, x, i) => Math.max(m, Math.abs(x - decoded[p].logits[i])), 0),
        );
      p++;
    }
    return { decode_matmuls: variants, positions: decoded.filter((s) => !s.prefill).length, max_abs_logit_difference: worst };
  } finally {
    model.release();
  }
}

const argmax = (xs) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);
const maxDifference = (a, b) => a.reduce((m, row, p) => row.reduce((mm, x, i) => Math.max(mm, Math.abs(x - b[p][i])), m), 0);
const reference = await prefillLogits({ matmul: 'float' });
const floatQ8 = reference.weights.split('+').every((w) => ['f32', 'f16', 'bf16'].includes(w));
const paths = [
  ...(floatQ8 ? [['float32 matmuls, Q8_0 weights', { matmul: 'float', weights: 'q8_0' }]] : []),
  ['int8 matmuls', { matmul: 'int8' }],
  // on a device with int8 subgroup matrices (elsewhere the same dot4 tiles again): the same integer products, so the same logits
  ['int8 matmuls on subgroup matrices', { matmul: 'int8', kernels: { int8Matrix: true } }],
];
let dot4;
for (const [name, options] of paths) {
  const run = await prefillLogits(options);
  if (options.matmul === 'int8' && !options.kernels) dot4 = run.rows;
  let maxDiff = 0;
  let maxRef = 0;
  let agree = 0;
  run.rows.forEach((row, p) => {
    const ref = reference.rows[p];
    for (let i = 0; i < row.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(row[i] - ref[i]));
      maxRef = Math.max(maxRef, Math.abs(ref[i]));
    }
    if (argmax(row) === argmax(ref)) agree++;
  });
  console.log(
    JSON.stringify({
      model: source,
      path: name,
      reference: `float32 matmuls, ${reference.weights} weights`,
      weights: run.weights,
      positions: run.rows.length,
      max_abs_logit_difference: maxDiff,
      max_abs_reference_logit: maxRef,
      greedy_agreement: agree / run.rows.length,
      ...(options.kernels ? { max_abs_difference_from_dot4_int8: maxDifference(run.rows, dot4), int8_matrix: run.int8Matrix } : {}),
      ...(options.matmul === 'int8' && !options.kernels
        ? {
            decode_against_prefill: await decodeAgainstPrefill(options),
            // the subgroup reductions (norm scales, GEMV sums) in other orders than prefill's workgroup ones
            decode_against_prefill_without_subgroups: await decodeAgainstPrefill({ ...options, kernels: { subgroups: false } }),
          }
        : {}),
      device: run.device,
    }),
  );
}
