// Weights in their own precision and the streaming readers' errors: a checkpoint stored as bf16 or f16 runs
// with its weights kept so on the device and gives exactly the logits of the same values kept as float32;
// converting on load stays within stated tolerances of transformers' float32 logits; sharded folders with
// missing, escaping, repeated or truncated shards fail with one line naming the file.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, readCheckpoint, type LoadOptions } from '../src/api.js';
import { readSafetensors } from '../models/safetensors.js';
import { weightFormats, type FormatName } from '../src/weights/formats.js';
import { sourceRows, sourceValues } from '../src/weights/source.js';
import { maxAbsDiff } from './reference.js';

const fixture = new URL('../../shared/fixtures/hf/llama-gqa/', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'weft-streaming-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const reference = JSON.parse(readFileSync(join(fixture, 'reference.json'), 'utf8')) as { prompt: number[] };
const prefill = new Float32Array(readFileSync(join(fixture, 'logits.f32')).buffer.slice(0));

/** A safetensors file of the given tensors (name → shape, dtype, bytes), in order. */
function safetensorsBytes(tensors: readonly { name: string; shape: readonly number[]; dtype: string; data: Uint8Array }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}

/** The fixture's tensors, matrices encoded in `format` (norms stay f32), in `shards` files with an index. */
function copyOfFixture(name: string, format: FormatName, shards = 1): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), readFileSync(join(fixture, 'config.json')));
  const tensors = [...readSafetensors(join(fixture, 'model.safetensors'))].map(([n, t]) => {
    const f = weightFormats[t.shape.length === 2 ? format : 'f32'];
    return { name: n, shape: t.shape, dtype: f.safetensors!, data: f.encode(sourceValues(t)) };
  });
  if (shards === 1) {
    writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors));
    return dir;
  }
  const map: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const part = tensors.filter((_, i) => i % shards === s);
    const file = `model-${s + 1}-of-${shards}.safetensors`;
    for (const t of part) map[t.name] = file;
    writeFileSync(join(dir, file), safetensorsBytes(part));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
  return dir;
}

/** Prefill logits of the fixture's prompt, at every position. */
async function prefillLogits(dir: string, options: LoadOptions = {}): Promise<{ logits: Float32Array; formats: string[] }> {
  const model = await loadModel(dir, options);
  try {
    const rows: Float32Array[] = [];
    for await (const s of model.generate({ promptIds: reference.prompt, steps: reference.prompt.length, temperature: 0, logits: true })) rows.push(s.logits!);
    const out = new Float32Array(rows.length * rows[0]!.length);
    rows.forEach((r, i) => out.set(r, i * r.length));
    return { logits: out, formats: model.weightFormats };
  } finally {
    model.release();
  }
}

describe('weights in their own precision', () => {
  it.each(['bf16', 'f16'] as const)(
    'a %s checkpoint keeps its format on the device and gives exactly the logits of its values kept as float32',
    async (format) => {
      const dir = copyOfFixture(`stored-${format}`, format, 3);
      const stored = await prefillLogits(dir);
      expect(stored.formats).toEqual([format]);
      // the matmul weights widened, the embedding table as stored
      const widened = await prefillLogits(dir, { weights: 'f32' });
      expect(widened.formats).toEqual([format, 'f32']);
      // the kernels decode each weight exactly to the float32 it stands for and sum in the same order
      expect(maxAbsDiff(stored.logits, widened.logits)).toBe(0);
    },
  );

  it.each([
    // float32 as stored: transformers' own tolerance for the fixtures
    ['f32', 1e-4],
    // matmul weights converted on load; measured max |Δ| at logits up to 2.2: bf16 1.5e-2, f16 1.6e-3, q8_0 3.3e-2
    ['bf16', 0.05],
    ['f16', 5e-3],
    ['q8_0', 0.1],
  ] as const)('--weights %s stays within %s of transformers float32 prefill logits', async (format, tolerance) => {
    const { logits, formats } = await prefillLogits(fixture, { weights: format });
    // the matmul weights converted, the embedding table as stored
    expect(formats).toEqual([...new Set([format, 'f32'])].sort());
    const error = maxAbsDiff(logits, prefill);
    console.log(`--weights ${format}: max |Δ logit| ${error.toExponential(2)}`);
    expect(error).toBeLessThan(tolerance);
  });
});

describe('rows of a file tensor', () => {
  it('are read alone, with the values of the whole tensor read and sliced', () => {
    const w = readCheckpoint(fixture).tensors.get('layers.1.w1')!;
    const whole = sourceValues(w);
    const cols = w.shape[1]!;
    const rows = sourceRows(sourceRows(w, 100, 200), 7, 50);
    expect(w.readPart).toBeDefined();
    expect(sourceValues(rows)).toEqual(whole.subarray(107 * cols, 157 * cols));
  });
});

describe('sharded checkpoints: one line naming the file', () => {
  const sharded = copyOfFixture('sharded', 'f32', 2);
  /** A copy of the sharded folder with its index (or a shard) changed. */
  function variant(name: string, edit: (dir: string, index: { weight_map: Record<string, unknown> }) => void): string {
    const dir = join(scratch, name);
    mkdirSync(dir);
    for (const f of ['config.json', 'model-1-of-2.safetensors', 'model-2-of-2.safetensors']) writeFileSync(join(dir, f), readFileSync(join(sharded, f)));
    const index = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8'));
    edit(dir, index);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    return dir;
  }
  const first = (index: { weight_map: Record<string, unknown> }): string => Object.keys(index.weight_map)[0]!;

  it('reads a sharded folder as the single file', () => {
    const a = readCheckpoint(sharded).tensors;
    const b = readCheckpoint(fixture).tensors;
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [n, t] of a) expect(sourceValues(t)).toEqual(sourceValues(b.get(n)!));
  });

  it.each<[string, (dir: string, index: { weight_map: Record<string, unknown> }) => void, RegExp]>([
    ['a shard listed but missing', (_, i) => (i.weight_map[first(i)] = 'model-3-of-2.safetensors'), /^cannot read file \S+model-3-of-2\.safetensors: ENOENT$/],
    [
      'a shard outside the folder',
      (_, i) => (i.weight_map[first(i)] = '../../../../etc/hostname'),
      /model\.safetensors\.index\.json: weight_map's tensor "[^"]+" names "\.\.\/\.\.\/\.\.\/\.\.\/etc\/hostname", not a file inside the folder$/,
    ],
    [
      'a number as a shard',
      (_, i) => (i.weight_map[first(i)] = 7),
      /model\.safetensors\.index\.json: weight_map's tensor "[^"]+" names 7, not a file inside the folder$/,
    ],
    [
      'no weight map',
      (_, i) => ((i as { weight_map: unknown }).weight_map = [1]),
      /model\.safetensors\.index\.json: weight_map must be an object of tensor names to shard files$/,
    ],
    [
      'a tensor in two shards',
      (dir) =>
        writeFileSync(
          join(dir, 'model-2-of-2.safetensors'),
          safetensorsBytes(
            [...readSafetensors(join(sharded, 'model-1-of-2.safetensors'))]
              .slice(0, 1)
              .map(([n, t]) => ({ name: n, shape: t.shape, dtype: 'F32', data: t.read() })),
          ),
        ),
      /model-\d-of-2\.safetensors: tensor \S+ is also in another shard$/,
    ],
    [
      'a truncated shard',
      (dir) => writeFileSync(join(dir, 'model-2-of-2.safetensors'), readFileSync(join(sharded, 'model-2-of-2.safetensors')).subarray(0, 5000)),
      /model-2-of-2\.safetensors: (truncated|tensor \S+: data offsets \[\d+, \d+\] are outside the \d+ data bytes)/,
    ],
  ])('%s', (name, edit, message) => {
    const dir = variant(name.replaceAll(' ', '-'), edit);
    expect(() => readCheckpoint(dir)).toThrow(message);
    expect(() => readCheckpoint(dir)).toThrow(/^[^\n]+$/);
  });
});
