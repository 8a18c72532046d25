// What a pass is: a named Graph → Graph function. The pipeline is a list of them (pipeline.ts).
import type { Graph } from '../ir/types.js';

export interface PassContext {
  /** storage buffers one kernel may bind (the adapter's maxStorageBuffersPerShaderStage) */
  readonly maxStorageBuffers: number;
  /** the device format of each checkpoint tensor where it is not float32: one buffer holds one format, so only weights of one format stack */
  readonly formats?: ReadonlyMap<string, string>;
}

export const defaultPassContext: PassContext = { maxStorageBuffers: 8 };

export interface Pass {
  readonly name: string;
  readonly description: string;
  run(graph: Graph, ctx: PassContext): Graph;
}
