// The IR text form round-trips (print(parse(s)) === s), and broken graphs are rejected by the parser or the
// verifier with a one-line message naming what is wrong. Also the affine dimension text.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as A from '../src/affine.js';
import { opSignatures, parseGraph, parseModule, printGraph, printModule, verifyGraph } from '../src/ir/index.js';
import type { Graph } from '../src/ir/index.js';

const everyOp = readFileSync(new URL('./ir/every-op.ir', import.meta.url), 'utf8');

describe('IR text', () => {
  it('prints every-op.ir back exactly', () => {
    expect(printGraph(parseGraph(everyOp))).toBe(everyOp);
  });

  it('every-op.ir uses every op and every declaration kind, and verifies', () => {
    const g = parseGraph(everyOp);
    expect(new Set(g.nodes.map((n) => n.op))).toEqual(new Set(Object.keys(opSignatures)));
    expect(new Set(g.decls.map((d) => d.kind))).toEqual(new Set(['input', 'weight', 'state']));
    expect(() => verifyGraph(g)).not.toThrow();
  });

  it('parse → print → parse gives the same structure', () => {
    const g = parseGraph(everyOp);
    expect(parseGraph(printGraph(g))).toEqual(g);
    const h = g.nodes.find((n) => n.name === 'h')!;
    expect(h).toMatchObject({ op: 'rmsnorm', args: ['x', 'layers.0.attention_norm'], attrs: { eps: 1e-5 } });
    expect(g.outputs).toEqual(['x.2', 'p']);
  });

  it('ignores comments and blank lines, and prints numbers with String(n)', () => {
    const text = [
      '# a leading comment',
      'graph g(T) {   # the header',
      '',
      '  input %x: f32[T,16]',
      '  weight %n: f32[ 16 ]',
      '  %h = rmsnorm( %x , %n ) { eps = 1e-5 } : f32[T, 16]  # normalised',
      '  %t = rmsnorm(%x, %n) {eps=1e-7} : f32[T, 16]',
      '  output %h',
      '}',
      '',
    ].join('\n');
    expect(printGraph(parseGraph(text))).toBe(
      [
        'graph g(T) {',
        '  input %x: f32[T, 16]',
        '  weight %n: f32[16]',
        '  %h = rmsnorm(%x, %n) {eps=0.00001} : f32[T, 16]',
        '  %t = rmsnorm(%x, %n) {eps=1e-7} : f32[T, 16]',
        '  output %h',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('prints a graph without symbols as `graph name() {`', () => {
    const text = 'graph decode_head() {\n  input %x: f32[1, 16]\n  %y = silu(%x) : f32[1, 16]\n  output %y\n}\n';
    const g = parseGraph(text);
    expect(g.symbols).toEqual([]);
    expect(printGraph(g)).toBe(text);
  });

  it('round-trips a module of several graphs separated by blank lines', () => {
    const second = 'graph tail(T) {\n  input %x: f32[T, 4]\n  %y = silu(%x) : f32[T, 4]\n  output %y\n}\n';
    const text = `${everyOp}\n${second}`;
    const graphs = parseModule(text);
    expect(graphs.map((g) => g.name)).toEqual(['every_op', 'tail']);
    expect(printModule(graphs)).toBe(text);
    expect(() => parseGraph(text, 'two.ir')).toThrow(/^two\.ir:\d+: expected one graph, found 2$/);
  });
});

/** Graphs the parser rejects, with the line it names. */
const syntaxErrors: [what: string, text: string, message: RegExp][] = [
  [
    'unknown op',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = conv(%x) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:3: unknown op 'conv' \(known: embed, rmsnorm, matmul, .*silu\)$/,
  ],
  [
    'wrong arity',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = matmul(%x) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:3: matmul takes 2 args \(x, w\), got 1$/,
  ],
  [
    'missing attr',
    'graph g(T) {\n  input %x: f32[T, 16]\n  weight %n: f32[16]\n  %y = rmsnorm(%x, %n) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:4: rmsnorm is missing attr 'eps'$/,
  ],
  [
    'unknown attr',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%x) {alpha=1} : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:3: silu has no attr 'alpha' \(expects none\)$/,
  ],
  [
    'malformed type',
    'graph g(T) {\n  input %x: f32[T,, 16]\n  output %x\n}\n',
    /^bad\.ir:2: malformed type 'f32\[T,, 16\]': empty dimension$/,
  ],
  [
    'unknown dtype',
    'graph g(T) {\n  input %x: f16[T]\n  output %x\n}\n',
    /^bad\.ir:2: malformed type 'f16\[T\]': dtype must be f32 or i32$/,
  ],
  [
    'duplicate name',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:4: duplicate name %y \(first defined on line 3\)$/,
  ],
  [
    'undefined value',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%nope) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:3: undefined value %nope$/,
  ],
  [
    'undefined output',
    'graph g(T) {\n  input %x: f32[T, 16]\n  output %z\n}\n',
    /^bad\.ir:3: undefined value %z$/,
  ],
  [
    'declaration after a node',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  weight %w: f32[4]\n  output %y\n}\n',
    /^bad\.ir:4: declarations must come before nodes$/,
  ],
  ['unclosed graph', 'graph g(T) {\n  input %x: f32[T, 16]\n  output %x\n', /^bad\.ir:1: graph g has no closing '}'$/],
  ['garbage line', 'graph g(T) {\n  input x: f32[T]\n}\n', /^bad\.ir:2: expected a declaration, a node, an output or '}', got 'input x: f32\[T\]'$/],
];

/** Graphs that parse but break an invariant the verifier keeps. */
const invariantErrors: [what: string, text: string, message: RegExp][] = [
  [
    'use before definition',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %b = silu(%a) : f32[T, 16]\n  %a = silu(%x) : f32[T, 16]\n  output %b\n}\n',
    /^graph g: %b = silu: %a is used before its definition$/,
  ],
  [
    'matmul inner dimensions differ',
    'graph g(T) {\n  input %x: f32[T, 16]\n  weight %w: f32[32, 8]\n  %y = matmul(%x, %w) : f32[T, 32]\n  output %y\n}\n',
    /^graph g: %y = matmul: inner dimensions differ: 16 vs 8$/,
  ],
  [
    'unknown symbol Q in a shape',
    'graph g(T) {\n  input %x: f32[Q, 16]\n  output %x\n}\n',
    /^graph g: input %x: unknown symbol Q in f32\[Q, 16\] \(graph symbols: T\)$/,
  ],
  [
    'wrong type written on a node',
    'graph g(T) {\n  input %x: f32[T, 16]\n  weight %w: f32[32, 16]\n  %y = matmul(%x, %w) : f32[T, 16]\n  output %y\n}\n',
    /^graph g: %y = matmul: written type f32\[T, 16\] differs from inferred f32\[T, 32\]$/,
  ],
  [
    'kv_write onto a weight',
    'graph g(T, P) {\n  input %x: f32[T, 8]\n  weight %c: f32[64, 8]\n  %k = kv_write(%c, %x) : f32[P+T, 8]\n  output %k\n}\n',
    /^graph g: %k = kv_write: cache %c must be a state declaration, is a weight$/,
  ],
  [
    'kv_write in a graph without the symbol P',
    'graph g(T) {\n  input %x: f32[T, 8]\n  state %c: f32[64, 8]\n  %k = kv_write(%c, %x) : f32[P+T, 8]\n  output %k\n}\n',
    /^graph g: %k: unknown symbol P in f32\[P\+T, 8\]/,
  ],
  [
    'state with a symbolic shape',
    'graph g(T) {\n  input %x: f32[T, 8]\n  state %c: f32[T, 8]\n  output %x\n}\n',
    /^graph g: state %c must have a constant shape, is f32\[T, 8\]$/,
  ],
  [
    'heads not a multiple of kvHeads',
    'graph g(T) {\n  input %q: f32[T, 16]\n  input %k: f32[T, 12]\n' +
      '  %s = attn_scores(%q, %k) {heads=4, kvHeads=3, headSize=4} : f32[4, T, T]\n  output %s\n}\n',
    /^graph g: %s = attn_scores: heads 4 is not a multiple of kvHeads 3$/,
  ],
  [
    'attn_mix with the wrong head count in p',
    'graph g(T) {\n  input %p: f32[2, T, T]\n  input %v: f32[T, 8]\n' +
      '  %a = attn_mix(%p, %v) {heads=4, kvHeads=2, headSize=4} : f32[T, 16]\n  output %a\n}\n',
    /^graph g: %a = attn_mix: p must have 4 heads$/,
  ],
  [
    'softmax causal flag out of range',
    'graph g(T) {\n  input %x: f32[T, T]\n  %p = softmax(%x) {causal=2} : f32[T, T]\n  output %p\n}\n',
    /^graph g: %p = softmax: attr 'causal' must be 0 or 1, is 2$/,
  ],
  [
    'add of different shapes',
    'graph g(T) {\n  input %a: f32[T, 16]\n  input %b: f32[T, 8]\n  %c = add(%a, %b) : f32[T, 16]\n  output %c\n}\n',
    /^graph g: %c = add: operand shapes differ: f32\[T, 16\] vs f32\[T, 8\]$/,
  ],
  [
    'embed with float ids',
    'graph g(T) {\n  input %ids: f32[T]\n  weight %e: f32[32, 16]\n  %x = embed(%e, %ids) : f32[T, 16]\n  output %x\n}\n',
    /^graph g: %x = embed: ids must be i32\[N\], is f32\[T\]$/,
  ],
];

describe('parser errors', () => {
  it.each(syntaxErrors)('rejects %s', (_what, text, message) => {
    expect(() => parseGraph(text, 'bad.ir')).toThrow(message);
  });
});

describe('verifier', () => {
  it.each(invariantErrors)('rejects %s', (_what, text, message) => {
    const g = parseGraph(text);
    expect(() => verifyGraph(g)).toThrow(message);
  });

  // The parser refuses these, so they are built by editing a parsed graph, as a buggy pass would.
  const base = parseGraph('graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  output %y\n}\n');

  it('rejects a duplicate name', () => {
    const g: Graph = { ...base, nodes: [...base.nodes, base.nodes[0]!] };
    expect(() => verifyGraph(g)).toThrow(/^graph g: duplicate name %y$/);
  });

  it('rejects an undefined value and an undefined output', () => {
    const node = { ...base.nodes[0]!, args: ['nope'] } as (typeof base.nodes)[number];
    expect(() => verifyGraph({ ...base, nodes: [node] })).toThrow(/^graph g: %y = silu: undefined value %nope$/);
    expect(() => verifyGraph({ ...base, outputs: ['z'] })).toThrow(/^graph g: output %z is not defined$/);
  });

  it('accepts the valid base graph', () => {
    expect(() => verifyGraph(base)).not.toThrow();
  });
});

describe('affine dimensions', () => {
  it.each(['P+T', '2*T+1', '64', 'T-1', '-T+64', '0'])('format(parse(%s)) round-trips', (text) => {
    expect(A.format(A.parse(text))).toBe(text);
  });

  it('normalises sums to the canonical order', () => {
    expect(A.format(A.parse('T + P'))).toBe('P+T');
    expect(A.format(A.parse('1+T+T'))).toBe('2*T+1');
    expect(A.evaluate(A.parse('P+T'), { P: 5, T: 3 })).toBe(8);
  });

  it('rejects malformed dimensions', () => {
    expect(() => A.parse('T+')).toThrow(/malformed dimension/);
    expect(() => A.parse('2T')).toThrow(/malformed dimension/);
  });
});
