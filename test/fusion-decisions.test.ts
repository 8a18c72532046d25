// Fusion decisions are recorded where the passes make them: each decline reason appears for a small IR graph
// built to trigger it, on the kernel it concerns, and the barrier a decline leaves says why from that record.
// The fixtures' and the 1B model's pipelines leave no token-parallel barrier without a recorded reason.
import { describe, expect, it } from 'vitest';
import { buildGraphs, readCheckpoint } from '../src/api.js';
import { parseGraph, printGraph } from '../src/ir/index.js';
import type { BarrierItem, FusionDecline, Graph, KernelItem } from '../src/ir/index.js';
import { passesByName, pipeline } from '../src/passes/pipeline.js';
import { runPipeline } from '../src/passes/run-pipeline.js';
import { syntheticConfigs } from '../models/synthetic.js';

const fusion = passesByName(['insert-barriers', 'fuse-linear', 'fuse-attention', 'fuse-elementwise']);
const run = (text: string, maxStorageBuffers = 8): Graph => runPipeline(parseGraph(text), fusion, { maxStorageBuffers });
const kernel = (g: Graph, name: string): KernelItem => g.schedule!.find((i): i is KernelItem => i.item === 'kernel' && i.name === name)!;
const declines = (g: Graph): (FusionDecline & { kernel: string })[] =>
  g.schedule!.flatMap((i) => (i.item === 'kernel' ? (i.declined ?? []).map((d) => ({ ...d, kernel: i.name })) : []));
const barriers = (g: Graph): BarrierItem[] => g.schedule!.filter((i): i is BarrierItem => i.item === 'barrier');

const decls = `  input %x: f32[T, 16]
  weight %n: f32[16]
  weight %wqkv: f32[32, 16] from wq, wk, wv
  weight %cos: f32[64, 2]
  weight %sin: f32[64, 2]
  state %kc: f32[64, 8]
  state %vc: f32[64, 8]`;

/** A Q/K/V projection whose slices go through `between` before RoPE (Qwen2.5's biases), or straight to it. */
const qkv = (between = false) => `graph g(T, P) {
${decls}
  weight %bq: f32[16]
  weight %bk: f32[8]
  %h = rmsnorm(%x, %n) {eps=0.00001} : f32[T, 16] layer=0
  %qkv = matmul(%h, %wqkv) : f32[T, 32] layer=0
  %q = slice(%qkv) {start=0, size=16} : f32[T, 16] layer=0
  %k = slice(%qkv) {start=16, size=8} : f32[T, 8] layer=0
  %v = slice(%qkv) {start=24, size=8} : f32[T, 8] layer=0
${
  between
    ? `  %qb = add_bias(%q, %bq) : f32[T, 16] layer=0
  %kb = add_bias(%k, %bk) : f32[T, 8] layer=0
  %qr = rope(%qb, %cos, %sin) {headSize=4} : f32[T, 16] layer=0
  %kr = rope(%kb, %cos, %sin) {headSize=4} : f32[T, 8] layer=0`
    : `  %qr = rope(%q, %cos, %sin) {headSize=4} : f32[T, 16] layer=0
  %kr = rope(%k, %cos, %sin) {headSize=4} : f32[T, 8] layer=0`
}
  %keys = kv_write(%kc, %kr) : f32[P+T, 8] layer=0
  %values = kv_write(%vc, %v) : f32[P+T, 8] layer=0
  %scores = attn_scores(%qr, %keys) {heads=4, kvHeads=2, headSize=4} : f32[4, T, P+T] layer=0
  %probs = softmax(%scores) {causal=1} : f32[4, T, P+T] layer=0
  %mix = attn_mix(%probs, %values) {heads=4, kvHeads=2, headSize=4} : f32[T, 16] layer=0
  output %mix
}
`;

describe('fuse-linear records what it leaves out', () => {
  it('an epilogue that no template has: the barrier after says so from the record', () => {
    const g = run(qkv(true));
    expect(kernel(g, 'qkv')).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'store' } });
    expect(declines(g)).toEqual([
      {
        kernel: 'qkv',
        pass: 'fuse-linear',
        nodes: ['q', 'k', 'v'],
        reason: 'q and k are read by add_bias %qb, add_bias %kb, not each by one rope',
      },
    ]);
    const after = barriers(g).find((b) => b.producers.includes('qkv'))!;
    expect(after.unfused).toBe('fuse-linear declined: q and k are read by add_bias %qb, add_bias %kb, not each by one rope');
    expect(printGraph(g)).toContain(
      '  kernel qkv: linear(prologue=rmsnorm, epilogue=store) {\n    declined {pass="fuse-linear", nodes=[%q, %k, %v], reason="q and k are read by add_bias %qb, add_bias %kb, not each by one rope"}\n',
    );
    expect(parseGraph(printGraph(g))).toEqual(g);
  });

  it('q and k stacked apart from v (a Q4_K_M layer): with RoPE, two kernels and no barrier; through biases, a decline saying why for both two-slice epilogues', () => {
    // wv kept in another format than wq and wk: stack-weights stacks q and k alone, split-norms gives each matmul its norm
    const formats = new Map([
      ['wq', 'q4_k'],
      ['wk', 'q4_k'],
      ['wv', 'q6_k'],
    ]);
    const layer = (between: boolean) =>
      qkv(between)
        .replace('  weight %wqkv: f32[32, 16] from wq, wk, wv', '  weight %wq: f32[16, 16]\n  weight %wk: f32[8, 16]\n  weight %wv: f32[8, 16]')
        .replace(
          /  %qkv = matmul[^\n]*\n  %q = slice[^\n]*\n  %k = slice[^\n]*\n  %v = slice[^\n]*\n/,
          '  %q = matmul(%h, %wq) : f32[T, 16] layer=0\n  %k = matmul(%h, %wk) : f32[T, 8] layer=0\n  %v = matmul(%h, %wv) : f32[T, 8] layer=0\n',
        );
    const whole = (text: string): Graph => runPipeline(parseGraph(text), pipeline, { maxStorageBuffers: 8, formats });
    const rope = whole(layer(false));
    expect(kernel(rope, 'q_k')).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'qk' } });
    expect(kernel(rope, 'v')).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'append' } });
    const kernels = rope.schedule!.map((i) => (i.item === 'kernel' ? i.name : 'barrier'));
    expect(kernels.slice(0, 3)).toEqual(['q_k', 'v', 'barrier']);
    const biased = whole(layer(true));
    expect(kernel(biased, 'q_k')).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'store' } });
    expect(declines(biased).find((d) => d.kernel === 'q_k')?.reason).toBe(
      'not gate/up: its two slices are not the halves of its columns; not q/k: q and k are read by add_bias %qb, add_bias %kb, not each by one rope',
    );
  });

  it('an epilogue or prologue that would bind more storage buffers than the adapter allows', () => {
    expect(kernel(run(qkv(), 8), 'qkv')).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'qkv' } });
    const g = run(qkv(), 5);
    expect(kernel(g, 'qkv')).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'store' } });
    expect(declines(g)).toContainEqual({
      kernel: 'qkv',
      pass: 'fuse-linear',
      nodes: ['q', 'k', 'v', 'qr', 'kr', 'keys', 'values'],
      reason: 'the qkv epilogue would make it bind 8 storage buffers, more than the 5 a kernel may',
    });
    const tight = run(qkv(), 2);
    expect(kernel(tight, 'qkv').kind).toEqual({ kind: 'op', op: 'matmul' });
    expect(declines(tight).map((d) => d.reason)).toEqual(
      expect.arrayContaining([
        'the qkv epilogue would make it bind 8 storage buffers, more than the 2 a kernel may',
        'the rmsnorm prologue would make it bind 8 storage buffers, more than the 2 a kernel may',
      ]),
    );
    const slice = barriers(tight).find((b) => b.producers.includes('qkv') && b.reason.startsWith('token-parallel'))!;
    expect(slice.unfused).toBe('fuse-linear declined: the qkv epilogue would make it bind 8 storage buffers, more than the 2 a kernel may');
  });

  it('a norm with several readers, a gate/up whose halves are read elsewhere, a graph output', () => {
    const g = run(`graph g(T) {
  input %x: f32[T, 16]
  weight %n: f32[16]
  weight %w1: f32[8, 16]
  weight %w2: f32[8, 16]
  weight %wgu: f32[16, 16] from wg, wu
  %h = rmsnorm(%x, %n) {eps=0.00001} : f32[T, 16]
  %a = matmul(%h, %w1) : f32[T, 8]
  %b = matmul(%h, %w2) : f32[T, 8]
  %gu = matmul(%x, %wgu) : f32[T, 16]
  %gate = slice(%gu) {start=0, size=8} : f32[T, 8]
  %up = slice(%gu) {start=8, size=8} : f32[T, 8]
  %act = gelu(%gate) : f32[T, 8]
  %out = mul(%act, %up) : f32[T, 8]
  output %a
  output %b
  output %out
}
`);
    expect(declines(g)).toEqual([
      {
        kernel: 'a',
        pass: 'fuse-linear',
        nodes: ['h'],
        reason: 'no rmsnorm prologue: %h is read by 2 nodes; a prologue recomputes the norm for its one reader',
      },
      {
        kernel: 'b',
        pass: 'fuse-linear',
        nodes: ['h'],
        reason: 'no rmsnorm prologue: %h is read by 2 nodes; a prologue recomputes the norm for its one reader',
      },
      {
        kernel: 'gu',
        pass: 'fuse-linear',
        nodes: ['gate', 'up'],
        reason:
          'not gate/up: its halves are read by gelu %act, mul %out, not by silu(gate) · up alone; not q/k: q and k are read by gelu %act, mul %out, not each by one rope',
      },
    ]);
  });
});

describe('fuse-attention and fuse-elementwise record theirs', () => {
  it('a softmax that is not causal; an attention kernel over the binding limit', () => {
    const open = run(qkv().replace('{causal=1}', '{causal=0}'));
    expect(declines(open)).toContainEqual({ kernel: 'scores', pass: 'fuse-attention', nodes: ['probs'], reason: 'softmax %probs is not causal' });
    const tight = run(qkv(), 3);
    expect(declines(tight)).toContainEqual({
      kernel: 'scores',
      pass: 'fuse-attention',
      nodes: ['probs'],
      reason: 'the attention kernel binds 4 storage buffers, more than the 3 a kernel may',
    });
  });

  it("fuse-elementwise takes every dependent pair it meets (a reader has its argument's shape), so it records none", () => {
    const g = run(`graph g(T) {
  input %x: f32[T, 8]
  input %y: f32[1, 8]
  %a = silu(%x) : f32[T, 8]
  %b = silu(%y) : f32[1, 8]
  %c = mul(%a, %x) : f32[T, 8]
  %d = add(%c, %c) : f32[T, 8]
  output %b
  output %d
}
`);
    expect(kernel(g, 'd')).toMatchObject({ kind: { kind: 'elementwise' }, members: ['c', 'd'] });
    expect(declines(g)).toEqual([]);
  });
});

describe('whole pipelines', () => {
  const dir = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
  const graphs: [string, ReturnType<typeof buildGraphs>][] = [
    ['stories260K', buildGraphs(readCheckpoint(`${dir}stories260K.bin`).config)],
    ['1B', buildGraphs(syntheticConfigs['1B']!)],
  ];
  for (const [name, built] of graphs) {
    for (const maxStorageBuffers of [8, 4]) {
      it(`${name}, ${maxStorageBuffers} storage buffers: every token-parallel barrier names the decline that left it`, () => {
        for (const g of [built.prefill, built.decode]) {
          const final = runPipeline(g, pipeline, { maxStorageBuffers });
          const tokenParallel = barriers(final).filter((b) => b.reason.includes('token-parallel:'));
          for (const b of tokenParallel) expect(b.unfused).toMatch(/^fuse-(linear|attention|elementwise) declined: /);
          if (maxStorageBuffers === 4) expect(tokenParallel.length).toBeGreaterThan(0);
        }
      });
    }
  }
});
