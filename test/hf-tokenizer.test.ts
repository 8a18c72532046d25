// Hugging Face tokenizer.json (src/runtime/hf-tokenizer.ts, over @huggingface/tokenizers) on small files built here:
// merge-rank order, pre-tokenizer splits, added tokens, one BOS, decode and streaming, and the one-line errors
// readModelFiles reports. tokenizers-corpus.test.ts compares real tokenizers with Hugging Face's Rust library.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelFiles } from '../src/api.js';
import { runWeft } from './weft-process.js';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { concatBytes } from '../src/runtime/tokenizer.js';
import { llama3PreTokenizer, tokenizerJson } from './bpe-fixture.js';

const gpt2Fixture = new URL('../../shared/fixtures/hf/gpt2/', import.meta.url).pathname;

const load = (json: string, vocabSize = 500, config?: Record<string, unknown>): HfTokenizer =>
  HfTokenizer.fromJson(json, vocabSize, 'tokenizer.json', { config });
const bytesOf = (s: string): number[] => [...new TextEncoder().encode(s)];
/** What a stream gives for `ids` pushed one by one after `context`, then flushed; each chunk must be whole UTF-8. */
const streamed = (t: HfTokenizer, ids: readonly number[], context: readonly number[] = []): string => {
  const stream = t.stream(context);
  const chunks = [...ids.map((id) => stream.push(id)), stream.flush()];
  const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  for (const chunk of chunks) fatal.decode(chunk);
  return fatal.decode(concatBytes(chunks));
};

describe('HfTokenizer encode', () => {
  const gpt2 = load(tokenizerJson());
  const llama3 = load(tokenizerJson({ preTokenizer: llama3PreTokenizer }));

  it('merges the lowest rank first: "h e" (rank 1) before "Ġt h" (rank 2) leaves "Ġth e" unused', () => {
    expect(gpt2.encode(' the', false)).toEqual([256, 257]);
    const reordered = load(tokenizerJson({ merges: ['Ġ t', 'Ġt h', 'h e', 'Ġth e'] }));
    expect(reordered.encode(' the', false)).toEqual([259]);
    expect(reordered.encode('the', false)).toEqual([116, 258]);
  });

  it('merges words of 64+ chars (the merge tables) as shorter ones (the library): leftmost pair first on ties', () => {
    const t = load(tokenizerJson({ merges: ['a a', 'aa a'] }));
    // "a a" (256) first everywhere, leftmost first, then "aa a" (257) on the one pair it fits
    expect(t.encode('a'.repeat(5), false)).toEqual([256, 257]);
    expect(t.encode('a'.repeat(63), false)).toEqual([...Array(30).fill(256), 257]);
    expect(t.encode('a'.repeat(65), false)).toEqual([...Array(31).fill(256), 257]);
    expect(t.encode(`${'a'.repeat(64)}é`, false)).toEqual([...Array(32).fill(256), ...bytesOf('é')]);
  });

  it('reads merges given as [a, b] pairs the same as "a b" strings', () => {
    const pairs = load(tokenizerJson({ arrayMerges: true }));
    expect(pairs.encode('the the', false)).toEqual(gpt2.encode('the the', false));
  });

  it('merges within pre-tokenizer words only', () => {
    // "t h" would merge to "th" if words were not split; " the" is one word
    expect(gpt2.encode('the', false)).toEqual([116, 257]);
    expect(gpt2.encode('a the', false)).toEqual([97, 256, 257]);
  });

  it('maps every UTF-8 byte to its byte token (non-ASCII, emoji)', () => {
    for (const text of ['héllo 世界', '👍🏽 ok', '\u0000\u0001\u007f']) {
      expect(gpt2.encode(text, false)).toEqual(bytesOf(text));
    }
  });

  it('splits whitespace runs as GPT-2 does: the run before a word keeps one space for it', () => {
    const ws = load(tokenizerJson({ merges: ['Ġ Ġ', 'Ġ t'] }));
    expect(ws.encode('a   b', false)).toEqual([97, 256, 32, 98]);
    expect(ws.encode('a   t', false)).toEqual([97, 256, 257]);
  });

  it('splits contractions: GPT-2 case-sensitively, Llama 3 case-insensitively', () => {
    // merges inside "'L L" apply only where the pattern keeps "'LL" one word
    const merges = ["' L", "'L L"];
    const l3 = load(tokenizerJson({ merges, preTokenizer: llama3PreTokenizer }));
    expect(l3.encode("I'LL", false)).toEqual([73, 257]);
    const g2 = load(tokenizerJson({ merges }));
    expect(g2.encode("I'LL", false)).toEqual([73, 39, 76, 76]);
  });

  it('matches added tokens literally before BPE', () => {
    expect(gpt2.encode('hi<|endoftext|>the', false)).toEqual([104, 105, 260, 116, 257]);
    expect(llama3.encode('<|endoftext|><|endoftext|>', false)).toEqual([260, 260]);
  });

  it('adds what a TemplateProcessing post-processor adds with special, and one BOS where the text starts with it', () => {
    const json = JSON.parse(tokenizerJson({ added: ['<|endoftext|>', '<|begin_of_text|>'] }));
    const bos = 261;
    const template = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [bos], tokens: ['<|begin_of_text|>'] } },
    };
    for (const post_processor of [template, { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false }, template] }]) {
      const t = load(JSON.stringify({ ...json, post_processor }));
      expect(t.encode('a', true)).toEqual([bos, 97]);
      expect(t.encode('a', false)).toEqual([97]);
      expect(t.encode('<|begin_of_text|>a', true)).toEqual([bos, 97]);
      expect(t.encode('<|begin_of_text|>a', false)).toEqual([bos, 97]);
      expect(t.encode('<|begin_of_text|><|begin_of_text|>a', true)).toEqual([bos, bos, 97]);
    }
    // a template without a leading special token adds none
    const plain = { ...template, single: [{ Sequence: { id: 'A', type_id: 0 } }] };
    expect(load(JSON.stringify({ ...json, post_processor: plain })).encode('a', true)).toEqual([97]);
  });

  it('names BOS and EOS from tokenizer_config.json (a string or an object with content)', () => {
    const t = load(tokenizerJson({ added: ['<|endoftext|>', '<s>'] }), 500, { bos_token: { content: '<s>' }, eos_token: '<|endoftext|>' });
    expect(t.specials).toEqual({ bos: { id: 261, text: '<s>' }, eos: { id: 260, text: '<|endoftext|>' } });
    expect(load(tokenizerJson()).specials).toEqual({});
  });

  it('adds a prefix space when ByteLevel says so', () => {
    const prefixed = load(tokenizerJson({ preTokenizer: { type: 'ByteLevel', add_prefix_space: true } }));
    expect(prefixed.encode('the', false)).toEqual([256, 257]);
  });
});

describe('HfTokenizer decode', () => {
  const texts = ['hello world', ' the the  the\n\n', 'héllo 世界', '👍🏽🇫🇷 emoji', "don't I'LL", 'tabs\tand\r\nlines   ', 'x<|endoftext|>y'];
  for (const [name, pre] of [
    ['GPT-2', undefined],
    ['Llama 3', llama3PreTokenizer],
  ] as const) {
    it(`round-trips text through encode and decode, whole and streamed (${name})`, () => {
      const t = load(tokenizerJson({ preTokenizer: pre }));
      for (const text of texts) {
        const ids = t.encode(text, false);
        expect(t.decode(ids)).toBe(text);
        expect(streamed(t, ids)).toBe(text);
        for (let k = 1; k < ids.length; k++) {
          const shown = t.decode(ids.slice(0, k));
          if (text.startsWith(shown)) expect(shown + streamed(t, ids.slice(k), ids.slice(0, k))).toBe(text);
        }
      }
    });
  }

  it('streams whole UTF-8 sequences only: a character split over byte tokens comes with its last byte', () => {
    const t = load(tokenizerJson());
    const stream = t.stream();
    const ids = bytesOf('a世b');
    expect(ids.map((id) => new TextDecoder().decode(stream.push(id)))).toEqual(['a', '', '', '世', 'b']);
    expect(stream.flush()).toEqual(new Uint8Array(0));
  });

  it('streams any id sequence, invalid UTF-8 included, as the decode of the whole', () => {
    const t = load(tokenizerJson());
    let seed = 12345;
    const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let trial = 0; trial < 50; trial++) {
      const ids = Array.from({ length: 1 + random(40) }, () => (random(4) === 0 ? 128 + random(133) : random(261)));
      expect(streamed(t, ids)).toBe(t.decode(ids));
    }
  });

  it('decodes ids the file does not define (model padding) to nothing, and rejects ids beyond the model vocab', () => {
    const t = load(tokenizerJson());
    expect(t.decode([400, 104, 400, 105])).toBe('hi');
    expect(t.decode([])).toBe('');
    expect(streamed(t, [104, ...Array(40).fill(400), 105])).toBe('hi');
    expect(() => t.decode([500])).toThrow(/^tokenizer\.json: token id 500 is outside the vocabulary of 500$/);
    expect(() => t.stream().push(-1)).toThrow(/^tokenizer\.json: token id -1 is outside the vocabulary of 500$/);
  });
});

describe('HfTokenizer errors', () => {
  const error = (json: string, vocabSize = 500, config?: Record<string, unknown>): string => {
    try {
      load(json, vocabSize, config);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };
  const base = JSON.parse(tokenizerJson()) as Record<string, unknown>;
  const edit = (patch: Record<string, unknown>): string => JSON.stringify({ ...base, ...patch });

  it.each([
    ['bad JSON', '{"model": ', /^tokenizer\.json: not valid JSON/],
    ['not an object', '[1, 2]', /^tokenizer\.json: not a JSON object$/],
    [
      'an unknown model type',
      edit({ model: { type: 'Foo', vocab: {} } }),
      /^tokenizer\.json: model\.type "Foo" is not supported \(BPE, WordPiece, Unigram are\)$/,
    ],
    ['an unknown normalizer', edit({ normalizer: { type: 'Foo' } }), /^tokenizer\.json: Unknown Normalizer type: Foo$/],
    ['an unknown pre-tokenizer', edit({ pre_tokenizer: { type: 'Foo' } }), /^tokenizer\.json: Unknown PreTokenizer type: Foo$/],
    ['an unknown decoder', edit({ decoder: { type: 'Foo' } }), /^tokenizer\.json: Unknown Decoder type: Foo$/],
    ['no decoder', JSON.stringify({ ...base, decoder: undefined }), /^tokenizer\.json: Tokenizer must contain a "decoder" property$/],
    [
      'a regex JavaScript cannot read',
      edit({ pre_tokenizer: { type: 'Split', pattern: { Regex: '(?<!a' }, behavior: 'Isolated' } }),
      /^tokenizer\.json: the tokenizers library cannot use its pre_tokenizer \(type "Split"\): a pattern is not a valid regular expression \(Unterminated group\)$/,
    ],
  ])('%s', (_, json, message) => {
    const m = error(json);
    expect(m).toMatch(message);
    expect(m).not.toContain('\n');
  });

  it('ids beyond the model vocabulary', () => {
    expect(error(tokenizerJson(), 200)).toMatch(/^tokenizer\.json: model\.vocab token "È" has id 200, beyond the model's vocabulary of 200$/);
    expect(error(tokenizerJson(), 260)).toMatch(/^tokenizer\.json: added token "<\|endoftext\|>" has id 260, beyond the model's vocabulary of 260$/);
  });

  it('a tokenizer_config.json BOS that is not a token', () => {
    expect(error(tokenizerJson(), 500, { bos_token: '<s>' })).toBe(`tokenizer.json: tokenizer_config.json's bos_token "<s>" is not a token of this tokenizer`);
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
    const dir = folder('ok', tokenizerJson(), { bos_token: '<|endoftext|>' });
    const { tokenizer } = readModelFiles(dir);
    expect(tokenizer).toBeInstanceOf(HfTokenizer);
    expect(tokenizer?.vocabSize).toBe(500);
    expect(tokenizer?.encode(' the', true)).toEqual([256, 257]);
    expect(tokenizer?.specials.bos).toEqual({ id: 260, text: '<|endoftext|>' });
  });

  it("rejects a vocabulary larger than the model's, naming the file", () => {
    const dir = folder('big', tokenizerJson({ added: Array.from({ length: 300 }, (_, i) => `<extra_${i}>`) }));
    expect(() => readModelFiles(dir)).toThrow(
      new RegExp(`^${join(dir, 'tokenizer.json')}: added token "<extra_240>" has id 500, beyond the model's vocabulary of 500$`),
    );
  });

  it('weft run encodes --prompt with it and prints the decode of the generated ids (built CLI, npx tsc -p . first)', () => {
    const dir = folder('cli', tokenizerJson());
    const prompt = 'the é';
    const r = runWeft(['run', dir, '--prompt', prompt, '--steps', '8', '--temperature', '0', '--json'], 90_000);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { tokens: number[]; generated: number[]; prompt_tokens: number; text: string };
    const t = load(tokenizerJson());
    const ids = t.encode(prompt, true);
    expect(ids.length).toBeLessThan(8);
    expect(out.prompt_tokens).toBe(ids.length);
    expect(out.tokens.slice(0, ids.length)).toEqual(ids);
    expect(out.generated.length).toBeGreaterThan(0);
    // the pieces of every position after the first: the decode of all the ids less that of the first
    const all = [ids[0]!, ...out.generated];
    expect(out.text).toBe(`${t.decode(all).slice(t.decode(all.slice(0, 1)).length)}\n`);
  });

  it('rejects an unsupported model type, naming the file', () => {
    const dir = folder('foo', JSON.stringify({ model: { type: 'Foo', vocab: [] } }));
    expect(() => readModelFiles(dir)).toThrow(`${join(dir, 'tokenizer.json')}: model.type "Foo" is not supported (BPE, WordPiece, Unigram are)`);
  });
});
