// The compiler as a tool, from the built CLI (dist/src/cli.js, run `npx tsc -p .` first): `weft compile` takes back
// the IR text it prints and finishes compiling it, prints the WGSL of every kernel (each one Dawn compiles), and the
// prefill and decode schedules side by side; `weft run --ir` runs a graph pair read from IR text. Outputs are compared
// with each other and with what the compiler's own functions give, never with IR text written here.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWeft, succeeded, type Result } from './weft-process.js';
import * as A from '../src/affine.js';
import { buildGraphs, compileOptions, optimizeGraphs, readCheckpoint } from '../src/api.js';
import { compileGraph } from '../src/codegen/compile.js';
import { printWgsl } from '../src/codegen/listing.js';
import type { GraphStats } from '../src/codegen/stats.js';
import { parseModule } from '../src/ir/parse.js';
import { printBarrier, printGraph, printModule, printNode } from '../src/ir/print.js';
import type { Graph } from '../src/ir/types.js';
import { webgpuDefaultLimits } from '../src/memory-plan.js';
import { pipeline } from '../src/passes/pipeline.js';
import { runPipeline } from '../src/passes/run-pipeline.js';
import { openGpu } from '../src/runtime/gpu.js';

const fixtures = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
const stories = join(fixtures, 'stories260K.bin');
const aidreams = join(fixtures, 'aidreams260K.bin');
const tokenizer = join(fixtures, 'tok512-aidreams.bin');

const tmp = mkdtempSync(join(tmpdir(), 'weft-compile-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const weft = (...args: string[]): Result => runWeft(args, 120_000);

/** The stdout of a command that must succeed. */
const printed = (r: Result): string => succeeded(r).stdout;

/** The one-line error of a command that must fail, without its `weft: `. */
function failed(r: Result): string {
  expect(r.status).not.toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/^weft: [^\n]+\n$/);
  return r.stderr.slice('weft: '.length, -1);
}

function file(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

/** The passes after stack-weights, in pipeline order. */
const afterStacking = pipeline.slice(1).map((p) => p.name);

describe('weft compile FILE.ir', () => {
  it.each([
    ['stories260K', stories],
    ['aidreams260K', aidreams],
    ['synthetic 1B', '1B'],
  ])('%s: the graphs after stack-weights, compiled by the passes after it, print as the model compiled whole', (name, model) => {
    const whole = printed(weft('compile', model));
    expect(parseModule(whole).map((g) => g.name)).toEqual(['prefill', 'decode']);
    const stacked = file(`${name}.stacked.ir`, printed(weft('compile', model, '--passes', 'stack-weights')));
    expect(printed(weft('compile', stacked, '--passes', afterStacking.join(',')))).toBe(whole);
    // the whole pipeline finds nothing left to do in what stack-weights did
    expect(printed(weft('compile', stacked))).toBe(whole);
  });

  it('a dump written by --dump-after --dump-dir compiles to the graph the model compiles to', () => {
    for (const graph of ['prefill', 'decode']) {
      const dir = join(tmp, `dumps-${graph}`);
      printed(weft('compile', stories, '--graph', graph, '--dump-after', 'stack-weights', '--dump-dir', dir));
      const dump = join(dir, '001_stack-weights.ir');
      expect(printed(weft('compile', dump, '--passes', afterStacking.join(',')))).toBe(printed(weft('compile', stories, '--graph', graph)));
    }
  });

  it('the whole pipeline over the graphs after any of its passes gives the final graphs', () => {
    const { config } = readCheckpoint(stories);
    const graphs = buildGraphs(config);
    for (const g of [graphs.prefill, graphs.decode]) {
      const final = printGraph(runPipeline(g, pipeline));
      for (let done = 0; done <= pipeline.length; done++) {
        const stage = parseModule(printGraph(runPipeline(g, pipeline.slice(0, done))))[0]!;
        expect(printGraph(runPipeline(stage, pipeline)), `${g.name} after ${done} passes`).toBe(final);
      }
    }
  });

  it('takes the flags that set the pass context: --weights and --max-storage-buffers', () => {
    const context = ['--weights', 'q8_0', '--max-storage-buffers', '4'];
    const whole = printed(weft('compile', stories, ...context));
    expect(whole).not.toBe(printed(weft('compile', stories))); // four buffers leave kernels unfused
    const stacked = file('stacked-q8.ir', printed(weft('compile', stories, '--passes', 'stack-weights', ...context)));
    expect(printed(weft('compile', stacked, '--passes', afterStacking.join(','), ...context))).toBe(whole);
    for (const view of [
      ['--format', 'wgsl'],
      ['--graph', 'both'],
    ]) {
      expect(printed(weft('compile', stacked, ...context, ...view))).toBe(printed(weft('compile', stories, ...context, ...view)));
    }
  });

  it('--graph picks a graph of the file, and its stats are the model graph stats', () => {
    const both = file('both.ir', printed(weft('compile', stories)));
    expect(printed(weft('compile', both, '--graph', 'decode'))).toBe(printed(weft('compile', stories, '--graph', 'decode')));
    const decode = file('decode.ir', printed(weft('compile', stories, '--graph', 'decode')));
    expect(printed(weft('compile', decode, '--json'))).toBe(printed(weft('compile', stories, '--graph', 'decode', '--json')));
  });

  describe('bad input: one line naming the file', () => {
    const whole = (): string => printed(weft('compile', stories));

    it('malformed text: the file and the line', () => {
      const [prefill] = parseModule(whole());
      const lines = printGraph(prefill!).split('\n');
      lines.splice(3, 0, '  this is not IR');
      const path = file('malformed.ir', lines.join('\n'));
      expect(failed(weft('compile', path))).toMatch(new RegExp(`^${path}:4: expected a declaration, a node, a kernel`));
    });

    it('a graph the verifier rejects: the file and the graph', () => {
      const [prefill, decode] = parseModule(whole()) as [Graph, Graph];
      const broken: Graph = { ...decode, outputs: [...decode.outputs, decode.outputs[0]!] };
      const path = file('unverified.ir', printModule([prefill, broken]));
      expect(failed(weft('compile', path))).toBe(`${path}: graph decode: output %${decode.outputs[0]} is listed twice`);
    });

    it('the output of --dump-after: a graph given twice', () => {
      const path = file('dump-and-final.ir', printed(weft('compile', stories, '--graph', 'decode', '--dump-after', 'stack-weights')));
      expect(failed(weft('compile', path))).toMatch(new RegExp(`^${path}: holds two graphs named decode; .*--dump-dir writes them to files of their own`));
    });

    it('a graph the file does not hold, no graph, no file', () => {
      const decode = file('only-decode.ir', printed(weft('compile', stories, '--graph', 'decode')));
      expect(failed(weft('compile', decode, '--graph', 'prefill'))).toBe(`${decode}: holds no graph named prefill (its graphs: decode)`);
      expect(failed(weft('compile', file('empty.ir', '# nothing\n')))).toMatch(/empty\.ir: holds no graph$/);
      expect(failed(weft('compile', join(tmp, 'missing.ir')))).toMatch(/^cannot read IR file .*missing\.ir: ENOENT$/);
    });
  });
});

describe('weft compile --format wgsl', () => {
  // the plans weft compile makes: WebGPU's default limits, the checkpoint's formats
  const { config, tensors } = readCheckpoint(stories);
  const { context, codegen } = compileOptions({ limits: webgpuDefaultLimits, fallback: false, subgroups: false }, {}, tensors);
  const graphs = optimizeGraphs(config, pipeline, context);
  const compiled = [graphs.prefill, graphs.decode].map((graph) => ({ graph, plan: compileGraph(graph, codegen) }));

  it('prints each plan kernel after a header: the schedule kernel, its IR nodes, workgroups, the barrier before it', () => {
    const out = printed(weft('compile', stories, '--format', 'wgsl'));
    expect(out).toBe(compiled.map(({ graph, plan }) => printWgsl(graph, plan)).join('\n'));
    const { graph, plan } = compiled[1]!;
    const listing = printWgsl(graph, plan);
    const mixed = plan.kernels.filter((k) => k.scheduleKernel === 'l0.mixed');
    expect(mixed.map((k) => k.name)).toEqual(['l0.mixed.partial', 'l0.mixed.combine']);
    const nodes = graph.schedule!.flatMap((item) => (item.item === 'kernel' && item.name === 'l0.mixed' ? item.members : []));
    const at = graph.schedule!.findIndex((item) => item.item === 'kernel' && item.name === 'l0.mixed');
    const barrier = graph.schedule![at - 1]!;
    if (barrier.item !== 'barrier') throw new Error('a barrier comes before l0.mixed');
    const header = (k: (typeof mixed)[number]): string[] => {
      const start = listing.indexOf(`// kernel ${k.name} `);
      return listing.slice(start, listing.indexOf(k.wgsl.trimEnd(), start)).trimEnd().split('\n');
    };
    const computes = nodes.map(
      (m) =>
        `//   ${printNode(
          graph.nodes.find((n) => n.name === m)!,
          graph.slots?.[m],
        )}`,
    );
    expect(header(mixed[0]!)).toEqual([
      '// kernel l0.mixed.partial (attention), emitted for l0.mixed: attention(causal), which computes:',
      ...computes,
      expect.stringMatching(/^\/\/ workgroups: \S.* × .+ × .+$/),
      `// after ${printBarrier(graph, barrier)}`,
    ]);
    expect(header(mixed[1]!)).toEqual([
      '// kernel l0.mixed.combine (attention), emitted for l0.mixed: attention(causal), which computes:',
      ...computes,
      expect.stringMatching(/^\/\/ workgroups: /),
      `// after the dispatch before it: ${mixed[1]!.after}`,
    ]);
    // a prefill matmul runs a row of tiles per 64 tokens
    expect(printWgsl(compiled[0]!.graph, compiled[0]!.plan)).toMatch(/^\/\/ workgroups: 1 × ceil\(T \/ 64\) × 1$/m);
  });

  it('every kernel of the prefill and decode plans compiles on Dawn without errors', async () => {
    const gpu = await openGpu();
    try {
      for (const { plan } of compiled) {
        expect(plan.kernels.length).toBeGreaterThan(0);
        for (const k of plan.kernels) {
          const info = await gpu.device.createShaderModule({ code: k.wgsl, label: k.name }).getCompilationInfo();
          const errors = info.messages.filter((m) => m.type === 'error').map((m) => `${k.name}:${m.lineNum}: ${m.message}`);
          expect(errors, `${plan.graph} ${k.name}`).toEqual([]);
        }
      }
      gpu.check();
    } finally {
      gpu.destroy();
    }
  });

  it('--matmul int8: prefill matmuls whose K is whole blocks of 32 quantize x once, then run int8 tiles over Q8_0 (the rest float32 tiles); decode is unchanged', () => {
    const int8 = compileOptions({ limits: webgpuDefaultLimits, fallback: false, subgroups: false }, { matmul: 'int8' }, tensors);
    const prefill = compileGraph(graphs.prefill, int8.codegen);
    const linear = prefill.kernels.filter((k) => k.op === 'linear');
    const variants = linear.filter((k) => !k.name.endsWith('.quantize')).map((k) => `${k.name}: ${k.variant}`);
    // stories260K: dim 64, hidden 172; down's K (172) is no whole number of blocks
    for (const v of variants) expect(v).toMatch(/\.down: tiled$|: tiled-int8$/);
    const tiles = variants.filter((v) => v.endsWith('tiled-int8')).map((v) => v.split(':')[0]!);
    expect(tiles.length).toBe(3 * config.nLayers + 1);
    // each int8 tile right after the dispatch that quantizes its x
    for (const tile of tiles) {
      const at = prefill.kernels.findIndex((k) => k.name === tile);
      expect(prefill.kernels[at - 1]!.name).toBe(`${tile}.quantize`);
    }
    expect(linear.filter((k) => k.name.endsWith('.quantize')).length).toBe(tiles.length);
    expect(printed(weft('compile', stories, '--graph', 'prefill', '--format', 'wgsl', '--matmul', 'int8'))).toBe(printWgsl(graphs.prefill, prefill));
    expect(compileGraph(graphs.decode, int8.codegen).kernels.map((k) => k.variant)).toEqual(compiled[1]!.plan.kernels.map((k) => k.variant));
    const bad = weft('compile', stories, '--matmul', 'int4');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/matmul.*int4/);
  });

  it('--dump-after writes the WGSL each stage compiles to', () => {
    const dir = join(tmp, 'wgsl-dumps');
    printed(weft('compile', stories, '--graph', 'decode', '--format', 'wgsl', '--dump-after', 'fuse-linear', '--dump-dir', dir));
    const dump = readFileSync(join(dir, '004_fuse-linear.wgsl'), 'utf8');
    expect(dump).toMatch(/^\/\/ graph decode: \d+ dispatches\n/);
    expect(dump).not.toBe(printWgsl(compiled[1]!.graph, compiled[1]!.plan));
  });
});

describe('weft compile --graph both', () => {
  const stats = (graph: string): GraphStats => JSON.parse(printed(weft('compile', stories, '--graph', graph, '--json'))) as GraphStats;
  let prefill: GraphStats;
  let decode: GraphStats;
  beforeAll(() => {
    prefill = stats('prefill');
    decode = stats('decode');
  });

  it('--json: the stats of both graphs', () => {
    expect(JSON.parse(printed(weft('compile', stories, '--graph', 'both', '--json')))).toEqual({ prefill, decode });
  });

  it('prints the schedules side by side, one row per kernel name, each barrier above the kernel after it', () => {
    const out = printed(weft('compile', stories, '--graph', 'both'));
    const lines = out.trimEnd().split('\n');
    expect(lines.slice(0, 2)).toEqual([
      `prefill: sizes at T=512, P=0, L=1; ${prefill.dispatches} dispatches, ${prefill.barriers.length} barriers`,
      `decode: sizes at P=511; ${decode.dispatches} dispatches, ${decode.barriers.length} barriers`,
    ]);
    const n = (x: number): string => x.toLocaleString('en-US');
    const cells = (k: GraphStats['kernels'][number] | undefined): string[] =>
      k ? [k.kind, String(k.dispatches.length), n(k.bytesRead), n(k.bytesWritten)] : [];
    const rows = lines.slice(4, -1).filter((l) => !l.startsWith('    barrier'));
    const names = rows.map((r) => r.split('|')[0]!.trim());
    // decode's kernels are prefill's and the greedy token after the logits, less the rows prefill takes for them
    expect(names.filter((name) => name !== 'picked')).toEqual(decode.kernels.map((k) => k.name));
    expect(names.filter((name) => !prefill.kernels.some((k) => k.name === name))).toEqual(['next']);
    expect(names.filter((name) => !decode.kernels.some((k) => k.name === name))).toEqual(['picked']);
    rows.forEach((row, i) => {
      const [left, right] = row
        .split('|')
        .slice(1)
        .map((side) =>
          side
            .trim()
            .split(/\s{2,}/)
            .filter(Boolean),
        );
      expect(left, names[i]).toEqual(cells(prefill.kernels.find((k) => k.name === names[i])));
      expect(right, names[i]).toEqual(cells(decode.kernels.find((k) => k.name === names[i])));
    });
    // a barrier both graphs have with one reason is one line; the one before next is decode's alone
    const reasons = (s: GraphStats, name: string): string | undefined => {
      const k = s.kernels.find((x) => x.name === name);
      return k?.barrier === undefined ? undefined : s.barriers[k.barrier]!.reason;
    };
    const barrierLines = (name: string): string[] => {
      const at = lines.findIndex((l) => l.startsWith(`  ${name} `));
      let from = at;
      while (lines[from - 1]!.startsWith('    barrier')) from--;
      return lines.slice(from, at);
    };
    expect(reasons(prefill, 'l0.mixed')).toBe(reasons(decode, 'l0.mixed'));
    expect(barrierLines('l0.mixed')).toEqual([`    barrier: ${reasons(decode, 'l0.mixed')}`]);
    expect(barrierLines('next')).toEqual([`    barrier in decode: ${reasons(decode, 'next')}`]);
    expect(barrierLines('x')).toEqual([]);
    expect(
      lines
        .at(-1)!
        .split('|')
        .map((s) => s.trim().split(/\s+/)),
    ).toEqual([
      ['total'],
      [String(prefill.dispatches), n(sum(prefill, 'bytesRead')), n(sum(prefill, 'bytesWritten'))],
      [String(decode.dispatches), n(sum(decode, 'bytesRead')), n(sum(decode, 'bytesWritten'))],
    ]);
  });
});

function sum(s: GraphStats, field: 'bytesRead' | 'bytesWritten'): number {
  return s.kernels.reduce((total, k) => total + k[field], 0);
}

describe('weft run --ir', () => {
  const prompt = ['--tokenizer', tokenizer, '--prompt', 'I dream of a quiet city', '--temperature', '0', '--steps', '24'];
  const expected = (): string => printed(weft('run', aidreams, ...prompt));

  it('runs the graphs weft compile prints, as compiled or as written before any pass, with the text of the normal run', () => {
    const text = expected();
    expect(text.length).toBeGreaterThan(30);
    const compiled = file('aidreams.ir', printed(weft('compile', aidreams)));
    expect(printed(weft('run', aidreams, '--ir', compiled, ...prompt))).toBe(text);
    // graphs without a schedule run as written: one kernel per node
    const unscheduled = file('aidreams-none.ir', printed(weft('compile', aidreams, '--passes', 'none')));
    expect(printed(weft('run', aidreams, '--ir', unscheduled, ...prompt))).toBe(text);
  });

  it('refuses graphs that do not fit the checkpoint, naming the declaration, before opening the GPU', () => {
    const graphs = parseModule(printed(weft('compile', aidreams)));
    const edited = (name: string, edit: (g: Graph) => Graph): string => file(name, printModule(graphs.map(edit)));
    const table = edited('short-table.ir', (g) => ({
      ...g,
      decls: g.decls.map((d) => (d.name === 'tok_embeddings' ? { ...d, type: { ...d.type, shape: [A.constant(256), d.type.shape[1]!] } } : d)),
    }));
    expect(failed(weft('run', aidreams, '--ir', table, ...prompt))).toBe(
      `${table}: graph prefill: weight %tok_embeddings is f32[256, 64]; the checkpoint's tok_embeddings is f32[512, 64]`,
    );
    const renamed = edited('renamed.ir', (g) => ({ ...g, decls: g.decls.map((d) => (d.name === 'layers.0.w2' ? { ...d, from: ['layers.0.w9'] } : d)) }));
    expect(failed(weft('run', aidreams, '--ir', renamed, ...prompt))).toBe(
      `${renamed}: graph prefill: weight %layers.0.w2 is built from layers.0.w9, which the checkpoint does not hold`,
    );
    const state = graphs[1]!.decls.find((d) => d.kind === 'state')!;
    const cache = edited('short-cache.ir', (g) => ({
      ...g,
      decls: g.decls.map((d) => (d.name === state.name ? { ...d, type: { ...d.type, shape: [A.constant(64), d.type.shape[1]!] } } : d)),
    }));
    expect(failed(weft('run', aidreams, '--ir', cache, ...prompt))).toBe(
      `${cache}: graph prefill: state %${state.name} is f32[64, 64]; the model's is f32[128, 64]`,
    );
    const prefillOnly = file('prefill-only.ir', printGraph(graphs[0]!));
    expect(failed(weft('run', aidreams, '--ir', prefillOnly, ...prompt))).toBe(`${prefillOnly}: holds no graph named decode (its graphs: prefill)`);
  });
});
