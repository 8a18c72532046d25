// What a pass is: a named Graph → Graph function. The pipeline is a list of them (pipeline.ts).
import type { Graph } from '../ir/types.js';

export interface PassContext {
  /** storage buffers one kernel may bind (the adapter's maxStorageBuffersPerShaderStage) */
  readonly maxStorageBuffers: number;
}

export const defaultPassContext: PassContext = { maxStorageBuffers: 8 };

export interface Pass {
  readonly name: string;
  readonly description: string;
  run(graph: Graph, ctx: PassContext): Graph;
}
