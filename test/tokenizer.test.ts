// Tokenizer against run.c (llama2.c d986206): encodings and printed text from its reference runs,
// plus hand-built vocabularies for merge order, byte pieces and file validation.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Sampler } from '../src/runtime/sampler.js';
import { concatBytes, Tokenizer } from '../src/runtime/tokenizer.js';

const fixtures = new URL('../../shared/fixtures/llama2c/', import.meta.url);
const fixtureBytes = (name: string): Uint8Array => new Uint8Array(readFileSync(new URL(name, fixtures)));
const fixtureTokens = (name: string): number[] => readFileSync(new URL(name, fixtures), 'utf8').trim().split('\n').map(Number);
const fixtureLogits = (name: string, vocab: number): Float32Array[] => {
  const bytes = fixtureBytes(name);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return Array.from({ length: all.length / vocab }, (_, p) => all.subarray(p * vocab, (p + 1) * vocab));
};

const tokenizerBytes = fixtureBytes('tok512-aidreams.bin');
const tokenizer = Tokenizer.fromBytes(tokenizerBytes, 512, 'tok512-aidreams.bin');
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** A tokenizer file with the given (score, piece) entries; pieces are latin1 strings, one char per byte. */
function tokenizerFile(entries: readonly [number, string][], maxTokenLength = 16): Uint8Array {
  const chunks: Uint8Array[] = [];
  const header = new DataView(new ArrayBuffer(4));
  header.setInt32(0, maxTokenLength, true);
  chunks.push(new Uint8Array(header.buffer));
  for (const [score, piece] of entries) {
    const entry = new DataView(new ArrayBuffer(8 + piece.length));
    entry.setFloat32(0, score, true);
    entry.setInt32(4, piece.length, true);
    for (let i = 0; i < piece.length; i++) entry.setUint8(8 + i, piece.charCodeAt(i));
    chunks.push(new Uint8Array(entry.buffer));
  }
  return concatBytes(chunks);
}

const SPECIALS: [number, string][] = [
  [0, '<unk>'],
  [0, '<s>'],
  [0, '</s>'],
];

/** Byte offset of entry `id` in a tokenizer file. */
function entryOffset(bytes: Uint8Array, id: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 4;
  for (let i = 0; i < id; i++) offset += 8 + view.getInt32(offset + 4, true);
  return offset;
}

function expectOneLineError(run: () => unknown, message: string | RegExp): void {
  let error: unknown;
  try {
    run();
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(Error);
  const text = (error as Error).message;
  expect(text).not.toContain('\n');
  if (typeof message === 'string') expect(text).toBe(message);
  else expect(text).toMatch(message);
}

describe('Tokenizer file', () => {
  it('reads the aidreams vocabulary', () => {
    expect(tokenizer.vocabSize).toBe(512);
    expect(tokenizer.piece(1)).toEqual(utf8('\n<s>\n'));
    expect(tokenizer.piece(2)).toEqual(utf8('\n</s>\n'));
    expect(tokenizer.piece(3 + 0x41)).toEqual(utf8('<0x41>'));
    expect(tokenizer.piece(429)).toEqual(utf8(' '));
    expect(tokenizer.piece(508)).toEqual(utf8('ö'));
    expect(tokenizer.score(262)).toBe(-3);
  });

  it('rejects files that are too short, truncated, malformed or of the wrong vocabulary size', () => {
    const source = 'tok.bin';
    expectOneLineError(() => Tokenizer.fromBytes(tokenizerBytes.slice(0, 2), 512, source), 'tok.bin: too short for a tokenizer header (2 bytes, need 4)');
    const cutInEntry37 = tokenizerBytes.slice(0, entryOffset(tokenizerBytes, 37) + 5);
    expectOneLineError(() => Tokenizer.fromBytes(cutInEntry37, 512, source), 'tok.bin: truncated at token 37 of 512');
    const cutInPiece37 = tokenizerBytes.slice(0, entryOffset(tokenizerBytes, 37) + 9);
    expectOneLineError(() => Tokenizer.fromBytes(cutInPiece37, 512, source), 'tok.bin: truncated at token 37 of 512');
    const first500 = tokenizerBytes.slice(0, entryOffset(tokenizerBytes, 500));
    expectOneLineError(() => Tokenizer.fromBytes(first500, 512, source), 'tok.bin: tokenizer has 500 tokens, model vocabulary is 512');
    expectOneLineError(() => Tokenizer.fromBytes(tokenizerBytes, 500, source), 'tok.bin: tokenizer has 512 tokens, model vocabulary is 500');
    const trailing = concatBytes([tokenizerBytes, Uint8Array.of(1, 2, 3)]);
    expectOneLineError(() => Tokenizer.fromBytes(trailing, 512, source), 'tok.bin: 3 trailing bytes after 512 tokens');

    const negativeLength = tokenizerBytes.slice();
    new DataView(negativeLength.buffer).setInt32(entryOffset(negativeLength, 5) + 4, -3, true);
    expectOneLineError(() => Tokenizer.fromBytes(negativeLength, 512, source), 'tok.bin: token 5 has invalid length -3');
    const absurdLength = tokenizerBytes.slice();
    new DataView(absurdLength.buffer).setInt32(entryOffset(absurdLength, 5) + 4, 0x7fffffff, true);
    expectOneLineError(() => Tokenizer.fromBytes(absurdLength, 512, source), 'tok.bin: token 5 has invalid length 2147483647');

    const garbage = Uint8Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) & 0xff);
    expectOneLineError(() => Tokenizer.fromBytes(garbage, 512, source), /^tok\.bin: /);
    const longPiece = tokenizerFile([...SPECIALS, [0, 'abcdef']], 5);
    expectOneLineError(() => Tokenizer.fromBytes(longPiece, 4, source), 'tok.bin: token 3 is 6 bytes, longer than max_token_length 5');
  });
});

describe('Tokenizer.encode', () => {
  it('encodes the aidreams prompt as the run.c reference run did', () => {
    const tokens = tokenizer.encode('I dream of a quiet city', true, false);
    expect(tokens).toEqual([1, 303, 281, 269, 435, 447, 275, 262, 429, 472, 444, 432, 323, 273, 297, 451]);
    expect(fixtureTokens('aidreams-prompt.tokens.txt').slice(0, tokens.length)).toEqual(tokens);
  });

  // Expected ids from run.c's encode (d986206) with tok512-aidreams.bin.
  it.each([
    ['hello world', [1, 309, 375, 438, 437, 272, 284, 438, 441]],
    ['a', [1, 262]],
    [' ', [1, 429, 429]],
    ['\t\n', [1, 429, 12, 13]],
    ['  two  spaces', [1, 429, 429, 263, 449, 437, 429, 420, 435, 404]],
    ['héllo 世界', [1, 309, 198, 172, 438, 438, 437, 429, 231, 187, 153, 234, 152, 143]],
    ['naïve café', [1, 324, 435, 198, 178, 339, 273, 435, 443, 198, 172]],
    ['Ö ö °C', [1, 429, 198, 153, 429, 508, 429, 503, 465]],
    ['µλε', [1, 429, 197, 184, 510, 509]],
    ['😀!', [1, 429, 243, 162, 155, 131, 36]],
    ['<0x41>', [1, 429, 63, 464, 458, 484, 469, 65]],
  ])('encodes %j with byte fallback and merges', (text, expected) => {
    expect(tokenizer.encode(text, true, false)).toEqual(expected);
  });

  it('encodes invalid UTF-8 byte by byte, grouping at most 4 bytes per codepoint', () => {
    expect(tokenizer.encode(Uint8Array.of(0x80, 0x80, 0x41), true, false)).toEqual([1, 429, 131, 131, 471]);
    expect(tokenizer.encode(Uint8Array.of(0xf0, 0x9f, 0x98, 0x80, 0x80, 0x80), true, false)).toEqual([1, 429, 243, 162, 155, 131, 131, 131]);
    expect(tokenizer.encode(Uint8Array.of(0xc3, 0x41), true, false)).toEqual([1, 429, 198, 471]);
    expect(tokenizer.encode(Uint8Array.of(0xe4, 0xb8), true, false)).toEqual([1, 429, 231, 187]);
  });

  it('adds BOS/EOS on request and the dummy prefix only for non-empty text, stopping at NUL', () => {
    expect(tokenizer.encode('', false, true)).toEqual([2]);
    expect(tokenizer.encode('', true, true)).toEqual([1, 2]);
    expect(tokenizer.encode('x', false, true)).toEqual([429, 458, 2]);
    expect(tokenizer.encode('x', true, true)).toEqual([1, 429, 458, 2]);
    expect(tokenizer.encode('a\0b', true, false)).toEqual(tokenizer.encode('a', true, false));
  });

  it('merges the leftmost pair on equal scores', () => {
    const tie = Tokenizer.fromBytes(tokenizerFile([...SPECIALS, [0, ' '], [0, 'a'], [0, 'b'], [1, 'ab'], [1, 'ba']]), 8);
    expect(tie.encode('aba', false, false)).toEqual([3, 6, 4]);
    expect(tie.encode('abab', false, false)).toEqual([3, 6, 6]);
  });

  it('never merges into a piece scored -1e10 or lower (the initial best score)', () => {
    const floor = Tokenizer.fromBytes(tokenizerFile([...SPECIALS, [0, ' '], [0, 'a'], [0, 'b'], [-1e10, 'ab'], [-9.9e9, 'ba']]), 8);
    expect(floor.encode('ab', false, false)).toEqual([3, 4, 5]);
    expect(floor.encode('ba', false, false)).toEqual([3, 7]);
    expect(floor.encode('aba', false, false)).toEqual([3, 4, 7]);
  });

  it('merges across BOS and the dummy prefix, as run.c does', () => {
    const bosMerge = Tokenizer.fromBytes(tokenizerFile([...SPECIALS, [0, ' '], [0, 'a'], [0, 'b'], [5, '<s> '], [1, ' a']]), 8);
    expect(bosMerge.encode('a', true, false)).toEqual([6, 4]);
    expect(bosMerge.encode('aa', true, false)).toEqual([6, 4, 4]);
  });

  it('resolves duplicate pieces to the id that bsearch over the strcmp-sorted vocabulary finds', () => {
    const pieces: [number, string][] = [...SPECIALS, [0, ' '], [0, 'a'], [0, 'b'], [0, 'xy'], [0, 'x'], [0, 'y'], [0, 'a'], [3, 'xy'], [0, 'a']];
    const duplicates = Tokenizer.fromBytes(tokenizerFile(pieces), 12);
    expect(duplicates.encode('a', false, false)).toEqual([3, 11]);
    expect(duplicates.encode('xy', false, false)).toEqual([3, 6]);
    expect(duplicates.encode('axy', false, false)).toEqual([3, 11, 6]);
  });

  it('rejects a vocabulary without a " " piece or too small for byte fallback', () => {
    const noSpace = Tokenizer.fromBytes(tokenizerFile([...SPECIALS, [0, 'a']]), 4, 'nospace.bin');
    expectOneLineError(() => noSpace.encode('a', true, false), 'nospace.bin: no " " token for the dummy prefix');
    const small = Tokenizer.fromBytes(tokenizerFile([...SPECIALS, [0, ' ']]), 4, 'small.bin');
    expectOneLineError(() => small.encode('z', true, false), 'small.bin: byte-fallback token 125 is outside the vocabulary of 4');
  });
});

describe('Tokenizer.decodePiece / safePiece', () => {
  it('drops the leading space after BOS and turns <0xXX> pieces into bytes', () => {
    expect(tokenizer.decodePiece(1, 262)).toEqual(utf8('a'));
    expect(tokenizer.decodePiece(5, 262)).toEqual(utf8(' a'));
    expect(tokenizer.decodePiece(5, 3 + 0x41)).toEqual(utf8('A'));
    expect(tokenizer.decodePiece(5, 3 + 0x0a)).toEqual(utf8('\n'));
    expect(tokenizer.decodePiece(5, 3 + 0xc3)).toEqual(Uint8Array.of(0xc3));
    expect(tokenizer.decodePiece(5, 508)).toEqual(utf8('ö'));
    expect(tokenizer.decodePiece(5, 2)).toEqual(utf8('\n</s>\n'));
  });

  it('prints nothing for empty pieces and lone bytes that are neither printable nor whitespace in the C locale', () => {
    const print = (prev: number, token: number): Uint8Array => Tokenizer.safePiece(tokenizer.decodePiece(prev, token));
    expect(print(5, 3 + 0x00)).toEqual(new Uint8Array(0));
    expect(print(5, 3 + 0x07)).toEqual(new Uint8Array(0));
    expect(print(5, 3 + 0x7f)).toEqual(new Uint8Array(0));
    expect(print(5, 3 + 0xc3)).toEqual(new Uint8Array(0));
    expect(print(5, 3 + 0x09)).toEqual(utf8('\t'));
    expect(print(5, 3 + 0x20)).toEqual(utf8(' '));
    expect(print(5, 3 + 0x7e)).toEqual(utf8('~'));
    expect(print(1, 429)).toEqual(new Uint8Array(0));
    expect(print(5, 508)).toEqual(utf8('ö'));
    expect(Tokenizer.safePiece(Uint8Array.of(0x61, 0, 0x62))).toEqual(utf8('a'));
  });

  it('reads byte pieces the way glibc sscanf("<0x%02hhX>") does', () => {
    // Expected bytes from glibc 2.36 sscanf; null = not a byte piece.
    const cases: [string, number | null][] = [
      ['<0x41>', 0x41],
      ['<0x4>', 0x04],
      ['<0x411>', 0x41],
      ['<0x-1>', 0xff],
      ['<0x-f>', 0xf1],
      ['<0x+A>', 0x0a],
      ['<0x 7f>', 0x7f],
      ['<0x0x5>', 0x00],
      ['<0xZZ>', null],
      ['<0x', null],
      ['<0X41>', null],
      ['x<0x41>', null],
    ];
    const probe = Tokenizer.fromBytes(tokenizerFile([...SPECIALS, ...cases.map(([piece]): [number, string] => [0, piece])]), 3 + cases.length);
    cases.forEach(([piece, byte], i) => {
      expect(probe.decodePiece(5, 3 + i), piece).toEqual(byte === null ? utf8(piece) : Uint8Array.of(byte));
    });
  });

  it.each([
    ['aidreams-greedy', 128],
    ['aidreams-prompt', 100],
    ['aidreams-topp', 66],
  ])('reproduces what run.c printed for %s', (name, steps) => {
    const tokens = fixtureTokens(`${name}.tokens.txt`);
    expect(tokens).toHaveLength(steps);
    // run.c also prints the token sampled at the last position unless it is BOS, which ends the run
    // (aidreams-topp); the greedy runs stop at -n, so their last sample is the argmax of the last logits.
    const logits = fixtureLogits(`${name}.logits.f32`, 512);
    const last = name === 'aidreams-topp' ? 1 : new Sampler(512, 0, 0.9, 1).sample(logits[logits.length - 1]);
    const printed = last === 1 ? tokens : [...tokens, last];
    const stdout = concatBytes([tokenizer.decode(printed), utf8('\n')]);
    expect(Buffer.from(stdout).toString('latin1')).toBe(Buffer.from(fixtureBytes(`${name}.stdout.txt`)).toString('latin1'));

    const pieceByPiece = concatBytes(printed.slice(1).map((token, i) => Tokenizer.safePiece(tokenizer.decodePiece(printed[i], token))));
    expect(pieceByPiece).toEqual(tokenizer.decode(printed));
    // the stream generation uses: after the first token, one push per token, nothing held back
    const stream = tokenizer.stream(printed.slice(0, 1));
    expect(concatBytes([...printed.slice(1).map((id) => stream.push(id)), stream.flush()])).toEqual(tokenizer.decode(printed));
  });
});

describe('Tokenizer as a TextTokenizer', () => {
  it("encode(text, special): special is run.c's BOS", () => {
    expect(tokenizer.encode('a', true)).toEqual([1, ...tokenizer.encode('a', false)]);
    expect(tokenizer.encode('a', false)[0]).not.toBe(1);
  });

  it("stream: run.c's printing after the last context id (BOS drops a leading space), and nothing to flush", () => {
    expect(tokenizer.stream([1]).push(262)).toEqual(utf8('a'));
    expect(tokenizer.stream([1, 5]).push(262)).toEqual(utf8(' a'));
    expect(tokenizer.stream().push(262)).toEqual(utf8(' a'));
    const stream = tokenizer.stream([5]);
    expect(stream.push(3 + 0xc3)).toEqual(new Uint8Array(0));
    expect(stream.flush()).toEqual(new Uint8Array(0));
  });

  it('names BOS and EOS by their pieces', () => {
    expect(tokenizer.specials.bos?.id).toBe(1);
    expect(tokenizer.specials.eos?.id).toBe(2);
    expect(tokenizer.specials.eos?.text).toBe(new TextDecoder().decode(tokenizer.piece(2)));
  });
});
