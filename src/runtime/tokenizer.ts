// llama2.c tokenizer (.bin: int32 max_token_length, then per token float32 score, int32 length, bytes):
// encode and decode reproduce run.c byte for byte. Text is handled as UTF-8 bytes throughout, and pieces
// compare as C strings (up to their first NUL), as run.c's strcmp/sprintf/printf see them.

/** What generation, chat and the CLI need of a tokenizer: llama2.c's (Tokenizer) or Hugging Face's (HfTokenizer). */
export interface TextTokenizer {
  /** the file it was read from, for messages */
  readonly source: string;
  /** the model's vocabulary size */
  readonly vocabSize: number;
  /**
   * Text to ids. With `special`, the tokenizer's own additions: llama2.c's BOS (run.c's), or what tokenizer.json's
   * post-processor adds (BOS for Llama-style tokenizers, nothing for Qwen's); never a BOS the text already starts with.
   */
  encode(text: string, special: boolean): number[];
  /** A decoder for ids that arrive one at a time, after the ids `context` (e.g. a prompt) already shown. */
  stream(context?: readonly number[]): TokenStream;
  /** BOS and EOS as text and id, where the tokenizer names them (chat templates write them as text) */
  readonly specials: SpecialTokens;
}

export interface SpecialToken {
  readonly id: number;
  readonly text: string;
}

export interface SpecialTokens {
  readonly bos?: SpecialToken;
  readonly eos?: SpecialToken;
}

/** Streaming decode: what each new id makes printable. The bytes pushed and flushed, in order, are the whole decode. */
export interface TokenStream {
  /** The bytes `id` completes: whole UTF-8 sequences only for text tokenizers (llama2.c's: the bytes run.c prints). */
  push(id: number): Uint8Array;
  /** what is still held back at the end (an incomplete sequence the next id did not complete) */
  flush(): Uint8Array;
}

const BOS = 1;
const EOS = 2;
const BYTE_FALLBACK_OFFSET = 3; // byte b falls back to token b + 3: after <unk>, <s>, </s>
const MAX_PIECE_BYTES = 1 << 16;
const EMPTY = new Uint8Array(0);

export class Tokenizer implements TextTokenizer {
  private constructor(
    private readonly pieces: readonly Uint8Array[],
    private readonly scores: Float32Array,
    /** Each piece as a C string, one char per byte: the key of `idByKey`. */
    private readonly keys: readonly string[],
    /** C-string key -> the id run.c's str_lookup finds for it. */
    private readonly idByKey: ReadonlyMap<string, number>,
    readonly source: string,
    readonly specials: SpecialTokens,
  ) {}

  /** Parses a tokenizer file that must hold exactly `vocabSize` entries (the model's vocabulary). */
  static fromBytes(bytes: Uint8Array, vocabSize: number, source = 'tokenizer'): Tokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) {
      throw new Error(`${source}: vocabulary size must be a positive integer, got ${vocabSize}`);
    }
    if (bytes.length < 4) {
      throw new Error(`${source}: too short for a tokenizer header (${bytes.length} bytes, need 4)`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const maxTokenLength = view.getInt32(0, true);
    if (maxTokenLength < 0 || maxTokenLength > MAX_PIECE_BYTES) {
      throw new Error(`${source}: invalid max_token_length ${maxTokenLength}`);
    }
    const pieces: Uint8Array[] = [];
    const scores = new Float32Array(vocabSize);
    let offset = 4;
    for (let id = 0; id < vocabSize; id++) {
      const entry = readEntry(view, offset);
      if (entry.kind === 'end') {
        throw new Error(`${source}: tokenizer has ${id} tokens, model vocabulary is ${vocabSize}`);
      }
      if (entry.kind === 'truncated') throw new Error(`${source}: truncated at token ${id} of ${vocabSize}`);
      if (entry.kind === 'bad-length') throw new Error(`${source}: token ${id} has invalid length ${entry.length}`);
      if (entry.length > maxTokenLength) {
        throw new Error(`${source}: token ${id} is ${entry.length} bytes, longer than max_token_length ${maxTokenLength}`);
      }
      scores[id] = view.getFloat32(offset, true);
      pieces.push(bytes.slice(entry.start, entry.end));
      offset = entry.end;
    }
    if (offset < bytes.length) {
      let extra = 0;
      for (let entry = readEntry(view, offset); entry.kind === 'ok'; entry = readEntry(view, offset)) {
        extra++;
        offset = entry.end;
      }
      if (offset === bytes.length) {
        throw new Error(`${source}: tokenizer has ${vocabSize + extra} tokens, model vocabulary is ${vocabSize}`);
      }
      throw new Error(`${source}: ${bytes.length - offset} trailing bytes after ${vocabSize + extra} tokens`);
    }
    const keys = pieces.map((piece) => byteKey(cString(piece)));
    return new Tokenizer(pieces, scores, keys, lookupTable(keys), source, specialTokens(pieces));
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** A copy of the raw bytes of token `id` as stored in the file. */
  piece(id: number): Uint8Array {
    return this.pieces[this.checkId(id)].slice();
  }

  score(id: number): number {
    return this.scores[this.checkId(id)];
  }

  /**
   * run.c's encode: optional BOS, a dummy-prefix " " token for non-empty text, one token per UTF-8
   * codepoint (or per byte when the codepoint is not in the vocabulary), then greedy merges of the
   * adjacent pair whose concatenation has the highest score (the leftmost on ties), optional EOS.
   * Bytes after a NUL are ignored, as C would. `special` is run.c's BOS.
   */
  encode(text: string | Uint8Array, special: boolean, eos = false): number[] {
    const encoded = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    const bytes = cString(encoded);
    const tokens: number[] = [];
    if (special) tokens.push(BOS);
    if (bytes.length > 0) {
      const space = this.idByKey.get(' ');
      if (space === undefined) throw new Error(`${this.source}: no " " token for the dummy prefix`);
      tokens.push(space);
    }

    let codepoint: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i] & 0xc0) !== 0x80) codepoint = [];
      codepoint.push(bytes[i]);
      const next = i + 1 < bytes.length ? bytes[i + 1] : 0;
      if ((next & 0xc0) === 0x80 && codepoint.length < 4) continue;
      const id = this.idByKey.get(String.fromCharCode(...codepoint));
      if (id !== undefined) {
        tokens.push(id);
      } else {
        for (const byte of codepoint) tokens.push(this.checkByteFallback(byte + BYTE_FALLBACK_OFFSET));
      }
      codepoint = [];
    }

    for (;;) {
      let bestScore = -1e10;
      let bestId = -1;
      let bestIndex = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = this.idByKey.get(this.keys[tokens[i]] + this.keys[tokens[i + 1]]);
        if (id !== undefined && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          bestId = id;
          bestIndex = i;
        }
      }
      if (bestIndex === -1) break;
      tokens.splice(bestIndex, 2, bestId);
    }

    if (eos) tokens.push(EOS);
    return tokens;
  }

  /**
   * run.c's decode: the piece of `token` (as a C string), without its leading space right after BOS;
   * a piece that sscanf reads as "<0x%02hhX>" becomes that single byte.
   */
  decodePiece(prev: number, token: number): Uint8Array {
    let piece = cString(this.pieces[this.checkId(token)]);
    if (prev === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const byte = scanBytePiece(piece);
    return byte === undefined ? piece.slice() : Uint8Array.of(byte);
  }

  /** What run.c prints while generating `tokens`: the piece of each token after the first, through safePiece. */
  decode(tokens: readonly number[]): Uint8Array {
    const printed = this.stream(tokens.slice(0, 1));
    return concatBytes(tokens.slice(1).map((id) => printed.push(id)));
  }

  /** run.c's safe_printf: the bytes printf("%s") writes, or nothing for a lone byte that is neither printable nor whitespace. */
  static safePiece(piece: Uint8Array): Uint8Array {
    const text = cString(piece);
    if (text.length === 0) return EMPTY;
    if (text.length === 1 && !(isPrint(text[0]) || isSpace(text[0]))) return EMPTY;
    return text.slice();
  }

  /** run.c's printing: each id's piece after the one before it (the last of `context` first), through safePiece. */
  stream(context: readonly number[] = []): TokenStream {
    let prev = context.length > 0 ? context[context.length - 1] : -1;
    return {
      push: (id: number): Uint8Array => {
        const piece = Tokenizer.safePiece(this.decodePiece(prev, id));
        prev = id;
        return piece;
      },
      flush: (): Uint8Array => EMPTY,
    };
  }

  private checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length) {
      throw new Error(`${this.source}: token id ${id} is outside the vocabulary of ${this.pieces.length}`);
    }
    return id;
  }

  private checkByteFallback(id: number): number {
    if (id >= this.pieces.length) {
      throw new Error(`${this.source}: byte-fallback token ${id} is outside the vocabulary of ${this.pieces.length}`);
    }
    return id;
  }
}

/** run.c's BOS and EOS, with their pieces as text, where the vocabulary has them. */
function specialTokens(pieces: readonly Uint8Array[]): SpecialTokens {
  const token = (id: number): SpecialToken | undefined => (id < pieces.length ? { id, text: new TextDecoder().decode(cString(pieces[id])) } : undefined);
  const bos = token(BOS);
  const eos = token(EOS);
  return { ...(bos && { bos }), ...(eos && { eos }) };
}

/** Concatenates byte chunks, e.g. decoded pieces, into one array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Key -> id as run.c's str_lookup resolves it: bsearch over the vocabulary sorted by strcmp with glibc's
 * (stable, merge-sort) qsort. Only pieces that occur more than once need the search; the rest map to their id.
 */
function lookupTable(keys: readonly string[]): Map<string, number> {
  const table = new Map<string, number>();
  const duplicated = new Set<string>();
  keys.forEach((key, id) => (table.has(key) ? duplicated.add(key) : table.set(key, id)));
  if (duplicated.size === 0) return table;
  const sorted = keys.map((_, id) => id).sort((a, b) => compareBytes(keys[a], keys[b]));
  for (const key of duplicated) {
    let low = 0;
    let high = sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const order = compareBytes(key, keys[sorted[middle]]);
      if (order === 0) {
        table.set(key, sorted[middle]);
        break;
      }
      if (order < 0) high = middle;
      else low = middle + 1;
    }
  }
  return table;
}

/** strcmp order of two byte keys (one char per byte, so code-unit order is unsigned byte order). */
function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

type Entry = { kind: 'ok'; start: number; end: number; length: number } | { kind: 'end' } | { kind: 'truncated' } | { kind: 'bad-length'; length: number };

function readEntry(view: DataView, offset: number): Entry {
  if (offset === view.byteLength) return { kind: 'end' };
  if (offset + 8 > view.byteLength) return { kind: 'truncated' };
  const length = view.getInt32(offset + 4, true);
  if (length < 0 || length > MAX_PIECE_BYTES) return { kind: 'bad-length', length };
  const start = offset + 8;
  if (start + length > view.byteLength) return { kind: 'truncated' };
  return { kind: 'ok', start, end: start + length, length };
}

/** The bytes before the first NUL, as C string functions see them. */
function cString(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

function byteKey(bytes: Uint8Array): string {
  let key = '';
  for (const byte of bytes) key += String.fromCharCode(byte);
  return key;
}

/** glibc sscanf(piece, "<0x%02hhX>", &byte) == 1: whitespace skip, optional sign, optional 0x, at most 2 chars. */
function scanBytePiece(piece: Uint8Array): number | undefined {
  if (piece.length < 3 || piece[0] !== 0x3c || piece[1] !== 0x30 || piece[2] !== 0x78) return undefined;
  let i = 3;
  while (i < piece.length && isSpace(piece[i])) i++;
  let width = 2;
  let negative = false;
  if (piece[i] === 0x2b || piece[i] === 0x2d) {
    negative = piece[i] === 0x2d;
    i++;
    width--;
  }
  let value = 0;
  let digits = 0;
  if (width > 0 && piece[i] === 0x30) {
    digits++;
    i++;
    width--;
    if (width > 0 && (piece[i] === 0x78 || piece[i] === 0x58)) {
      i++;
      width--;
    }
  }
  for (; width > 0 && i < piece.length && hexDigit(piece[i]) >= 0; i++, width--) {
    value = value * 16 + hexDigit(piece[i]);
    digits++;
  }
  if (digits === 0) return undefined;
  return (negative ? -value : value) & 0xff;
}

function hexDigit(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

/** C isprint in the "C" locale (run.c never calls setlocale). */
function isPrint(byte: number): boolean {
  return byte >= 0x20 && byte <= 0x7e;
}

/** C isspace in the "C" locale. */
function isSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}
