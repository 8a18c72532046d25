// The llama family in TensorFlow.js on its WebGPU backend, a peer engine for `weft bench`: it runs on a
// Dawn device opened as weft opens its own (same adapter and backend choice), so the speeds compare.
// One model is open at a time: tfjs keeps its backend in a process-wide engine.
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../../models/llama.js';
import { openGpu, type Gpu } from '../runtime/gpu.js';
import { checkBenchOptions, decodeAfter, timePeer, type PeerBenchOptions, type PeerRow } from './peer.js';

export type { PeerBenchOptions, PeerRow } from './peer.js';

/**
 * Weights as tfjs runs them fastest: matrices [in, out] (its vectorized matmul needs B untransposed), each
 * RMSNorm's weight folded into the rows of the matrix it feeds, 1/√headSize into the q columns, q/k/v merged.
 */
type LayerTensors = {
  /** [dim, qDim + 2·kvDim]: q, k, v side by side */
  wqkv: tf.Tensor2D;
  bqkv: tf.Tensor1D | undefined;
  wo: tf.Tensor2D;
  bo: tf.Tensor1D | undefined;
  w1: tf.Tensor2D;
  w3: tf.Tensor2D;
  w2: tf.Tensor2D;
};

type ModelTensors = {
  embeddings: tf.Tensor2D;
  layers: LayerTensors[];
  output: tf.Tensor2D;
  /** [positions, qDim + 2·kvDim]: RoPE as qkv·cos + pairsSwapped(qkv)·sin, the identity on the v columns */
  ropeCos: tf.Tensor2D;
  ropeSin: tf.Tensor2D;
  /** [positions, positions]: 0 where a position sees a key, -1e9 after it */
  causalMask: tf.Tensor2D;
};

/** Per layer, keys and values [kvHeads, positions, headSize]. */
type KvCache = { k: tf.Tensor3D[]; v: tf.Tensor3D[] };

const maskedScore = -1e9;

/** tfjs-backend-webgpu constructs a backend only where navigator.gpu exists; Node has no WebGPU of its own. */
function provideNavigatorGpu(gpu: GPU): void {
  const g = globalThis as { navigator?: object };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

/** Makes tfjs's `webgpu` backend one that runs on `gpu`'s device. */
async function useDevice(gpu: Gpu): Promise<void> {
  provideNavigatorGpu(gpu.instance);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => new WebGPUBackend(gpu.device, gpu.device.adapterInfo));
  if (!(await tf.setBackend('webgpu'))) throw new Error(`tfjs could not start its WebGPU backend on ${gpu.adapter}`);
}

/** The RoPE tables' first `positions` rows widened to the merged qkv columns: llama2.c's adjacent pairs rotated in q and k, v untouched. */
function qkvRopeTables(c: ModelConfig, cos: Float32Array, sin: Float32Array, positions: number): { cos: Float32Array; sin: Float32Array } {
  const hs = c.headSize;
  const half = hs / 2;
  const rotated = (c.nHeads + c.nKvHeads) * hs;
  const width = rotated + c.nKvHeads * hs;
  const wideCos = new Float32Array(positions * width).fill(1);
  const wideSin = new Float32Array(positions * width);
  for (let p = 0; p < positions; p++)
    for (let col = 0; col < rotated; col++) {
      const j = col % hs;
      const at = p * half + (j >> 1);
      wideCos[p * width + col] = cos[at]!;
      wideSin[p * width + col] = j % 2 ? sin[at]! : -sin[at]!;
    }
  return { cos: wideCos, sin: wideSin };
}

function causalMask(n: number): Float32Array {
  const mask = new Float32Array(n * n);
  for (let i = 0; i < n; i++) mask.fill(maskedScore, i * n + i + 1, (i + 1) * n);
  return mask;
}

/** The model's tensors on the device, with RoPE and mask tables for positions 0..positions-1. */
function uploadWeights(c: ModelConfig, weights: ReadonlyMap<string, Float32Array>, positions: number): ModelTensors {
  const read = (name: string): Float32Array => {
    const w = weights.get(name);
    if (!w) throw new Error(`missing weight ${name}`);
    return w;
  };
  const hs = c.headSize;
  const kvDim = c.nKvHeads * hs;
  const vector = (name: string): tf.Tensor1D => tf.tensor1d(read(name));
  /** [out, in] blocks (each times a scale) stacked along out, transposed to [in, out] and its rows scaled by the weight `norm` */
  const inputMajor = (norm: string | undefined, ...blocks: [name: string, rows: number, scale: number][]): tf.Tensor2D =>
    tf.tidy(() => {
      const stacked = tf.concat(
        blocks.map(([name, rows, scale]) => tf.mul(tf.tensor2d(read(name), [rows, read(name).length / rows]), scale)),
        0,
      );
      const t = tf.transpose(stacked) as tf.Tensor2D;
      return norm ? tf.mul(t, tf.reshape(vector(norm), [-1, 1])) : t;
    });
  const layers = Array.from({ length: c.nLayers }, (_, l): LayerTensors => {
    const n = (s: string): string => `layers.${l}.${s}`;
    const scale = 1 / Math.sqrt(hs);
    return {
      wqkv: inputMajor(n('attention_norm'), [n('wq'), c.nHeads * hs, scale], [n('wk'), kvDim, 1], [n('wv'), kvDim, 1]),
      bqkv: c.attentionBias ? tf.tidy(() => tf.concat([tf.mul<tf.Tensor1D>(vector(n('bq')), scale), vector(n('bk')), vector(n('bv'))])) : undefined,
      wo: inputMajor(undefined, [n('wo'), c.dim, 1]),
      bo: c.attentionBias === 'qkvo' ? vector(n('bo')) : undefined,
      w1: inputMajor(n('ffn_norm'), [n('w1'), c.hiddenDim, 1]),
      w3: inputMajor(n('ffn_norm'), [n('w3'), c.hiddenDim, 1]),
      w2: inputMajor(undefined, [n('w2'), c.dim, 1]),
    };
  });
  const rope = qkvRopeTables(c, read('rope_cos'), read('rope_sin'), positions);
  return {
    embeddings: tf.tensor2d(read('tok_embeddings'), [c.vocabSize, c.dim]),
    layers,
    output: inputMajor('norm', ['output', c.vocabSize, 1]),
    ropeCos: tf.tensor2d(rope.cos, [positions, rope.cos.length / positions]),
    ropeSin: tf.tensor2d(rope.sin, [positions, rope.sin.length / positions]),
    causalMask: tf.tensor2d(causalMask(positions), [positions, positions]),
  };
}

/** x·rsqrt(mean(x²) + eps); the weight is folded into the next matrix */
function rmsnorm(x: tf.Tensor2D, eps: number): tf.Tensor2D {
  return tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)));
}

/** Rows of logits for `ids` fed at positions start..start+T-1 after `cache` (all rows, or the last), and the cache grown by them. */
function forward(
  c: ModelConfig,
  m: ModelTensors,
  ids: readonly number[],
  cache: KvCache | undefined,
  lastOnly: boolean,
): { logits: tf.Tensor2D; cache: KvCache } {
  const T = ids.length;
  const start = cache ? cache.k[0]!.shape[1] : 0;
  const keys = start + T;
  const hs = c.headSize;
  const kvHeads = c.nKvHeads;
  const group = c.nHeads / kvHeads;
  const kvDim = kvHeads * hs;
  const qDim = c.nHeads * hs;
  const qkvDim = qDim + 2 * kvDim;

  const positions = tf.range(start, keys, 1, 'int32');
  const cos = tf.gather(m.ropeCos, positions);
  const sin = tf.gather(m.ropeSin, positions);
  const mask = T > 1 ? tf.slice(m.causalMask, [start, 0], [T, keys]) : undefined;
  /** [T, kvDim] → [kvHeads, T, hs] */
  const headsFirst = (t: tf.Tensor2D): tf.Tensor3D => (T === 1 ? tf.reshape(t, [kvHeads, 1, hs]) : tf.transpose(tf.reshape(t, [T, kvHeads, hs]), [1, 0, 2]));

  let x: tf.Tensor2D = tf.gather(m.embeddings, tf.tensor1d(Array.from(ids), 'int32'));
  const grown: KvCache = { k: [], v: [] };
  m.layers.forEach((l, i) => {
    const qkv = tf.fused.matMul({ a: rmsnorm(x, c.normEps), b: l.wqkv, bias: l.bqkv }) as tf.Tensor2D;
    const swapped = tf.reshape(tf.reverse(tf.reshape(qkv, [T, qkvDim / 2, 2]), 2), [T, qkvDim]);
    const rotated = tf.add(tf.mul(qkv, cos), tf.mul(swapped, sin));
    const [q, k, v] = tf.split(rotated, [qDim, kvDim, kvDim], 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    const kAll = cache ? tf.concat([cache.k[i]!, headsFirst(k)], 1) : headsFirst(k);
    const vAll = cache ? tf.concat([cache.v[i]!, headsFirst(v)], 1) : headsFirst(v);
    grown.k.push(kAll);
    grown.v.push(vAll);
    // query heads grouped by the kv head they read: [kvHeads, group·T, hs]
    const qGrouped: tf.Tensor3D =
      T === 1 ? tf.reshape(q, [kvHeads, group, hs]) : tf.reshape(tf.transpose(tf.reshape(q, [T, kvHeads, group, hs]), [1, 2, 0, 3]), [kvHeads, group * T, hs]);
    let scores: tf.Tensor = tf.matMul(qGrouped, kAll, false, true);
    if (mask) scores = tf.add(tf.reshape(scores, [kvHeads, group, T, keys]), mask);
    const mixed = tf.matMul(tf.reshape(tf.softmax(scores), [kvHeads, group * T, keys]), vAll);
    const merged: tf.Tensor2D =
      T === 1 ? tf.reshape(mixed, [1, qDim]) : tf.reshape(tf.transpose(tf.reshape(mixed, [kvHeads, group, T, hs]), [2, 0, 1, 3]), [T, qDim]);
    // residual adds ride on the matmuls as their bias
    x = tf.fused.matMul({ a: merged, b: l.wo, bias: l.bo ? tf.add(x, l.bo) : x }) as tf.Tensor2D;
    const f = rmsnorm(x, c.normEps);
    const gate = tf.matMul(f, l.w1);
    x = tf.fused.matMul({ a: tf.mul(tf.mul(gate, tf.sigmoid(gate)), tf.matMul(f, l.w3)), b: l.w2, bias: x }) as tf.Tensor2D;
  });
  const last = lastOnly && T > 1 ? tf.slice(x, [T - 1, 0], [1, c.dim]) : x;
  return { logits: tf.matMul(rmsnorm(last, c.normEps), m.output), cache: grown };
}

const dispose = (cache: KvCache): void => tf.dispose([...cache.k, ...cache.v]);

/** A llama model uploaded to tfjs's WebGPU backend on a Dawn device of its own, for runs over its first `positions` positions. */
class TfjsLlama {
  private constructor(
    readonly config: ModelConfig,
    private readonly gpu: Gpu,
    private readonly tensors: ModelTensors,
  ) {}

  static async open(config: ModelConfig, weights: ReadonlyMap<string, Float32Array>, positions: number, backend?: string): Promise<TfjsLlama> {
    if (config.family !== 'llama' || config.qkNorm)
      throw new Error(`the tfjs peer runs the llama family without q/k norms, not ${config.family}${config.qkNorm ? ' with them' : ''}`);
    if (positions > config.seqLen) throw new Error(`${positions} positions are beyond the model's context of ${config.seqLen}`);
    const gpu = await openGpu({ backend });
    try {
      await useDevice(gpu);
      return new TfjsLlama(config, gpu, uploadWeights(config, weights, positions));
    } catch (e) {
      gpu.destroy();
      throw e;
    }
  }

  get device(): string {
    return `${this.gpu.backend}: ${this.gpu.adapter}`;
  }

  /** Runs `ids` after `cache` (which it disposes) and reads the logits back: every row, or the last. */
  async run(ids: readonly number[], cache: KvCache | undefined, lastOnly: boolean): Promise<{ logits: Float32Array; cache: KvCache }> {
    const out = tf.tidy(() => forward(this.config, this.tensors, ids, cache, lastOnly));
    if (cache) dispose(cache);
    const logits = (await out.logits.data()) as Float32Array;
    out.logits.dispose();
    this.gpu.check();
    return { logits, cache: out.cache };
  }

  close(): void {
    tf.dispose(this.tensors);
    tf.removeBackend('webgpu');
    this.gpu.destroy();
  }
}

/**
 * Prefill and decode throughput of the model in tfjs, timed as weft's bench times itself: prefill is one
 * run over the prompt ending in the readback of the last position's logits; decode feeds the greedy
 * choice after each prompt of decodeAfter, reading each step's logits back. Warm-ups and the median of `runs` as timeRuns does them.
 */
export async function tfjsBench(model: string, config: ModelConfig, weights: ReadonlyMap<string, Float32Array>, o: PeerBenchOptions): Promise<PeerRow> {
  checkBenchOptions(o, config.seqLen);
  const llama = await TfjsLlama.open(config, weights, Math.max(...o.promptTokens, ...decodeAfter(o).map((n) => n + o.decodeTokens)), o.backend);
  try {
    const figures = await timePeer({ run: (ids, cache) => llama.run(ids, cache, true), dispose }, config.vocabSize, config.bosId ?? 0, o);
    return {
      engine: 'tfjs-webgpu',
      model,
      device: llama.device,
      ...figures,
    };
  } finally {
    llama.close();
  }
}

/** Logits [positions, vocab] of a prefill over `tokens`, then of each of `decodeIds` fed one at a time after it. */
export async function tfjsLogits(
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  tokens: readonly number[],
  decodeIds: readonly number[],
  backend?: string,
): Promise<{ prefill: Float32Array; decode: Float32Array[] }> {
  const llama = await TfjsLlama.open(config, weights, tokens.length + decodeIds.length, backend);
  try {
    const prompt = await llama.run(tokens, undefined, false);
    let cache = prompt.cache;
    const decode: Float32Array[] = [];
    for (const id of decodeIds) {
      const step = await llama.run([id], cache, true);
      decode.push(step.logits);
      cache = step.cache;
    }
    dispose(cache);
    return { prefill: prompt.logits, decode };
  } finally {
    llama.close();
  }
}
