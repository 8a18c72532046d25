// GPT-2 (learned positions, LayerNorm, GELU, biases, multi-head attention without RoPE), written once and
// lowered to the prefill and decode graphs like llama.ts; token positions P..P+T-1 come in as an input.
import { GraphBuilder, type Dim } from '../src/ir/builder.js';
import type { Graph } from '../src/ir/types.js';
import type { GraphKind, ModelConfig } from './llama.js';

/** Names and shapes of every weight the graphs read; matrices [out, in]. */
export function gpt2WeightShapes(c: ModelConfig): Map<string, number[]> {
  const d = c.dim;
  const shapes = new Map<string, number[]>([
    ['wte', [c.vocabSize, d]],
    ['wpe', [c.seqLen, d]],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `layers.${l}.`;
    for (const [n, s] of [
      ['ln_1.weight', [d]],
      ['ln_1.bias', [d]],
      ['wq', [d, d]],
      ['wk', [d, d]],
      ['wv', [d, d]],
      ['bq', [d]],
      ['bk', [d]],
      ['bv', [d]],
      ['wo', [d, d]],
      ['bo', [d]],
      ['ln_2.weight', [d]],
      ['ln_2.bias', [d]],
      ['w_fc', [c.hiddenDim, d]],
      ['b_fc', [c.hiddenDim]],
      ['w_proj', [d, c.hiddenDim]],
      ['b_proj', [d]],
    ] as const) {
      shapes.set(p + n, [...s]);
    }
  }
  shapes.set('ln_f.weight', [d]);
  shapes.set('ln_f.bias', [d]);
  return shapes;
}

export function gpt2Graph(c: ModelConfig, kind: GraphKind): Graph {
  const hs = c.headSize;
  const T: Dim = kind === 'prefill' ? 'T' : 1;
  const g = new GraphBuilder(kind, kind === 'prefill' ? ['T', 'P', 'L'] : ['P']);
  const attn = { heads: c.nHeads, kvHeads: c.nHeads, headSize: hs };
  const tokens = g.input('tokens', 'i32', [T]);
  const positions = g.input('positions', 'i32', [T]);
  // prefill returns the logits of the rows it is asked for (L of its T): the last alone to generate, every one to score
  const logitRows = kind === 'prefill' ? g.input('logit_rows', 'i32', ['L']) : undefined;
  const w = new Map([...gpt2WeightShapes(c)].map(([name, shape]) => [name, g.weight(name, shape)]));
  const weight = (name: string): string => w.get(name)!;
  const caches = Array.from({ length: c.nLayers }, (_, l) => ({
    k: g.state(`layers.${l}.k_cache`, [c.seqLen, c.dim]),
    v: g.state(`layers.${l}.v_cache`, [c.seqLen, c.dim]),
  }));
  const linear = (name: string, x: string, wName: string, bName: string): string =>
    g.node('add_bias', name, [g.node('matmul', `${name}_mm`, [x, weight(wName)], {}), weight(bName)], {});

  const tok = g.node('embed', 'tok', [weight('wte'), tokens], {});
  const pos = g.node('embed', 'pos', [weight('wpe'), positions], {});
  let x = g.node('add', 'x', [tok, pos], {});
  for (let l = 0; l < c.nLayers; l++) {
    g.layer(l);
    const p = (n: string): string => `l${l}.${n}`;
    const lw = `layers.${l}.`;
    const h = g.node('layernorm', p('attn_in'), [x, weight(`${lw}ln_1.weight`), weight(`${lw}ln_1.bias`)], { eps: c.normEps });
    const q = linear(p('q'), h, `${lw}wq`, `${lw}bq`);
    const k = linear(p('k'), h, `${lw}wk`, `${lw}bk`);
    const v = linear(p('v'), h, `${lw}wv`, `${lw}bv`);
    const keys = g.node('kv_write', p('keys'), [caches[l]!.k, k], {});
    const values = g.node('kv_write', p('values'), [caches[l]!.v, v], {});
    const scores = g.node('attn_scores', p('scores'), [q, keys], attn);
    const probs = g.node('softmax', p('probs'), [scores], { causal: 1 });
    const mixed = g.node('attn_mix', p('mixed'), [probs, values], attn);
    x = g.node('add', p('resid_attn'), [x, linear(p('attn_out'), mixed, `${lw}wo`, `${lw}bo`)], {});
    const f = g.node('layernorm', p('ffn_in'), [x, weight(`${lw}ln_2.weight`), weight(`${lw}ln_2.bias`)], { eps: c.normEps });
    const act = g.node('gelu', p('fc_act'), [linear(p('fc'), f, `${lw}w_fc`, `${lw}b_fc`)], {});
    x = g.node('add', p('resid_ffn'), [x, linear(p('proj'), act, `${lw}w_proj`, `${lw}b_proj`)], {});
  }
  g.layer(undefined);
  if (logitRows) x = g.node('take_rows', 'picked', [x, logitRows], {});
  const xf = g.node('layernorm', 'final_norm', [x, weight('ln_f.weight'), weight('ln_f.bias')], { eps: c.normEps });
  const logits = g.node('matmul', 'logits', [xf, weight('wte')], {});
  g.output(logits);
  // decode also picks the greedy token on the device, so greedy steps can follow one another without the host
  if (kind === 'decode') g.output(g.node('argmax', 'next', [logits], {}));
  return g.build();
}
