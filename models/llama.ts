// The llama family (RMSNorm, RoPE, grouped-query attention, SwiGLU FFN), written once and lowered to the
// prefill graph (T new tokens at positions P..P+T-1) and the decode graph (one token at position P).
import { GraphBuilder, type Dim } from '../src/ir/builder.js';
import type { Graph } from '../src/ir/types.js';
import type { StopRule } from '../src/runtime/generate.js';

/**
 * A decoder-only transformer's sizes and options; `family` picks its definition: llama.ts (Llama, Mistral,
 * Qwen2, Qwen3, Phi-3: see models/families) or gpt2.ts.
 */
export interface ModelConfig {
  readonly family: 'llama' | 'gpt2';
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  /** values per attention head: dim / nHeads for most models, not all (Qwen3-0.6B: 1024 / 16 heads of 128) */
  readonly headSize: number;
  readonly vocabSize: number;
  readonly seqLen: number;
  readonly normEps: number;
  /** RoPE base frequency */
  readonly ropeTheta: number;
  /** how the RoPE frequencies are scaled from theta's (default: not at all) */
  readonly ropeScaling?: RopeScaling;
  /** the token a prompt starts with, if the model has one */
  readonly bosId?: number;
  /** tokens that end generation (default: run.c's rule, stop at BOS 1 even from the prompt) */
  readonly stop?: StopRule;
  /** biases of the attention projections: none, on q/k/v (Qwen2), or on q/k/v and the output */
  readonly attentionBias?: 'qkv' | 'qkvo';
  /** each head of q and k RMS-normalized (weights q_norm, k_norm of headSize) before RoPE (Qwen3) */
  readonly qkNorm?: boolean;
}

/**
 * RoPE frequency scaling, as transformers computes it: `linear` divides every frequency by `factor`;
 * `llama3` divides the low frequencies (wavelengths beyond originalContext / lowFreqFactor) by `factor`,
 * keeps the high ones (below originalContext / highFreqFactor) and ramps smoothly between; `divisors`
 * divides frequency j by divisors[j] (a GGUF file's rope_freqs tensor).
 */
export type RopeScaling =
  | { readonly kind: 'linear'; readonly factor: number }
  | { readonly kind: 'llama3'; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalContext: number }
  | { readonly kind: 'divisors'; readonly divisors: readonly number[] };

export type GraphKind = 'prefill' | 'decode';

/** Names and shapes of every weight the graphs read, in checkpoint order. */
export function llamaWeightShapes(c: ModelConfig): Map<string, number[]> {
  const hs = c.headSize;
  const kvDim = c.nKvHeads * hs;
  const shapes = new Map<string, number[]>([['tok_embeddings', [c.vocabSize, c.dim]]]);
  for (let l = 0; l < c.nLayers; l++) {
    shapes.set(`layers.${l}.attention_norm`, [c.dim]);
    shapes.set(`layers.${l}.wq`, [c.nHeads * hs, c.dim]);
    shapes.set(`layers.${l}.wk`, [kvDim, c.dim]);
    shapes.set(`layers.${l}.wv`, [kvDim, c.dim]);
    shapes.set(`layers.${l}.wo`, [c.dim, c.nHeads * hs]);
    if (c.attentionBias) {
      shapes.set(`layers.${l}.bq`, [c.nHeads * hs]);
      shapes.set(`layers.${l}.bk`, [kvDim]);
      shapes.set(`layers.${l}.bv`, [kvDim]);
    }
    if (c.attentionBias === 'qkvo') shapes.set(`layers.${l}.bo`, [c.dim]);
    if (c.qkNorm) {
      shapes.set(`layers.${l}.q_norm`, [hs]);
      shapes.set(`layers.${l}.k_norm`, [hs]);
    }
    shapes.set(`layers.${l}.ffn_norm`, [c.dim]);
    shapes.set(`layers.${l}.w1`, [c.hiddenDim, c.dim]);
    shapes.set(`layers.${l}.w2`, [c.dim, c.hiddenDim]);
    shapes.set(`layers.${l}.w3`, [c.hiddenDim, c.dim]);
  }
  shapes.set('norm', [c.dim]);
  shapes.set('output', [c.vocabSize, c.dim]);
  shapes.set('rope_cos', [c.seqLen, hs / 2]);
  shapes.set('rope_sin', [c.seqLen, hs / 2]);
  return shapes;
}

export function llamaGraph(c: ModelConfig, kind: GraphKind): Graph {
  const hs = c.headSize;
  const kvDim = c.nKvHeads * hs;
  const T: Dim = kind === 'prefill' ? 'T' : 1;
  const g = new GraphBuilder(kind, kind === 'prefill' ? ['T', 'P', 'L'] : ['P']);
  const attn = { heads: c.nHeads, kvHeads: c.nKvHeads, headSize: hs };

  const tokens = g.input('tokens', 'i32', [T]);
  // prefill returns the logits of the rows it is asked for (L of its T): the last alone to generate, every one to score
  const logitRows = kind === 'prefill' ? g.input('logit_rows', 'i32', ['L']) : undefined;
  const w = new Map([...llamaWeightShapes(c)].map(([name, shape]) => [name, g.weight(name, shape)]));
  const weight = (name: string): string => w.get(name)!;
  const caches = Array.from({ length: c.nLayers }, (_, l) => ({
    k: g.state(`layers.${l}.k_cache`, [c.seqLen, kvDim]),
    v: g.state(`layers.${l}.v_cache`, [c.seqLen, kvDim]),
  }));

  let x = g.node('embed', 'x', [weight('tok_embeddings'), tokens], {});
  for (let l = 0; l < c.nLayers; l++) {
    g.layer(l);
    const p = (n: string): string => `l${l}.${n}`;
    const lw = (n: string): string => weight(`layers.${l}.${n}`);
    const h = g.node('rmsnorm', p('attn_in'), [x, lw('attention_norm')], { eps: c.normEps });
    const project = (n: string, x: string, bias: boolean): string =>
      bias ? g.node('add_bias', p(n), [g.node('matmul', p(`${n}_mm`), [x, lw(`w${n}`)], {}), lw(`b${n}`)], {}) : g.node('matmul', p(n), [x, lw(`w${n}`)], {});
    const normed = (n: string, x: string): string =>
      c.qkNorm ? g.node('head_rmsnorm', p(`${n}_norm`), [x, lw(`${n}_norm`)], { eps: c.normEps, headSize: hs }) : x;
    const q = normed('q', project('q', h, !!c.attentionBias));
    const k = normed('k', project('k', h, !!c.attentionBias));
    const v = project('v', h, !!c.attentionBias);
    const qr = g.node('rope', p('q_rot'), [q, weight('rope_cos'), weight('rope_sin')], { headSize: hs });
    const kr = g.node('rope', p('k_rot'), [k, weight('rope_cos'), weight('rope_sin')], { headSize: hs });
    const keys = g.node('kv_write', p('keys'), [caches[l]!.k, kr], {});
    const values = g.node('kv_write', p('values'), [caches[l]!.v, v], {});
    const scores = g.node('attn_scores', p('scores'), [qr, keys], attn);
    const probs = g.node('softmax', p('probs'), [scores], { causal: 1 });
    const mixed = g.node('attn_mix', p('mixed'), [probs, values], attn);
    const attnOut =
      c.attentionBias === 'qkvo'
        ? g.node('add_bias', p('attn_out'), [g.node('matmul', p('attn_out_mm'), [mixed, lw('wo')], {}), lw('bo')], {})
        : g.node('matmul', p('attn_out'), [mixed, lw('wo')], {});
    x = g.node('add', p('resid_attn'), [x, attnOut], {});
    const f = g.node('rmsnorm', p('ffn_in'), [x, lw('ffn_norm')], { eps: c.normEps });
    const gate = g.node('matmul', p('gate'), [f, lw('w1')], {});
    const up = g.node('matmul', p('up'), [f, lw('w3')], {});
    const act = g.node('silu', p('gate_act'), [gate], {});
    const gated = g.node('mul', p('gated'), [act, up], {});
    const down = g.node('matmul', p('down'), [gated, lw('w2')], {});
    x = g.node('add', p('resid_ffn'), [x, down], {});
  }
  g.layer(undefined);
  if (logitRows) x = g.node('take_rows', 'picked', [x, logitRows], {});
  const xf = g.node('rmsnorm', 'final_norm', [x, weight('norm')], { eps: c.normEps });
  const logits = g.node('matmul', 'logits', [xf, weight('output')], {});
  g.output(logits);
  // decode also picks the greedy token on the device, so greedy steps can follow one another without the host
  if (kind === 'decode') g.output(g.node('argmax', 'next', [logits], {}));
  return g.build();
}
