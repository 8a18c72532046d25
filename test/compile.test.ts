// `weft compile` from the built CLI (dist/src/cli.js, run `npx tsc -p .` first; it opens no GPU): stats as one JSON
// object with the fixture's numbers, the IR in text, JSON and dot, per-pass dumps that parse back and match the
// golden IR of test/golden/passes, pass subsets, and bad input as one `weft: ` line with nothing written.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runWeft, succeeded, type Result } from './weft-process.js';
import { parseGraph, parseModule } from '../src/ir/parse.js';
import { printGraph } from '../src/ir/print.js';
import { verifyGraph } from '../src/ir/verify.js';
import { pipeline } from '../src/passes/pipeline.js';

const fixtures = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
const stories = join(fixtures, 'stories260K.bin');
const golden = new URL('./golden/', import.meta.url).pathname;

// stories260K: dim 64, hidden 172, 5 layers, 8 heads of 8, 4 kv heads, vocabulary 512, context 512
const S = { dim: 64, hidden: 172, layers: 5, heads: 8, headSize: 8, kvDim: 32, vocab: 512, context: 512 };

const tmp = mkdtempSync(join(tmpdir(), 'weft-compile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const weft = (...args: string[]): Result => runWeft(args, 60_000);

interface Stats {
  graph: string;
  layers: number;
  env: Record<string, number>;
  dispatches: number;
  dispatchesPerLayer: number[];
  dispatchesOutsideLayers: number;
  barriers: { reason: string; producers: string[]; consumers: string[]; buffers: string[]; unfused: string }[];
  kernels: {
    name: string;
    kind: string;
    dispatches: string[];
    internalBarriers: string[];
    barrier?: number;
    flops: number;
    bytes: number;
    bytesRead: number;
    bytesWritten: number;
  }[];
  flops: number;
  bytes: number;
  peakActivationBytes: number;
  peakActivationBytesUnplanned: number;
}

function stats(...args: string[]): Stats {
  const r = succeeded(weft('compile', stories, '--json', ...args));
  expect(r.stdout.trim().split('\n')).toHaveLength(1);
  return JSON.parse(r.stdout) as Stats;
}

/** causal score entries of one head: row r of T sees keys 0..P+r */
const causal = (T: number, P: number): number => T * P + (T * (T + 1)) / 2;

describe('weft compile --stats --json', () => {
  // outside layers: the embedding, the logits, in prefill the row taken for them (L = 1, as generation asks), and in
  // decode the greedy token (argmax); prefill's slots at T = 512: [T, 172] of the FFN and two [T, 64] rows
  it.each([
    ['prefill', { T: S.context, P: 0, L: 1 }, 5, 3, 614_400, 4_516_096],
    // decode: split-K scratch of 8 heads × 2 splits × (max, sum, 8 outputs) × 4 B per layer, 3,200 B in all,
    // plus 2,560 B of slots (two [1, 64] rows and the [1, 512] logits; the token shares a slot) planned,
    // 10,868 B of values unplanned
    ['decode', { P: S.context - 1 }, 6, 3, 5_760, 14_068],
  ] as const)('%s: dispatches, barriers, FLOPs, bytes and activation memory', (graph, env, perLayer, outside, planned, unplanned) => {
    const s = stats('--graph', graph);
    expect(Object.keys(s)).toEqual(
      expect.arrayContaining(['graph', 'layers', 'dispatches', 'barriers', 'kernels', 'peakActivationBytes', 'peakActivationBytesUnplanned', 'env']),
    );
    expect(s.graph).toBe(graph);
    expect(s.layers).toBe(S.layers);
    expect(s.env).toEqual(env);
    expect(s.dispatches).toBe(perLayer * S.layers + outside);
    expect(s.dispatchesPerLayer).toEqual(Array(S.layers).fill(perLayer));
    expect(s.dispatchesOutsideLayers).toBe(outside);
    expect(s.kernels.flatMap((k) => k.dispatches)).toHaveLength(s.dispatches);
    // a barrier between every two kernels; decode's split-K attention is one kernel of two dispatches
    expect(s.kernels).toHaveLength(5 * S.layers + outside);
    expect(s.barriers).toHaveLength(s.kernels.length - 1);
    for (const b of s.barriers) {
      expect(b.reason).not.toBe('');
      expect(b.unfused).not.toBe('');
      expect(b.producers).toHaveLength(1);
      expect(b.consumers).toHaveLength(1);
      for (const buffer of b.buffers) expect(buffer).toMatch(/^[@%]/);
    }
    for (const k of s.kernels) {
      const barrier = k.barrier === undefined ? [] : ['barrier'];
      expect(Object.keys(k)).toEqual(['name', 'kind', 'dispatches', 'internalBarriers', ...barrier, 'flops', 'bytes', 'bytesRead', 'bytesWritten']);
      expect(Number.isInteger(k.flops) && Number.isInteger(k.bytes) && k.bytes > 0).toBe(true);
      expect(k.bytesRead + k.bytesWritten).toBe(k.bytes);
      // every kernel but the first follows a barrier: its consumer
      if (k !== s.kernels[0]) expect(s.barriers[k.barrier!]!.consumers).toEqual([k.name]);
    }
    expect(s.flops).toBe(s.kernels.reduce((sum, k) => sum + k.flops, 0));
    expect(s.bytes).toBe(s.kernels.reduce((sum, k) => sum + k.bytes, 0));
    expect(s.peakActivationBytes).toBe(planned);
    expect(s.peakActivationBytesUnplanned).toBe(unplanned);

    const T = 'T' in env ? env.T : 1;
    const kernel = (name: string) => s.kernels.find((k) => k.name === name)!;
    // attention: two products of 2·headSize per causal score, ~5 per score for the softmax
    expect(kernel('l0.mixed')).toMatchObject({ kind: 'attention(causal)', flops: S.heads * causal(T, env.P) * (4 * S.headSize + 5) });
    expect(kernel('l0.mixed').dispatches).toHaveLength(graph === 'decode' ? 2 : 1);
    expect(kernel('l0.mixed').internalBarriers).toEqual(graph === 'decode' ? [expect.stringMatching(/^split-K: /)] : []);
    // the final RMSNorm (4 per element) and the classifier matmul, over the rows whose logits are returned
    const L = 'L' in env ? env.L : 1;
    expect(kernel('logits').flops).toBe(4 * L * S.dim + 2 * L * S.vocab * S.dim);
    // norm, stacked Q/K/V matmul, RoPE on q and k; bytes: x, weights, norm weight, T rows of the RoPE tables,
    // q out, T rows written into each cache
    expect(kernel('l0.q_k_v').flops).toBe(4 * T * S.dim + 2 * T * (S.dim + 2 * S.kvDim) * S.dim + 3 * T * (S.dim + S.kvDim));
    expect(kernel('l0.q_k_v').bytes).toBe(4 * (T * S.dim + (S.dim + 2 * S.kvDim) * S.dim + S.dim + T * S.headSize + T * S.dim + 2 * T * S.kvDim));
    // the embedding: T rows of the table, the ids, x
    expect(kernel('x')).toMatchObject({ flops: 0, bytes: 4 * (T * S.dim + T + T * S.dim) });
  });

  it('--json alone prints the same stats as --stats --json', () => {
    expect(succeeded(weft('compile', stories, '--graph', 'decode', '--json')).stdout).toBe(
      succeeded(weft('compile', stories, '--graph', 'decode', '--stats', '--json')).stdout,
    );
  });

  it('--stats prints a summary for a reader', () => {
    const out = succeeded(weft('compile', stories, '--graph', 'decode', '--stats')).stdout;
    expect(out).toMatch(/^graph decode: 5 layers, sizes at P=511\n/);
    expect(out).toContain('dispatches: 33 per run (6 per layer × 5, 3 outside layers)\n');
    expect(out).toContain('barriers: 27\n');
    expect(out).toMatch(/^ {5}reason: cross-token: attn_scores/m);
    expect(out).toMatch(/^ {2}l0\.mixed +attention\(causal\) +2 +151,552 /m);
    expect(out).toMatch(/^activations: 5\.6 KiB \(5,760 B\) planned, 13\.7 KiB \(14,068 B\) unplanned\n$/m);
  });
});

describe('weft compile: the IR', () => {
  it('prints the final graph as text, as the pipeline test has it', () => {
    for (const graph of ['prefill', 'decode']) {
      const out = succeeded(weft('compile', stories, '--graph', graph)).stdout;
      expect(out).toBe(readFileSync(join(golden, 'passes/007_plan-buffers', `stories260K.${graph}.ir`), 'utf8'));
      const g = parseGraph(out);
      verifyGraph(g);
      expect(printGraph(g)).toBe(out);
    }
  });

  it('prints JSON and dot', () => {
    const json = JSON.parse(succeeded(weft('compile', stories, '--graph', 'decode', '--format', 'json')).stdout);
    expect(json.name).toBe('decode');
    expect(json.schedule.filter((i: { item: string }) => i.item === 'kernel')).toHaveLength(28);
    expect(json.schedule.filter((i: { item: string }) => i.item === 'barrier')).toHaveLength(27);
    expect(Object.keys(json.slots).length).toBeGreaterThan(0);
    const dot = succeeded(weft('compile', stories, '--graph', 'prefill', '--format', 'dot')).stdout;
    expect(dot).toMatch(/^digraph "prefill" \{\n[^]*\n\}\n$/);
    expect(dot.match(/subgraph "cluster_/g)).toHaveLength(28);
    expect(dot).toContain('"barrier 25"');
  });

  it('--passes none (or empty) compiles the graph as written: one kernel per node, no barriers', () => {
    const none = stats('--graph', 'decode', '--passes', 'none');
    expect(stats('--graph', 'decode', '--passes', '')).toEqual(none);
    expect(none.dispatches).toBe(20 * S.layers + 4);
    expect(none.barriers).toEqual([]);
    expect(none.peakActivationBytes).toBe(none.peakActivationBytesUnplanned);
    const text = succeeded(weft('compile', stories, '--graph', 'decode', '--passes', 'none')).stdout;
    expect(text).toBe(readFileSync(join(golden, 'stories260K.decode.ir'), 'utf8'));
  });

  it('--passes runs a subset in the order given', () => {
    const full = stats('--graph', 'decode');
    const subset = stats('--graph', 'decode', '--passes', 'stack-weights,insert-barriers');
    // stacking turns 5 matmuls into 2 plus 5 slices per layer, each slice its own kernel until fused
    expect(subset.dispatches).toBe(22 * S.layers + 4);
    expect(subset.dispatches).toBeGreaterThan(full.dispatches);
    expect(subset.barriers.length).toBeGreaterThan(full.barriers.length);
    expect(subset.flops).toBe(full.flops);
    // fusion after buffer planning drops the plan
    const late = stats('--graph', 'decode', '--passes', 'stack-weights,plan-buffers,fuse-linear,fuse-attention');
    expect(late.dispatches).toBe(full.dispatches);
    expect(late.peakActivationBytes).toBe(late.peakActivationBytesUnplanned);
  });
});

describe('weft compile --dump-after', () => {
  it('all, into --dump-dir: the input and the graph after every pass, each parsing back', () => {
    const dir = join(tmp, 'all');
    const r = succeeded(weft('compile', stories, '--graph', 'decode', '--dump-after', 'all', '--dump-dir', dir));
    const names = ['000_input', ...pipeline.map((p, i) => `00${i + 1}_${p.name}`)];
    expect(r.stdout.split('\n')).toEqual([`decode: 7 passes, 33 dispatches; wrote ${names.map((n) => `${n}.ir`).join(', ')} to ${dir}`, '']);
    expect(readdirSync(dir).sort()).toEqual(names.map((n) => `${n}.ir`));
    for (const name of names) {
      const text = readFileSync(join(dir, `${name}.ir`), 'utf8');
      const g = parseGraph(text, name);
      verifyGraph(g);
      expect(printGraph(g)).toBe(text);
      const expected = name === '000_input' ? join(golden, 'stories260K.decode.ir') : join(golden, 'passes', name, 'stories260K.decode.ir');
      expect(text, name).toBe(readFileSync(expected, 'utf8'));
    }
  });

  it('one pass, in JSON, beside --stats', () => {
    const dir = join(tmp, 'one');
    const r = succeeded(
      weft(
        'compile',
        stories,
        '--graph',
        'prefill',
        '--passes',
        'stack-weights,insert-barriers',
        '--dump-after',
        'insert-barriers',
        '--dump-dir',
        dir,
        '--format',
        'json',
        '--stats',
        '--json',
      ),
    );
    expect(JSON.parse(r.stdout).dispatches).toBe(22 * S.layers + 4);
    expect(r.stderr).toBe(`prefill: 2 passes, 114 dispatches; wrote 002_insert-barriers.json to ${dir}\n`);
    expect(readdirSync(dir)).toEqual(['002_insert-barriers.json']);
    expect(JSON.parse(readFileSync(join(dir, '002_insert-barriers.json'), 'utf8')).name).toBe('prefill');
  });

  it('to stdout: each dump after a comment naming it, then the final graph', () => {
    const out = succeeded(weft('compile', stories, '--graph', 'decode', '--dump-after', 'fuse-linear')).stdout;
    expect(out.match(/^# .*$/gm)).toEqual(['# 004_fuse-linear', '# final']);
    const [dumped, final] = parseModule(out);
    expect(printGraph(dumped!)).toBe(readFileSync(join(golden, 'passes/004_fuse-linear/stories260K.decode.ir'), 'utf8'));
    expect(printGraph(final!)).toBe(readFileSync(join(golden, 'passes/007_plan-buffers/stories260K.decode.ir'), 'utf8'));
    const json = JSON.parse(succeeded(weft('compile', stories, '--graph', 'decode', '--dump-after', 'all', '--passes', 'none', '--format', 'json')).stdout);
    expect(json.dumps.map((d: { name: string }) => d.name)).toEqual(['000_input']);
    expect(json.graph.name).toBe('decode');
  });
});

describe('weft compile: bad input', () => {
  const truncated = join(tmp, 'cut.bin');
  const checkpoint = readFileSync(stories);
  writeFileSync(truncated, checkpoint.subarray(0, checkpoint.length - 100));
  const aFile = join(tmp, 'a-file');
  writeFileSync(aFile, '');
  const dumps = join(tmp, 'never');
  const dump = ['--dump-after', 'all', '--dump-dir', dumps];

  it.each<[string, string[], RegExp]>([
    [
      'an unknown pass',
      ['--graph', 'decode', '--passes', 'stack-weights,bogus', ...dump],
      /unknown pass 'bogus' \(passes: stack-weights, split-norms, insert-barriers, fuse-linear, fuse-attention, fuse-elementwise, plan-buffers\)/,
    ],
    [
      '--dump-after a pass not in --passes',
      ['--graph', 'decode', '--passes', 'stack-weights', '--dump-after', 'fuse-linear'],
      /--dump-after fuse-linear: not among the passes run \(stack-weights\)/,
    ],
    ['--dump-after an unknown pass', ['--graph', 'decode', '--dump-after', 'bogus'], /unknown pass 'bogus'/],
    ['an unknown format', ['--graph', 'decode', '--format', 'yaml', ...dump], /format.*yaml/],
    ['an unknown graph', ['--graph', 'nope'], /graph.*nope/],
    ['--stats of two graphs', ['--stats'], /--stats takes one graph: give --graph \(prefill or decode; both: side by side\)/],
    ['--dump-after of two graphs', ['--dump-after', 'all'], /--dump-after takes one graph/],
    ['--graph both with --format', ['--graph', 'both', '--format', 'wgsl'], /--graph both prints the two schedules side by side/],
    ['--dump-dir without --dump-after', ['--graph', 'decode', '--dump-dir', dumps], /dump-dir -> dump-after/],
    ['--dump-after to stdout with --stats', ['--graph', 'decode', '--dump-after', 'all', '--stats'], /--dump-after with --stats needs --dump-dir/],
    ['a --dump-dir that is a file', ['--graph', 'decode', '--dump-after', 'all', '--dump-dir', aFile], /--dump-dir .*a-file: is a file, not a folder/],
  ])('%s', (_, args, message) => {
    const r = weft('compile', stories, ...args);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^weft: [^\n]+\n$/);
    expect(r.stderr).toMatch(message);
    expect(existsSync(dumps)).toBe(false);
  });

  it.each([
    ['a truncated checkpoint', truncated, /cut\.bin: truncated/],
    ['a missing checkpoint', join(tmp, 'missing.bin'), /cannot read checkpoint .*missing\.bin: ENOENT/],
  ])('%s', (_, model, message) => {
    const r = weft('compile', model, '--graph', 'prefill', ...dump);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^weft: [^\n]+\n$/);
    expect(r.stderr).toMatch(message);
    expect(existsSync(dumps)).toBe(false);
  });
});
