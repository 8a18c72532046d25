// Hugging Face tokenizer.json through @huggingface/tokenizers: encode, exact decode (no clean-up, specials kept),
// and a streaming decoder whose chunks are whole UTF-8 sequences adding up to the decode of everything pushed.
import { Tokenizer as LibraryTokenizer } from '@huggingface/tokenizers';
import { errorLine, excerpt, isJsonObject, ownField, parseJson } from '../file-input.js';
import { installLongWordMerges, type LibraryBpeModel } from './bpe-merges.js';
import type { SpecialToken, SpecialTokens, TextTokenizer, TokenStream } from './tokenizer.js';

export interface HfTokenizerOptions {
  /** tokenizer_config.json's parsed content, if any: bos_token / eos_token, and what the library reads of it */
  readonly config?: Record<string, unknown>;
}

/** Context ids a stream decodes again, so that the first new id's leading-space rules see what came before it. */
const STREAM_CONTEXT = 5;
/** Ids a stream holds back while the text still ends in U+FFFD; beyond them it emits the text as it is. */
const STREAM_PENDING = 16;
const REPLACEMENT = '\uFFFD';

/** What weft calls of the library's Tokenizer (its published types do not resolve under NodeNext). */
interface Library {
  readonly model: unknown;
  encode(text: string, options: { add_special_tokens: boolean }): { ids: (number | undefined)[]; tokens: string[] };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}
const utf8 = new TextEncoder();
/** tokenizer.json model types the library reads */
const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram'];

/** The parts of a tokenizer.json the library builds besides its model and added tokens. */
const PARTS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;
/** Text a tokenizer encodes and decodes once when it loads: letters, digits, runs of spaces, punctuation, other scripts, an emoji. */
const PROBE = 'Hello, world! 123  4567\n\tÜber café 日本語 مرحبا 😀';

/** The library's tokenizer, after one encode and decode of PROBE (some parts fail only when they first run). */
function probedLibrary(json: Record<string, unknown>, config: Record<string, unknown>): Library {
  const library = new LibraryTokenizer(json, config) as Library;
  const ids = library.encode(PROBE, { add_special_tokens: true }).ids.filter((id): id is number => id !== undefined && library.id_to_token(id) !== undefined);
  if (ids.length > 0) library.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  return library;
}

/**
 * The library's tokenizer for `json`, or one line saying what it cannot use. Where its failure is an internal
 * error (a field of the wrong type surfaces as "x.replace is not a function"), the part is found by building the
 * model and added tokens alone, then with each part in turn.
 */
function usableLibrary(json: Record<string, unknown>, config: Record<string, unknown>, fail: (msg: string) => never): Library {
  try {
    return probedLibrary(json, config);
  } catch (e) {
    // the library's own messages ("Unknown Decoder type: Foo") say what is wrong; JavaScript's about a pattern it
    // cannot compile quote the whole pattern, so the part is found and the reason alone kept
    const message = String((e as Error).message);
    const badPattern = e instanceof SyntaxError && /^Invalid regular expression: /.test(message);
    const internal = badPattern || e instanceof TypeError || e instanceof RangeError || /\[object \w+\]/.test(message);
    if (!internal) return fail(errorLine(e));
    const why = badPattern ? `: a pattern is not a valid regular expression (${errorLine(message.slice(message.lastIndexOf(': ') + 2), 60)})` : '';
    const bare: Record<string, unknown> = { ...json, ...Object.fromEntries(PARTS.map((p) => [p, null])) };
    const fails = (j: Record<string, unknown>): boolean => {
      try {
        probedLibrary(j, config);
        return false;
      } catch {
        return true;
      }
    };
    if (fails(bare)) return fail(`the tokenizers library cannot use its model or added_tokens${typeText(json.model)}${why}`);
    const part = PARTS.find((p) => fails({ ...bare, [p]: json[p] }));
    return fail(
      part
        ? `the tokenizers library cannot use its ${part}${typeText(json[part])}${why}`
        : `the tokenizers library cannot use its ${PARTS.join(', ')} together${why}`,
    );
  }
}

/** " (type X)" for a part whose type is given. */
const typeText = (part: unknown): string => (isJsonObject(part) && part.type !== undefined ? ` (type ${excerpt(part.type)})` : '');

export class HfTokenizer implements TextTokenizer {
  private constructor(
    readonly source: string,
    /** the model's vocabulary: ids below it that the file does not define decode to nothing */
    readonly vocabSize: number,
    private readonly library: Library,
    readonly specials: SpecialTokens,
  ) {}

  /** Parses tokenizer.json text; every id must be below `vocabSize` (the model's vocabulary). */
  static fromJson(text: string, vocabSize: number, source = 'tokenizer.json', options: HfTokenizerOptions = {}): HfTokenizer {
    // the library walks the file's pre-tokenizers, normalizers and processors recursively: nesting is checked first
    return HfTokenizer.fromObject(parseJson(text, source), vocabSize, source, options);
  }

  /** A tokenizer.json already parsed (or built from another format's metadata, as GGUF's gpt2 kind is). */
  static fromObject(json: unknown, vocabSize: number, source = 'tokenizer.json', options: HfTokenizerOptions = {}): HfTokenizer {
    const fail = (msg: string): never => {
      throw new Error(`${source}: ${msg}`);
    };
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) fail(`vocabulary size must be a positive integer, got ${vocabSize}`);
    if (!isJsonObject(json)) return fail(`not a JSON object`);
    const type = isJsonObject(json.model) ? json.model.type : undefined;
    if (type !== undefined && !MODEL_TYPES.includes(type as string)) fail(`model.type ${excerpt(type)} is not supported (${MODEL_TYPES.join(', ')} are)`);
    checkIds(json, vocabSize, fail);
    const config = options.config ?? {};
    const library = usableLibrary(json, config, fail);
    if (isBpeModel(library.model)) installLongWordMerges(library.model);
    const special = (key: string): SpecialToken | undefined => {
      const text = addedTokenText(ownField(config, key));
      if (text === undefined) return undefined;
      const id = library.token_to_id(text);
      if (id === undefined) return fail(`tokenizer_config.json's ${key} ${excerpt(text)} is not a token of this tokenizer`);
      return { id, text };
    };
    const bos = special('bos_token');
    const eos = special('eos_token');
    return new HfTokenizer(source, vocabSize, library, { ...(bos && { bos }), ...(eos && { eos }) });
  }

  /**
   * The library's encode; with `special`, what the post-processor adds. A text that itself starts with the
   * token the post-processor puts first (a chat template rendered with its BOS) keeps one of them.
   */
  encode(text: string, special: boolean): number[] {
    const ids = this.encodeIds(text, special);
    if (special && ids.length >= 2 && ids[0] === ids[1]) {
      const plain = this.encodeIds(text, false);
      if (plain[0] === ids[0] && ids.length > plain.length) return ids.slice(1);
    }
    return ids;
  }

  /** The text of `ids`, exactly: special tokens kept, no clean-up of spaces; ids the file does not define give nothing. */
  decode(ids: readonly number[]): string {
    const known = ids.filter((id) => this.library.id_to_token(this.checkId(id)) !== undefined);
    return known.length === 0 ? '' : this.library.decode(known, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /**
   * Decodes a window of recent ids twice, without and with the new ones (text-generation-inference's way), and
   * emits what the new ones add once it no longer ends in U+FFFD (an unfinished UTF-8 sequence); text before such
   * an ending is emitted at once. The window starts a few ids back in `context`.
   */
  stream(context: readonly number[] = []): TokenStream {
    let ids = context.slice(-STREAM_CONTEXT).map((id) => this.checkId(id));
    let read = ids.length;
    let prefix: string | undefined;
    /** chars of the window's text beyond `prefix` already emitted */
    let shown = 0;
    const emit = (force: boolean): Uint8Array => {
      prefix ??= this.decode(ids.slice(0, read));
      const text = this.decode(ids);
      const from = prefix.length + shown;
      let end = text.length;
      while (!force && end > from && text[end - 1] === REPLACEMENT) end--;
      const out = end > from ? text.slice(from, end) : '';
      if (end === text.length && (out !== '' || force)) {
        ids = ids.slice(read);
        read = ids.length;
        prefix = undefined;
        shown = 0;
      } else {
        shown += out.length;
      }
      return utf8.encode(out);
    };
    return {
      push: (id: number): Uint8Array => {
        ids.push(this.checkId(id));
        return emit(ids.length - read > STREAM_PENDING);
      },
      flush: (): Uint8Array => emit(true),
    };
  }

  private encodeIds(text: string, special: boolean): number[] {
    const { ids, tokens } = this.library.encode(text, { add_special_tokens: special });
    const missing = ids.indexOf(undefined);
    if (missing >= 0) throw new Error(`${this.source}: ${excerpt(tokens[missing])} is not in the vocabulary and there is no unk_token`);
    return ids as number[];
  }

  private checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new Error(`${this.source}: token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    }
    return id;
  }
}

/** Every id model.vocab and added_tokens give must be below the model's vocabulary size. */
function checkIds(json: Record<string, unknown>, vocabSize: number, fail: (msg: string) => never): void {
  // `what` names the entry only when it fails: a vocabulary has 32k to 256k of them
  const check = (id: unknown, what: () => string): void => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) fail(`${what()} has invalid id ${excerpt(id)}`);
    else if (id >= vocabSize) fail(`${what()} has id ${id}, beyond the model's vocabulary of ${vocabSize}`);
  };
  const model = json.model;
  if (isJsonObject(model) && Array.isArray(model.vocab)) {
    if (model.vocab.length > vocabSize) fail(`model.vocab has ${model.vocab.length} entries, beyond the model's vocabulary of ${vocabSize}`);
  } else if (isJsonObject(model) && isJsonObject(model.vocab)) {
    const vocab = model.vocab;
    for (const token in vocab) check(vocab[token], () => `model.vocab token ${excerpt(token)}`);
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) fail(`added_tokens must be an array`);
  (added as unknown[]).forEach((t, i) => {
    if (!isJsonObject(t) || typeof t.content !== 'string') fail(`added_tokens[${i}] needs a content string`);
    else check(t.id, () => `added token ${excerpt(t.content)}`);
  });
}

/** The library's BPE model (a callable object): merges and a bpe method. */
function isBpeModel(model: unknown): model is LibraryBpeModel {
  const m = model as Partial<Record<keyof LibraryBpeModel, unknown>> | null;
  return m !== null && Array.isArray(m.merges) && typeof m.bpe === 'function';
}

/** A special token as tokenizer_config.json writes it: a string, or an AddedToken object's content; else undefined. */
export function addedTokenText(v: unknown): string | undefined {
  return typeof v === 'string' ? v : isJsonObject(v) && typeof v.content === 'string' ? v.content : undefined;
}
