// A checkpoint as weft reads it (its configuration, and where each tensor is), and the table of checkpoint formats:
// each format's module says how a path is recognised as one of its checkpoints and read, so adding a format is one
// entry here. No tensor data is read; tokenizers are found by each format's conventions.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readJsonObject, readRegularFile } from '../src/file-input.js';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { Tokenizer, type TextTokenizer } from '../src/runtime/tokenizer.js';
import { regularFileSize, type TensorSource } from '../src/weights/source.js';
import { ggufCheckpoint, type GgufFile } from './gguf.js';
import { huggingFaceCheckpoint } from './huggingface.js';
import { llama2cCheckpoint } from './llama2c.js';
import type { ModelConfig } from './llama.js';

export interface Checkpoint {
  readonly config: ModelConfig;
  /** every tensor the graphs read, by name, as a source in its own format, read when it is uploaded */
  readonly tensors: ReadonlyMap<string, TensorSource>;
}

/** A checkpoint as its format reads it, with what the format keeps besides its tensors. */
export interface CheckpointFile {
  readonly checkpoint: Checkpoint;
  /** the tokenizer the file holds itself (a GGUF file's), undefined where it holds none */
  readonly ownTokenizer?: () => TextTokenizer | undefined;
  /** the tokenizer file that comes with the checkpoint, read where it exists (a Hugging Face folder's tokenizer.json) */
  readonly tokenizerFile?: string;
  /** where findChatTemplate looks for the checkpoint's chat template */
  readonly chatTemplate: string | GgufFile;
}

export interface CheckpointFormat {
  /** what a checkpoint of the format is, as messages name it */
  readonly description: string;
  /** whether its checkpoints are folders or files */
  readonly holds: 'folder' | 'file';
  /** whether `path`, a folder or a regular file as `holds` says, is one of its checkpoints */
  recognizes(path: string): boolean;
  read(path: string): CheckpointFile;
}

/** The formats in the order a path is tried: llama2.c files start with no magic, so llama2.c takes any other file. */
export const checkpointFormats: readonly CheckpointFormat[] = [huggingFaceCheckpoint, ggufCheckpoint, llama2cCheckpoint];

/**
 * Reads a checkpoint's configuration and the places of its tensors (no tensor data): a llama2.c `.bin`, a
 * GGUF file (`.gguf`, or starting with "GGUF"), or a Hugging Face folder (config.json and safetensors).
 */
export function readCheckpoint(path: string): Checkpoint {
  return readCheckpointFile(path).checkpoint;
}

/** readCheckpoint, with what the checkpoint's format keeps besides its tensors (its tokenizer, its chat template). */
export function readCheckpointFile(path: string): CheckpointFile {
  const holds = isDirectory(path) ? 'folder' : 'file';
  if (holds === 'file') regularFileSize(path, 'checkpoint');
  const formats = checkpointFormats.filter((f) => f.holds === holds);
  const format = formats.find((f) => f.recognizes(path));
  if (!format) throw new Error(`${path}: a ${holds} must hold ${formats.map((f) => f.description).join(' or ')}`);
  return format.read(path);
}

/**
 * A checkpoint's tokenizer: the file `given` (llama2.c .bin, or Hugging Face .json with the tokenizer_config.json
 * beside it), else the checkpoint's own (a GGUF file's, a folder's tokenizer.json), else tokenizer.bin beside the
 * checkpoint; undefined when none is given and none of these exists.
 */
export function checkpointTokenizer(path: string, file: CheckpointFile, given?: string): TextTokenizer | undefined {
  const own = given === undefined ? file.ownTokenizer?.() : undefined;
  if (own) return own;
  const tokPath = given ?? (file.tokenizerFile !== undefined && existsSync(file.tokenizerFile) ? file.tokenizerFile : join(dirname(path), 'tokenizer.bin'));
  if (given === undefined && !existsSync(tokPath)) return undefined;
  const bytes = readRegularFile(tokPath, 'tokenizer');
  const vocabSize = file.checkpoint.config.vocabSize;
  if (!tokPath.endsWith('.json')) return Tokenizer.fromBytes(bytes, vocabSize, tokPath);
  const configPath = join(dirname(tokPath), 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJsonObject(configPath, 'tokenizer config') : undefined;
  return HfTokenizer.fromJson(new TextDecoder().decode(bytes), vocabSize, tokPath, { config });
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
