// The IR text form round-trips (print(parse(s)) === s), scheduled and slotted graphs included, and broken graphs
// are rejected by the parser or the verifier with a one-line message naming what is wrong. Also the JSON and
// dot views and the affine dimension text.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as A from '../src/affine.js';
import { opSignatures, parseGraph, parseModule, printGraph, printModule, verifyGraph } from '../src/ir/index.js';
import type { Graph } from '../src/ir/index.js';
import { printDot, printJson } from '../src/ir/formats.js';
import { formatKind } from '../src/ir/kernel-kinds.js';

const everyOp = readFileSync(new URL('./ir/every-op.ir', import.meta.url), 'utf8');
const scheduled = readFileSync(new URL('./ir/scheduled.ir', import.meta.url), 'utf8');

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
    expect(g.outputs).toEqual(['x.2', 'last', 'p', 'next']);
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
        '  %h = rmsnorm(%x, %n) {eps=0.00001} : f32[T, 16]  # row-reduction',
        '  %t = rmsnorm(%x, %n) {eps=1e-7} : f32[T, 16]  # row-reduction',
        '  output %h',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('prints a graph without symbols as `graph name() {`', () => {
    const text = 'graph decode_head() {\n  input %x: f32[1, 16]\n  %y = silu(%x) : f32[1, 16]  # token-parallel\n  output %y\n}\n';
    const g = parseGraph(text);
    expect(g.symbols).toEqual([]);
    expect(printGraph(g)).toBe(text);
  });

  it('round-trips a module of several graphs separated by blank lines', () => {
    const second = 'graph tail(T) {\n  input %x: f32[T, 4]\n  %y = silu(%x) : f32[T, 4]  # token-parallel\n  output %y\n}\n';
    const text = `${everyOp}\n${second}`;
    const graphs = parseModule(text);
    expect(graphs.map((g) => g.name)).toEqual(['every_op', 'tail']);
    expect(printModule(graphs)).toBe(text);
    expect(() => parseGraph(text, 'two.ir')).toThrow(/^two\.ir:\d+: expected one graph, found 2$/);
  });
});

describe('scheduled IR text', () => {
  it('prints scheduled.ir back exactly, and it verifies', () => {
    const g = parseGraph(scheduled);
    expect(printGraph(g)).toBe(scheduled);
    expect(() => verifyGraph(g)).not.toThrow();
  });

  it('rebuilds nodes in printed order, the schedule, slots and stacked weights', () => {
    const g = parseGraph(scheduled);
    expect(parseGraph(printGraph(g))).toEqual(g);
    expect(g.decls.find((d) => d.name === 'layers.0.wqkv')?.from).toEqual(['layers.0.wq', 'layers.0.wk', 'layers.0.wv']);
    expect(g.decls.find((d) => d.name === 'layers.0.wo')).not.toHaveProperty('from');
    expect(g.schedule!.map((i) => (i.item === 'kernel' ? `${i.name}: ${formatKind(i.kind)}` : '|'))).toEqual([
      'x: embed',
      '|',
      'l0.qkv: linear(prologue=rmsnorm, epilogue=qkv)',
      '|',
      'l0.mix: attention(causal)',
      '|',
      'l0.o: linear(prologue=none, epilogue=residual)',
    ]);
    expect(g.schedule![2]).toMatchObject({ kind: { kind: 'linear', prologue: 'rmsnorm', epilogue: 'qkv' } });
    expect(g.nodes.map((n) => n.name)).toEqual(g.schedule!.flatMap((i) => (i.item === 'kernel' ? i.members : [])));
    expect(g.nodes.map((n) => n.layer)).toEqual([undefined, ...Array(14).fill(0)]);
    expect(g.slots).toEqual({ x: 's0', 'l0.qr': 's1', 'l0.mix': 's2', 'x.1': 's1' });
    expect(g.schedule![3]).toEqual({
      item: 'barrier',
      reason: 'cross-token: attn_scores at row t reads %l0.keys at every position up to P+t, written by l0.qkv',
      producers: ['l0.qkv'],
      consumers: ['l0.mix'],
      buffers: ['s1', 'layers.0.k_cache', 'layers.0.v_cache'],
      unfused: 'a workgroup of l0.mix needs values that other workgroups of l0.qkv write, and workgroups of one dispatch cannot wait for each other',
    });
  });

  it('regenerates the parallelism comments and canonical spacing', () => {
    const text = [
      'graph g(T) {',
      '  input %x: f32[T, 4]',
      'kernel a:silu{',
      '%y = silu(%x) : f32[T, 4]   @s.0   # stale comment',
      '}',
      '  barrier { reason = "a \\\\ b", producers = [ a ], consumers = [b], buffers = [ @s.0 ] , unfused = "" }',
      '  kernel b: silu {',
      '    %z = silu(%y) : f32[T, 4]',
      '  }',
      '  output %z',
      '}',
      '',
    ].join('\n');
    expect(printGraph(parseGraph(text))).toBe(
      [
        'graph g(T) {',
        '  input %x: f32[T, 4]',
        '  kernel a: silu {',
        '    %y = silu(%x) : f32[T, 4] @s.0  # token-parallel',
        '  }',
        '  barrier {reason="a \\\\ b", producers=[a], consumers=[b], buffers=[@s.0], unfused=""}',
        '  kernel b: silu {',
        '    %z = silu(%y) : f32[T, 4]  # token-parallel',
        '  }',
        '  output %z',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('escapes quotes, backslashes and line breaks in barrier strings so they parse back', () => {
    const g = parseGraph(scheduled);
    const reason = 'say "hi" \\ # not a comment\nsecond line';
    const schedule = g.schedule!.map((i) => (i.item === 'barrier' ? { ...i, reason, unfused: '' } : i));
    const text = printGraph({ ...g, schedule });
    expect(text).toContain(`barrier {reason="say \\"hi\\" \\\\ # not a comment\\nsecond line", producers=[x]`);
    expect(parseGraph(text).schedule).toEqual(schedule);
    expect(printGraph(parseGraph(text))).toBe(text);
  });

  it('kernel kinds are data: a bogus one fails to parse, one that does not fit its members fails verification', () => {
    expect(() => parseGraph(scheduled.replace('kernel l0.mix: attention(causal) {', 'kernel l0.mix: bogus_template {'), 's.ir')).toThrow(
      /^s\.ir:27: kernel l0\.mix: unknown kernel kind 'bogus_template' \(kinds: an op name, linear\(prologue=…, epilogue=…\), attention\(causal\), elementwise\)$/,
    );
    expect(() => parseGraph(scheduled.replace('epilogue=qkv', 'epilogue=fancy'), 's.ir')).toThrow(
      /^s\.ir:15: kernel l0\.qkv: unknown linear epilogue 'fancy' \(epilogues: store, residual, glu, qkv, qk, append\)$/,
    );
    const misfit = (from: string, to: string) => () => verifyGraph(parseGraph(scheduled.replace(from, to)));
    expect(misfit('epilogue=qkv', 'epilogue=glu')).toThrow(
      /^graph layer0: kernel l0\.qkv: linear\(prologue=rmsnorm, epilogue=glu\) has a qkv epilogue, not glu$/,
    );
    expect(misfit('prologue=rmsnorm, epilogue=qkv', 'prologue=none, epilogue=qkv')).toThrow(
      /^graph layer0: kernel l0\.qkv: linear\(prologue=none, epilogue=qkv\) computes matmul, slice, slice, slice, rope, rope, kv_write, kv_write, not rmsnorm, /,
    );
    expect(misfit('l0.o: linear(prologue=none, epilogue=residual)', 'l0.o: matmul')).toThrow(
      /^graph layer0: kernel l0\.o: matmul is one matmul node, not matmul, add$/,
    );
    expect(misfit('l0.mix: attention(causal)', 'l0.mix: elementwise')).toThrow(
      /^graph layer0: kernel l0\.mix: elementwise takes elementwise ops only, not attn_scores %l0\.scores$/,
    );
  });

  it('declined fusions and layers parse back, and a decline must name nodes', () => {
    const line = '    declined {pass="fuse-linear", nodes=[%x.1], reason="the \\"residual\\" epilogue would bind 9 storage buffers"}';
    const text = scheduled.replace(
      '  kernel l0.o: linear(prologue=none, epilogue=residual) {\n',
      `  kernel l0.o: linear(prologue=none, epilogue=residual) {\n${line}\n`,
    );
    const g = parseGraph(text);
    expect(printGraph(g)).toBe(text);
    expect(g.schedule![6]).toMatchObject({
      declined: [{ pass: 'fuse-linear', nodes: ['x.1'], reason: 'the "residual" epilogue would bind 9 storage buffers' }],
    });
    expect(() => verifyGraph(g)).not.toThrow();
    expect(() => verifyGraph(parseGraph(text.replace('nodes=[%x.1]', 'nodes=[%nope]')))).toThrow(
      /^graph layer0: kernel l0\.o: a decline of fuse-linear names %nope, not a node$/,
    );
    expect(() =>
      parseGraph(text.replace(`${line}\n    %l0.o = matmul`, `    %l0.o = matmul`).replace('    %x.1 = add', `${line}\n    %x.1 = add`), 's.ir'),
    ).toThrow(/^s\.ir:\d+: kernel l0\.o: its 'declined' lines come before its nodes$/);
    expect(() => parseGraph(scheduled.replace('f32[T, 16] layer=0 @s2', 'f32[T, 16] layer=x @s2'), 's.ir')).toThrow(
      /^s\.ir:30: malformed layer 'layer=x': expected layer=N$/,
    );
  });

  it('has no schedule or slots when the text has no kernel blocks or @slots', () => {
    const g = parseGraph(everyOp);
    expect(g).not.toHaveProperty('schedule');
    expect(g).not.toHaveProperty('slots');
  });
});

describe('JSON and dot views', () => {
  const g = parseGraph(scheduled);

  it("printJson is stable JSON with dims as strings and each node's parallelism", () => {
    const text = printJson(g);
    expect(printJson(parseGraph(printGraph(g)))).toBe(text);
    const json = JSON.parse(text);
    expect(Object.keys(json)).toEqual(['name', 'symbols', 'decls', 'nodes', 'schedule', 'slots', 'outputs']);
    expect(json.decls[3]).toEqual({
      kind: 'weight',
      name: 'layers.0.wqkv',
      type: { dtype: 'f32', shape: ['32', '16'] },
      from: ['layers.0.wq', 'layers.0.wk', 'layers.0.wv'],
    });
    expect(json.nodes.find((n: { name: string }) => n.name === 'l0.scores')).toEqual({
      name: 'l0.scores',
      op: 'attn_scores',
      args: ['l0.qr', 'l0.keys'],
      attrs: { heads: 4, kvHeads: 2, headSize: 4 },
      type: { dtype: 'f32', shape: ['4', 'T', 'P+T'] },
      parallelism: 'cross-token',
      layer: 0,
    });
    expect(json.nodes[0]).toMatchObject({ name: 'x', slot: 's0', parallelism: 'token-parallel' });
    expect(json.schedule).toHaveLength(g.schedule!.length);
    expect(Object.keys(json.slots)).toEqual(['x', 'l0.qr', 'l0.mix', 'x.1']);
    expect(JSON.parse(printJson(parseGraph(everyOp)))).not.toHaveProperty('schedule');
  });

  it('printDot has one node per value, an edge per argument, a cluster per kernel and a note per barrier', () => {
    const dot = printDot(g);
    expect(dot.startsWith('digraph "layer0" {\n')).toBe(true);
    expect(dot.endsWith('}\n')).toBe(true);
    const defined = [...dot.matchAll(/^\s*"%([^"]+)" \[/gm)].map((m) => m[1]);
    expect(defined).toEqual([...g.decls.map((d) => d.name), ...g.nodes.map((n) => n.name)]);
    const edges = dot.split('\n').filter((l) => /^ {2}"%[^"]+" -> "%[^"]+";$/.test(l));
    expect(edges).toHaveLength(g.nodes.reduce((sum, n) => sum + n.args.length, 0));
    expect(dot).toContain('  subgraph "cluster_l0.qkv" {\n    label="kernel l0.qkv: linear(prologue=rmsnorm, epilogue=qkv)";');
    expect(dot.match(/\[shape=note/g)).toHaveLength(3);
    expect(dot).toContain('"%l0.values" -> "barrier 1" [style=dashed, color=red, ltail="cluster_l0.qkv"];');
    expect(dot).toContain('"barrier 1" -> "%l0.scores" [style=dashed, color=red, lhead="cluster_l0.mix"];');
    expect(dot).toContain('label="%x.1 = add\\nf32[T, 16] @s1\\ntoken-parallel", peripheries=2]');
    expect(printDot(parseGraph(everyOp))).not.toContain('subgraph');
  });
});

/** Graphs the parser rejects, with the line it names. */
const syntaxErrors: [what: string, text: string, message: RegExp][] = [
  [
    'unknown op',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = conv(%x) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:3: unknown op "conv" \(known: embed, rmsnorm, head_rmsnorm, matmul, .*silu, slice, layernorm, gelu, add_bias, take_rows, argmax\)$/,
  ],
  ['wrong arity', 'graph g(T) {\n  input %x: f32[T, 16]\n  %y = matmul(%x) : f32[T, 16]\n  output %y\n}\n', /^bad\.ir:3: matmul takes 2 args \(x, w\), got 1$/],
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
  ['malformed type', 'graph g(T) {\n  input %x: f32[T,, 16]\n  output %x\n}\n', /^bad\.ir:2: malformed type "f32\[T,, 16\]": empty dimension$/],
  ['unknown dtype', 'graph g(T) {\n  input %x: f16[T]\n  output %x\n}\n', /^bad\.ir:2: malformed type "f16\[T\]": dtype must be f32 or i32$/],
  [
    'duplicate name',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  output %y\n}\n',
    /^bad\.ir:4: duplicate name %y \(first defined on line 3\)$/,
  ],
  ['undefined value', 'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%nope) : f32[T, 16]\n  output %y\n}\n', /^bad\.ir:3: undefined value %nope$/],
  ['undefined output', 'graph g(T) {\n  input %x: f32[T, 16]\n  output %z\n}\n', /^bad\.ir:3: undefined value %z$/],
  [
    'declaration after a node',
    'graph g(T) {\n  input %x: f32[T, 16]\n  %y = silu(%x) : f32[T, 16]\n  weight %w: f32[4]\n  output %y\n}\n',
    /^bad\.ir:4: declarations must come before nodes$/,
  ],
  ['unclosed graph', 'graph g(T) {\n  input %x: f32[T, 16]\n  output %x\n', /^bad\.ir:1: graph g has no closing '}'$/],
  [
    'garbage line',
    'graph g(T) {\n  input x: f32[T]\n}\n',
    /^bad\.ir:2: expected a declaration, a node, a kernel, a barrier, an output or '}', got "input x: f32\[T\]"$/,
  ],
  [
    'a loose node line after a kernel block',
    'graph g(T) {\n  input %x: f32[T, 4]\n  kernel a: silu {\n    %y = silu(%x) : f32[T, 4]\n  }\n  %z = silu(%y) : f32[T, 4]\n  output %z\n}\n',
    /^bad\.ir:6: a graph cannot mix loose node lines \(line 6\) with kernel blocks and barriers \(line 3\)$/,
  ],
  [
    'a kernel block after loose node lines',
    'graph g(T) {\n  input %x: f32[T, 4]\n  %y = silu(%x) : f32[T, 4]\n  kernel a: silu {\n    %z = silu(%y) : f32[T, 4]\n  }\n  output %z\n}\n',
    /^bad\.ir:4: a graph cannot mix loose node lines \(line 3\) with kernel blocks and barriers \(line 4\)$/,
  ],
  [
    'an unclosed kernel block',
    'graph g(T) {\n  input %x: f32[T, 4]\n  kernel a: silu {\n    %y = silu(%x) : f32[T, 4]\n  output %y\n}\n',
    /^bad\.ir:5: kernel a \(line 3\) has no closing '}'$/,
  ],
  [
    'a kernel block open at the end of the text',
    'graph g(T) {\n  input %x: f32[T, 4]\n  kernel a: silu {\n    %y = silu(%x) : f32[T, 4]\n',
    /^bad\.ir:3: kernel a has no closing '}'$/,
  ],
  [
    'barrier fields out of order',
    'graph g(T) {\n  input %x: f32[T, 4]\n  barrier {producers=[a], reason="", consumers=[], buffers=[], unfused=""}\n}\n',
    /^bad\.ir:3: barrier fields are reason, producers, consumers, buffers, unfused in this order: expected 'reason', got 'producers'$/,
  ],
  [
    'a barrier buffer without sigil',
    'graph g(T) {\n  input %x: f32[T, 4]\n  barrier {reason="", producers=[], consumers=[], buffers=[x], unfused=""}\n}\n',
    /^bad\.ir:3: malformed barrier: expected %value or @slot buffers at 'x\], unfused=""'$/,
  ],
  [
    'a bad escape in a barrier string',
    'graph g(T) {\n  input %x: f32[T, 4]\n  barrier {reason="\\q", producers=[], consumers=[], buffers=[], unfused=""}\n}\n',
    /^bad\.ir:3: malformed barrier: bad escape in string "\\q"$/,
  ],
  [
    'text after the last barrier field',
    'graph g(T) {\n  input %x: f32[T, 4]\n  barrier {reason="", producers=[], consumers=[], buffers=[], unfused="", extra=1}\n}\n',
    /^bad\.ir:3: malformed barrier: unexpected text after the last field at ', extra=1'$/,
  ],
  [
    'a malformed slot',
    'graph g(T) {\n  input %x: f32[T, 4]\n  %y = silu(%x) : f32[T, 4] @s-1\n  output %y\n}\n',
    /^bad\.ir:3: malformed slot '@s-1': expected @name$/,
  ],
  ['an empty from list', 'graph g(T) {\n  weight %w: f32[4] from \n  input %x: f32[T, 4]\n  output %x\n}\n', /^bad\.ir:2: 'from' lists no checkpoint tensors$/],
  [
    'a malformed checkpoint name',
    'graph g(T) {\n  weight %w: f32[4] from a, , b\n  input %x: f32[T, 4]\n  output %x\n}\n',
    /^bad\.ir:2: malformed checkpoint tensor name '' after 'from'$/,
  ],
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
    'head_rmsnorm with a weight longer than a head',
    'graph g(T) {\n  input %q: f32[T, 16]\n  weight %n: f32[8]\n  %y = head_rmsnorm(%q, %n) {eps=0.00001, headSize=4} : f32[T, 16]\n  output %y\n}\n',
    /^graph g: %y = head_rmsnorm: weight length 8 differs from the head size 4$/,
  ],
  [
    'head_rmsnorm over a row that is not whole heads',
    'graph g(T) {\n  input %q: f32[T, 18]\n  weight %n: f32[4]\n  %y = head_rmsnorm(%q, %n) {eps=0.00001, headSize=4} : f32[T, 18]\n  output %y\n}\n',
    /^graph g: %y = head_rmsnorm: row length 18 is not a whole number of heads of 4$/,
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
  [
    'slice past the last column',
    'graph g(T) {\n  input %x: f32[T, 8]\n  %y = slice(%x) {start=6, size=4} : f32[T, 4]\n  output %y\n}\n',
    /^graph g: %y = slice: columns 6\.\.9 are outside 0\.\.8-1$/,
  ],
  [
    'slice with a fractional start',
    'graph g(T) {\n  input %x: f32[T, 8]\n  %y = slice(%x) {start=0.5, size=4} : f32[T, 4]\n  output %y\n}\n',
    /^graph g: %y = slice: attr 'start' must be a non-negative integer, is 0\.5$/,
  ],
  [
    'an input stacked from checkpoint tensors',
    'graph g(T) {\n  input %x: f32[T, 4] from a, b\n  output %x\n}\n',
    /^graph g: input %x: only a weight can be stacked 'from' checkpoint tensors$/,
  ],
  [
    'a slot named like a value',
    'graph g(T) {\n  input %x: f32[T, 4]\n  %y = silu(%x) : f32[T, 4] @x\n  output %y\n}\n',
    /^graph g: %y: slot @x has the name of a value; slots and values must not share names$/,
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

  it('rejects an empty from list, a slot on a declaration and a slot on an undefined value', () => {
    const withFrom: Graph = { ...base, decls: [...base.decls, { kind: 'weight', name: 'w', type: { dtype: 'f32', shape: [] }, from: [] }] };
    expect(() => verifyGraph(withFrom)).toThrow(/^graph g: weight %w: 'from' lists no checkpoint tensors$/);
    expect(() => verifyGraph({ ...base, slots: { x: 's0' } })).toThrow(/^graph g: slot @s0 is given to declaration %x; only nodes have slots$/);
    expect(() => verifyGraph({ ...base, slots: { z: 's0' } })).toThrow(/^graph g: slot @s0 is given to undefined value %z; only nodes have slots$/);
  });

  it('checks the schedule too', () => {
    const g = parseGraph(scheduled);
    expect(() => verifyGraph({ ...g, schedule: g.schedule!.filter((i) => i.item === 'kernel') })).toThrow(
      /^graph layer0: kernel l0\.qkv reads @s0 written by x/,
    );
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
