// Runs passes in order, verifying the graph after each one, so a pass that breaks an invariant fails
// where it happened; `after` sees every intermediate graph (for --dump-after).
import type { Graph } from '../ir/types.js';
import { verifyGraph } from '../ir/verify.js';
import { defaultPassContext, type Pass, type PassContext } from './pass.js';

export function runPipeline(graph: Graph, passes: readonly Pass[], ctx: PassContext = defaultPassContext, after?: (pass: Pass, graph: Graph) => void): Graph {
  verifyGraph(graph);
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
