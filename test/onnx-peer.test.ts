// The ONNX peer's llama graph in ONNX Runtime's WebGPU execution provider (onnxruntime-node and
// onnxruntime-web) against the CPU reference ops composed into the whole model, on odd sizes with grouped-query
// attention: prefill logits, then decode steps fed through the caches kept on the GPU.
import { describe, expect, it } from 'vitest';
import { tinyLlama, tinyLlamaWeights } from './tiny-llama.js';
import { onnxLogits, type OnnxRuntimeName } from '../src/peers/onnx.js';
import { add, attnMix, attnScores, embed, matmul, maxAbsDiff, mul, rmsnorm, rope, silu, softmax } from './reference.js';

const config = tinyLlama;
const weights = tinyLlamaWeights;
const prompt = [1, 45, 3, 96, 12, 60, 7];
const decodeIds = [33, 2, 81];

/** Logits of `ids` at positions p.. after the caches, which grow by them. */
function referenceRun(ids: number[], caches: { k: Float32Array; v: Float32Array }[]): Float32Array {
  const c = config;
  const hs = c.headSize;
  const kvDim = c.nKvHeads * hs;
  const heads = { heads: c.nHeads, kvHeads: c.nKvHeads, headSize: hs };
  const w = (name: string): Float32Array => weights.get(name)!;
  const t = ids.length;
  const p = caches[0]!.k.length / kvDim;
  const [cos, sin] = [w('rope_cos'), w('rope_sin')];
  let x = embed(w('tok_embeddings'), Int32Array.from(ids), c.dim);
  for (let l = 0; l < c.nLayers; l++) {
    const lw = (n: string): Float32Array => w(`layers.${l}.${n}`);
    const h = rmsnorm(x, lw('attention_norm'), c.normEps);
    const q = rope(matmul(h, lw('wq'), c.dim), cos, sin, c.dim, hs, p);
    const k = rope(matmul(h, lw('wk'), c.dim), cos, sin, kvDim, hs, p);
    const v = matmul(h, lw('wv'), c.dim);
    const cache = caches[l]!;
    cache.k = Float32Array.of(...cache.k, ...k);
    cache.v = Float32Array.of(...cache.v, ...v);
    const probs = softmax(attnScores(q, cache.k, heads, t, p + t), t, p + t, true);
    x = add(x, matmul(attnMix(probs, cache.v, heads, t, p + t), lw('wo'), c.dim));
    const f = rmsnorm(x, lw('ffn_norm'), c.normEps);
    const gated = mul(silu(matmul(f, lw('w1'), c.dim)), matmul(f, lw('w3'), c.dim));
    x = add(x, matmul(gated, lw('w2'), c.hiddenDim));
  }
  return matmul(rmsnorm(x, w('norm'), c.normEps), w('output'), c.dim);
}

function reference(): { prefill: Float32Array; decode: Float32Array[] } {
  const caches = Array.from({ length: config.nLayers }, () => ({ k: new Float32Array(0), v: new Float32Array(0) }));
  const prefill = referenceRun(prompt, caches);
  return { prefill, decode: decodeIds.map((id) => referenceRun([id], caches)) };
}

describe('onnxLogits', () => {
  const expected = reference();

  it.each<OnnxRuntimeName>(['node', 'web'])('matches the reference model in onnxruntime-%s on WebGPU', async (runtime) => {
    const got = await onnxLogits(config, weights, prompt, decodeIds, undefined, runtime);
    expect(got.prefill).toHaveLength(prompt.length * config.vocabSize);
    expect(maxAbsDiff(got.prefill, expected.prefill)).toBeLessThan(1e-4);
    expect(got.decode).toHaveLength(decodeIds.length);
    got.decode.forEach((logits, i) => expect(maxAbsDiff(logits, expected.decode[i]!)).toBeLessThan(1e-4));
  });
});
