#!/usr/bin/env node
// The weft command line: `run` generates from a checkpoint, `inspect` prints a model's IR.
// Every failure is one line on stderr and a non-zero exit; output files are written whole or not at all.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { buildGraphs, loadModel, readCheckpoint, readModelFiles, resolveRequest, type GenerateRequest } from './api.js';
import { printGraph, printModule } from './ir/print.js';

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
  backend?: string;
}

async function run(a: RunArgs): Promise<void> {
  if (a.steps !== undefined && (a.steps < 0 || !Number.isInteger(a.steps))) throw new Error(`--steps must be a whole number >= 0, got ${a.steps}`);
  const request: GenerateRequest = {
    prompt: a.prompt,
    promptIds: a.promptIds !== undefined ? parsePromptIds(a.promptIds) : undefined,
    steps: a.steps,
    temperature: a.temperature,
    topp: a.topp,
    seed: a.seed === 0 ? Math.floor(Date.now() / 1000) : a.seed,
    logits: a.dumpLogits !== undefined,
  };
  const files = readModelFiles(a.model, { tokenizer: a.tokenizer });
  resolveRequest(files, request); // every argument is checked before the GPU opens
  const model = await loadModel(files, { backend: a.backend });
  try {
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    const text: Uint8Array[] = [];
    const ids: number[] = [];
    let prefillCount = 0;
    const start = performance.now();
    let prefillEnd = start;
    for await (const step of model.generate(request)) {
      if (tokens.length === 0) {
        prefillEnd = performance.now();
      }
      tokens.push(step.token);
      if (step.prefill) prefillCount++;
      if (step.logits) logits.push(step.logits.slice());
      if (step.next !== 1) {
        text.push(step.piece);
        ids.push(step.next);
        if (!a.json) process.stdout.write(model.tokenizer ? step.piece : `${step.next} `);
      }
    }
    const end = performance.now();
    const decodeCount = tokens.length - prefillCount;
    const prefillRate = (prefillCount / (prefillEnd - start)) * 1000;
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
        prompt_tokens: prefillCount,
        decode_tokens: decodeCount,
        prefill_tokens_per_s: prefillRate,
        decode_tokens_per_s: decodeRate,
        seed: request.seed,
        backend: model.device.backend,
        adapter: model.device.adapter,
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      process.stdout.write('\n');
      process.stderr.write(
        `prompt: ${prefillCount} tokens at ${prefillRate.toFixed(1)} tok/s; decode: ${decodeCount} tokens at ${decodeRate.toFixed(1)} tok/s (${model.device.backend}: ${model.device.adapter})\n`,
      );
    }
  } finally {
    model.release();
  }
}

async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
    .scriptName('weft')
    .command(
      'run <model>',
      'generate text from a llama2.c checkpoint',
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'llama2.c checkpoint (.bin)' })
          .option('tokenizer', { type: 'string', describe: 'llama2.c tokenizer (.bin); default: tokenizer.bin beside the model' })
          .option('prompt', { type: 'string', describe: 'prompt text, encoded with BOS as run.c does' })
          .option('prompt-ids', { type: 'string', describe: 'comma-separated token ids, fed exactly as given' })
          .conflicts('prompt', 'prompt-ids')
          .option('steps', { type: 'number', describe: 'positions to run, prompt included (default 256 capped at the context; 0: the whole context)' })
          .option('temperature', { type: 'number', default: 1.0, describe: '0 is greedy' })
          .option('topp', { type: 'number', default: 0.9, describe: 'top-p (nucleus) threshold; 0 or 1 samples the whole distribution' })
          .option('seed', { type: 'number', default: 0, describe: 'sampler seed (0: the current time)' })
          .option('json', { type: 'boolean', default: false, describe: 'print one JSON object instead of streaming text' })
          .option('dump-logits', { type: 'string', describe: 'write float32 [positions][vocab] logits to FILE' })
          .option('backend', { type: 'string', describe: 'Dawn backend (vulkan, opengles, …); default: the first that works' })
          .requiresArg(['tokenizer', 'prompt', 'prompt-ids', 'steps', 'temperature', 'topp', 'seed', 'dump-logits', 'backend']),
      async (argv) => run(argv as unknown as RunArgs),
    )
    .command(
      'inspect <model>',
      "print a model's IR",
      (y) =>
        y
          .positional('model', { type: 'string', demandOption: true, describe: 'llama2.c checkpoint (.bin)' })
          .option('graph', { choices: ['prefill', 'decode'] as const, describe: 'one graph (default: both)' }),
      (argv) => {
        const graphs = buildGraphs(readCheckpoint(argv.model).config);
        process.stdout.write(argv.graph ? printGraph(graphs[argv.graph]) : printModule([graphs.prefill, graphs.decode]));
      },
    )
    .demandCommand(1, 'name a command: run or inspect')
    .strict()
    .strictCommands()
    .help()
    .fail((msg, err) => {
      fail(err ? err.message : msg);
    })
    .parseAsync();
}

main().catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
