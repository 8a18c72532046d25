// GPT-2 (GPT2LMHeadModel): models/gpt2.ts's sizes from config.json, its tensors under gpt2.ts's names (Conv1D
// weights ([in, out]) transposed to [out, in], the fused c_attn split into q, k and v), and its learned positions.
import { excerpt } from '../../src/file-input.js';
import { sourceRows, transposedSource, type TensorSource } from '../../src/weights/source.js';
import { gpt2Graph, gpt2WeightShapes } from '../gpt2.js';
import type { ModelConfig } from '../llama.js';
import type { CheckpointTensors, ConfigFields, Family, FamilyConfig, ModelDefinition } from './family.js';

/** models/gpt2.ts: nothing computed, its position table (wpe) cut to the context; quantizing is not supported. */
export const gpt2Definition: ModelDefinition = {
  graph: gpt2Graph,
  weightShapes: gpt2WeightShapes,
  computedWeights: () => new Map(),
  positionTables: ['wpe'],
};

function config(c: ConfigFields): FamilyConfig {
  const dim = c.int('n_embd');
  const nHeads = c.int('n_head');
  if (dim % nHeads !== 0) c.fail(`n_head ${nHeads} does not divide n_embd ${dim}`);
  const activation = c.get('activation_function') ?? 'gelu_new';
  if (typeof activation !== 'string' || !['gelu_new', 'gelu_pytorch_tanh'].includes(activation)) {
    c.fail(`activation_function ${excerpt(activation)} is not supported (gelu_new is)`);
  }
  if (c.get('scale_attn_weights') === false || c.get('scale_attn_by_inverse_layer_idx') === true)
    c.fail(`only attention scaled by 1/sqrt(head size) is supported`);
  return {
    family: 'gpt2',
    dim,
    hiddenDim: c.get('n_inner') === undefined ? 4 * dim : c.int('n_inner'),
    nLayers: c.int('n_layer'),
    nHeads,
    nKvHeads: nHeads,
    headSize: dim / nHeads,
    seqLen: c.int('n_positions'),
    normEps: c.num('layer_norm_epsilon', 1e-5),
    ropeTheta: 0,
  };
}

function weights(config: ModelConfig, tensors: CheckpointTensors): Map<string, TensorSource> {
  const d = config.dim;
  // some checkpoints name their tensors without the `transformer.` prefix
  const get = (key: string, shape: readonly number[]): TensorSource => tensors.get(tensors.has(key) ? key : key.replace(/^transformer\./, ''), shape);
  const out = new Map<string, TensorSource>([
    ['wte', get('transformer.wte.weight', [config.vocabSize, d])],
    ['wpe', get('transformer.wpe.weight', [config.seqLen, d])],
    ['ln_f.weight', get('transformer.ln_f.weight', [d])],
    ['ln_f.bias', get('transformer.ln_f.bias', [d])],
  ]);
  for (let l = 0; l < config.nLayers; l++) {
    const h = `transformer.h.${l}.`;
    const p = `layers.${l}.`;
    const qkv = transposedSource(get(`${h}attn.c_attn.weight`, [d, 3 * d]));
    const qkvBias = get(`${h}attn.c_attn.bias`, [3 * d]);
    ['q', 'k', 'v'].forEach((n, i) => {
      out.set(`${p}w${n}`, sourceRows(qkv, i * d, d));
      out.set(`${p}b${n}`, sourceRows(qkvBias, i * d, d));
    });
    out.set(`${p}wo`, transposedSource(get(`${h}attn.c_proj.weight`, [d, d])));
    out.set(`${p}bo`, get(`${h}attn.c_proj.bias`, [d]));
    out.set(`${p}w_fc`, transposedSource(get(`${h}mlp.c_fc.weight`, [d, config.hiddenDim])));
    out.set(`${p}b_fc`, get(`${h}mlp.c_fc.bias`, [config.hiddenDim]));
    out.set(`${p}w_proj`, transposedSource(get(`${h}mlp.c_proj.weight`, [config.hiddenDim, d])));
    out.set(`${p}b_proj`, get(`${h}mlp.c_proj.bias`, [d]));
    for (const n of ['ln_1', 'ln_2']) {
      out.set(`${p}${n}.weight`, get(`${h}${n}.weight`, [d]));
      out.set(`${p}${n}.bias`, get(`${h}${n}.bias`, [d]));
    }
  }
  return out;
}

export const gpt2: Family = {
  name: 'gpt2',
  hf: { architectures: ['GPT2LMHeadModel'], config, weights, layers: { key: 'n_layer', tensor: /^(?:transformer\.)?h\.(\d+)\./ } },
};
