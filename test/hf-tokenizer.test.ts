// Hugging Face byte-level BPE (src/runtime/hf-tokenizer.ts) on small tokenizer.json files built here: pre-tokenizer
// splits, merge-rank order, added tokens, byte round trips, and the one-line errors readModelFiles reports.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelFiles } from '../src/api.js';
import { runWeft } from './weft-process.js';
import { compilePattern, HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { concatBytes } from '../src/runtime/tokenizer.js';
import { LLAMA3_PATTERN, llama3PreTokenizer, tokenizerJson } from './bpe-fixture.js';

const gpt2Fixture = new URL('../../shared/fixtures/hf/gpt2/', import.meta.url).pathname;

const load = (json: string, vocabSize = 500, config?: Record<string, unknown>): HfTokenizer => HfTokenizer.fromJson(json, vocabSize, 'tokenizer.json', { config });
const decode = (t: HfTokenizer, ids: readonly number[]): Uint8Array => concatBytes(ids.map((id, i) => t.decodePiece(i === 0 ? -1 : ids[i - 1], id)));
const decodeText = (t: HfTokenizer, ids: readonly number[]): string => new TextDecoder().decode(decode(t, ids));
const bytesOf = (s: string): number[] => [...new TextEncoder().encode(s)];

describe('HfTokenizer encode', () => {
  const gpt2 = load(tokenizerJson());
  const llama3 = load(tokenizerJson({ preTokenizer: llama3PreTokenizer }));

  it('merges the lowest rank first: "h e" (rank 1) before "Ġt h" (rank 2) leaves "Ġth e" unused', () => {
    expect(gpt2.encode(' the', false, false)).toEqual([256, 257]);
    const reordered = load(tokenizerJson({ merges: ['Ġ t', 'Ġt h', 'h e', 'Ġth e'] }));
    expect(reordered.encode(' the', false, false)).toEqual([259]);
    expect(reordered.encode('the', false, false)).toEqual([116, 258]);
  });

  it('reads merges given as [a, b] pairs the same as "a b" strings', () => {
    const pairs = load(tokenizerJson({ arrayMerges: true }));
    expect(pairs.encode('the the', false, false)).toEqual(gpt2.encode('the the', false, false));
  });

  it('merges within pre-tokenizer words only', () => {
    // "t h" would merge to "th" if words were not split; " the" is one word
    expect(gpt2.encode('the', false, false)).toEqual([116, 257]);
    expect(gpt2.encode('a the', false, false)).toEqual([97, 256, 257]);
  });

  it('maps every UTF-8 byte to its byte token (non-ASCII, emoji)', () => {
    for (const text of ['héllo 世界', '👍🏽 ok', '\u0000\u0001\u007f']) {
      expect(gpt2.encode(text, false, false)).toEqual(bytesOf(text));
    }
  });

  it('splits whitespace runs as GPT-2 does: the run before a word keeps one space for it', () => {
    const ws = load(tokenizerJson({ merges: ['Ġ Ġ', 'Ġ t'] }));
    expect(ws.encode('a   b', false, false)).toEqual([97, 256, 32, 98]);
    expect(ws.encode('a   t', false, false)).toEqual([97, 256, 257]);
  });

  it('splits contractions: GPT-2 case-sensitively, Llama 3 case-insensitively', () => {
    const split = (pattern: string, text: string): string[] => [...text.matchAll(compilePattern(pattern))].map((m) => m[0]);
    expect(split(LLAMA3_PATTERN, "I'LL don't")).toEqual(['I', "'LL", ' don', "'t"]);
    expect(split(LLAMA3_PATTERN, "'TIL 12345")).toEqual(["'T", 'IL', ' ', '123', '45']);
    const gpt2Pattern = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
    expect(split(gpt2Pattern, "don't I'LL")).toEqual(['don', "'t", ' I', "'", 'LL']);
    // through the tokenizer: merges inside "'L L" apply only where the pattern keeps "'LL" one word
    const merges = ["' L", "'L L"];
    const l3 = load(tokenizerJson({ merges, preTokenizer: llama3PreTokenizer }));
    expect(l3.encode("I'LL", false, false)).toEqual([73, 257]);
    const g2 = load(tokenizerJson({ merges }));
    expect(g2.encode("I'LL", false, false)).toEqual([73, 39, 76, 76]);
  });

  it('matches added tokens literally before BPE', () => {
    expect(gpt2.encode('hi<|endoftext|>the', false, false)).toEqual([104, 105, 260, 116, 257]);
    expect(llama3.encode('<|endoftext|><|endoftext|>', false, false)).toEqual([260, 260]);
  });

  it("prepends the special token a TemplateProcessing post-processor puts first (Llama 3's), unless add_bos_token is false", () => {
    const template = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [261] } },
    };
    const json = JSON.parse(tokenizerJson({ added: ['<|begin_of_text|>'] }));
    const bos = json.added_tokens[0].id;
    for (const post_processor of [template, { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false }, template] }]) {
      const text = JSON.stringify({ ...json, post_processor });
      expect(load(text).encode('a', true, false)).toEqual([bos, 97]);
      expect(load(text).encode('a', false, false)).toEqual([97]);
      expect(load(text, 500, { add_bos_token: false }).encode('a', true, false)).toEqual([97]);
    }
    // a template without a leading special token adds none
    const plain = { ...template, single: [{ Sequence: { id: 'A', type_id: 0 } }] };
    expect(load(JSON.stringify({ ...json, post_processor: plain })).encode('a', true, false)).toEqual([97]);
  });

  it('prepends bos_token only when tokenizer_config.json sets add_bos_token', () => {
    const withBos = load(tokenizerJson(), 500, { add_bos_token: true, bos_token: { content: '<|endoftext|>' } });
    expect(withBos.encode('a', true, false)).toEqual([260, 97]);
    expect(withBos.encode('a', false, false)).toEqual([97]);
    expect(load(tokenizerJson(), 500, { add_bos_token: false, bos_token: '<|endoftext|>' }).encode('a', true, false)).toEqual([97]);
    expect(gpt2.encode('a', true, false)).toEqual([97]);
  });

  it('adds a prefix space when ByteLevel says so', () => {
    const prefixed = load(tokenizerJson({ preTokenizer: { type: 'ByteLevel', add_prefix_space: true } }));
    expect(prefixed.encode('the', false, false)).toEqual([256, 257]);
  });
});

describe('HfTokenizer decode', () => {
  const texts = ['hello world', ' the the  the\n\n', 'héllo 世界', '👍🏽🇫🇷 emoji', "don't I'LL", 'tabs\tand\r\nlines   ', 'x<|endoftext|>y'];
  for (const [name, pre] of [
    ['GPT-2', undefined],
    ['Llama 3', llama3PreTokenizer],
  ] as const) {
    it(`round-trips text through encode and decode (${name})`, () => {
      const t = load(tokenizerJson({ preTokenizer: pre }));
      for (const text of texts) expect(decodeText(t, t.encode(text, false, false))).toBe(text);
    });
  }

  it('gives back the bytes of any id sequence, invalid UTF-8 included', () => {
    const t = load(tokenizerJson());
    const pieces: Record<number, number[]> = { 256: [0x20, 0x74], 257: [0x68, 0x65], 258: [0x20, 0x74, 0x68], 259: [0x20, 0x74, 0x68, 0x65], 260: bytesOf('<|endoftext|>') };
    let seed = 12345;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let trial = 0; trial < 50; trial++) {
      const ids = Array.from({ length: 1 + random(20) }, () => random(261));
      expect([...decode(t, ids)]).toEqual(ids.flatMap((id) => pieces[id] ?? [id]));
    }
    expect(t.printable(Uint8Array.of(0xff, 0x00))).toEqual(Uint8Array.of(0xff, 0x00));
  });

  it('decodes ids the file does not define (model padding) to nothing, and rejects ids beyond the model vocab', () => {
    const t = load(tokenizerJson());
    expect(t.decodePiece(0, 400)).toEqual(new Uint8Array(0));
    expect(() => t.decodePiece(0, 500)).toThrow(/tokenizer\.json: token id 500 is outside the vocabulary of 500/);
  });
});

describe('HfTokenizer errors', () => {
  const error = (json: string, vocabSize = 500): string => {
    try {
      load(json, vocabSize);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };
  const base = JSON.parse(tokenizerJson()) as Record<string, unknown>;
  const edit = (patch: Record<string, unknown>): string => JSON.stringify({ ...base, ...patch });

  it.each([
    ['bad JSON', '{"model": ', /^tokenizer\.json: not valid JSON/],
    ['Unigram', edit({ model: { type: 'Unigram', vocab: [] } }), /^tokenizer\.json: model\.type "Unigram" is not supported/],
    ['WordPiece', edit({ model: { type: 'WordPiece', vocab: {} } }), /^tokenizer\.json: model\.type "WordPiece" is not supported/],
    ['Metaspace', edit({ pre_tokenizer: { type: 'Metaspace' } }), /^tokenizer\.json: pre_tokenizer "Metaspace" is not supported/],
    ['Split Removed', edit({ pre_tokenizer: { type: 'Split', pattern: { Regex: 'a' }, behavior: 'Removed' } }), /^tokenizer\.json: pre_tokenizer Split behavior "Removed"/],
    ['normalizer', edit({ normalizer: { type: 'Lowercase' } }), /^tokenizer\.json: normalizer "Lowercase" is not supported/],
    ['merge outside vocab', tokenizerJson({ model: { merges: ['x y'] } }), /^tokenizer\.json: model\.merges\[0\] makes "xy", which is not in model\.vocab/],
  ])('%s', (_, json, message) => {
    const m = error(json);
    expect(m).toMatch(message);
    expect(m).not.toContain('\n');
  });

  it('ids beyond the model vocabulary', () => {
    expect(error(tokenizerJson(), 200)).toMatch(/^tokenizer\.json: model\.vocab token "È" has id 200, beyond the model's vocabulary of 200$/);
    expect(error(tokenizerJson(), 260)).toMatch(/^tokenizer\.json: added token "<\|endoftext\|>" has id 260, beyond the model's vocabulary of 260$/);
  });
});

describe('readModelFiles with tokenizer.json', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-hf-tok-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const folder = (name: string, json: string, config?: Record<string, unknown>): string => {
    const dir = join(tmp, name);
    cpSync(gpt2Fixture, dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), json);
    if (config) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return dir;
  };

  it('loads tokenizer.json from a checkpoint folder, with tokenizer_config.json beside it', () => {
    const dir = folder('ok', tokenizerJson(), { add_bos_token: true, bos_token: '<|endoftext|>' });
    const { tokenizer } = readModelFiles(dir);
    expect(tokenizer).toBeInstanceOf(HfTokenizer);
    expect(tokenizer?.vocabSize).toBe(500);
    expect(tokenizer?.encode(' the', true, false)).toEqual([260, 256, 257]);
  });

  it('rejects a vocabulary larger than the model\'s, naming the file', () => {
    const dir = folder('big', tokenizerJson({ added: Array.from({ length: 300 }, (_, i) => `<extra_${i}>`) }));
    expect(() => readModelFiles(dir)).toThrow(new RegExp(`^${join(dir, 'tokenizer.json')}: added token "<extra_240>" has id 500, beyond the model's vocabulary of 500$`));
  });

  it('weft run encodes --prompt with it and prints the decode of the generated ids (built CLI, npx tsc -p . first)', () => {
    const dir = folder('cli', tokenizerJson());
    const prompt = 'the é';
    const r = runWeft(['run', dir, '--prompt', prompt, '--steps', '8', '--temperature', '0', '--json'], 90_000);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { tokens: number[]; generated: number[]; prompt_tokens: number; text: string };
    const ids = load(tokenizerJson()).encode(prompt, true, false);
    expect(ids.length).toBeLessThan(8);
    expect(out.prompt_tokens).toBe(ids.length);
    expect(out.tokens.slice(0, ids.length)).toEqual(ids);
    expect(out.generated.length).toBeGreaterThan(0);
    const t = load(tokenizerJson());
    expect(out.text).toBe(`${new TextDecoder().decode(concatBytes(out.generated.map((id) => t.decodePiece(0, id))))}\n`);
  });

  it('rejects an unsupported model type, naming the file', () => {
    const dir = folder('unigram', JSON.stringify({ model: { type: 'Unigram', vocab: [] } }));
    expect(() => readModelFiles(dir)).toThrow(`${join(dir, 'tokenizer.json')}: model.type "Unigram" is not supported (weft reads byte-level BPE)`);
  });
});
