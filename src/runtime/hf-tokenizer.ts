// Hugging Face tokenizer.json byte-level BPE (GPT-2, Llama 3, Qwen2): added tokens split out literally, then
// normalizer, pre-tokenizer (regex splits, GPT-2's bytes->unicode map), BPE by merge rank, vocab lookup.
// Decoding maps token strings back through unicode->bytes, so any id sequence decodes to the bytes it encodes.
import type { TextTokenizer } from './tokenizer.js';

/** GPT-2's ByteLevel split (use_regex: true). */
const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
const NORMALIZATIONS = ['NFC', 'NFD', 'NFKC', 'NFKD'] as const;
type Normalization = (typeof NORMALIZATIONS)[number];

/** One pre-tokenizer step: string pieces in, string pieces out (the last step's pieces are byte-mapped). */
type PreTokenizer =
  | { readonly kind: 'split'; readonly regex: RegExp }
  | { readonly kind: 'byte-level'; readonly addPrefixSpace: boolean; readonly regex: RegExp | undefined };

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards. */
const BYTE_TO_CHAR: readonly string[] = (() => {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars.push(String.fromCharCode(printable ? b : next++));
  }
  return chars;
})();
const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
const utf8 = new TextEncoder();

export interface HfTokenizerOptions {
  /** tokenizer_config.json's parsed content, if any: add_bos_token / bos_token / eos_token */
  readonly config?: Record<string, unknown>;
}

export class HfTokenizer implements TextTokenizer {
  private readonly cache = new Map<string, number[]>();

  private constructor(
    readonly source: string,
    /** the model's vocabulary: ids below it that the file does not define decode to nothing */
    readonly vocabSize: number,
    private readonly vocab: ReadonlyMap<string, number>,
    /** id -> token string (byte-mapped) for vocab entries */
    private readonly tokens: ReadonlyMap<number, string>,
    /** `${left}\0${right}` -> rank */
    private readonly ranks: ReadonlyMap<string, number>,
    /** added-token content -> id, and a regex matching any of them (longest first) */
    private readonly added: ReadonlyMap<string, number>,
    private readonly addedIds: ReadonlyMap<number, string>,
    private readonly addedRegex: RegExp | undefined,
    private readonly normalization: readonly Normalization[],
    private readonly preTokenizers: readonly PreTokenizer[],
    private readonly ignoreMerges: boolean,
    private readonly unkId: number | undefined,
    private readonly bosId: number | undefined,
    private readonly eosId: number | undefined,
  ) {}

  /** Parses tokenizer.json text; every id must be below `vocabSize` (the model's vocabulary). */
  static fromJson(text: string, vocabSize: number, source = 'tokenizer.json', options: HfTokenizerOptions = {}): HfTokenizer {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${source}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
    return HfTokenizer.fromObject(json, vocabSize, source, options);
  }

  /** A tokenizer.json already parsed (or built from another format's metadata, as GGUF's gpt2 kind is). */
  static fromObject(json: unknown, vocabSize: number, source = 'tokenizer.json', options: HfTokenizerOptions = {}): HfTokenizer {
    const fail = (msg: string): never => {
      throw new Error(`${source}: ${msg}`);
    };
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) fail(`vocabulary size must be a positive integer, got ${vocabSize}`);
    if (!isObject(json)) return fail(`not a JSON object`);
    const model = json.model;
    if (!isObject(model)) return fail(`model must be an object`);
    const type = model.type ?? (model.merges !== undefined ? 'BPE' : undefined);
    if (type !== 'BPE') fail(`model.type ${JSON.stringify(type)} is not supported (weft reads byte-level BPE)`);
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
      if (model[key] !== undefined && model[key] !== null && model[key] !== '') fail(`model.${key} ${JSON.stringify(model[key])} is not supported`);
    }
    if (model.byte_fallback === true) fail(`model.byte_fallback true is not supported (byte-level BPE needs none)`);

    const checkId = (id: unknown, what: string): number => {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) return fail(`${what} has invalid id ${JSON.stringify(id)}`);
      if (id >= vocabSize) fail(`${what} has id ${id}, beyond the model's vocabulary of ${vocabSize}`);
      return id;
    };
    if (!isObject(model.vocab)) return fail(`model.vocab must be an object of token -> id`);
    const vocab = new Map<string, number>();
    const tokens = new Map<number, string>();
    for (const [token, id] of Object.entries(model.vocab)) {
      vocab.set(token, checkId(id, `model.vocab token ${JSON.stringify(token)}`));
      tokens.set(id as number, token);
    }

    if (!Array.isArray(model.merges)) return fail(`model.merges must be an array`);
    const ranks = new Map<string, number>();
    model.merges.forEach((merge: unknown, rank) => {
      const pair = typeof merge === 'string' ? merge.split(' ') : merge;
      if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === 'string')) {
        fail(`model.merges[${rank}] ${JSON.stringify(merge)} is not a pair of tokens`);
      }
      const [left, right] = pair as [string, string];
      if (!vocab.has(left + right)) fail(`model.merges[${rank}] makes ${JSON.stringify(left + right)}, which is not in model.vocab`);
      const key = `${left}\0${right}`;
      if (!ranks.has(key)) ranks.set(key, rank);
    });

    const added = new Map<string, number>();
    const addedIds = new Map<number, string>();
    const addedTokens = json.added_tokens ?? [];
    if (!Array.isArray(addedTokens)) return fail(`added_tokens must be an array`);
    addedTokens.forEach((t: unknown, i) => {
      if (!isObject(t) || typeof t.content !== 'string' || t.content === '') return fail(`added_tokens[${i}] needs a non-empty content string`);
      const id = checkId(t.id, `added token ${JSON.stringify(t.content)}`);
      added.set(t.content, id);
      addedIds.set(id, t.content);
    });
    const addedRegex =
      added.size === 0
        ? undefined
        : new RegExp(
            [...added.keys()]
              .sort((a, b) => b.length - a.length)
              .map(escapeRegex)
              .join('|'),
            'gu',
          );

    const unk = model.unk_token;
    const unkId = typeof unk === 'string' ? vocab.get(unk) ?? added.get(unk) : undefined;

    const config = options.config ?? {};
    const specialId = (key: string): number | undefined => {
      const v = config[key];
      const content = typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : undefined;
      if (content === undefined) return undefined;
      const id = added.get(content) ?? vocab.get(content);
      if (id === undefined) fail(`tokenizer_config.json's ${key} ${JSON.stringify(content)} is not a token of this tokenizer`);
      return id;
    };
    // BOS: tokenizer_config.json's add_bos_token and bos_token, else the special token a TemplateProcessing
    // post-processor puts first (Llama 3's <|begin_of_text|>), unless add_bos_token is false
    const templateBos = config.add_bos_token === false ? undefined : leadingSpecialToken(json.post_processor);
    const templateId = templateBos === undefined ? undefined : added.get(templateBos) ?? vocab.get(templateBos);
    if (templateBos !== undefined && templateId === undefined) fail(`post_processor starts with ${JSON.stringify(templateBos)}, which is not a token of this tokenizer`);
    const bosId = config.add_bos_token === true ? specialId('bos_token') : templateId;
    const eosId = specialId('eos_token');

    return new HfTokenizer(
      source,
      vocabSize,
      vocab,
      tokens,
      ranks,
      added,
      addedIds,
      addedRegex,
      normalizationsOf(json.normalizer, fail),
      preTokenizersOf(json.pre_tokenizer, fail),
      model.ignore_merges === true,
      unkId,
      bosId,
      eosId,
    );
  }

  /**
   * Added tokens are matched literally first; the text between them is normalized, pre-tokenized and
   * BPE-merged. `bos` prepends tokenizer_config.json's bos_token when add_bos_token is true; `eos` appends its eos_token.
   */
  encode(text: string | Uint8Array, bos: boolean, eos: boolean): number[] {
    const str = typeof text === 'string' ? text : new TextDecoder().decode(text);
    const ids: number[] = [];
    if (bos && this.bosId !== undefined) ids.push(this.bosId);
    let last = 0;
    const encodeSpan = (span: string): void => {
      if (span.length > 0) for (const word of this.preTokenize(span)) ids.push(...this.bpe(word));
    };
    if (this.addedRegex) {
      for (const m of str.matchAll(this.addedRegex)) {
        encodeSpan(str.slice(last, m.index));
        ids.push(this.added.get(m[0]) as number);
        last = m.index + m[0].length;
      }
    }
    encodeSpan(str.slice(last));
    if (eos && this.eosId !== undefined) ids.push(this.eosId);
    return ids;
  }

  /** The bytes of `token`: an added token's content as UTF-8, a vocab token through unicode->bytes; ids the file lacks give nothing. */
  decodePiece(_prev: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
      throw new Error(`${this.source}: token id ${token} is outside the vocabulary of ${this.vocabSize}`);
    }
    const content = this.addedIds.get(token);
    if (content !== undefined) return utf8.encode(content);
    const str = this.tokens.get(token);
    if (str === undefined) return new Uint8Array(0);
    const bytes: number[] = [];
    for (const ch of str) {
      const b = CHAR_TO_BYTE.get(ch);
      if (b !== undefined) bytes.push(b);
      else bytes.push(...utf8.encode(ch));
    }
    return Uint8Array.from(bytes);
  }

  /** Byte-level BPE: every byte prints, so the piece is returned unchanged. */
  printable(piece: Uint8Array): Uint8Array {
    return piece;
  }

  /** The normalized, pre-tokenized, byte-mapped words of a span between added tokens. */
  private preTokenize(span: string): string[] {
    let text = span;
    for (const form of this.normalization) text = text.normalize(form);
    let pieces = [text];
    for (const step of this.preTokenizers) {
      pieces = pieces.flatMap((piece) => {
        if (step.kind === 'split') return splitIsolated(piece, step.regex);
        const prefixed = step.addPrefixSpace && !piece.startsWith(' ') ? ` ${piece}` : piece;
        return step.regex ? splitIsolated(prefixed, step.regex) : [prefixed];
      });
    }
    return pieces.map((piece) => Array.from(utf8.encode(piece), (b) => BYTE_TO_CHAR[b]).join(''));
  }

  /** Merges the lowest-ranked adjacent pair (leftmost on ties) until none applies, then looks each symbol up. */
  private bpe(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const whole = this.vocab.get(word);
    let ids: number[];
    if (this.ignoreMerges && whole !== undefined) {
      ids = [whole];
    } else {
      const symbols = [...word];
      for (;;) {
        let best = Infinity;
        let at = -1;
        for (let i = 0; i < symbols.length - 1; i++) {
          const rank = this.ranks.get(`${symbols[i]}\0${symbols[i + 1]}`);
          if (rank !== undefined && rank < best) {
            best = rank;
            at = i;
          }
        }
        if (at < 0) break;
        symbols.splice(at, 2, symbols[at] + symbols[at + 1]);
      }
      ids = symbols.map((s) => {
        const id = this.vocab.get(s) ?? this.unkId;
        if (id === undefined) throw new Error(`${this.source}: ${JSON.stringify(s)} is not in model.vocab and there is no unk_token`);
        return id;
      });
    }
    if (this.cache.size < 1 << 16) this.cache.set(word, ids);
    return ids;
  }
}

/** The special token a TemplateProcessing post-processor (alone or in a Sequence) puts before a single sequence, if any. */
function leadingSpecialToken(post: unknown): string | undefined {
  if (!isObject(post)) return undefined;
  if (post.type === 'Sequence' && Array.isArray(post.processors)) {
    for (const p of post.processors) {
      const t = leadingSpecialToken(p);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (post.type !== 'TemplateProcessing' || !Array.isArray(post.single)) return undefined;
  const first: unknown = post.single[0];
  const special = isObject(first) && isObject(first.SpecialToken) ? first.SpecialToken.id : undefined;
  return typeof special === 'string' ? special : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Isolated split: each match is a piece, and so is each non-empty gap between matches. */
function splitIsolated(text: string, regex: RegExp): string[] {
  const out: string[] = [];
  let last = 0;
  for (const m of text.matchAll(regex)) {
    if (m[0].length === 0) continue;
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/**
 * A tokenizer.json regex as a JS `u` regex: `(?i:...)` groups (which JS lacks) become `(?:...)` with each
 * ASCII letter written as a class of both cases, e.g. `(?i:'s|'re)` -> `(?:'[sS]|'[rR][eE])`.
 */
export function compilePattern(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; ) {
    if (pattern.startsWith('(?i:', i)) {
      let depth = 1;
      let j = i + 4;
      let body = '';
      while (j < pattern.length && depth > 0) {
        const c = pattern[j];
        if (c === '\\') {
          body += pattern.slice(j, j + 2);
          j += 2;
          continue;
        }
        if (c === '[') throw new Error(`character classes inside (?i:...) are not supported`);
        if (c === '(') depth++;
        if (c === ')' && --depth === 0) break;
        body += /[a-zA-Z]/.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
        j++;
      }
      if (depth !== 0) throw new Error(`unclosed (?i: group`);
      out += `(?:${body})`;
      i = j + 1;
    } else if (pattern[i] === '\\') {
      out += pattern.slice(i, i + 2);
      i += 2;
    } else {
      out += pattern[i++];
    }
  }
  return new RegExp(out, 'gu');
}

function normalizationsOf(n: unknown, fail: (msg: string) => never): Normalization[] {
  if (n === null || n === undefined) return [];
  if (!isObject(n)) return fail(`normalizer must be an object or null`);
  if (n.type === 'Sequence' && Array.isArray(n.normalizers)) return n.normalizers.flatMap((m: unknown) => normalizationsOf(m, fail));
  if ((NORMALIZATIONS as readonly unknown[]).includes(n.type)) return [n.type as Normalization];
  return fail(`normalizer ${JSON.stringify(n.type)} is not supported (weft supports ${NORMALIZATIONS.join(', ')} and Sequence of them)`);
}

function preTokenizersOf(p: unknown, fail: (msg: string) => never): PreTokenizer[] {
  if (!isObject(p)) return fail(`pre_tokenizer must be ByteLevel or a Sequence of Split and ByteLevel, is ${JSON.stringify(p)}`);
  if (p.type === 'Sequence') {
    if (!Array.isArray(p.pretokenizers)) return fail(`pre_tokenizer Sequence needs a pretokenizers array`);
    const steps = p.pretokenizers.flatMap((q: unknown) => preTokenizersOf(q, fail));
    if (steps.at(-1)?.kind !== 'byte-level') fail(`pre_tokenizer Sequence must end in ByteLevel`);
    return steps;
  }
  if (p.type === 'ByteLevel') {
    return [{ kind: 'byte-level', addPrefixSpace: p.add_prefix_space === true, regex: p.use_regex === false ? undefined : compilePattern(GPT2_PATTERN) }];
  }
  if (p.type === 'Split') {
    if (p.behavior !== 'Isolated') fail(`pre_tokenizer Split behavior ${JSON.stringify(p.behavior)} is not supported (Isolated is)`);
    if (p.invert === true) fail(`pre_tokenizer Split with invert true is not supported`);
    const pattern = isObject(p.pattern) ? p.pattern : {};
    if (typeof pattern.Regex === 'string') {
      try {
        return [{ kind: 'split', regex: compilePattern(pattern.Regex) }];
      } catch (e) {
        return fail(`pre_tokenizer Split pattern ${JSON.stringify(pattern.Regex)} is not supported (${(e as Error).message.split('\n')[0]})`);
      }
    }
    if (typeof pattern.String === 'string' && pattern.String !== '') return [{ kind: 'split', regex: new RegExp(escapeRegex(pattern.String), 'gu') }];
    return fail(`pre_tokenizer Split needs a pattern {"Regex": ...} or {"String": ...}`);
  }
  return fail(`pre_tokenizer ${JSON.stringify(p.type)} is not supported (ByteLevel, or a Sequence of Split and ByteLevel)`);
}
