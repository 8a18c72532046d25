// Qwen2 (Qwen2ForCausalLM; GGUF qwen2): Llama's definition with biases on the q, k and v projections, its
// sliding window only where use_sliding_window says so; llama.cpp keeps q/k in rotate-half order.
import type { ConfigFields } from './family.js';
import { llamaFamily } from './llama.js';

/** Qwen's sliding window applies only when use_sliding_window is true (its configs carry the size regardless). */
export const qwenWindow = (c: ConfigFields): unknown => (c.get('use_sliding_window') === true ? c.get('sliding_window') : undefined);

export const qwen2 = llamaFamily({
  name: 'qwen2',
  architectures: ['Qwen2ForCausalLM'],
  options: () => ({ attentionBias: 'qkv' }),
  window: qwenWindow,
  gguf: { arch: 'qwen2', options: { attentionBias: 'qkv' }, rotateHalf: true },
});
