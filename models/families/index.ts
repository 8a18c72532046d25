// The model families weft runs, keyed by Hugging Face architecture and by GGUF architecture, and the model
// definitions they map onto, keyed by ModelConfig.family: each family is one module (config mapping, tensor names,
// graph options), so adding a family is one module and one entry here.
import type { TensorSource } from '../../src/weights/source.js';
import type { ModelConfig } from '../llama.js';
import type { CheckpointTensors, ConfigFields, Family, FormatMapping, ModelDefinition } from './family.js';
import { gpt2, gpt2Definition } from './gpt2.js';
import { llama, llamaDefinition } from './llama.js';
import { mistral } from './mistral.js';
import { phi3 } from './phi3.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';

export type { CheckpointTensors, ConfigFields, Family, ModelDefinition } from './family.js';

export const families: readonly Family[] = [llama, mistral, qwen2, qwen3, phi3, gpt2];

/** ModelConfig.family → the definition it picks */
export const definitions: Readonly<Record<ModelConfig['family'], ModelDefinition>> = { llama: llamaDefinition, gpt2: gpt2Definition };

/** config.json's architectures[0] → its family */
export const hfFamilies: ReadonlyMap<string, Family> = new Map(families.flatMap((f) => f.hf.architectures.map((a) => [a, f] as const)));

/** GGUF general.architecture → its family */
export const ggufFamilies: ReadonlyMap<string, Family> = new Map(families.flatMap((f) => (f.gguf ? [[f.gguf.arch, f] as const] : [])));

/** A family's weights from a checkpoint, checked: a tensor for every weight its model definition reads (computed ones aside), of the shape it reads. */
export function familyWeights(mapping: FormatMapping, config: ModelConfig, tensors: CheckpointTensors, fields: ConfigFields): Map<string, TensorSource> {
  // the layer count is checked against the file before anything is sized or looped over by it
  const held = layersHeld(tensors.names(), mapping.layers.tensor);
  if (config.nLayers > held)
    fields.fail(`${mapping.layers.key} is ${config.nLayers}, but the tensors hold ${held === 0 ? 'no layer' : `layers 0 to ${held - 1}`}`);
  const weights = mapping.weights(config, tensors, fields);
  const definition = definitions[config.family];
  const computed = definition.computedWeights(config);
  for (const [name, shape] of definition.weightShapes(config)) {
    if (computed.has(name)) continue;
    const t = weights.get(name) ?? tensors.fail(`no tensor for ${name}`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      tensors.fail(`${name} has shape [${t.shape.join(', ')}], the model reads [${shape.join(', ')}]`);
  }
  return weights;
}

/** How many layers, from layer 0 on without a gap, have tensors among `names`. */
function layersHeld(names: Iterable<string>, tensor: RegExp): number {
  const layers = new Set<number>();
  for (const name of names) {
    const m = tensor.exec(name);
    if (m) layers.add(Number(m[1]));
  }
  let n = 0;
  while (layers.has(n)) n++;
  return n;
}
