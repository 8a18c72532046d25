// The llama family in ONNX Runtime's WebGPU execution provider, a peer engine for `weft bench`: the graph of
// onnx-llama.ts run by onnxruntime-node (its own Dawn, Vulkan backend only) or by onnxruntime-web on
// weft's Dawn device. Caches stay on the GPU between runs; only logits are read back.
import type * as Ort from 'onnxruntime-node';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { ModelConfig } from '../../models/llama.js';
import { openGpu, type Gpu } from '../runtime/gpu.js';
import { cacheNames, llamaOnnx } from './onnx-llama.js';
import { checkBenchOptions, timePeer, type PeerBenchOptions, type PeerRow } from './peer.js';

/** `node`: onnxruntime-node (native, Dawn built in); `web`: onnxruntime-web (WebAssembly) on the `webgpu` package's Dawn */
export type OnnxRuntimeName = 'node' | 'web';

export interface OnnxBenchOptions extends PeerBenchOptions {
  /** default `node` */
  readonly runtime?: OnnxRuntimeName;
}

type OrtModule = typeof Ort;

interface OnnxRuntime {
  readonly ort: OrtModule;
  readonly engine: string;
  /** weft's device on the adapter the runtime uses, held for the process (dawn.node fails when an instance it still polls is collected) */
  readonly gpu: Gpu;
  /** calls `work` while the runtime's GPU promises can settle */
  during<T>(work: () => Promise<T>): Promise<T>;
}

/**
 * dawn.node refuses views of a SharedArrayBuffer, which is where onnxruntime-web's WebAssembly memory lives:
 * writes from it go through a copy.
 */
function copySharedWrites(): void {
  const proto = GPUQueue.prototype as GPUQueue & { sharedWritesCopied?: true };
  if (proto.sharedWritesCopied) return;
  const write = proto.writeBuffer;
  proto.writeBuffer = function (buffer, offset, data, dataOffset, size) {
    if (!ArrayBuffer.isView(data) || !(data.buffer instanceof SharedArrayBuffer)) return write.call(this, buffer, offset, data, dataOffset, size);
    const element = 'BYTES_PER_ELEMENT' in data ? (data.BYTES_PER_ELEMENT as number) : 1;
    const copy = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    return write.call(this, buffer, offset, copy, (dataOffset ?? 0) * element, size === undefined ? undefined : size * element);
  };
  proto.sharedWritesCopied = true;
}

function provideNavigatorGpu(gpu: GPU): void {
  const g = globalThis as { navigator?: object };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

/**
 * dawn.node settles a promise (mapAsync, createComputePipelineAsync) only when the event loop turns over;
 * while onnxruntime-web's suspended WebAssembly waits on one, nothing else is scheduled, so a timer keeps it turning.
 */
async function withTurningLoop<T>(work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

async function openWebRuntime(backend: string | undefined): Promise<OnnxRuntime> {
  const gpu: Gpu = await openGpu({ backend });
  copySharedWrites();
  provideNavigatorGpu(gpu.instance);
  const ort = (await import('onnxruntime-web/webgpu')) as OrtModule;
  ort.env.wasm.wasmPaths = `${dirname(createRequire(import.meta.url).resolve('onnxruntime-web/webgpu'))}/`;
  ort.env.webgpu.device = gpu.device;
  return { ort, engine: 'onnxruntime-web-webgpu', gpu, during: withTurningLoop };
}

/** onnxruntime-node's Dawn is built with its Vulkan backend only. */
const nodeBackend = 'vulkan';

async function openNodeRuntime(backend: string | undefined): Promise<OnnxRuntime> {
  if (backend && backend !== nodeBackend) throw new Error(`onnxruntime-node runs WebGPU on Dawn's ${nodeBackend} backend only, not ${backend}`);
  // Opening weft's device on the same backend first points Vulkan at the same driver (SwiftShader where no
  // GPU driver is installed) before onnxruntime-node's Dawn starts.
  const gpu = await openGpu({ backend: nodeBackend });
  const ort = (await import('onnxruntime-node')) as OrtModule;
  return { ort, engine: 'onnxruntime-node-webgpu', gpu, during: (work) => work() };
}

/** Each runtime is opened once per process: onnxruntime-web binds its WebGPU backend to the first device it is given. */
const runtimes = new Map<OnnxRuntimeName, { readonly backend: string | undefined; readonly runtime: Promise<OnnxRuntime> }>();

function openRuntime(name: OnnxRuntimeName, backend: string | undefined): Promise<OnnxRuntime> {
  const open = runtimes.get(name);
  if (open && open.backend !== backend) throw new Error(`onnxruntime-${name} is already open on ${open.backend ?? 'the default backend'} in this process`);
  if (open) return open.runtime;
  const runtime = name === 'node' ? openNodeRuntime(backend) : openWebRuntime(backend);
  runtimes.set(name, { backend, runtime });
  return runtime;
}

/** Per layer, keys and values [positions, kvDim] on the GPU (or empty on the host before the first run). */
type KvCache = Ort.Tensor[];

/** A llama model in an ONNX Runtime session on the WebGPU execution provider. */
class OnnxLlama {
  private constructor(
    readonly config: ModelConfig,
    private readonly runtime: OnnxRuntime,
    private readonly session: Ort.InferenceSession,
  ) {}

  static async open(config: ModelConfig, weights: ReadonlyMap<string, Float32Array>, runtime: OnnxRuntime): Promise<OnnxLlama> {
    const { model, externalData } = llamaOnnx(config, weights);
    const presents = Array.from({ length: config.nLayers }, (_, l) => cacheNames(l)).flatMap((n) => [n.presentKey, n.presentValue]);
    const session = await runtime.during(() =>
      runtime.ort.InferenceSession.create(model, {
        executionProviders: ['webgpu'],
        logSeverityLevel: 3,
        externalData: [...externalData],
        preferredOutputLocation: Object.fromEntries([['logits', 'cpu'], ...presents.map((n) => [n, 'gpu-buffer'])]),
      }),
    );
    return new OnnxLlama(config, runtime, session);
  }

  get engine(): string {
    return this.runtime.engine;
  }

  get device(): string {
    return `${this.runtime.gpu.backend}: ${this.runtime.gpu.adapter}`;
  }

  emptyCache(): KvCache {
    const kvDim = this.config.nKvHeads * this.config.headSize;
    return Array.from({ length: 2 * this.config.nLayers }, () => new this.runtime.ort.Tensor('float32', new Float32Array(0), [0, kvDim]));
  }

  /** Runs `ids` after `cache` (which it disposes), reads every row of logits back, and returns the grown cache. */
  async run(ids: readonly number[], cache: KvCache): Promise<{ logits: Float32Array; cache: KvCache }> {
    const { ort } = this.runtime;
    const feeds: Record<string, Ort.Tensor> = { input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [ids.length]) };
    for (let l = 0; l < this.config.nLayers; l++) {
      const n = cacheNames(l);
      feeds[n.pastKey] = cache[2 * l]!;
      feeds[n.pastValue] = cache[2 * l + 1]!;
    }
    const out = await this.runtime.during(async () => {
      const results = await this.session.run(feeds);
      return { logits: (await results.logits!.getData()) as Float32Array, results };
    });
    for (const t of cache) t.dispose();
    const grown = Array.from({ length: this.config.nLayers }, (_, l) => cacheNames(l)).flatMap((n) => [
      out.results[n.presentKey]!,
      out.results[n.presentValue]!,
    ]);
    return { logits: out.logits, cache: grown };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

const dispose = (cache: KvCache): void => cache.forEach((t) => t.dispose());

/**
 * Prefill and decode throughput of the model in ONNX Runtime: prefill is one session run over the prompt
 * ending in the readback of its logits; decode feeds the greedy choice after a one-token prompt, the caches
 * going back in as GPU tensors. Warm-ups and the median of `runs` as timeRuns does them.
 */
export async function onnxBench(model: string, config: ModelConfig, weights: ReadonlyMap<string, Float32Array>, o: OnnxBenchOptions): Promise<PeerRow> {
  checkBenchOptions(o, config.seqLen);
  const llama = await OnnxLlama.open(config, weights, await openRuntime(o.runtime ?? 'node', o.backend));
  try {
    const figures = await timePeer({ run: (ids, cache) => llama.run(ids, cache ?? llama.emptyCache()), dispose }, config.vocabSize, config.bosId ?? 0, o);
    return {
      engine: llama.engine,
      model,
      device: llama.device,
      ...figures,
    };
  } finally {
    await llama.close();
  }
}

/** Logits [positions, vocab] of a prefill over `tokens`, then of each of `decodeIds` fed one at a time after it. */
export async function onnxLogits(
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  tokens: readonly number[],
  decodeIds: readonly number[],
  backend?: string,
  runtime: OnnxRuntimeName = 'node',
): Promise<{ prefill: Float32Array; decode: Float32Array[] }> {
  const llama = await OnnxLlama.open(config, weights, await openRuntime(runtime, backend));
  try {
    const prompt = await llama.run(tokens, llama.emptyCache());
    let cache = prompt.cache;
    const decode: Float32Array[] = [];
    for (const id of decodeIds) {
      const step = await llama.run([id], cache);
      decode.push(step.logits);
      cache = step.cache;
    }
    dispose(cache);
    return { prefill: prompt.logits, decode };
  } finally {
    await llama.close();
  }
}
