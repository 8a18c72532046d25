// The pass pipeline on the llama2.c fixture models: every intermediate graph verifies; the final schedule
// dispatches the expected kernels; every barrier explains itself and guards a real hazard (removing any one
// fails verification, adding one where nothing needs it too); buffer planning saves memory; the text round-trips;
// and the IR after each pass matches test/golden/passes/ (accept an intended change with -u and review the diff).
import { describe, expect, it } from 'vitest';
import { buildGraphs, readCheckpoint } from '../src/api.js';
import { compileGraph } from '../src/codegen/compile.js';
import { fullContextEnv, graphStats } from '../src/codegen/stats.js';
import { parseGraph } from '../src/ir/parse.js';
import { printGraph } from '../src/ir/print.js';
import { kernelAccess, verifySchedule, type KernelAccess } from '../src/ir/schedule.js';
import type { BarrierItem, Graph, KernelItem, ScheduleItem } from '../src/ir/types.js';
import { verifyGraph } from '../src/ir/verify.js';
import { passesByName, pipeline } from '../src/passes/pipeline.js';
import { runPipeline } from '../src/passes/run-pipeline.js';

const dir = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
const kinds = ['prefill', 'decode'] as const;

/** Every graph runPipeline hands out, in order, with the dump name `weft compile --dump-dir` gives it. */
function compileSteps(graph: Graph, passes = pipeline): { name: string; graph: Graph }[] {
  const steps: { name: string; graph: Graph }[] = [];
  runPipeline(graph, passes, undefined, (p, g) => steps.push({ name: `${String(steps.length + 1).padStart(3, '0')}_${p.name}`, graph: g }));
  return steps;
}

const isKernel = (item: ScheduleItem): item is KernelItem => item.item === 'kernel';
const barrierPositions = (g: Graph): number[] => g.schedule!.flatMap((item, i) => (item.item === 'barrier' ? [i] : []));

/** Buffers on which `later` depends on `earlier`: read-after-write, write-after-read, write-after-write. */
function hazards(earlier: KernelAccess, later: KernelAccess): Set<string> {
  const on = (a: ReadonlySet<string>, b: ReadonlySet<string>): string[] => [...a].filter((x) => b.has(x));
  return new Set([...on(later.reads, earlier.writes), ...on(later.writes, earlier.reads), ...on(later.writes, earlier.writes)]);
}

for (const model of ['stories260K', 'aidreams260K']) {
  const { config } = readCheckpoint(`${dir}${model}.bin`);
  const graphs = buildGraphs(config);
  const layers = config.nLayers;

  for (const kind of kinds) {
    describe(`${model} ${kind}`, () => {
      const steps = compileSteps(graphs[kind]);
      const final = steps.at(-1)!.graph;

      it('verifies after every pass of the pipeline', () => {
        const seen: string[] = [];
        runPipeline(graphs[kind], pipeline, undefined, (p, g) => {
          seen.push(p.name);
          expect(() => verifyGraph(g), `after ${p.name}`).not.toThrow();
        });
        expect(seen).toEqual(pipeline.map((p) => p.name));
        expect(steps.map((s) => s.name)).toEqual(pipeline.map((p, i) => `00${i + 1}_${p.name}`));
      });

      // outside layers: the embedding and the logits, in prefill the rows whose logits it returns, in decode the greedy token
      const outside = 3;

      it('dispatches 5 kernels per layer + 3 (prefill: rows taken for the logits) or 6 per layer + 3 (decode: split-K attention, argmax)', () => {
        const plan = compileGraph(final);
        expect(plan.kernels.length).toBeLessThanOrEqual(6 * layers + 6);
        expect(plan.kernels.length).toBe((kind === 'prefill' ? 5 : 6) * layers + outside);
        const stats = graphStats(final, plan, { env: fullContextEnv(final, config.seqLen), layers });
        expect(stats.dispatchesPerLayer).toEqual(Array(layers).fill(kind === 'prefill' ? 5 : 6));
        expect(stats.dispatchesOutsideLayers).toBe(outside);
        // one barrier between every two kernels of the schedule (decode's partial and combine are one kernel)
        expect(stats.kernels).toHaveLength(5 * layers + outside);
        expect(stats.barriers).toHaveLength(5 * layers + outside - 1);
      });

      it('explains every barrier', () => {
        const barriers = final.schedule!.filter((i): i is BarrierItem => i.item === 'barrier');
        expect(barriers.length).toBeGreaterThan(0);
        for (const b of barriers) {
          expect(b.reason.trim()).not.toBe('');
          expect(b.unfused.trim()).not.toBe('');
          expect(b.producers.length * b.consumers.length * b.buffers.length).toBeGreaterThan(0);
        }
      });

      it('needs every barrier: without any one of them the schedule fails verification', () => {
        const positions = barrierPositions(final);
        expect(positions).toHaveLength(5 * layers + outside - 1);
        for (const at of positions) {
          const without = { ...final, schedule: final.schedule!.filter((_, i) => i !== at) };
          expect(() => verifySchedule(without), `without the barrier at ${at}`).toThrow(/with no barrier between them/);
        }
      });

      it('has a real hazard across every barrier, between the kernels just before and after it', () => {
        const access = kernelAccess(final);
        for (const at of barrierPositions(final)) {
          const [before, barrier, after] = final.schedule!.slice(at - 1, at + 2) as [KernelItem, BarrierItem, KernelItem];
          const found = hazards(access.get(before.name)!, access.get(after.name)!);
          expect(found.size, `${before.name} -> ${after.name}`).toBeGreaterThan(0);
          expect(barrier.producers).toEqual([before.name]);
          expect(barrier.consumers).toEqual([after.name]);
          for (const b of barrier.buffers) expect(found).toContain(b);
        }
      });

      it('plans buffers: fewer activation bytes, same kernels, still verified', () => {
        const env = fullContextEnv(final, config.seqLen);
        const unplanned = steps.at(-2)!.graph;
        expect(steps.at(-1)!.name).toMatch(/_plan-buffers$/);
        const before = graphStats(unplanned, compileGraph(unplanned), { env, layers });
        const after = graphStats(final, compileGraph(final), { env, layers });
        expect(before.peakActivationBytes).toBe(before.peakActivationBytesUnplanned);
        expect(after.peakActivationBytesUnplanned).toBe(before.peakActivationBytesUnplanned);
        expect(after.peakActivationBytes).toBeLessThan(after.peakActivationBytesUnplanned);
        expect(after.kernels.map((k) => k.name)).toEqual(before.kernels.map((k) => k.name));
        expect(Object.keys(final.slots ?? {}).length).toBeGreaterThan(0);
        expect(() => verifyGraph(final)).not.toThrow();
      });

      it('prints text that parses back and prints identically', () => {
        const text = printGraph(final);
        const reparsed = parseGraph(text, `${model}.${kind}.ir`);
        expect(() => verifyGraph(reparsed)).not.toThrow();
        expect(printGraph(reparsed)).toBe(text);
        expect(compileGraph(reparsed)).toEqual(compileGraph(final));
      });

      if (model === 'stories260K') {
        it.each(pipeline.map((p, i) => [`${String(i + 1).padStart(3, '0')}_${p.name}`, i] as const))('golden IR after %s', async (name, i) => {
          expect(steps[i]!.name).toBe(name);
          await expect(printGraph(steps[i]!.graph)).toMatchFileSnapshot(`golden/passes/${name}/${model}.${kind}.ir`);
        });
      }
    });
  }
}

describe('barriers that guard nothing', () => {
  it('are rejected between two independent kernels', () => {
    const g = parseGraph(`graph g(T) {
  input %x: f32[T, 4]
  kernel a: silu {
    %a = silu(%x) : f32[T, 4]  # token-parallel
  }
  barrier {reason="none", producers=[a], consumers=[b], buffers=[%x], unfused="none"}
  kernel b: silu {
    %b = silu(%x) : f32[T, 4]  # token-parallel
  }
  output %a
  output %b
}
`);
    expect(() => verifyGraph(g)).toThrow(/^graph g: barrier 0 \(between kernels a and b\) guards nothing: no hazard between kernels a and b$/);
    const { schedule } = runPipeline({ ...g, schedule: undefined }, passesByName(['insert-barriers']));
    expect(schedule!.map((i) => i.item)).toEqual(['kernel', 'kernel']);
  });

  it('are rejected wherever insert-barriers put none in a fixture graph', () => {
    const { config } = readCheckpoint(`${dir}stories260K.bin`);
    const g = runPipeline(buildGraphs(config).decode, passesByName(['stack-weights', 'insert-barriers']));
    const schedule = g.schedule!;
    const open = schedule.flatMap((item, i) => (i > 0 && isKernel(item) && isKernel(schedule[i - 1]!) ? [i] : []));
    expect(open.length).toBeGreaterThan(0);
    const extra: BarrierItem = { item: 'barrier', reason: 'extra', producers: [], consumers: [], buffers: [], unfused: 'extra' };
    for (const at of open) {
      const added = { ...g, schedule: [...schedule.slice(0, at), extra, ...schedule.slice(at)] };
      expect(() => verifySchedule(added), `a barrier before ${(schedule[at] as KernelItem).name}`).toThrow(/guards nothing/);
    }
  });
});

describe("fusion within the adapter's storage-buffer limit", () => {
  it('sheds epilogues and prologues rather than bind more storage buffers than allowed', () => {
    const config = readCheckpoint(`${dir}stories260K.bin`).config;
    for (const kind of kinds) {
      const graph = buildGraphs(config)[kind];
      const roomy = compileGraph(runPipeline(graph, pipeline, { maxStorageBuffers: 8 }));
      const tight = compileGraph(runPipeline(graph, pipeline, { maxStorageBuffers: 4 }));
      for (const k of tight.kernels) expect(k.bindings.length, k.name).toBeLessThanOrEqual(4);
      expect(Math.max(...roomy.kernels.map((k) => k.bindings.length))).toBe(8);
      expect(tight.kernels.length).toBeGreaterThan(roomy.kernels.length);
    }
  });
});
