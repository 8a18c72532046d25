#!/usr/bin/env node
// The weft command line: `run` generates from a checkpoint, `chat` holds a conversation with one, `inspect` prints a model's IR or memory plan,
// `compile` runs the passes over one graph and prints its IR, per-pass dumps or static stats. Every failure is
// one line on stderr and a non-zero exit; output paths are checked before any work, and their files written whole, only once everything else succeeded.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { GraphKind, ModelConfig } from '../models/llama.js';
import { SYNTHETIC_MAX_CONTEXT, syntheticConfigs, syntheticModel } from '../models/synthetic.js';
import { checkBenchOptions, WARMUP_RUNS, WARMUP_SECONDS, type PeerBenchOptions, type PeerRow } from './peers/peer.js';
import { benchmark, formatBenchRow, type BenchRow } from './bench.js';
import { DECODE_GROUP_FROM } from './codegen/attention.js';
import { defaultGgufDir, ensureBenchGguf, planBenchGguf, type BenchGguf } from './bench-gguf.js';
import { EncodePool } from './weights/encode-pool.js';
import { ggufFileTypes, type GgufFileType } from '../models/gguf-writer.js';
import {
  aboutFile,
  buildGraphs,
  compileOptions,
  defaultToggles,
  floatWeights,
  loadModel,
  pickGraphs,
  readCheckpoint,
  readGraphFile,
  readModelFiles,
  resolveRequest,
  withContext,
  type Checkpoint,
  type GenerateRequest,
  type ModelFiles,
} from './api.js';
import * as A from './affine.js';
import { compileGraph, type CodegenOptions } from './codegen/compile.js';
import { printWgsl } from './codegen/listing.js';
import { bytesText, formatSchedules, formatStats, fullContextEnv, graphStats, type GraphStats } from './codegen/stats.js';
import { printDot, printJson } from './ir/formats.js';
import { printGraph, printModule } from './ir/print.js';
import type { Graph } from './ir/types.js';
import type { Pass } from './passes/pass.js';
import { passesByName, pipeline } from './passes/pipeline.js';
import { runPipeline } from './passes/run-pipeline.js';
import { weightFormats, type FormatName } from './weights/formats.js';
import type { MatmulKind } from './codegen/linear/index.js';
import { checkSamplerSettings } from './runtime/sampler.js';
import { DEFAULT_PREFILL_CHUNK } from './runtime/generate.js';
import { loadProgressBar } from './progress-bar.js';
import { bindFlagValues, flagOptions, type FlagTable } from './cli-flags.js';
import { chatFiles } from './chat.js';
import { chatLoop, type ChatArgs } from './chat-cli.js';
import { failedChecksText, fittingText, formatMemoryPlan, memoryPlan, planAdapter, webgpuDefaultLimits } from './memory-plan.js';

function fail(message: string): never {
  process.stderr.write(`weft: ${message.trim().replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}

function parsePromptIds(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  return parts.map((p, i) => {
    if (!/^\d+$/.test(p)) throw new Error(`--prompt-ids: item ${i + 1} ('${p}') is not a token id; expected e.g. 1,12,7`);
    return Number(p);
  });
}

function writeWhole(path: string, data: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

interface RunArgs {
  model: string;
  tokenizer?: string;
  prompt?: string;
  promptIds?: string;
  steps?: number;
  temperature: number;
  topp: number;
  seed: number;
  json: boolean;
  dumpLogits?: string;
  weights?: FormatName;
  matmul?: MatmulKind;
  backend?: string;
  context?: number;
  ir?: string;
  prefillChunk?: number;
}

async function run(a: RunArgs): Promise<void> {
  if (a.steps !== undefined && a.steps < 0) throw new Error(`--steps must be a whole number >= 0, got ${a.steps}`);
  const request: GenerateRequest = {
    prompt: a.prompt,
    promptIds: a.promptIds !== undefined ? parsePromptIds(a.promptIds) : undefined,
    steps: a.steps,
    temperature: a.temperature,
    topp: a.topp,
    seed: a.seed === 0 ? Math.floor(Date.now() / 1000) : a.seed,
    logits: a.dumpLogits !== undefined,
  };
  const read = readModelFiles(a.model, { tokenizer: a.tokenizer });
  const files = a.context !== undefined ? withContext(read, a.context) : read;
  resolveRequest(files, request); // every argument is checked before the GPU opens
  const progress = loadProgressBar();
  // the bar ends with the load; the bar of a load that failed is cleared before the error
  const model = await loadModel(files, {
    backend: a.backend,
    weights: a.weights,
    matmul: a.matmul,
    ir: a.ir,
    prefillChunk: a.prefillChunk,
    onProgress: progress?.onProgress,
  }).finally(() => progress?.stop());
  try {
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    const text: Uint8Array[] = [];
    const ids: number[] = [];
    let promptCount = 0;
    const start = performance.now();
    let prefillEnd = start;
    for await (const step of model.generate(request)) {
      if (tokens.length === 0) prefillEnd = performance.now();
      tokens.push(step.token);
      if (step.prompt) promptCount++;
      if (step.logits) logits.push(step.logits.slice());
      text.push(step.piece);
      if (!step.stop) ids.push(step.next);
      if (!a.json) process.stdout.write(model.tokenizer ? step.piece : step.stop ? '' : `${step.next} `);
    }
    const end = performance.now();
    const decodeCount = tokens.length - promptCount;
    const prefillRate = (promptCount / (prefillEnd - start)) * 1000;
    const decodeRate = decodeCount > 0 ? (decodeCount / (end - prefillEnd)) * 1000 : 0;
    if (a.dumpLogits !== undefined) {
      const all = new Float32Array(logits.length * model.config.vocabSize);
      logits.forEach((row, i) => all.set(row, i * model.config.vocabSize));
      writeWhole(a.dumpLogits, new Uint8Array(all.buffer));
    }
    if (a.json) {
      const bytes = Buffer.concat([...text, Buffer.from('\n')]);
      const out = {
        tokens,
        text: model.tokenizer ? bytes.toString('utf8') : null,
        generated: ids,
        prompt_tokens: promptCount,
        decode_tokens: decodeCount,
        prefill_tokens_per_s: prefillRate,
        decode_tokens_per_s: decodeRate,
        seed: request.seed,
        backend: model.device.backend,
        adapter: model.device.adapter,
        // performance.now() counts from the process's start: what a user waits for, Node's own start included
        time_to_first_token_s: prefillEnd / 1000,
        load_s: model.loadTimes,
        prefill_s: (prefillEnd - start) / 1000,
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      process.stdout.write('\n');
      process.stderr.write(
        `prompt: ${promptCount} tokens at ${prefillRate.toFixed(1)} tok/s; decode: ${decodeCount} tokens at ${decodeRate.toFixed(1)} tok/s; first token ${(prefillEnd / 1000).toFixed(2)} s after start (${model.device.backend}: ${model.device.adapter})\n`,
      );
    }
  } finally {
    model.release();
  }
}

interface ChatCommandArgs extends ChatArgs {
  model: string;
  tokenizer?: string;
  template?: string;
  weights?: FormatName;
  matmul?: MatmulKind;
  backend?: string;
  context?: number;
  prefillChunk?: number;
}

async function chat(a: ChatCommandArgs): Promise<void> {
  if (a.maxTokens !== undefined && a.maxTokens < 1) throw new Error(`--max-tokens must be a whole number >= 1, got ${a.maxTokens}`);
  checkSamplerSettings(a.temperature, a.topp, a.seed === 0 ? 1 : a.seed);
  const read = readModelFiles(a.model, { tokenizer: a.tokenizer, template: a.template });
  const files = a.context !== undefined ? withContext(read, a.context) : read;
  chatFiles(files); // a model that cannot chat fails before the GPU opens
  const progress = loadProgressBar();
  const model = await loadModel(files, {
    backend: a.backend,
    weights: a.weights,
    matmul: a.matmul,
    prefillChunk: a.prefillChunk,
    onProgress: progress?.onProgress,
  }).finally(() => progress?.stop());
  try {
    await chatLoop(model, a);
  } finally {
    model.release();
  }
}

interface InspectArgs {
  model: string;
  graph?: GraphKind;
  memory?: boolean;
  context?: number;
  weights?: FormatName;
  matmul?: MatmulKind;
  promptTokens?: number;
  backend?: string;
  json?: boolean;
}

async function inspect(a: InspectArgs): Promise<void> {
  const checkpoint = readCheckpoint(a.model);
  if (!a.memory) {
    const graphs = buildGraphs(checkpoint.config);
    process.stdout.write(a.graph ? printGraph(graphs[a.graph]) : printModule([graphs.prefill, graphs.decode]));
    return;
  }
  const adapter = await planAdapter({ backend: a.backend });
  const plan = memoryPlan(checkpoint, { context: a.context, weights: a.weights, matmul: a.matmul, promptTokens: a.promptTokens, adapter });
  process.stdout.write(a.json ? `${JSON.stringify(plan)}\n` : formatMemoryPlan(plan));
  if (!plan.fits) throw new Error(`does not fit: ${failedChecksText(plan.checks)}${plan.fitting ? `; ${fittingText(plan.fitting)}` : ''}`);
}

/** Output formats of `weft compile`: the IR as text, JSON or dot, or the WGSL codegen emits for it. */
const formats = {
  text: { print: (g: Graph) => printGraph(g), ext: 'ir', comment: '#' },
  json: { print: (g: Graph) => printJson(g), ext: 'json', comment: undefined },
  dot: { print: (g: Graph) => printDot(g), ext: 'dot', comment: '//' },
  wgsl: { print: (g: Graph, codegen: CodegenOptions) => printWgsl(g, compileGraph(g, codegen)), ext: 'wgsl', comment: '//' },
} as const;

type Format = keyof typeof formats;

interface CompileArgs {
  model: string;
  graph?: GraphKind | 'both';
  passes?: string;
  dumpAfter?: string;
  dumpDir?: string;
  format: Format;
  stats: boolean;
  json: boolean;
  weights?: FormatName;
  matmul?: MatmulKind;
  maxStorageBuffers?: number;
}

/** `--passes`: absent is the whole pipeline, '' or 'none' no pass, else pass names in the order given. */
function selectPasses(spec: string | undefined): Pass[] {
  if (spec === undefined) return [...pipeline];
  if (spec.trim() === '' || spec.trim() === 'none') return [];
  return passesByName(spec.split(',').map((name) => name.trim()));
}

/** Writes every file or none: files already written are removed when one fails. */
function writeAll(dir: string, files: readonly { name: string; text: string }[]): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(`cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const written: string[] = [];
  try {
    for (const f of files) {
      const path = join(dir, f.name);
      writeWhole(path, Buffer.from(f.text));
      written.push(path);
    }
  } catch (e) {
    for (const path of written) rmSync(path, { force: true });
    throw e;
  }
}

/** What `weft compile` reads: the graphs of an IR text file, or a model's as its definition writes them, and its tensors. */
interface CompileInput {
  /** in the order the file holds them; a model's prefill, then decode */
  readonly graphs: readonly Graph[];
  /** the IR file, which errors in its graphs name */
  readonly file?: string;
  /** a model's configuration and tensors (an IR file's weights count as float32) */
  readonly model?: Checkpoint;
}

function compileInput(path: string): CompileInput {
  if (path.endsWith('.ir')) return { graphs: readGraphFile(path), file: path };
  const model = syntheticModel(path) ?? readCheckpoint(path);
  const { prefill, decode } = buildGraphs(model.config);
  return { graphs: [prefill, decode], model };
}

/** Rows of the KV cache an IR file's graph declares (its states' first axis): its context. */
function declaredContext(g: Graph): number {
  return Math.max(1, ...g.decls.filter((d) => d.kind === 'state' && d.type.shape.length > 0).map((d) => A.evaluate(d.type.shape[0]!, {})));
}

function compile(a: CompileArgs): void {
  const passes = selectPasses(a.passes);
  const stats = a.stats || a.json;
  if (a.dumpAfter !== undefined && a.dumpAfter !== 'all') {
    passesByName([a.dumpAfter]);
    if (!passes.some((p) => p.name === a.dumpAfter)) {
      throw new Error(`--dump-after ${a.dumpAfter}: not among the passes run (${passes.map((p) => p.name).join(', ') || 'none'})`);
    }
  }
  if (a.dumpAfter !== undefined && a.dumpDir === undefined && stats) throw new Error(`--dump-after with --stats needs --dump-dir: stdout holds the stats`);
  if (a.graph === 'both' && (a.dumpAfter !== undefined || a.format !== 'text')) {
    throw new Error(`--graph both prints the two schedules side by side: --format and --dump-after take one graph (or, without --graph, every graph)`);
  }
  if (a.maxStorageBuffers !== undefined && a.maxStorageBuffers < 1)
    throw new Error(`--max-storage-buffers must be a whole number >= 1, got ${a.maxStorageBuffers}`);

  const input = compileInput(a.model);
  const names = a.graph === undefined ? input.graphs.map((g) => g.name) : a.graph === 'both' ? ['prefill', 'decode'] : [a.graph];
  const selected = pickGraphs(input.graphs, names, a.model);
  if (selected.length > 1 && a.graph !== 'both' && (stats || a.dumpAfter !== undefined)) {
    throw new Error(`${stats ? '--stats' : '--dump-after'} takes one graph: give --graph (${names.join(' or ')}; both: side by side)`);
  }
  // a device of WebGPU's default limits, without subgroups, unless told its storage buffers
  const limits = { ...webgpuDefaultLimits, ...(a.maxStorageBuffers !== undefined ? { maxStorageBuffersPerShaderStage: a.maxStorageBuffers } : {}) };
  const { context, codegen } = compileOptions({ limits, fallback: false, subgroups: false }, { weights: a.weights, matmul: a.matmul }, input.model?.tensors);
  const format = formats[a.format];

  const dumps: { name: string; graph: Graph }[] = [];
  const compiled = selected.map((g) => {
    const run = () => {
      if (a.dumpAfter === 'all') dumps.push({ name: '000_input', graph: g });
      let step = 0;
      const graph = runPipeline(g, passes, context, (p, after) => {
        step++;
        if (a.dumpAfter === 'all' || a.dumpAfter === p.name) dumps.push({ name: `${String(step).padStart(3, '0')}_${p.name}`, graph: after });
      });
      const plan = compileGraph(graph, codegen);
      const env = fullContextEnv(graph, input.model?.config.seqLen ?? declaredContext(graph));
      return { graph, plan, stats: stats || a.graph === 'both' ? graphStats(graph, plan, { env, layers: input.model?.config.nLayers }) : undefined };
    };
    return input.file !== undefined ? aboutFile(input.file, run) : run();
  });

  if (a.graph === 'both') {
    const [prefill, decode] = compiled.map((c) => c.stats!) as [GraphStats, GraphStats];
    process.stdout.write(a.json ? `${JSON.stringify({ prefill, decode })}\n` : formatSchedules(prefill, decode));
    return;
  }
  const files = dumps.map((d) => ({ name: `${d.name}.${format.ext}`, text: format.print(d.graph, codegen) }));
  if (a.dumpDir !== undefined) writeAll(a.dumpDir, files);
  // --stats and --dump-after compile one graph
  const first = compiled[0]!;
  const summary =
    a.dumpDir === undefined
      ? undefined
      : `${first.graph.name}: ${passes.length} passes, ${first.plan.kernels.length} dispatches; wrote ${files.map((f) => f.name).join(', ') || 'no dumps'} to ${a.dumpDir}\n`;
  if (first.stats) {
    process.stdout.write(a.json ? `${JSON.stringify(first.stats)}\n` : formatStats(first.stats));
    if (summary !== undefined) process.stderr.write(summary);
  } else {
    const graphs = compiled.map((c) => c.graph);
    process.stdout.write(summary ?? (dumps.length > 0 ? printWithDumps(format, dumps, first.graph, codegen) : printGraphs(format, graphs, codegen)));
  }
}

/** Graphs one after another, a blank line between them; in JSON, an array of them (one graph: itself). */
function printGraphs(format: (typeof formats)[Format], graphs: readonly Graph[], codegen: CodegenOptions): string {
  if (format.comment !== undefined || graphs.length === 1) return graphs.map((g) => format.print(g, codegen)).join('\n');
  const parsed = graphs.map((g): unknown => JSON.parse(printJson(g)));
  return `${JSON.stringify(parsed, null, 2)}\n`;
}

/** The final graph after the dumps: in text, dot and WGSL each graph follows a `# NNN_pass` (`// …`) line; JSON is one object. */
function printWithDumps(format: (typeof formats)[Format], dumps: readonly { name: string; graph: Graph }[], graph: Graph, codegen: CodegenOptions): string {
  if (format.comment === undefined) {
    const parsed = (g: Graph): unknown => JSON.parse(printJson(g));
    return `${JSON.stringify({ dumps: dumps.map((d) => ({ name: d.name, graph: parsed(d.graph) })), graph: parsed(graph) }, null, 2)}\n`;
  }
  return [...dumps, { name: 'final', graph }].map((d) => `${format.comment} ${d.name}\n${format.print(d.graph, codegen)}`).join('\n');
}

interface BenchArgs {
  model: string[];
  promptTokens: number[];
  prefillChunk?: number;
  decodeTokens: number;
  decodeAfter: number[];
  runs: number;
  context?: number;
  warmupSeconds: number;
  temperature: number;
  topp: number;
  passes?: string;
  weights: string;
  matmul: string;
  kernels: boolean;
  peakTflops?: number;
  peakGbps?: number;
  splitKFrom?: number;
  splitK?: number;
  attentionTile?: number;
  attentionGroupFrom?: number;
  attentionRows: boolean;
  subgroups: boolean;
  dawnToggles?: string;
  peers: string;
  ggufDir?: string;
  json?: string;
  backend?: string;
}

/**
 * A peer engine as the bench runs it, by what it takes: the model's weights as float32 (it builds its own graph from
 * them, once per model), or the GGUF file weft's row ran (once per row, so both engines read identical bytes).
 */
type LoadedPeer =
  | {
      readonly takes: 'float weights';
      readonly run: (model: string, config: ModelConfig, weights: ReadonlyMap<string, Float32Array>, o: PeerBenchOptions) => Promise<PeerRow>;
    }
  | { readonly takes: 'gguf file'; readonly run: (model: string, file: string, config: ModelConfig, o: PeerBenchOptions) => Promise<PeerRow> };

/** Peer engines by name, loaded on demand: their packages are development dependencies. */
const peerEngines: Readonly<Record<string, { readonly packages: string; readonly load: () => Promise<LoadedPeer> }>> = {
  tfjs: {
    packages: '@tensorflow/tfjs-core and @tensorflow/tfjs-backend-webgpu',
    load: async () => ({ takes: 'float weights', run: (await import('./peers/tfjs.js')).tfjsBench }),
  },
  onnx: {
    packages: 'onnxruntime-node',
    load: async () => {
      const { onnxBench } = await import('./peers/onnx.js');
      return { takes: 'float weights', run: (model, config, weights, o) => onnxBench(model, config, weights, { ...o, runtime: 'node' }) };
    },
  },
  'onnx-web': {
    packages: 'onnxruntime-web',
    load: async () => {
      const { onnxBench } = await import('./peers/onnx.js');
      return { takes: 'float weights', run: (model, config, weights, o) => onnxBench(model, config, weights, { ...o, runtime: 'web' }) };
    },
  },
  'llama.cpp': {
    packages: 'node-llama-cpp 3.21.1 (its prebuilt CPU build, and @node-llama-cpp/linux-x64-vulkan for a GPU)',
    load: async () => ({ takes: 'gguf file', run: (await import('./peers/llama-cpp.js')).llamaCppBench }),
  },
};

async function loadPeer(name: string): Promise<LoadedPeer> {
  const peer = Object.hasOwn(peerEngines, name) ? peerEngines[name] : undefined;
  if (!peer) throw new Error(`--peers: unknown peer '${name}' (peers: ${Object.keys(peerEngines).join(', ')}, none)`);
  try {
    return await peer.load();
  } catch (e) {
    throw new Error(`--peers ${name} needs ${peer.packages} (npm install): ${(e as Error).message.split('\n')[0]}`);
  }
}

/** A bench row that did not run: the reason instead of figures. */
interface FailedRow {
  readonly engine: string;
  readonly model: string;
  readonly file?: string;
  readonly error: string;
}

/** A peer's row, or (a peer that cannot run on this device being reported, not fatal) its error, printed to stderr. */
async function runPeer(peer: string, model: string, file: string | undefined, run: () => Promise<PeerRow>): Promise<PeerRow | FailedRow> {
  try {
    return await run();
  } catch (e) {
    const error = (e as Error).message.split('\n')[0]!;
    process.stderr.write(`${peer} ${model}: did not run: ${error}\n`);
    return { engine: peer, model, ...(file !== undefined ? { file } : {}), error };
  }
}

/** The formats of a checkpoint's matrices, as weft's rows name its weights (f32+q8_0). */
function matrixFormats(checkpoint: Checkpoint): string {
  return [...new Set([...checkpoint.tensors.values()].filter((t) => t.shape.length === 2).map((t) => t.format.name))].sort().join('+');
}

/** A synthetic model by name (110M, 1B) at `context` positions where given, else a checkpoint read from its path. */
function benchFiles(model: string, context?: number): ModelFiles {
  const synthetic = syntheticModel(model, context);
  return synthetic ? { ...synthetic, tokenizer: undefined } : readModelFiles(model);
}

async function bench(a: BenchArgs): Promise<void> {
  const passes = selectPasses(a.passes);
  const { promptTokens } = a;
  if (a.runs < 1) throw new Error(`--runs must be a positive whole number, got ${a.runs}`);
  const formats = a.weights.split(',').map((w) => w.trim());
  // int8-matrix: int8 tiles on the device's subgroup matrices, where it has them (LoadOptions.kernels.int8Matrix)
  const matmulKinds = ['auto', 'float', 'int8', 'int8-matrix'];
  const matmuls = a.matmul.split(',').map((m) => m.trim());
  for (const m of matmuls) if (!matmulKinds.includes(m)) throw new Error(`--matmul: '${m}' is not one of ${matmulKinds.join(', ')}`);
  for (const w of formats) if (!Object.hasOwn(ggufFileTypes, w)) throw new Error(`--weights: '${w}' is not one of ${Object.keys(ggufFileTypes).join(', ')}`);
  if (a.attentionTile !== undefined && ![8, 16, 32].includes(a.attentionTile)) throw new Error(`--attention-tile must be 8, 16 or 32, got ${a.attentionTile}`);
  if (a.splitK !== undefined && a.splitK < 1) throw new Error(`--split-k must be a whole number ≥ 1, got ${a.splitK}`);
  for (const [flag, v] of [
    ['--peak-tflops', a.peakTflops],
    ['--peak-gbps', a.peakGbps],
    ['--split-k-from', a.splitKFrom],
    ['--attention-group-from', a.attentionGroupFrom],
  ] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`${flag} must be a number ≥ 0, got ${v}`);
  }
  const label = a.passes === undefined ? '' : ` [passes: ${passes.map((p) => p.name).join(',') || 'none'}]`;
  const kernels = {
    ...(a.splitKFrom !== undefined ? { splitKFrom: a.splitKFrom } : {}),
    ...(a.splitK !== undefined ? { splitK: a.splitK } : {}),
    ...(a.attentionTile !== undefined ? { attentionTile: a.attentionTile as 8 | 16 | 32 } : {}),
    ...(a.attentionGroupFrom !== undefined ? { attentionGroupFrom: a.attentionGroupFrom } : {}),
    ...(a.attentionRows ? { attentionRows: true } : {}),
    ...(a.subgroups ? {} : { subgroups: false }),
  };
  const limits = { ...(a.peakTflops ? { flops: a.peakTflops * 1e12 } : {}), ...(a.peakGbps ? { bandwidth: a.peakGbps * 1e9 } : {}) };
  const peerNames = a.peers === '' || a.peers === 'none' ? [] : a.peers.split(',').map((p) => p.trim());
  checkSamplerSettings(a.temperature, a.topp, 1);
  if (a.temperature > 0 && peerNames.length > 0) throw new Error('--temperature: the peers decode greedily only; time sampled decode without --peers');
  const peers = await Promise.all(peerNames.map(async (n) => ({ name: n, peer: await loadPeer(n) })));
  const ggufDir = a.ggufDir ?? defaultGgufDir();
  const decode = { decodeTokens: a.decodeTokens, decodeAfter: a.decodeAfter };
  const peerOptions: PeerBenchOptions = { promptTokens, ...decode, runs: a.runs, warmupSeconds: a.warmupSeconds, backend: a.backend };
  const progress = loadProgressBar();
  // a peer that did not run is a row with its reason instead of figures
  const rows: (BenchRow | FailedRow)[] = [];
  // workers that encode the weights of the GGUF files written, started with the first
  let encoders: EncodePool | undefined;
  try {
    for (const model of a.model) {
      const files = benchFiles(model, a.context); // a bad file fails before the GPU opens
      if (peers.length > 0 && files.config.family !== 'llama') throw new Error(`--peers: ${model} is not a llama-family model, the only kind the peers run`);
      checkBenchOptions({ promptTokens, ...decode, runs: a.runs, warmupSeconds: a.warmupSeconds }, files.config.seqLen);
      const name = `${syntheticConfigs[model] ? model : basename(model)}${label}`;
      // Where a peer runs GGUF files, weft's row runs the file the peer runs; a file type that is no weight format
      // (q4_k_m) is only ever a file. Every file is planned, and so checked, before anything runs.
      const ggufs = new Map<string, BenchGguf>();
      for (const format of formats) {
        if (peers.some((p) => p.peer.takes === 'gguf file') || (!Object.hasOwn(weightFormats, format) && format !== 'stored')) {
          ggufs.set(format, planBenchGguf(model, files, format as GgufFileType, ggufDir));
        }
      }
      // every file is written before anything is timed, and the encoding workers have ended
      const note = (path: string, bytes: number): void => {
        process.stderr.write(`writing ${path} (${bytesText(bytes, false)}), which ${name} runs from in every engine\n`);
      };
      for (const gguf of ggufs.values()) await ensureBenchGguf(gguf, note, () => (encoders ??= new EncodePool()));
      await encoders?.close();
      encoders = undefined;
      for (const format of formats) {
        const gguf = ggufs.get(format);
        // the bench feeds token ids: the file's tokenizer is not read
        const rowFiles: ModelFiles = gguf ? { ...readCheckpoint(gguf.path), tokenizer: undefined } : files;
        for (const matmul of matmuls) {
          const row = await benchmark(rowFiles, name, {
            matmul: matmul === 'int8-matrix' ? 'int8' : (matmul as MatmulKind),
            ...(a.context !== undefined ? { context: a.context } : {}),
            passes,
            promptTokens,
            ...(a.prefillChunk !== undefined ? { prefillChunk: a.prefillChunk } : {}),
            ...decode,
            runs: a.runs,
            warmupSeconds: a.warmupSeconds,
            sampling: { temperature: a.temperature, topp: a.topp },
            backend: a.backend,
            ...(format === 'stored' || gguf ? {} : { weights: format as FormatName }),
            kernels: { ...kernels, ...(matmul === 'int8-matrix' ? { int8Matrix: true } : {}) },
            limits,
            profile: a.kernels,
            onProgress: progress?.onProgress,
            ...(a.dawnToggles !== undefined
              ? {
                  toggles:
                    a.dawnToggles === 'none'
                      ? []
                      : a.dawnToggles
                          .split(',')
                          .map((t) => t.trim())
                          .filter((t) => t !== ''),
                }
              : {}),
          }).finally(() => progress?.stop()); // the bar of a load that failed is cleared before the error
          const weftRow = gguf ? { ...row, file: gguf.path } : row;
          rows.push(weftRow);
          process.stdout.write(formatBenchRow(weftRow));
        }
        if (!gguf) continue;
        // the peers run at the same context as weft (--context cuts the KV cache they may use)
        const config = (a.context !== undefined ? withContext(rowFiles, a.context) : rowFiles).config;
        for (const { name: peer, peer: p } of peers) {
          if (p.takes !== 'gguf file') continue;
          const result = await runPeer(peer, name, gguf.path, async () => ({
            ...(await p.run(name, gguf.path, config, peerOptions)),
            weights: matrixFormats(rowFiles),
            file: gguf.path,
          }));
          rows.push(result);
          if (!('error' in result)) process.stdout.write(formatBenchRow(result));
        }
      }
      // the peers run at the same context as weft (--context cuts the KV cache and the RoPE tables they get)
      const peerFiles = a.context !== undefined ? withContext(files, a.context) : files;
      for (const { name: peer, peer: p } of peers) {
        if (p.takes !== 'float weights') continue;
        const row = await runPeer(peer, name, undefined, () => p.run(name, peerFiles.config, floatWeights(peerFiles), peerOptions));
        rows.push(row);
        if (!('error' in row)) process.stdout.write(formatBenchRow(row));
      }
    }
  } finally {
    await encoders?.close();
  }
  if (a.json !== undefined) writeWhole(a.json, Buffer.from(`${JSON.stringify(rows, null, 2)}\n`));
}

const backendFlag = { kind: 'text', describe: 'Dawn backend (vulkan, opengles, …); default: the first that works' } as const;
const contextFlag = { kind: 'integer', describe: "positions to allocate, below the model's context (a smaller KV cache)" } as const;
const temperatureFlag = { kind: 'atof', default: 1.0, describe: '0 is greedy' } as const;
const toppFlag = { kind: 'atof', default: 0.9, describe: 'top-p (nucleus) threshold; 0 or 1 samples the whole distribution' } as const;
const seedFlag = { kind: 'atoi', default: 0, describe: 'sampler seed, read as C atoi reads it (0: the current time)' } as const;
const matmulFlag = {
  kind: 'choice',
  choices: ['auto', 'float', 'int8'],
  describe:
    'matmuls in float32, or int8: activations quantized per row and 32-wide block times int8 weight blocks, in prefill and decode (float matrices held as Q8_0); ' +
    'default auto: int8 for quantized weights, float32 for float ones',
} as const;
const prefillChunkFlag = {
  kind: 'integer',
  describe: `the most prompt tokens one prefill run takes (default ${DEFAULT_PREFILL_CHUNK}); a longer prompt runs in chunks, each after the one before`,
} as const;
const modelPath = 'llama2.c checkpoint (.bin) or Hugging Face folder (config.json + safetensors)';
const weightNames = Object.keys(weightFormats);

const runFlags: FlagTable = {
  tokenizer: {
    kind: 'text',
    describe: 'llama2.c tokenizer (.bin) or Hugging Face tokenizer.json; default: tokenizer.json in a Hugging Face folder, else tokenizer.bin beside the model',
  },
  prompt: { kind: 'text', describe: "prompt text, encoded by the model's tokenizer (llama2.c: with BOS, as run.c does)" },
  'prompt-ids': { kind: 'text', describe: 'comma-separated token ids, fed exactly as given' },
  steps: { kind: 'atoi', describe: 'positions to run, prompt included, read as C atoi reads it (default 256 capped at the context; 0: the whole context)' },
  temperature: temperatureFlag,
  topp: toppFlag,
  seed: seedFlag,
  json: { kind: 'switch', default: false, describe: 'print one JSON object instead of streaming text' },
  'dump-logits': { kind: 'output-file', describe: 'write float32 [positions][vocab] logits to FILE' },
  weights: {
    kind: 'choice',
    choices: weightNames,
    describe: 'convert matmul weights to this format on load (embedding tables stay as stored); default: each as its file stores it',
  },
  matmul: matmulFlag,
  backend: backendFlag,
  context: contextFlag,
  'prefill-chunk': prefillChunkFlag,
  ir: { kind: 'text', describe: "run the graphs named prefill and decode of this IR file (as weft compile prints them) instead of the model's, as written" },
};

const chatFlags: FlagTable = {
  system: { kind: 'text', describe: 'the system message' },
  template: { kind: 'text', describe: "a chat template file (Jinja), instead of the model's own" },
  tokenizer: { kind: 'text', describe: "tokenizer.json (default: the one in the folder, or the GGUF file's own)" },
  'max-tokens': { kind: 'integer', describe: 'the most tokens of a reply (default: until a stop token or the end of the context)' },
  temperature: temperatureFlag,
  topp: toppFlag,
  seed: seedFlag,
  verbose: { kind: 'switch', default: false, describe: 'after each turn, the positions it reused and prefilled and the tokens it generated (stderr)' },
  weights: { kind: 'choice', choices: weightNames, describe: 'convert matmul weights to this format on load' },
  matmul: matmulFlag,
  backend: backendFlag,
  context: contextFlag,
  'prefill-chunk': prefillChunkFlag,
};

const inspectFlags: FlagTable = {
  graph: { kind: 'choice', choices: ['prefill', 'decode'], describe: 'one graph (default: both)' },
  memory: { kind: 'switch', describe: "print the checkpoint's tensors and the device and host memory a load needs; exit 1 if it does not fit" },
  context: { kind: 'integer', describe: "positions to plan for, below the model's context (default: the model's)" },
  weights: { kind: 'choice', choices: weightNames, describe: 'plan with matrix weights converted to this format (default: each as its file stores it)' },
  matmul: matmulFlag,
  'prompt-tokens': {
    kind: 'integer',
    describe: `tokens of one prefill run the activations are planned for (run's --prefill-chunk; default ${DEFAULT_PREFILL_CHUNK}, capped at the context)`,
  },
  backend: { kind: 'text', describe: "the Dawn backend whose adapter's limits to plan against (no device is opened)" },
  json: { kind: 'switch', describe: 'print the memory plan as one JSON object' },
};

const compileFlags: FlagTable = {
  graph: {
    kind: 'choice',
    choices: ['prefill', 'decode', 'both'],
    describe: 'the graph to compile (default: every graph, prefill then decode for a model); both: the two schedules side by side',
  },
  passes: { kind: 'text', describe: `comma-separated passes in order ('' or none: no pass); default: ${pipeline.map((p) => p.name).join(', ')}` },
  'dump-after': { kind: 'text', describe: "print the IR after this pass too ('all': the input and after every pass)" },
  'dump-dir': { kind: 'output-folder', describe: 'write the dumps to DIR/NNN_<pass>.<ext> instead (000_input is the input graph)' },
  format: {
    kind: 'choice',
    choices: Object.keys(formats),
    default: 'text',
    describe: 'the output and the dumps: the IR as text, JSON or dot, or wgsl: each kernel codegen emits for it',
  },
  stats: { kind: 'switch', default: false, describe: 'print dispatches, barriers, FLOPs and bytes per kernel, activation memory' },
  json: { kind: 'switch', default: false, describe: 'print the stats as one JSON object' },
  weights: { kind: 'choice', choices: weightNames, describe: 'compile for matrix weights converted to this format on load, as run --weights' },
  matmul: matmulFlag,
  'max-storage-buffers': {
    kind: 'integer',
    describe: "storage buffers a kernel may bind, the adapter's maxStorageBuffersPerShaderStage (default 8, WebGPU's default)",
  },
};

const benchFlags: FlagTable = {
  model: {
    kind: 'text',
    array: true,
    demandOption: true,
    describe: `a llama-shaped model with deterministic random weights (${Object.keys(syntheticConfigs).join(', ')}), a checkpoint file or a Hugging Face folder; repeat for several`,
  },
  'prompt-tokens': { kind: 'integers', default: '128', describe: 'comma-separated prompt lengths to time prefill at' },
  'prefill-chunk': {
    kind: 'integer',
    describe: `the most prompt tokens one prefill run takes (default ${DEFAULT_PREFILL_CHUNK}): longer prompts are timed as several runs (their kernel table is one run of the whole prompt)`,
  },
  'decode-tokens': { kind: 'integer', default: 64, describe: 'decode steps to time after each --decode-after prompt' },
  'decode-after': {
    kind: 'integers',
    default: '1',
    describe: "comma-separated prompt lengths to time decode after (1: a one-token prompt); the shortest gives the row's decode figure",
  },
  runs: { kind: 'integer', default: 5, describe: 'timed runs per figure (the median is reported)' },
  context: {
    kind: 'integer',
    describe: `positions to allocate for a checkpoint, below its own context (a smaller KV cache; default its own); a synthetic model's context, up to ${SYNTHETIC_MAX_CONTEXT} (default 1024)`,
  },
  'warmup-seconds': {
    kind: 'decimal',
    default: WARMUP_SECONDS,
    describe: `untimed runs before each figure: at least ${WARMUP_RUNS}, those after the first lasting at least this many seconds`,
  },
  temperature: {
    kind: 'atof',
    default: 0,
    describe:
      'decode samples each token on the host at this temperature, as run.c does (0: greedy, chosen on the device); not with --peers, which decode greedily',
  },
  topp: { kind: 'atof', default: 0.9, describe: 'top-p of the sampled decode (with --temperature above 0)' },
  passes: { kind: 'text', describe: "compile with these passes ('' or none: one kernel per op); default: the whole pipeline" },
  weights: {
    kind: 'text',
    default: 'stored',
    describe:
      `matrix weights on the device, a row each: stored (as the file holds them), or converted on load to ${weightNames.join(', ')}; ` +
      "or q4_k_m: a GGUF file of llama.cpp's Q4_K_M mix, written once into --gguf-dir. With a peer that runs GGUF files (llama.cpp), " +
      'each row is such a file, which weft and the peer both run',
  },
  matmul: {
    kind: 'text',
    default: 'auto',
    describe:
      "matmuls, a weft row each of every --weights: auto, float, int8 (as run's --matmul), int8-matrix (int8 on the device's subgroup matrices, the tensor cores, where it has int8 ones), or several (float,int8)",
  },
  kernels: { kind: 'switch', default: true, describe: 'profile each kernel and report time per kernel kind (--no-kernels: skip)' },
  'peak-tflops': { kind: 'decimal', describe: "the device's fp32 peak, to report prefill as a share of it (H100 SXM: 67)" },
  'peak-gbps': { kind: 'decimal', describe: "the device's memory bandwidth in GB/s, to report decode as a share of it (H100 SXM: 3350)" },
  'split-k-from': { kind: 'integer', describe: 'decode matmuls split K across invocations from this K on (default 512)' },
  'attention-tile': { kind: 'integer', describe: 'the most query rows and keys of a prefill attention tile: 8, 16 or 32 (default)' },
  'attention-rows': {
    kind: 'switch',
    default: false,
    describe: 'prefill attention one invocation a query row where heads are up to 64 wide, instead of register blocks',
  },
  'attention-group-from': {
    kind: 'integer',
    describe: `keys beyond which decode attention takes the query heads of a kv head in one workgroup (default ${DECODE_GROUP_FROM}; 0: always)`,
  },
  'split-k': { kind: 'integer', describe: 'at most this many K ranges for prefill matmuls whose outputs give few tiles (default 4; 1: never split)' },
  subgroups: { kind: 'switch', default: true, describe: 'reduce with subgroup operations where the device has them (--no-subgroups: workgroup memory alone)' },
  'dawn-toggles': { kind: 'text', describe: `comma-separated Dawn toggles to enable (default ${defaultToggles.join(',')}; none for none)` },
  peers: {
    kind: 'text',
    default: 'none',
    describe:
      'also run each model in these engines: tfjs (TensorFlow.js WebGPU on the same adapter), onnx (onnxruntime-node, its own Dawn on Vulkan), ' +
      'onnx-web (onnxruntime-web on the same adapter), llama.cpp (node-llama-cpp: its Vulkan build where weft runs on a GPU through Vulkan, ' +
      'else its CPU build; it runs the GGUF file weft runs, written for each --weights row); llama-family models only; none: weft alone',
  },
  'gguf-dir': {
    kind: 'output-folder',
    describe: 'where the GGUF files of synthetic models and converted checkpoints are written once and reused (default ${XDG_CACHE_HOME:-~/.cache}/weft)',
  },
  json: { kind: 'output-file', describe: 'also write the rows to FILE as JSON' },
  backend: backendFlag,
};

async function main(): Promise<void> {
  const args = bindFlagValues(hideBin(process.argv), { run: runFlags, chat: chatFlags, inspect: inspectFlags, compile: compileFlags, bench: benchFlags });
  await yargs(args)
    .scriptName('weft')
    .parserConfiguration({ 'parse-numbers': false }) // the flag kinds read numbers (src/cli-flags.ts)
    .command(
      'run <model>',
      'generate text from a llama2.c checkpoint or a Hugging Face folder',
      (y) =>
        y.positional('model', { type: 'string', demandOption: true, describe: modelPath }).options(flagOptions(runFlags)).conflicts('prompt', 'prompt-ids'),
      async (argv) => run(argv as unknown as RunArgs),
    )
    .command(
      'chat <model>',
      "a conversation in the terminal, with the model's chat template; each turn reuses the KV cache of the turns before it",
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'Hugging Face folder or GGUF file with a chat template' })
          .options(flagOptions(chatFlags)),
      async (argv) => chat(argv as unknown as ChatCommandArgs),
    )
    .command(
      'inspect <model>',
      "print a model's IR, or with --memory its tensors and memory plan against the adapter's limits (reads no weight)",
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: modelPath })
          .options(flagOptions(inspectFlags))
          .conflicts('memory', 'graph')
          .implies({ context: 'memory', weights: 'memory', 'prompt-tokens': 'memory', backend: 'memory', json: 'memory' }),
      async (argv) => inspect(argv as unknown as InspectArgs),
    )
    .command(
      'compile <model>',
      "compile a model's graphs or an IR file's through the passes; print the IR, per-pass dumps, the WGSL or stats (opens no GPU)",
      (y) =>
        y
          .positional('model', {
            type: 'string',
            demandOption: true,
            describe: `${modelPath}, a synthetic model (${Object.keys(syntheticConfigs).join(', ')}), or an IR text file (.ir)`,
          })
          .options(flagOptions(compileFlags))
          .implies('dump-dir', 'dump-after'),
      (argv) => compile(argv as unknown as CompileArgs),
    )
    .command(
      'bench',
      'time prefill and decode on the device (median of --runs after warm-ups), with time per kernel kind',
      (y) => y.options(flagOptions(benchFlags)),
      async (argv) => bench(argv as unknown as BenchArgs),
    )
    .demandCommand(1, 'name a command: run, chat, inspect, compile or bench')
    .strict()
    .strictCommands()
    .help()
    .fail((msg, err) => {
      fail(err ? err.message : msg);
    })
    .parseAsync();
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
