// llama.cpp itself, through node-llama-cpp's CPU build, as the outside reference for GGUF files: greedy
// decoding from prompt ids fed as they are (no tokenizer, no BOS added), with each step's whole next-token
// distribution. One thread, no GPU, a float32 KV cache: the same file and ids give the same numbers. And its
// tokenizer of a file, tokenize and detokenize.
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type Llama, type LlamaContextSequence, type Token } from 'node-llama-cpp';

export interface LlamaCppStep {
  /** the greedy token (the largest logit, the lowest id on a tie) */
  readonly token: number;
  /** softmax of llama.cpp's logits (in float32), indexed by token id */
  readonly probabilities: Float32Array;
  /**
   * llama.cpp's logits less their largest, as ln(p / p_max): node-llama-cpp hands out the softmax of the
   * logits, not the logits. Good to float32 rounding; -Infinity where p underflowed.
   */
  readonly logits: Float32Array;
}

/**
 * llama.cpp's greedy run of each file after `promptIds`: `steps` steps, the first after the last prompt
 * token, each later one after the token the step before chose. Everything opened is released on return.
 */
export async function llamaCppGreedy(paths: readonly string[], promptIds: readonly number[], steps: number): Promise<LlamaCppStep[][]> {
  // build 'never': a missing or broken prebuilt binary fails here rather than starting a llama.cpp build
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1 });
  try {
    const runs: LlamaCppStep[][] = [];
    for (const path of paths) runs.push(await greedyRun(llama, path, promptIds, steps));
    return runs;
  } finally {
    await llama.dispose();
  }
}

async function greedyRun(llama: Llama, path: string, promptIds: readonly number[], steps: number): Promise<LlamaCppStep[]> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  try {
    const context = await model.createContext({
      contextSize: promptIds.length + steps,
      batchSize: promptIds.length,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    });
    try {
      const sequence = context.getSequence();
      const out: LlamaCppStep[] = [];
      for (let ids = promptIds; out.length < steps; ids = [out[out.length - 1]!.token]) out.push(await nextStep(sequence, ids));
      return out;
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Feeds `ids`, then takes the greedy token and the distribution after the last of them. */
async function nextStep(sequence: LlamaContextSequence, ids: readonly number[]): Promise<LlamaCppStep> {
  const last = ids.length - 1;
  // node-llama-cpp brands token ids; these are the file's ids as they are
  const tokens = ids as readonly Token[];
  // temperature 0 is llama.cpp's greedy sampler alone, which picks a token and leaves the logits as they are
  const input = tokens.map((id, i): ControlledEvaluateInputItem =>
    i === last ? [id, { generateNext: { token: true, probabilities: true, options: { temperature: 0 } } }] : id,
  );
  const results = await sequence.controlledEvaluate(input);
  const next = results[last]?.next;
  if (next?.token == null || !next.probabilities) throw new Error(`llama.cpp gave no token after position ${sequence.nextTokenIndex - 1}`);
  // the map holds every token of the vocabulary
  const probabilities = new Float32Array(next.probabilities.size);
  for (const [id, p] of next.probabilities) probabilities[id] = p;
  const top = probabilities[next.token]!;
  return { token: next.token, probabilities, logits: probabilities.map((p) => Math.log(p / top)) };
}

/** llama.cpp's tokenizer of a GGUF file, read alone (vocab_only: no tensors are needed). */
export interface LlamaCppTokenizer {
  /** llama_tokenize with special-token text parsed, as llama.cpp's chat does; no BOS (node-llama-cpp passes add_special false) */
  tokenize(text: string): number[];
  /** llama_detokenize with special tokens written out and kept */
  detokenize(ids: readonly number[]): string;
  dispose(): Promise<void>;
}

export async function llamaCppTokenizer(path: string): Promise<LlamaCppTokenizer> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1 });
  try {
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true });
    return {
      tokenize: (text) => model.tokenize(text, true).map(Number),
      detokenize: (ids) => model.detokenize(ids as readonly Token[], true),
      dispose: async () => {
        await model.dispose();
        await llama.dispose();
      },
    };
  } catch (e) {
    await llama.dispose();
    throw e;
  }
}
