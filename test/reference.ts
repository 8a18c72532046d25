// CPU references for every op, written as plain loops in the order llama2.c's run.c computes them,
// with float32 rounding at each step; and a whole llama forward pass built from them.
import type { ModelConfig } from '../models/llama.js';
const f = Math.fround;

export function embed(table: Float32Array, ids: Int32Array, d: number): Float32Array {
  const out = new Float32Array(ids.length * d);
  ids.forEach((id, t) => out.set(table.subarray(id * d, (id + 1) * d), t * d));
  return out;
}

/** x / sqrt(mean(x²) + eps) · w over every run of w.length values: whole rows, or each head of them (head_rmsnorm) */
export function rmsnorm(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  const d = w.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss = f(ss + f(x[r * d + j]! * x[r * d + j]!));
    const scale = f(1 / f(Math.sqrt(f(f(ss / d) + f(eps)))));
    for (let j = 0; j < d; j++) out[r * d + j] = f(w[j]! * f(scale * x[r * d + j]!));
  }
  return out;
}

/** x [m, k] · wᵀ with w [n, k] */
export function matmul(x: Float32Array, w: Float32Array, k: number): Float32Array {
  const m = x.length / k;
  const n = w.length / k;
  const out = new Float32Array(m * n);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < n; c++) {
      let acc = 0;
      for (let i = 0; i < k; i++) acc = f(acc + f(x[r * k + i]! * w[c * k + i]!));
      out[r * n + c] = acc;
    }
  return out;
}

export function rope(x: Float32Array, cos: Float32Array, sin: Float32Array, d: number, headSize: number, p: number): Float32Array {
  const out = new Float32Array(x.length);
  const half = headSize / 2;
  for (let t = 0; t < x.length / d; t++)
    for (let i = 0; i < d / 2; i++) {
      const at = (p + t) * half + (i % half);
      const [x0, x1] = [x[t * d + 2 * i]!, x[t * d + 2 * i + 1]!];
      out[t * d + 2 * i] = f(f(x0 * cos[at]!) - f(x1 * sin[at]!));
      out[t * d + 2 * i + 1] = f(f(x0 * sin[at]!) + f(x1 * cos[at]!));
    }
  return out;
}

export function kvWrite(cache: Float32Array, x: Float32Array, d: number, p: number): Float32Array {
  const out = cache.slice();
  out.set(x, p * d);
  return out;
}

interface Heads {
  heads: number;
  kvHeads: number;
  headSize: number;
}

/** [H, T, P+T]; masked entries are 0 */
export function attnScores(q: Float32Array, k: Float32Array, a: Heads, t: number, keys: number): Float32Array {
  const out = new Float32Array(a.heads * t * keys);
  const g = a.heads / a.kvHeads;
  for (let h = 0; h < a.heads; h++)
    for (let r = 0; r < t; r++)
      for (let j = 0; j <= keys - t + r; j++) {
        let acc = 0;
        for (let i = 0; i < a.headSize; i++) {
          acc = f(acc + f(q[r * a.heads * a.headSize + h * a.headSize + i]! * k[j * a.kvHeads * a.headSize + Math.floor(h / g) * a.headSize + i]!));
        }
        out[(h * t + r) * keys + j] = f(acc / f(Math.sqrt(a.headSize)));
      }
  return out;
}

export function softmax(x: Float32Array, rows: number, cols: number, causal: boolean): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < x.length / cols; b++) {
    const r = b % rows;
    const n = causal ? cols - rows + r + 1 : cols;
    const row = x.subarray(b * cols, b * cols + n);
    const m = Math.max(...row);
    let s = 0;
    for (let j = 0; j < n; j++) {
      out[b * cols + j] = f(Math.exp(f(row[j]! - m)));
      s = f(s + out[b * cols + j]!);
    }
    for (let j = 0; j < n; j++) out[b * cols + j] = f(out[b * cols + j]! / s);
  }
  return out;
}

export function attnMix(p: Float32Array, v: Float32Array, a: Heads, t: number, keys: number): Float32Array {
  const qd = a.heads * a.headSize;
  const out = new Float32Array(t * qd);
  const g = a.heads / a.kvHeads;
  for (let h = 0; h < a.heads; h++)
    for (let r = 0; r < t; r++)
      for (let i = 0; i < a.headSize; i++) {
        let acc = 0;
        for (let j = 0; j <= keys - t + r; j++) {
          acc = f(acc + f(p[(h * t + r) * keys + j]! * v[j * a.kvHeads * a.headSize + Math.floor(h / g) * a.headSize + i]!));
        }
        out[r * qd + h * a.headSize + i] = acc;
      }
  return out;
}

export const add = (a: Float32Array, b: Float32Array): Float32Array => a.map((v, i) => f(v + b[i]!));
export const mul = (a: Float32Array, b: Float32Array): Float32Array => a.map((v, i) => f(v * b[i]!));
export const silu = (a: Float32Array): Float32Array => a.map((v) => f(v * f(1 / f(1 + f(Math.exp(-v))))));

/** A seeded generator of values in [-1, 1) (never all zeros), so failures reproduce. */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

/** Round half to even, as WGSL's round does. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * x [m, k] · wᵀ as the int8 matmul computes it: each row of x quantized per 32-wide block (d = max|x| / 127,
 * q = x · (1 / d) rounded half to even), times the values w stands for. The kernels add per block the exact
 * integer products times the scales (less the offsets times the x block's sum), which is this product in exact
 * arithmetic; here it is summed in float32 in k order.
 */
export function int8Matmul(x: Float32Array, w: Float32Array, k: number): Float32Array {
  const quantized = new Float32Array(x.length);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
    const d = f(amax / 127);
    const id = d > 0 ? f(1 / d) : 0;
    for (let i = 0; i < 32; i++) quantized[b * 32 + i] = f(d * Math.max(-127, Math.min(127, roundEven(f(x[b * 32 + i]! * id)))));
  }
  return matmul(quantized, w, k);
}

/**
 * `x` [rows, k] with the elements whose int8 quantization (per row and 32-wide block of `normalize(x)`, as int8Matmul
 * quantizes) lies within `margin` of a rounding tie moved away from it: there a last-ulp difference between two
 * computations of the normalized row (a norm's sum in another order) would flip a quantization level, and the
 * results would differ by a whole step of the block's scale. Kernels and reference then round every element alike.
 */
export function awayFromInt8Ties(x: Float32Array, normalize: (x: Float32Array) => Float32Array, margin = 1e-3): Float32Array {
  const out = x.slice();
  for (let pass = 0; pass < 8; pass++) {
    const v = normalize(out);
    let moved = 0;
    for (let b = 0; b < v.length / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(v[b * 32 + i]!));
      const d = f(amax / 127);
      const id = d > 0 ? f(1 / d) : 0;
      for (let i = 0; i < 32; i++) {
        const q = Math.abs(f(v[b * 32 + i]! * id));
        if (Math.abs(q - Math.floor(q) - 0.5) < margin) {
          // a quarter of a level toward zero: never past the block's largest, which quantizes to 127 exactly
          out[b * 32 + i] = f(out[b * 32 + i]! * (1 - 0.25 / q));
          moved++;
        }
      }
    }
    if (moved === 0) return out;
  }
  throw new Error('elements near int8 rounding ties remain after 8 passes');
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function layernorm(x: Float32Array, w: Float32Array, b: Float32Array, eps: number): Float32Array {
  const d = w.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    const row = x.subarray(r * d, (r + 1) * d);
    const mean = row.reduce((s, v) => s + v, 0) / d;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / d;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let j = 0; j < d; j++) out[r * d + j] = (row[j]! - mean) * rstd * w[j]! + b[j]!;
  }
  return out;
}

/** gelu_new (tanh approximation), in double */
export const gelu = (a: Float32Array): Float32Array => a.map((x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))));

export const addBias = (x: Float32Array, b: Float32Array): Float32Array => x.map((v, i) => f(v + b[i % b.length]!));

/** A llama's logits [ids, vocab] (weft's weight names, adjacent-pair RoPE from its rope_cos/rope_sin, biases and per-head q/k norms where the config has them) in one causal pass on the CPU. */
export function llamaForward(c: ModelConfig, w: ReadonlyMap<string, Float32Array>, ids: readonly number[]): Float32Array {
  const get = (name: string): Float32Array => w.get(name)!;
  const hs = c.headSize;
  const qDim = c.nHeads * hs;
  const kvDim = c.nKvHeads * hs;
  const heads = { heads: c.nHeads, kvHeads: c.nKvHeads, headSize: hs };
  const n = ids.length;
  const [cos, sin] = [get('rope_cos'), get('rope_sin')];
  let x = embed(get('tok_embeddings'), Int32Array.from(ids), c.dim);
  for (let l = 0; l < c.nLayers; l++) {
    const lw = (s: string): Float32Array => get(`layers.${l}.${s}`);
    const project = (name: string, x: Float32Array): Float32Array => {
      const y = matmul(x, lw(`w${name}`), c.dim);
      const biased = c.attentionBias ? addBias(y, lw(`b${name}`)) : y;
      // a norm weight of one head's length normalizes each head alone
      return c.qkNorm && name !== 'v' ? rmsnorm(biased, lw(`${name}_norm`), c.normEps) : biased;
    };
    const h = rmsnorm(x, lw('attention_norm'), c.normEps);
    const q = rope(project('q', h), cos, sin, qDim, hs, 0);
    const k = rope(project('k', h), cos, sin, kvDim, hs, 0);
    const v = project('v', h);
    const probs = softmax(attnScores(q, k, heads, n, n), n, n, true);
    const o = matmul(attnMix(probs, v, heads, n, n), lw('wo'), qDim);
    x = add(x, c.attentionBias === 'qkvo' ? addBias(o, lw('bo')) : o);
    const f = rmsnorm(x, lw('ffn_norm'), c.normEps);
    const gated = mul(silu(matmul(f, lw('w1'), c.dim)), matmul(f, lw('w3'), c.dim));
    x = add(x, matmul(gated, lw('w2'), c.hiddenDim));
  }
  return matmul(rmsnorm(x, get('norm'), c.normEps), get('output'), c.dim);
}
