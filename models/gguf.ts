// GGUF v2/v3 files (ggml's docs/gguf.md) mapped onto models/llama.ts by the family of their architecture
// (models/families): header, metadata of every GGUF type, tensor infos and an aligned data section, every count,
// offset and size checked against the file first. Only the header is read here; each tensor becomes a source in
// its own format (weight-format table), read by offset when it is uploaded.
import type { CheckpointFormat } from './checkpoint.js';
import { familyWeights, ggufFamilies, type CheckpointTensors, type ConfigFields } from './families/index.js';
import type { ModelConfig } from './llama.js';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import type { TextTokenizer } from '../src/runtime/tokenizer.js';
import { fileBytes, formatOfGgmlType, weightFormats } from '../src/weights/formats.js';
import { fileSource, readRegion, regularFileSize, sourceValues, type TensorSource } from '../src/weights/source.js';
import { excerpt, MAX_NESTING } from '../src/file-input.js';
import { MAX_SIZE } from './families/family.js';

/** GGUF strings as written: a leading U+FEFF is text (a token of its own in SentencePiece vocabularies), not a byte order mark. */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** A metadata value: u64/i64 as bigint, the other numbers as number, arrays of any of them (nested too). */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  readonly name: string;
  /** ne[0..]: the fastest-varying dimension first (the reverse of a row-major shape) */
  readonly dims: readonly number[];
  /** the ggml type id */
  readonly type: number;
  /** bytes from the start of the data section */
  readonly offset: number;
}

export interface GgufFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  readonly path: string;
  /** the file offset where tensor data starts */
  readonly dataStart: number;
}

/** ggml type ids (ggml.h's ggml_type), for names in messages. */
const typeNames: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  34: 'TQ1_0',
  35: 'TQ2_0',
  39: 'MXFP4',
};

export function ggmlTypeName(type: number): string {
  return typeNames[type] ?? `unknown type ${type}`;
}

/** gguf_metadata_value_type ids */
const enum ValueType {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
}
const fixedSize: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Sequential little-endian reads that fail with "truncated" past the end. */
class Cursor {
  pos = 0;
  private readonly view: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    /** the whole file's size: bytes is its first part */
    private readonly fileSize: number,
    private readonly fail: (msg: string) => never,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** bytes left in the file */
  get left(): number {
    return this.fileSize - this.pos;
  }
  private take(n: number, what: string): number {
    if (n > this.left) this.fail(`truncated: ${what} at byte ${this.pos} needs ${n} bytes, ${this.left} are left`);
    if (this.pos + n > this.bytes.length) throw new NeedMore();
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8 = (what: string): number => this.view.getUint8(this.take(1, what));
  u32 = (what: string): number => this.view.getUint32(this.take(4, what), true);
  u64 = (what: string): bigint => this.view.getBigUint64(this.take(8, what), true);
  /** a u64 that must fit a JS number */
  count = (what: string): number => {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is out of range`);
    return Number(v);
  };
  string = (what: string): string => {
    const n = this.count(`${what} length`);
    const at = this.take(n, what);
    return utf8.decode(this.bytes.subarray(at, at + n));
  };
  /** a value of `type`; arrays nest `depth` deep around it */
  value(type: number, what: string, depth = 0): GgufValue {
    const v = this.view;
    switch (type) {
      case ValueType.U8:
        return v.getUint8(this.take(1, what));
      case ValueType.I8:
        return v.getInt8(this.take(1, what));
      case ValueType.U16:
        return v.getUint16(this.take(2, what), true);
      case ValueType.I16:
        return v.getInt16(this.take(2, what), true);
      case ValueType.U32:
        return v.getUint32(this.take(4, what), true);
      case ValueType.I32:
        return v.getInt32(this.take(4, what), true);
      case ValueType.F32:
        return v.getFloat32(this.take(4, what), true);
      case ValueType.U64:
        return v.getBigUint64(this.take(8, what), true);
      case ValueType.I64:
        return v.getBigInt64(this.take(8, what), true);
      case ValueType.F64:
        return v.getFloat64(this.take(8, what), true);
      case ValueType.BOOL: {
        const b = v.getUint8(this.take(1, what));
        if (b > 1) this.fail(`${what}: bool byte ${b} is neither 0 nor 1`);
        return b === 1;
      }
      case ValueType.STRING:
        return this.string(what);
      case ValueType.ARRAY: {
        if (depth === MAX_NESTING) return this.fail(`${what}: arrays nested more than ${MAX_NESTING} levels deep`);
        const itemType = this.u32(`${what} array type`);
        const n = this.count(`${what} array length`);
        // every element takes at least this many bytes: a length past the file fails before any allocation
        const least = fixedSize[itemType] ?? (itemType === ValueType.STRING ? 8 : itemType === ValueType.ARRAY ? 12 : 0);
        if (least === 0) return this.fail(`${what}: unknown metadata value type ${itemType}`);
        if (n * least > this.left) this.fail(`truncated: ${what} claims ${n} array elements, only ${this.left} bytes are left`);
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(itemType, what, depth + 1);
        return out;
      }
      default:
        return this.fail(`${what}: unknown metadata value type ${type}`);
    }
  }
}

/** Thrown by a Cursor that reached the end of the part of the file it was given. */
class NeedMore extends Error {}

/** The header is read in a first part of this many bytes, four times more each time it is not enough. */
const FIRST_READ = 1 << 22;

/** Parses a GGUF file's header, metadata and tensor infos, checking every tensor of a known type lies inside the data section. */
export function parseGguf(path: string): GgufFile {
  const size = regularFileSize(path);
  for (let part = Math.min(size, FIRST_READ); ; part = Math.min(size, part * 4)) {
    try {
      return parseHeader(readRegion(path, 0, part), size, path);
    } catch (e) {
      if (!(e instanceof NeedMore) || part === size) throw e;
    }
  }
}

function parseHeader(bytes: Uint8Array, size: number, source: string): GgufFile {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const c = new Cursor(bytes, size, fail);
  if (size < 4 || String.fromCharCode(...bytes.subarray(0, 4)) !== 'GGUF') fail(`not a GGUF file (no "GGUF" magic)`);
  c.pos = 4;
  const version = c.u32('version');
  if (version !== 2 && version !== 3) fail(`GGUF version ${version} is not supported (weft reads versions 2 and 3)`);
  const tensorCount = c.count('tensor count');
  const kvCount = c.count('metadata count');
  // a key-value pair takes at least 12 bytes, a tensor info at least 24
  if (kvCount * 12 + tensorCount * 24 > c.left) fail(`truncated: ${tensorCount} tensors and ${kvCount} metadata entries do not fit in ${size} bytes`);
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key ${i}`);
    const what = `metadata ${excerpt(key)}`;
    metadata.set(key, c.value(c.u32(`${what} type`), what));
  }
  const alignment = metadata.get('general.alignment') ?? 32;
  if (typeof alignment !== 'number' || !Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    fail(`general.alignment ${excerpt(alignment)} is not a positive multiple of 8`);
  }
  const align = alignment as number;
  const infos: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`tensor ${i} name`);
    const what = `tensor ${excerpt(name)}`;
    const nDims = c.u32(`${what} dimension count`);
    if (nDims < 1 || nDims > 4) fail(`${what} has ${nDims} dimensions (1 to 4 are allowed)`);
    const dims = Array.from({ length: nDims }, () => c.count(`${what} dimension`));
    const type = c.u32(`${what} type`);
    const offset = c.count(`${what} offset`);
    if (offset % align !== 0) fail(`${what} offset ${offset} is not a multiple of the alignment ${align}`);
    infos.push({ name, dims, type, offset });
  }
  const dataStart = Math.ceil(c.pos / align) * align;
  const dataBytes = size - dataStart;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    if (tensors.has(t.name)) fail(`tensor ${excerpt(t.name)} appears twice`);
    tensors.set(t.name, t);
    const format = formatOfGgmlType(t.type);
    if (!format) continue; // named when read
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(n) || t.dims[0]! % format.blockElements !== 0)
      fail(`tensor ${excerpt(t.name)}: dimensions [${t.dims.join(', ')}] do not fit ${ggmlTypeName(t.type)} blocks of ${format.blockElements}`);
    const bytes = fileBytes(format, n);
    if (t.offset + bytes > dataBytes)
      fail(`tensor ${excerpt(t.name)}: bytes [${t.offset}, ${t.offset + bytes}) are outside the ${Math.max(0, dataBytes)} data bytes (truncated?)`);
  }
  return { version, metadata, tensors, path: source, dataStart };
}

/** The formats GGUF tensors may have, for messages. */
const readable = (): string =>
  Object.values(weightFormats)
    .flatMap((f) => (f.ggmlType === undefined ? [] : [ggmlTypeName(f.ggmlType)]))
    .join(', ');

/** A tensor of the file as a source in its own format (row-major shape), read by offset when needed. */
export function ggufSource(file: GgufFile, t: GgufTensorInfo): TensorSource {
  const format = formatOfGgmlType(t.type);
  if (!format) throw new Error(`${file.path}: tensor ${excerpt(t.name)} has type ${ggmlTypeName(t.type)}, which weft does not read (${readable()})`);
  return fileSource(file.path, file.dataStart + t.offset, [...t.dims].reverse(), format);
}

/** The metadata's values, read as a family asks for them (integers as numbers); errors name the file. */
function metadataFields(file: GgufFile, fail: (msg: string) => never): ConfigFields {
  const get = (key: string): unknown => {
    const v = file.metadata.get(key);
    return typeof v === 'bigint' ? Number(v) : v;
  };
  const num = (key: string, fallback?: number): number => {
    const v = get(key) ?? fallback;
    return typeof v === 'number' && v > 0 ? v : fail(`${key} must be a positive number, is ${excerpt(v)}`);
  };
  return {
    get,
    num,
    int: (key, fallback) => {
      const n = num(key, fallback);
      if (!Number.isSafeInteger(n)) return fail(`${key} must be a positive integer, is ${n}`);
      return n <= MAX_SIZE ? n : fail(`${key} is ${n}, beyond the ${MAX_SIZE} weft reads`);
    },
    fail,
  };
}

/** The vocabulary size (the tokenizer's, else the embedding's rows), BOS and the stop ids (EOS, end of turn, end of message). */
function vocabularyOf(file: GgufFile, fail: (msg: string) => never): Pick<ModelConfig, 'vocabSize' | 'bosId' | 'stop'> {
  const m = file.metadata;
  const tokens = m.get('tokenizer.ggml.tokens');
  const embd = file.tensors.get('token_embd.weight');
  const vocabSize = Array.isArray(tokens)
    ? tokens.length
    : embd?.dims.length === 2
      ? embd.dims[1]!
      : fail(`no tokenizer.ggml.tokens and no 2-D token_embd.weight to size the vocabulary`);
  // llama.cpp's defaults for a SentencePiece vocabulary: BOS 1, EOS 2
  const spm = m.get('tokenizer.ggml.model') === 'llama';
  const id = (key: string, fallback: number | undefined): number | undefined => ggufTokenId(file, key, vocabSize, fallback);
  const bosId = m.get('tokenizer.ggml.add_bos_token') === false ? undefined : id('tokenizer.ggml.bos_token_id', spm ? 1 : undefined);
  const stopIds = [
    id('tokenizer.ggml.eos_token_id', spm ? 2 : undefined),
    id('tokenizer.ggml.eot_token_id', undefined),
    id('tokenizer.ggml.eom_token_id', undefined),
  ].filter((x): x is number => x !== undefined);
  return { vocabSize, ...(bosId !== undefined ? { bosId } : {}), stop: { ids: [...new Set(stopIds)], inPrompt: false } };
}

/**
 * A GGUF checkpoint under its model definition's names, mapped by the family of general.architecture
 * (models/families). Tensors with ne = [in, out] are row-major [out, in]; every tensor of the file must be one
 * the family reads (or rope_freqs.weight, Llama 3's RoPE frequency divisors).
 */
export function readGguf(path: string): { config: ModelConfig; tensors: Map<string, TensorSource>; file: GgufFile } {
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  const file = parseGguf(path);
  const fields = metadataFields(file, fail);
  const arch = file.metadata.get('general.architecture');
  const family = (typeof arch === 'string' ? ggufFamilies.get(arch) : undefined)?.gguf;
  if (!family) return fail(`architecture ${excerpt(arch ?? null)} is not supported (weft reads GGUF ${[...ggufFamilies.keys()].join(', ')})`);
  const config: ModelConfig = { ...family.config(fields), ...vocabularyOf(file, fail) };
  const used = new Set<string>();
  const tensors: CheckpointTensors = {
    names: () => file.tensors.keys(),
    has: (key) => file.tensors.has(key),
    get: (key, shape) => {
      const t = file.tensors.get(key) ?? fail(`tensor ${key} is missing`);
      const rowMajor = [...t.dims].reverse();
      if (rowMajor.length !== shape.length || rowMajor.some((d, i) => d !== shape[i])) {
        fail(`tensor ${key} has shape [${rowMajor.join(', ')}] (ne [${t.dims.join(', ')}]), the metadata implies [${shape.join(', ')}]`);
      }
      used.add(key);
      return ggufSource(file, t);
    },
    fail,
  };
  const weights = familyWeights(family, config, tensors, fields);
  // Llama 3's frequency scaling, as llama.cpp's converter stores it: one divisor per RoPE frequency
  const freqs = file.tensors.get('rope_freqs.weight');
  let scaled = config;
  if (freqs) {
    const pairs = config.headSize / 2;
    if (freqs.dims.length !== 1 || freqs.dims[0] !== pairs)
      fail(`tensor rope_freqs.weight has ne [${freqs.dims.join(', ')}], the head size implies [${pairs}]`);
    if (config.ropeScaling) fail(`rope_freqs.weight and ${arch}.rope.scaling.type ${config.ropeScaling.kind} both scale RoPE`);
    const divisors = Array.from(sourceValues(ggufSource(file, freqs)));
    if (divisors.some((d) => !(d > 0) || !Number.isFinite(d))) fail(`tensor rope_freqs.weight must hold positive finite factors`);
    scaled = { ...config, ropeScaling: { kind: 'divisors', divisors } };
    used.add('rope_freqs.weight');
  }
  for (const key of file.tensors.keys()) if (!used.has(key)) fail(`tensor ${excerpt(key)} is not part of weft's ${arch}`);
  return { config: scaled, tensors: weights, file };
}

/**
 * The tokenizer a GGUF file carries, undefined when absent, as the HfTokenizer of the tokenizer.json it stands
 * for: "llama" (SentencePiece tokens and scores) as Hugging Face's LlamaConverter builds it, "gpt2" (byte-level
 * BPE: tokens, merges, and the pre-tokenizer tokenizer.ggml.pre names) as the file it was converted from.
 */
export function ggufTokenizer(file: GgufFile, vocabSize: number, source = 'model.gguf'): TextTokenizer | undefined {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const kind = file.metadata.get('tokenizer.ggml.model');
  if (kind === undefined) return undefined;
  if (kind !== 'llama' && kind !== 'gpt2') fail(`tokenizer.ggml.model ${excerpt(kind)} is not supported (weft reads "llama" and "gpt2")`);
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'string')) return fail(`tokenizer.ggml.tokens must be an array of strings`);
  if (tokens.length !== vocabSize) fail(`tokenizer has ${tokens.length} tokens, model vocabulary is ${vocabSize}`);
  const types = file.metadata.get('tokenizer.ggml.token_type');
  if (types !== undefined && (!Array.isArray(types) || types.length !== tokens.length)) fail(`tokenizer.ggml.token_type must have one type per token`);
  const typeOf = (i: number): unknown => (Array.isArray(types) ? types[i] : TOKEN_TYPE.normal);
  return (kind === 'gpt2' ? byteLevelTokenizer : sentencePieceTokenizer)(file, tokens as string[], typeOf, source, fail);
}

/** llama.cpp's token types (tokenizer.ggml.token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** The token id metadata `key` gives (`fallback` where it gives no number), if it is one of the vocabulary's. */
export function ggufTokenId(file: GgufFile, key: string, vocabSize: number, fallback?: number): number | undefined {
  const v = file.metadata.get(key);
  const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : fallback;
  return n !== undefined && Number.isInteger(n) && n >= 0 && n < vocabSize ? n : undefined;
}

/** Llama 3's split regex (tokenizer.json's Split pre-tokenizer; llama.cpp's "llama-bpe"). */
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** Qwen2's: single digits (llama.cpp's "qwen2"). */
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/**
 * tokenizer.ggml.pre -> the tokenizer.json normalizer and pre-tokenizer llama.cpp's converter took it from,
 * and whether whole words in the vocabulary skip the merges (Llama 3's ignore_merges).
 */
const BYTE_LEVEL_PRE: Readonly<Record<string, { normalizer: unknown; pre_tokenizer: unknown; ignoreMerges: boolean; addBos: boolean }>> = (() => {
  const split = (regex: string): unknown => ({
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, use_regex: false },
    ],
  });
  const gpt2 = { normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true }, ignoreMerges: false, addBos: false };
  return {
    'llama-bpe': { normalizer: null, pre_tokenizer: split(LLAMA3_SPLIT), ignoreMerges: true, addBos: true },
    qwen2: { normalizer: { type: 'NFC' }, pre_tokenizer: split(QWEN2_SPLIT), ignoreMerges: false, addBos: false },
    'gpt-2': gpt2,
    default: gpt2,
  };
})();

/** A token's place in tokenizer.json by its llama.cpp type: unknown, control and user-defined tokens are matched whole, as added tokens. */
function addedToken(type: unknown, id: number, content: string): { id: number; content: string; special: boolean; normalized: boolean } | undefined {
  if (type !== TOKEN_TYPE.unknown && type !== TOKEN_TYPE.control && type !== TOKEN_TYPE.userDefined) return undefined;
  return { id, content, special: type !== TOKEN_TYPE.userDefined, normalized: false };
}

/** BOS and EOS as tokenizer_config.json names them, and the post-processor that puts BOS first where `addBos`. */
function bosAndEos(file: GgufFile, tokens: readonly string[], addBos: boolean): { config: Record<string, unknown>; postProcessor: unknown } {
  const bos = ggufTokenId(file, 'tokenizer.ggml.bos_token_id', tokens.length);
  const eos = ggufTokenId(file, 'tokenizer.ggml.eos_token_id', tokens.length);
  const add = file.metadata.get('tokenizer.ggml.add_bos_token');
  // BOS is what a TemplateProcessing post-processor puts before the text, as in the tokenizer.json converted from
  const withBos = (typeof add === 'boolean' ? add : addBos) && bos !== undefined;
  return {
    config: { bos_token: bos === undefined ? undefined : tokens[bos], eos_token: eos === undefined ? undefined : tokens[eos] },
    postProcessor: withBos ? bosTemplate(tokens[bos], bos) : null,
  };
}

type TokenizerOfKind = (file: GgufFile, tokens: readonly string[], typeOf: (i: number) => unknown, source: string, fail: (msg: string) => never) => HfTokenizer;

/** A gpt2-kind GGUF tokenizer as the tokenizer.json it stands for. */
const byteLevelTokenizer: TokenizerOfKind = (file, tokens, typeOf, source, fail) => {
  const m = file.metadata;
  const pre = m.get('tokenizer.ggml.pre') ?? 'default';
  const style = typeof pre === 'string' && Object.hasOwn(BYTE_LEVEL_PRE, pre) ? BYTE_LEVEL_PRE[pre] : undefined;
  if (!style) return fail(`tokenizer.ggml.pre ${excerpt(pre)} is not supported (weft reads ${Object.keys(BYTE_LEVEL_PRE).join(', ')})`);
  const merges = m.get('tokenizer.ggml.merges');
  if (!Array.isArray(merges) || merges.some((x) => typeof x !== 'string')) return fail(`tokenizer.ggml.merges must be an array of strings`);
  const vocab = Object.create(null) as Record<string, number>;
  const added: NonNullable<ReturnType<typeof addedToken>>[] = [];
  tokens.forEach((t, i) => {
    const a = addedToken(typeOf(i), i, t);
    if (a) added.push(a);
    else if (!Object.hasOwn(vocab, t)) vocab[t] = i;
  });
  const { config, postProcessor } = bosAndEos(file, tokens, style.addBos);
  const json = {
    model: { type: 'BPE', vocab, merges, ignore_merges: style.ignoreMerges },
    added_tokens: added,
    normalizer: style.normalizer,
    pre_tokenizer: style.pre_tokenizer,
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  };
  return HfTokenizer.fromObject(json, tokens.length, source, { config });
};

const SPACE = '\u2581';

/**
 * A llama-kind GGUF tokenizer as the tokenizer.json Hugging Face's LlamaConverter (legacy) builds from the same
 * SentencePiece vocabulary: a byte-fallback BPE whose merges come from the scores, spaces as '▁' with one put
 * before each text between added tokens where tokenizer.ggml.add_space_prefix (the default), stripped again by
 * the decoder; BOS added unless tokenizer.ggml.add_bos_token is false.
 */
const sentencePieceTokenizer: TokenizerOfKind = (file, tokens, typeOf, source, fail) => {
  const m = file.metadata;
  const scores = m.get('tokenizer.ggml.scores');
  if (!Array.isArray(scores) || scores.length !== tokens.length || scores.some((s) => typeof s !== 'number')) {
    return fail(`tokenizer.ggml.scores must be ${tokens.length} numbers, one per token`);
  }
  const addSpacePrefix = m.get('tokenizer.ggml.add_space_prefix') ?? true;
  if (typeof addSpacePrefix !== 'boolean') fail(`tokenizer.ggml.add_space_prefix must be a bool`);
  // a piece written more than once is its last id, in llama.cpp's token_to_id as in the converter's dict
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i));
  const added = tokens.flatMap((t, i) => addedToken(typeOf(i), i, t) ?? []);
  // llama.cpp's unknown token where a SentencePiece vocabulary names none is id 0
  const unk = m.has('tokenizer.ggml.unknown_token_id') ? ggufTokenId(file, 'tokenizer.ggml.unknown_token_id', tokens.length) : 0;
  const byteFallback = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).every((t) => vocab.has(t));
  const { config, postProcessor } = bosAndEos(file, tokens, true);
  const json = {
    model: {
      type: 'BPE',
      vocab: Object.fromEntries(vocab),
      merges: sentencePieceMerges(vocab, scores as number[]),
      unk_token: unk === undefined ? null : tokens[unk],
      fuse_unk: true,
      byte_fallback: byteFallback,
    },
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [...(addSpacePrefix ? [{ type: 'Prepend', prepend: SPACE }] : []), { type: 'Replace', pattern: { String: ' ' }, content: SPACE }],
    },
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(addSpacePrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
  };
  return HfTokenizer.fromObject(json, tokens.length, source, { config });
};

/**
 * The BPE merges of a SentencePiece vocabulary with scores, as the converter's SentencePieceExtractor derives
 * them: every split of a piece into two pieces of the vocabulary (ordered by their ids), all of them ranked by
 * the piece's score, highest first, ties in vocabulary order. Sorting the pieces first ranks their merges as the
 * converter's stable sort of all merges does; one lookup per split point, O(total chars).
 */
export function sentencePieceMerges(vocab: ReadonlyMap<string, number>, scores: readonly number[]): [string, string][] {
  const pieces: string[] = [];
  for (const [piece, id] of vocab) pieces[id] = piece;
  const order = Int32Array.from(vocab.values()).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const merges: [string, string][] = [];
  const local: [number, number][] = [];
  for (const id of order) {
    const piece = pieces[id]!;
    local.length = 0;
    // split points between code points, as Python slices a str
    for (let at = 0; (at += piece.codePointAt(at)! > 0xffff ? 2 : 1) < piece.length;) {
      const l = vocab.get(piece.slice(0, at));
      const r = l === undefined ? undefined : vocab.get(piece.slice(at));
      if (r !== undefined) local.push([l!, r]);
    }
    if (local.length > 1) local.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [l, r] of local) merges.push([pieces[l]!, pieces[r]!]);
  }
  return merges;
}

/** tokenizer.json's post-processor that puts `token` (id `id`) before a single text. */
function bosTemplate(token: string, id: number): unknown {
  return {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: token, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [
      { SpecialToken: { id: token, type_id: 0 } },
      { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: token, type_id: 1 } },
      { Sequence: { id: 'B', type_id: 1 } },
    ],
    special_tokens: { [token]: { id: token, ids: [id], tokens: [token] } },
  };
}

/** A `.gguf` file, or one starting with the GGUF magic: its tokenizer and chat template are in its metadata. */
export const ggufCheckpoint: CheckpointFormat = {
  description: 'a GGUF file',
  holds: 'file',
  recognizes: (path) => path.endsWith('.gguf') || isGguf(path),
  read: (path) => {
    const { config, tensors, file } = readGguf(path);
    return { checkpoint: { config, tensors }, ownTokenizer: () => ggufTokenizer(file, config.vocabSize, path), chatTemplate: file };
  },
};

/** Whether a file starts with the GGUF magic. */
function isGguf(path: string): boolean {
  const bytes = readRegion(path, 0, Math.min(4, regularFileSize(path)));
  return bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;
}
