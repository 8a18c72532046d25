// Runs passes in order and verifies the graphs: after each pass (so a pass that breaks an invariant fails where
// it happened), or only the input and the result, retracing pass by pass where anything fails; `after` sees
// every intermediate graph (for --dump-after).
import type { Graph } from '../ir/types.js';
import { verifyGraph } from '../ir/verify.js';
import { defaultPassContext, type Pass, type PassContext } from './pass.js';

/**
 * Which graphs runPipeline verifies. 'every-pass' names the pass that broke an invariant; 'ends' verifies the input
 * and the result only, and on any failure runs the passes again verifying each, so that its error names the pass
 * too. Verifying the 1B's 14 intermediate graphs was a third of a load's compile phase (about 60 of 165 ms in a
 * process's first compile on the CPU machine), and the passes are deterministic, so Model.load checks the ends;
 * `weft compile`, which shows the passes' work, and the tests check every pass.
 */
export type PipelineChecks = 'every-pass' | 'ends';

export function runPipeline(
  graph: Graph,
  passes: readonly Pass[],
  ctx: PassContext = defaultPassContext,
  after?: (pass: Pass, graph: Graph) => void,
  checks: PipelineChecks = 'every-pass',
): Graph {
  verifyGraph(graph);
  if (checks === 'ends' && !after) {
    try {
      const result = passes.reduce((g, p) => p.run(g, ctx), graph);
      verifyGraph(result);
      return result;
    } catch (e) {
      // the same passes again, verified one by one: their error names the pass; failing that, the first error stands
      runPipeline(graph, passes, ctx);
      throw e;
    }
  }
  let g = graph;
  for (const p of passes) {
    g = p.run(g, ctx);
    try {
      verifyGraph(g);
    } catch (e) {
      throw new Error(`after pass ${p.name}: ${(e as Error).message}`);
    }
    after?.(p, g);
  }
  return g;
}
