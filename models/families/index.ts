// The model families weft runs, keyed by Hugging Face architecture and by GGUF architecture: each is one
// module (config mapping, tensor names, graph options), so adding a family is one module and one entry here.
import type { TensorSource } from '../../src/weights/source.js';
import { gpt2WeightShapes } from '../gpt2.js';
import { llamaWeightShapes, type ModelConfig } from '../llama.js';
import type { CheckpointTensors, ConfigFields, Family, FormatMapping } from './family.js';
import { gpt2 } from './gpt2.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { phi3 } from './phi3.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';

export type { CheckpointTensors, ConfigFields, Family } from './family.js';

export const families: readonly Family[] = [llama, mistral, qwen2, qwen3, phi3, gpt2];

/** config.json's architectures[0] → its family */
export const hfFamilies: ReadonlyMap<string, Family> = new Map(families.flatMap((f) => f.hf.architectures.map((a) => [a, f] as const)));

/** GGUF general.architecture → its family */
export const ggufFamilies: ReadonlyMap<string, Family> = new Map(families.flatMap((f) => (f.gguf ? [[f.gguf.arch, f] as const] : [])));

/** A family's weights from a checkpoint, checked: a tensor for every weight its model definition reads (RoPE tables aside), of the shape it reads. */
export function familyWeights(mapping: FormatMapping, config: ModelConfig, tensors: CheckpointTensors, fields: ConfigFields): Map<string, TensorSource> {
  const weights = mapping.weights(config, tensors, fields);
  const shapes = config.family === 'gpt2' ? gpt2WeightShapes(config) : llamaWeightShapes(config);
  for (const [name, shape] of shapes) {
    if (name === 'rope_cos' || name === 'rope_sin') continue;
    const t = weights.get(name) ?? tensors.fail(`no tensor for ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) tensors.fail(`${name} has shape [${t.shape.join(', ')}], the model reads [${shape.join(', ')}]`);
  }
  return weights;
}
