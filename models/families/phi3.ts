// Phi-3 (Phi3ForCausalLM; GGUF phi3): Llama's definition with q, k and v fused in one projection (qkv_proj,
// attn_qkv) and gate and up in another (gate_up_proj, GGUF ffn_up; gate first), split into Llama's weights on
// load. LongRoPE (Phi-3 128k) is refused by name; a sliding window caps the context.
import type { ModelConfig } from '../llama.js';
import { llamaFamily, type LayerTensor } from './llama.js';

const qkv = { hf: 'self_attn.qkv_proj.weight', gguf: 'attn_qkv.weight' };
const gateUp = { hf: 'mlp.gate_up_proj.weight', gguf: 'ffn_up.weight' };
/** rows of the fused q/k/v projection: H·hs of q, then KV·hs of k, then of v */
const qkvRows = (start: (c: ModelConfig) => number): LayerTensor => ({
  ...qkv,
  rows: (c) => ({ of: (c.nHeads + 2 * c.nKvHeads) * c.headSize, start: start(c) }),
});

export const phi3 = llamaFamily({
  name: 'phi3',
  architectures: ['Phi3ForCausalLM'],
  options: () => ({}),
  gguf: { arch: 'phi3', options: {}, rotateHalf: true },
  tensors: {
    wq: qkvRows(() => 0),
    wk: qkvRows((c) => c.nHeads * c.headSize),
    wv: qkvRows((c) => (c.nHeads + c.nKvHeads) * c.headSize),
    w1: { ...gateUp, rows: (c) => ({ of: 2 * c.hiddenDim, start: 0 }) },
    w3: { ...gateUp, rows: (c) => ({ of: 2 * c.hiddenDim, start: c.hiddenDim }) },
  },
});
