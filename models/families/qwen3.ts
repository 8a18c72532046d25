// Qwen3 (Qwen3ForCausalLM; GGUF qwen3): Llama's definition with each head of q and k RMS-normalized before RoPE
// (self_attn.q_norm / k_norm, GGUF attn_q_norm / attn_k_norm) and a head size of its own (head_dim, key_length).
import { attentionBias, llamaFamily } from './llama.js';
import { qwenWindow } from './qwen2.js';

export const qwen3 = llamaFamily({
  name: 'qwen3',
  architectures: ['Qwen3ForCausalLM'],
  options: (c) => ({ qkNorm: true, ...attentionBias(c) }),
  window: qwenWindow,
  gguf: { arch: 'qwen3', options: { qkNorm: true }, rotateHalf: true },
});
