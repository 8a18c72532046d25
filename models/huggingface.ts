// Hugging Face checkpoints: a folder of config.json and safetensors (one file, or shards listed in
// model.safetensors.index.json), mapped onto models/llama.ts or models/gpt2.ts by the family that config.json's
// architecture names (models/families); every tensor is checked against the shape config.json implies.
import { existsSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { excerpt, isJsonObject, ownField, readJsonObject } from '../src/file-input.js';
import type { TensorSource } from '../src/weights/source.js';
import type { CheckpointFormat } from './checkpoint.js';
import { familyWeights, hfFamilies, type CheckpointTensors, type ConfigFields } from './families/index.js';
import { MAX_SIZE } from './families/family.js';
import type { ModelConfig } from './llama.js';
import { readSafetensors } from './safetensors.js';

/** config.json's values, read as a family asks for them; errors name the file. */
function configFields(path: string, c: Record<string, unknown>): ConfigFields {
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  const get = (key: string): unknown => ownField(c, key);
  return {
    get,
    int: (key, fallback) => {
      const v = get(key) ?? fallback;
      if (!(typeof v === 'number' && Number.isSafeInteger(v) && v > 0)) return fail(`${key} must be a positive integer, is ${excerpt(v)}`);
      return v <= MAX_SIZE ? v : fail(`${key} is ${v}, beyond the ${MAX_SIZE} weft reads`);
    },
    num: (key, fallback) => {
      const v = get(key) ?? fallback;
      return typeof v === 'number' && v > 0 ? v : fail(`${key} must be a positive number, is ${excerpt(v)}`);
    },
    fail,
  };
}

/** The longest shard name an index may give (its messages quote it whole). */
const MAX_SHARD_NAME = 200;

/** All tensors of the checkpoint: model.safetensors, or the shards its index names (each inside the folder, each tensor once). */
function readTensors(dir: string): Map<string, TensorSource> {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const map = readJsonObject(index).weight_map;
    if (!isJsonObject(map)) throw new Error(`${index}: weight_map must be an object of tensor names to shard files`);
    const shards = new Set<string>();
    for (const [name, shard] of Object.entries(map)) {
      if (typeof shard !== 'string' || shard === '' || resolve(dir, shard).slice(0, resolve(dir).length + 1) !== resolve(dir) + sep) {
        throw new Error(`${index}: weight_map's tensor ${excerpt(name)} names ${excerpt(shard)}, not a file inside the folder`);
      }
      // shard paths appear in messages as they are: no control characters, and short (real ones are ~40 characters)
      if (shard.length > MAX_SHARD_NAME || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(shard)) {
        throw new Error(
          `${index}: weight_map names the shard ${excerpt(shard)}: a shard's name has at most ${MAX_SHARD_NAME} characters, none of them a control character`,
        );
      }
      shards.add(shard);
    }
    const tensors = new Map<string, TensorSource>();
    for (const shard of shards) {
      for (const [k, v] of readSafetensors(join(dir, shard))) {
        if (tensors.has(k)) throw new Error(`${join(dir, shard)}: tensor ${excerpt(k)} is also in another shard`);
        tensors.set(k, v);
      }
    }
    return tensors;
  }
  if (existsSync(single)) return readSafetensors(single);
  throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

/** A folder with config.json; its tokenizer.json and its chat template (chat_template.jinja or tokenizer_config.json's) are in it too. */
export const huggingFaceCheckpoint: CheckpointFormat = {
  description: 'a Hugging Face checkpoint (config.json and safetensors)',
  holds: 'folder',
  recognizes: (dir) => existsSync(join(dir, 'config.json')),
  read: (dir) => ({ checkpoint: readHuggingFace(dir), tokenizerFile: join(dir, 'tokenizer.json'), chatTemplate: dir }),
};

/** BOS and the end-of-sequence ids (generation_config.json's, else config.json's) that are in the vocabulary. */
function specialTokens(dir: string, c: Record<string, unknown>, vocab: number): Pick<ModelConfig, 'bosId' | 'stop'> {
  const generation = join(dir, 'generation_config.json');
  const g = existsSync(generation) ? readJsonObject(generation) : {};
  const ids = (v: unknown): number[] => (Array.isArray(v) ? v : [v]).filter((x): x is number => Number.isInteger(x) && x >= 0 && x < vocab);
  const field = (key: string): unknown => ownField(g, key) ?? ownField(c, key);
  const [bos] = ids(field('bos_token_id'));
  return { ...(bos !== undefined ? { bosId: bos } : {}), stop: { ids: ids(field('eos_token_id')), inPrompt: false } };
}

/** The tensors as families read them, each checked against the shape config.json implies. */
function checkedTensors(dir: string, tensors: ReadonlyMap<string, TensorSource>): CheckpointTensors {
  const fail = (msg: string): never => {
    throw new Error(`${dir}: ${msg}`);
  };
  return {
    names: () => tensors.keys(),
    has: (key) => tensors.has(key),
    get: (key, shape) => {
      const t = tensors.get(key) ?? fail(`tensor ${key} is missing`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        fail(`tensor ${key} has shape [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
      }
      return t;
    },
    fail,
  };
}

export function readHuggingFace(dir: string): { config: ModelConfig; tensors: Map<string, TensorSource> } {
  const path = join(dir, 'config.json');
  const raw = readJsonObject(path);
  const fields = configFields(path, raw);
  const architectures = fields.get('architectures');
  const arch = Array.isArray(architectures) ? architectures[0] : fields.get('model_type');
  const family =
    (typeof arch === 'string' ? hfFamilies.get(arch) : undefined) ??
    fields.fail(`architecture ${excerpt(arch)} is not supported (weft runs ${[...hfFamilies.keys()].join(', ')})`);
  const sized = { ...family.hf.config(fields), vocabSize: fields.int('vocab_size') };
  const config: ModelConfig = { ...sized, ...specialTokens(dir, raw, sized.vocabSize) };
  return { config, tensors: familyWeights(family.hf, config, checkedTensors(dir, readTensors(dir)), fields) };
}
