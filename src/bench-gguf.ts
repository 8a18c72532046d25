// The GGUF file a bench row runs when weft and llama.cpp must read identical bytes: a synthetic model or a checkpoint
// written once per file type into a cache folder, named by model and type, and reused only while its size and header
// are what the writer would write now (a truncated or stale file is written again); a GGUF checkpoint kept as stored
// is its own file.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { ggufCheckpoint } from '../models/gguf.js';
import {
  ggufFileTypes,
  ggufLayout,
  llamaGgufName,
  llamaMetadata,
  placeholderVocabulary,
  writeGgufFile,
  type GgufFileType,
  type GgufMeta,
  type GgufTensorEntry,
  type GgufTensorWriter,
} from '../models/gguf-writer.js';
import type { EncodePool } from './weights/encode-pool.js';
import { llamaWeightShapes } from '../models/llama.js';
import { syntheticConfigs } from '../models/synthetic.js';
import type { Checkpoint } from './api.js';
import { fileBytes, weightFormats } from './weights/formats.js';
import { elementCount, readRegion, sourceValues } from './weights/source.js';

/** Where written files are kept unless --gguf-dir says: ${XDG_CACHE_HOME:-~/.cache}/weft. */
export function defaultGgufDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'weft');
}

/** A bench row's GGUF file: where it is, and what to write there unless it is whole already (undefined: the checkpoint's own file). */
export interface BenchGguf {
  readonly path: string;
  readonly write?: { readonly metadata: readonly [string, GgufMeta][]; readonly tensors: readonly BenchTensor[] };
}

/** A tensor of a bench file: its entry, and its bytes, encoded on `pool`'s workers where given. */
export interface BenchTensor extends GgufTensorEntry {
  data(pool?: EncodePool): Uint8Array | Promise<Uint8Array>;
}

/** What a written file is named after (its name's stem, and general.name) and records as its source (weft.source). */
export interface GgufOrigin {
  readonly stem: string;
  readonly title: string;
  /** a file of another source (another checkpoint, or this one changed since) is stale */
  readonly source: string;
}

/**
 * The origin of a file written from `model`: a synthetic model's name (and its context, where it is not the default),
 * or a checkpoint's path (its size and time, or its folder's files').
 */
export function ggufOrigin(model: string, context?: number): GgufOrigin {
  if (Object.hasOwn(syntheticConfigs, model)) {
    // a context other than the default is its own file, so that files of both contexts can be kept
    const ctx = context !== undefined && context !== syntheticConfigs[model]!.seqLen ? context : undefined;
    return {
      stem: `synthetic-${model}${ctx !== undefined ? `-ctx${ctx}` : ''}`,
      title: `weft synthetic ${model}`,
      source: `synthetic ${model}${ctx !== undefined ? `, context ${ctx}` : ''}`,
    };
  }
  const path = resolve(model);
  const stamp = (s: Stats): string => `${s.size} bytes, modified ${s.mtime.toISOString()}`;
  const stat = statSync(path);
  // a folder's checkpoint is its files: a file replaced inside it makes the written file stale
  const stamps = stat.isDirectory()
    ? readdirSync(path)
        .sort()
        .flatMap((f) => {
          const s = statSync(join(path, f));
          return s.isFile() ? [`${f}: ${stamp(s)}`] : [];
        })
    : [stamp(stat)];
  const hash = createHash('sha256').update(path).digest('hex').slice(0, 8);
  return { stem: `${basename(path).replace(/\.[^.]*$/, '')}-${hash}`, title: basename(path), source: `${path} (${stamps.join('; ')})` };
}

/**
 * The GGUF file weft and llama.cpp run for `model` (as bench names it: a synthetic model or a checkpoint path,
 * read into `checkpoint`) in file type `type`, in `dir`: nothing is written yet. Throws, naming the flag, where the
 * file cannot be written: a model that is not a plain llama, a matrix whose rows are not whole blocks of its format.
 */
export function planBenchGguf(
  model: string,
  checkpoint: Checkpoint,
  type: GgufFileType,
  dir: string,
  origin = ggufOrigin(model, checkpoint.config.seqLen),
): BenchGguf {
  const fail = (why: string): never => {
    throw new Error(`--weights ${type}: ${model}: ${why}`);
  };
  if (type === 'stored' && !Object.hasOwn(syntheticConfigs, model) && statSync(model).isFile() && ggufCheckpoint.recognizes(model)) return { path: model };
  const c = checkpoint.config;
  if (c.family !== 'llama') fail(`weft writes GGUF files of llama models, not ${c.family}`);
  const plain = [
    ...(c.attentionBias ? ['attention biases'] : []),
    ...(c.qkNorm ? ['q/k norms'] : []),
    ...(c.ropeScaling ? [`${c.ropeScaling.kind} RoPE scaling`] : []),
    ...(c.headSize * c.nHeads !== c.dim ? [`a head size of ${c.headSize} with ${c.nHeads} heads of a ${c.dim}-wide model`] : []),
  ];
  if (plain.length > 0) fail(`weft writes GGUF files of plain llama models, and this one has ${plain.join(', ')}`);
  const shapes = llamaWeightShapes(c);
  for (const name of checkpoint.tensors.keys()) if (!shapes.has(name)) fail(`tensor ${name} has no place in a llama GGUF file`);
  const tensors = [...shapes]
    .filter(([name]) => name !== 'rope_cos' && name !== 'rope_sin')
    .map(([name, shape]): BenchTensor => {
      const source = checkpoint.tensors.get(name) ?? fail(`tensor ${name} is missing`);
      const format = weightFormats[ggufFileTypes[type]({ name, shape, layers: c.nLayers, stored: source.format.name })];
      if (format.ggmlType === undefined) fail(`GGUF files do not store ${format.name}`);
      const row = shape[shape.length - 1]!;
      if (row % format.blockElements !== 0)
        fail(`${name}'s rows of ${row} values are not whole ${format.name} blocks of ${format.blockElements} (the file type stores it in ${format.name})`);
      const count = elementCount(shape);
      return {
        name: llamaGgufName(name),
        dims: [...shape].reverse(),
        type: format.ggmlType!,
        byteLength: fileBytes(format, count),
        data: (pool) =>
          source.format === format ? source.read() : pool ? pool.encode(format.name, sourceValues(source)) : format.encode(sourceValues(source)),
      };
    });
  const metadata: [string, GgufMeta][] = [
    ...llamaMetadata(c, origin.title),
    ...placeholderVocabulary(c.vocabSize),
    ['weft.source', { type: 'string', value: origin.source }],
    ['weft.file_type', { type: 'string', value: type }],
  ];
  return { path: join(dir, `${origin.stem}-${type}.gguf`), write: { metadata, tensors } };
}

/** Whether `path` is a whole file of exactly `layout`'s size and header. */
function isWhole(path: string, layout: { header: Uint8Array; size: number }): boolean {
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch {
    return false;
  }
  if (!stat.isFile() || stat.size !== layout.size) return false;
  return Buffer.from(readRegion(path, 0, layout.header.length)).equals(layout.header);
}

/**
 * The plan's file, written unless one is there whole; `onWrite` hears before a file is written (its path and size).
 * With `workers` (called only when a file is written), tensors are encoded on its pool's workers, as many at a time
 * as it has. Returns whether it was written.
 */
export async function ensureBenchGguf(plan: BenchGguf, onWrite?: (path: string, bytes: number) => void, workers?: () => EncodePool): Promise<boolean> {
  if (!plan.write) return false;
  const { metadata, tensors } = plan.write;
  const layout = ggufLayout(metadata, tensors);
  if (isWhole(plan.path, layout)) return false;
  const dir = resolve(plan.path, '..');
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(`--gguf-dir ${dir}: cannot create it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  onWrite?.(plan.path, layout.size);
  try {
    const pool = workers?.();
    const writers = tensors.map((t): GgufTensorWriter => ({ ...t, data: () => t.data(pool) }));
    await writeGgufFile(plan.path, metadata, writers, { ahead: pool?.size ?? 1 });
  } catch (e) {
    throw new Error(`cannot write ${plan.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return true;
}
