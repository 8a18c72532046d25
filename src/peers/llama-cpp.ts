// llama.cpp through node-llama-cpp's prebuilt binaries, a peer engine for `weft bench` that runs the very GGUF file
// weft's row ran: its Vulkan build with every layer offloaded where weft runs on a GPU through Vulkan, else its CPU
// build on every core. A Vulkan run that leaves any layer on the CPU is refused, not timed.
import { availableParallelism, cpus } from 'node:os';
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type LlamaContextSequence, type Token } from 'node-llama-cpp';
import type { ModelConfig } from '../../models/llama.js';
import { openAdapter } from '../runtime/gpu.js';
import { benchPrompt, checkBenchOptions, decodeAfter, decodeRates, prefillRates, type PeerBenchOptions, type PeerRow } from './peer.js';

/** llama.cpp's log line after loading: `load_tensors: offloaded 17/17 layers to GPU` (the output layer counted). */
const offloadedLine = /offloaded (\d+)\/(\d+) layers to GPU/;

/**
 * Prefill and decode throughput of llama.cpp on the GGUF file `file` (whose configuration weft read as `config`),
 * timed as weft's own rows: prefill evaluates the bench prompt from an empty sequence up to the greedy token after
 * its last position; decode takes greedy tokens after each prompt of decodeAfter, time per token after the first. Warm-ups
 * and the median of `runs` as timeRuns does them; the sequence is cleared before every run.
 */
export async function llamaCppBench(model: string, file: string, config: ModelConfig, o: PeerBenchOptions): Promise<PeerRow> {
  checkBenchOptions(o, config.seqLen);
  // Dawn's own choice of adapter decides: a fallback adapter (SwiftShader) or another backend gets the CPU build
  const adapter = await openAdapter({ backend: o.backend });
  const gpu = adapter.backend === 'vulkan' && !adapter.fallback ? 'vulkan' : false;
  const threads = availableParallelism();
  const logs: string[] = [];
  // build 'never': a missing or broken prebuilt binary fails here rather than starting a llama.cpp build
  const binary = `@node-llama-cpp/linux-x64${gpu ? `-${gpu}` : ''}`;
  const llama = await getLlama({
    gpu,
    build: 'never',
    skipDownload: true,
    progressLogs: false,
    // info: the line that says how many layers went to the GPU; only errors are shown
    logLevel: LlamaLogLevel.info,
    logger: (level, message) => {
      logs.push(message);
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(`llama.cpp: ${message.trim()}\n`);
    },
    ...(gpu ? {} : { maxThreads: threads }),
  }).catch((e: unknown) => {
    throw new Error(`node-llama-cpp found no working prebuilt ${gpu || 'CPU'} build (${binary}): ${(e as Error).message.split('\n')[0]}`);
  });
  try {
    const devices = gpu ? await llama.getGpuDeviceNames() : [];
    if (gpu && devices.length === 0) throw new Error(`llama.cpp's ${gpu} build found no GPU device`);
    const loaded = await llama.loadModel({ modelPath: file, gpuLayers: gpu ? 'max' : 0 });
    try {
      if (gpu) {
        // the output layer counts as a layer, as llama.cpp and node-llama-cpp count them: the file's blocks and one more
        const layers = config.nLayers + 1;
        const line = logs.map((m) => offloadedLine.exec(m)).find((m) => m !== null);
        const [offloaded, of] = line ? [Number(line[1]), Number(line[2])] : [loaded.gpuLayers, loaded.fileInsights.totalLayers];
        if (offloaded !== layers || of !== layers || loaded.gpuLayers !== layers) {
          throw new Error(
            `llama.cpp offloaded ${offloaded} of ${of} layers to ${devices.join(', ')}; all ${layers} (${config.nLayers} blocks and the output) must run there`,
          );
        }
      }
      const longest = Math.max(...o.promptTokens, ...decodeAfter(o));
      const context = await loaded.createContext({
        contextSize: Math.max(...o.promptTokens, ...decodeAfter(o).map((n) => n + o.decodeTokens)) + 1,
        // the longest prompt is one batch, as weft's prefill is one run
        batchSize: longest,
        // llama.cpp's own default ("auto"): flash attention where the backend has it for the model
        flashAttention: 'auto',
        ...(gpu ? {} : { threads: { ideal: threads, min: threads } }),
      });
      try {
        const figures = await timeSequence(context.getSequence(), config, o);
        return {
          engine: `llama.cpp (${gpu || 'cpu'})`,
          model,
          device: gpu ? `${gpu}: ${devices.join(', ')}` : `cpu: ${cpus()[0]?.model.trim() ?? 'unknown'}, ${threads} threads`,
          ...figures,
        };
      } finally {
        await context.dispose();
      }
    } finally {
      await loaded.dispose();
    }
  } finally {
    await llama.dispose();
  }
}

async function timeSequence(
  sequence: LlamaContextSequence,
  config: ModelConfig,
  o: PeerBenchOptions,
): Promise<Pick<PeerRow, 'prefill_tokens_per_s' | 'decode_tokens_per_s' | 'decode_after_tokens_per_s'>> {
  const first = (config.bosId ?? 0) as Token;
  // temperature 0 is llama.cpp's greedy sampler alone
  const greedy = { temperature: 0 };
  const prefill = await prefillRates(o, (n) => {
    // node-llama-cpp brands token ids; these are the file's ids as they are
    const ids = benchPrompt(n, config.vocabSize, first) as Token[];
    const input = ids.map((id, i): ControlledEvaluateInputItem => (i === n - 1 ? [id, { generateNext: { token: true, options: greedy } }] : id));
    return async () => {
      await sequence.clearHistory();
      const t0 = performance.now();
      const results = await sequence.controlledEvaluate(input);
      const elapsed = performance.now() - t0;
      if (results[n - 1]?.next?.token == null) throw new Error(`llama.cpp gave no token after a prompt of ${n}`);
      return elapsed;
    };
  });
  const decode = await decodeRates(o, (n) => {
    const ids = benchPrompt(n, config.vocabSize, first) as Token[];
    return async () => {
      await sequence.clearHistory();
      let start = 0;
      let end = 0;
      let steps = -1;
      // each token is fed back as the next input; an end-of-generation token does not end the run
      for await (const _ of sequence.evaluate(ids, { ...greedy, yieldEogToken: true })) {
        end = performance.now();
        if (steps < 0) start = end;
        if (++steps === o.decodeTokens) break;
      }
      return steps > 0 ? (end - start) / steps : undefined;
    };
  });
  return { prefill_tokens_per_s: prefill, ...decode };
}
