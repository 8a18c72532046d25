// Mistral (MistralForCausalLM): Llama's definition and tensor names, with a sliding window that caps the
// context. llama.cpp converts it to its llama architecture, so GGUF files of it read as llama.
import { llamaFamily } from './llama.js';

export const mistral = llamaFamily({
  name: 'mistral',
  architectures: ['MistralForCausalLM'],
  options: () => ({}),
});
