// llama2.c checkpoint reader on the two fixture models (configs, tensor sizes and placement) and on
// malformed files built in memory; RoPE tables against the checkpoints' freq_cis and against run.c's bits.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sourceValues, type TensorSource } from '../src/weights/source.js';
import { cosf, sinf } from '../models/glibc-sincosf.js';
import { readLlama2c, ropeTables, type Llama2cConfig } from '../models/llama2c.js';

const fixtures = new URL('../../shared/fixtures/llama2c/', import.meta.url);
const fixtureBytes = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, fixtures)));
const aidreams = fixtureBytes('aidreams260K.bin');
const stories = fixtureBytes('stories260K.bin');
const scratch = mkdtempSync(join(tmpdir(), 'weft-llama2c-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `bytes` written to a file named `name` in a scratch folder: its path. */
function fileOf(bytes: Uint8Array, name: string): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

/** Every tensor's values. */
const valuesOf = (tensors: ReadonlyMap<string, TensorSource>): Map<string, Float32Array> => new Map([...tensors].map(([n, t]) => [n, sourceValues(t)]));

/** The float32 at byte `offset` of a file. */
const floatAt = (bytes: Uint8Array, offset: number): number => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat32(offset, true);

/** A copy of `bytes` with header field `index` (0..6) set to `value`. */
function withHeader(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setInt32(4 * index, value, true);
  return copy;
}

function expectOneLineError(run: () => unknown, message: RegExp): void {
  expect(run).toThrow(message);
  expect(run).toThrow(/^[^\n]+$/);
}

describe('readLlama2c', () => {
  it.each<[string, Uint8Array, Llama2cConfig]>([
    ['aidreams260K.bin', aidreams, { dim: 64, hiddenDim: 172, nLayers: 4, nHeads: 4, nKvHeads: 4, vocabSize: 512, seqLen: 128, sharedClassifier: true }],
    ['stories260K.bin', stories, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true }],
  ])('reads %s', (source, bytes, expected) => {
    const { config, tensors } = readLlama2c(fileOf(bytes, source));
    const weights = valuesOf(tensors);
    expect(config).toEqual(expected);
    const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = config;
    const kvDim = (dim / nHeads) * nKvHeads;
    const sizes: Record<string, number> = {
      attention_norm: dim,
      wq: dim * dim,
      wk: kvDim * dim,
      wv: kvDim * dim,
      wo: dim * dim,
      ffn_norm: dim,
      w1: hiddenDim * dim,
      w2: dim * hiddenDim,
      w3: hiddenDim * dim,
    };
    const expectedNames = ['tok_embeddings', 'norm', 'output'];
    for (let l = 0; l < nLayers; l++) {
      for (const [name, size] of Object.entries(sizes)) {
        expect(weights.get(`layers.${l}.${name}`)).toHaveLength(size);
        expectedNames.push(`layers.${l}.${name}`);
      }
    }
    expect([...weights.keys()].sort()).toEqual(expectedNames.sort());
    expect(weights.get('tok_embeddings')).toHaveLength(vocabSize * dim);
    expect(weights.get('norm')).toHaveLength(dim);
    expect(tensors.get('output')).toBe(tensors.get('tok_embeddings'));

    // Placement: the first float after the header, the first wq, and the last float before freq_cis.
    expect(weights.get('tok_embeddings')![0]).toBe(floatAt(bytes, 28));
    const wqOffset = 28 + 4 * (vocabSize * dim + nLayers * dim);
    expect(weights.get('layers.0.wq')![0]).toBe(floatAt(bytes, wqOffset));
    expect(weights.get('layers.1.wq')![0]).toBe(floatAt(bytes, wqOffset + 4 * dim * dim));
    const freqBytes = 4 * config.seqLen * (dim / nHeads);
    expect(weights.get('norm')![dim - 1]).toBe(floatAt(bytes, bytes.length - freqBytes - 4));
  });

  it('reads a separate classifier after freq_cis when vocab_size is negative', () => {
    const dim = 64;
    const classifier = Float32Array.from({ length: 512 * dim }, (_, i) => i / 1024);
    const unshared = new Uint8Array(aidreams.length + classifier.byteLength);
    unshared.set(withHeader(aidreams, 5, -512));
    unshared.set(new Uint8Array(classifier.buffer), aidreams.length);
    const { config, tensors } = readLlama2c(fileOf(unshared, 'unshared.bin'));
    const weights = valuesOf(tensors);
    expect(config.vocabSize).toBe(512);
    expect(config.sharedClassifier).toBe(false);
    expect(weights.get('output')).toEqual(classifier);
    expect(tensors.get('output')).not.toBe(tensors.get('tok_embeddings'));
  });

  it('reads each tensor at its offset in the file', () => {
    const w2 = sourceValues(readLlama2c(fileOf(aidreams, 'aidreams260K.bin')).tensors.get('layers.3.w2')!);
    const { dim, hiddenDim, nLayers } = { dim: 64, hiddenDim: 172, nLayers: 4 };
    const w2Offset = 28 + 4 * (512 * dim + nLayers * (2 * dim + 4 * dim * dim + hiddenDim * dim) + 3 * dim * hiddenDim);
    expect(w2).toHaveLength(dim * hiddenDim);
    expect(w2[0]).toBe(floatAt(aidreams, w2Offset));
    expect(w2[dim * hiddenDim - 1]).toBe(floatAt(aidreams, w2Offset + 4 * (dim * hiddenDim - 1)));
  });

  it('rejects malformed files with one-line errors naming the file', () => {
    expectOneLineError(() => readLlama2c(fileOf(aidreams.slice(0, 10), 'short.bin')), /\/short\.bin: too short for a llama2\.c header \(10 bytes, need 28\)$/);
    expectOneLineError(() => readLlama2c(fileOf(withHeader(aidreams, 0, -64), 'neg.bin')), /\/neg\.bin: header dim = -64 is out of range/);
    expectOneLineError(() => readLlama2c(fileOf(withHeader(aidreams, 2, 0), 'zero.bin')), /\/zero\.bin: header n_layers = 0 is out of range/);
    expectOneLineError(() => readLlama2c(fileOf(withHeader(aidreams, 6, 2_000_000), 'seq.bin')), /\/seq\.bin: header seq_len = 2000000 is out of range/);
    expectOneLineError(() => readLlama2c(fileOf(withHeader(aidreams, 5, 0), 'vocab.bin')), /\/vocab\.bin: header vocab_size = 0 is out of range/);
    expectOneLineError(
      () => readLlama2c(fileOf(aidreams.slice(0, aidreams.length - 100), 'cut.bin')),
      /\/cut\.bin: truncated: expected 932124 bytes for this header, got 932024$/,
    );
    const extra = new Uint8Array(aidreams.length + 8);
    extra.set(aidreams);
    expectOneLineError(() => readLlama2c(fileOf(extra, 'extra.bin')), /\/extra\.bin: has trailing bytes: expected 932124 bytes for this header, got 932132$/);
    expectOneLineError(() => readLlama2c(fileOf(withHeader(aidreams, 3, 5), 'heads.bin')), /\/heads\.bin: dim 64 is not divisible by n_heads 5$/);
    expectOneLineError(() => readLlama2c(fileOf(withHeader(stories, 4, 3), 'kv.bin')), /\/kv\.bin: n_heads 8 is not divisible by n_kv_heads 3$/);
    expectOneLineError(
      () => readLlama2c(fileOf(withHeader(withHeader(withHeader(aidreams, 0, 63), 3, 9), 4, 3), 'odd.bin')),
      /\/odd\.bin: head size 7 \(dim \/ n_heads\) is odd$/,
    );
  });
});

describe('ropeTables', () => {
  it('matches the freq_cis tables stored in the checkpoints to within one float32 step', () => {
    for (const [bytes, headSize, seqLen] of [
      [stories, 8, 512],
      [aidreams, 16, 128],
    ] as const) {
      const n = (seqLen * headSize) / 2;
      const stored = new Float32Array(bytes.buffer.slice(bytes.byteOffset + bytes.length - 8 * n, bytes.byteOffset + bytes.length));
      const { cos, sin } = ropeTables(headSize, seqLen);
      expect(cos).toHaveLength(n);
      for (let i = 0; i < n; i++) {
        expect(Math.abs(cos[i] - stored[i])).toBeLessThanOrEqual(6e-8);
        expect(Math.abs(sin[i] - stored[n + i])).toBeLessThanOrEqual(6e-8);
      }
    }
  });

  it.each([
    [8, 512, 0xde125690],
    [16, 128, 0x1041dd17],
  ])('matches run.c under glibc bit for bit at head size %i, seq_len %i (FNV-1a of the cos, then sin words)', (headSize, seqLen, fnv1a) => {
    const { cos, sin } = ropeTables(headSize, seqLen);
    let hash = 0x811c9dc5;
    for (const table of [cos, sin]) {
      for (const word of new Uint32Array(table.buffer, table.byteOffset, table.length)) hash = Math.imul(hash ^ word, 0x01000193) >>> 0;
    }
    expect(hash.toString(16)).toBe(fnv1a.toString(16));
  });

  it('lays out [pos, pair] with angle pos * theta^(-2j/headSize)', () => {
    const { cos, sin } = ropeTables(4, 3, 100);
    // Pair 0 rotates by pos radians; pair 1 by pos / 10 (100^(-1/2)).
    expect(Array.from(cos)).toEqual([1, 1, cosf(1), cosf(Math.fround(0.1)), cosf(2), cosf(Math.fround(2 * Math.fround(0.1)))]);
    expect(sin[0]).toBe(0);
    expect(sin[2]).toBe(sinf(1));
  });

  it('rejects odd head sizes and empty tables', () => {
    expect(() => ropeTables(7, 4)).toThrow(/head size/);
    expect(() => ropeTables(8, 0)).toThrow(/seqLen/);
  });
});
