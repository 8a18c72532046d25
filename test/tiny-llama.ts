// A small llama whose sizes are not powers of two (grouped heads included), with deterministic weights,
// for the peer engines' tests. It never stops on its own, so runs last the steps asked for.
import type { ModelConfig } from '../models/llama.js';
import { syntheticWeights } from '../models/synthetic.js';

export const tinyLlama: ModelConfig = {
  family: 'llama',
  dim: 48,
  hiddenDim: 100,
  nLayers: 3,
  nHeads: 6,
  nKvHeads: 2,
  headSize: 8,
  vocabSize: 97,
  seqLen: 32,
  normEps: 1e-5,
  ropeTheta: 10000,
  bosId: 1,
  stop: { ids: [], inPrompt: false },
};

export const tinyLlamaWeights = syntheticWeights(tinyLlama);
