// Seeded mutation fuzzing of the file readers: a PRNG, byte / text / JSON / GGUF mutation operators, the one
// predicate every outcome must meet (accepted, or one clean error), and a pool of worker threads that runs each
// case under a time and memory limit, so that a hang or a runaway allocation is an outcome, not a stuck suite.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/** The readers fuzzed, as reader-worker.mjs names them. */
export const readerNames = [
  'llama2c',
  'llama2c-tokenizer',
  'safetensors',
  'safetensors-index',
  'config-json',
  'gguf',
  'tokenizer-json',
  'ir',
  'chat-template',
] as const;
export type ReaderName = (typeof readerNames)[number];

/** How a seed's target file is mutated. */
export type InputKind = 'bytes' | 'text' | 'json' | 'gguf';

/** A valid input: the files of one case (the reader's folder), the one that is mutated, and what the reader is told beside them. */
export interface Seed {
  readonly name: string;
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly target: string;
  readonly kind: InputKind;
  readonly params?: Readonly<Record<string, unknown>>;
}

/** One input as a reader gets it. */
export interface Case {
  readonly reader: ReaderName;
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly params: Readonly<Record<string, unknown>>;
}

export type Outcome =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'clean'; readonly message: string }
  | { readonly kind: 'unclean'; readonly reason: string; readonly message: string };

// ---------------------------------------------------------------------------------------------------------------
// PRNG

/** A seeded generator (splitmix32): the same seed gives the same cases on every machine. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** a uniform 32-bit unsigned integer */
  u32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** an integer in [0, n) */
  below(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
}

/** The seed of case `index` of `reader` in a run seeded `seed`: every case replays alone. */
export function caseSeed(seed: number, reader: string, index: number): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (const ch of `${reader}:${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Mutation operators

/** Integer field values that break size arithmetic: 0, -1, 2^31, 2^32, 2^53, 1e8 (and their neighbours). */
export const boundaryValues: readonly number[] = [0, 1, -1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 1e8];

type ByteOp = (b: Uint8Array, r: Rng) => Uint8Array;

const randomBytes = (r: Rng, n: number): Uint8Array => {
  const interesting = [0x00, 0xff, 0x7f, 0x80, 0x1b, 0x0a, 0x22, 0x5c, 0x7b, 0x5b];
  return Uint8Array.from({ length: n }, () => (r.chance(0.5) ? r.pick(interesting) : r.below(256)));
};

const splice = (b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array => {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
};

/** A little-endian integer field of `width` bytes holding `v` (two's complement, wrapped to the width). */
export function intBytes(v: number | bigint, width: 1 | 2 | 4 | 8): Uint8Array {
  const out = new Uint8Array(width);
  let x = BigInt.asUintN(8 * width, BigInt(typeof v === 'number' ? Math.trunc(v) : v));
  for (let i = 0; i < width; i++, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
}

/** An offset biased towards the start, where headers (and their counts and lengths) are. */
const offsetIn = (b: Uint8Array, r: Rng): number => (r.chance(0.5) ? r.below(Math.min(b.length, 64)) : r.below(b.length));

export const byteOps: Readonly<Record<string, ByteOp>> = {
  bitFlip: (b, r) => {
    const out = b.slice();
    for (let k = 1 + r.below(8); k > 0 && out.length > 0; k--) out[offsetIn(out, r)]! ^= 1 << r.below(8);
    return out;
  },
  insertBytes: (b, r) => splice(b, r.below(b.length + 1), 0, randomBytes(r, 1 + r.below(16))),
  deleteBytes: (b, r) => {
    const at = r.below(b.length);
    return splice(b, at, Math.min(b.length - at, 1 + r.below(r.chance(0.8) ? 16 : 4096)), new Uint8Array());
  },
  duplicateChunk: (b, r) => {
    const from = r.below(b.length);
    const chunk = b.slice(from, from + 1 + r.below(256));
    return splice(b, r.below(b.length + 1), 0, chunk);
  },
  truncate: (b, r) => b.slice(0, r.below(b.length)),
  intField: (b, r) => {
    const width = r.pick([4, 4, 8, 1, 2] as const);
    if (b.length < width) return b;
    const at = r.chance(0.6) ? 4 * r.below(Math.min(b.length, 64) / 4) : r.below(b.length - width + 1);
    const out = b.slice();
    out.set(intBytes(r.pick(boundaryValues), width).subarray(0, Math.max(0, Math.min(width, out.length - at))), at);
    return out;
  },
};

/** 1 to 3 byte operators, applied one after another. */
export function mutateBytes(b: Uint8Array, r: Rng): Uint8Array {
  const ops = Object.values(byteOps);
  let out = b;
  for (let k = 1 + r.below(3); k > 0; k--) out = r.pick(ops)(out, r);
  return out;
}

const utf8 = new TextEncoder();
const fromUtf8 = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Pieces of the text grammars fuzzed (IR text, Jinja) worth inserting whole. */
const textTokens = [
  '{%',
  '%}',
  '{{',
  '}}',
  '{#',
  '#}',
  'for',
  'endfor',
  'if',
  'endif',
  'set',
  'range(',
  ')',
  '(',
  '[',
  ']',
  ',',
  '%',
  '=',
  ':',
  '"',
  "'",
  '\\',
  '|',
  '-',
  'f32',
  'i32',
  '%x',
  '->',
  '\n',
  '\0',
  '\u001b',
  '\u2028',
  '\uFFFD',
];

type TextOp = (s: string, r: Rng) => string;
export const textOps: Readonly<Record<string, TextOp>> = {
  deleteLine: (s, r) => {
    const lines = s.split('\n');
    lines.splice(r.below(lines.length), 1);
    return lines.join('\n');
  },
  duplicateLine: (s, r) => {
    const lines = s.split('\n');
    const i = r.below(lines.length);
    lines.splice(r.below(lines.length + 1), 0, ...Array<string>(r.chance(0.1) && lines[i]!.length < 1000 ? 1000 : 1).fill(lines[i]!));
    return lines.join('\n');
  },
  swapLines: (s, r) => {
    const lines = s.split('\n');
    const [i, j] = [r.below(lines.length), r.below(lines.length)];
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    return lines.join('\n');
  },
  editNumber: (s, r) => {
    const numbers = [...s.matchAll(/\d+(\.\d+)?/g)];
    if (numbers.length === 0) return s;
    const m = r.pick(numbers);
    const v = r.chance(0.2) ? '1e308' : String(r.pick(boundaryValues));
    return s.slice(0, m.index) + v + s.slice(m.index! + m[0].length);
  },
  insertToken: (s, r) => {
    const at = r.below(s.length + 1);
    return s.slice(0, at) + r.pick(textTokens) + s.slice(at);
  },
  deepNesting: (s, r) => {
    const at = r.below(s.length + 1);
    const n = r.pick([100, 1000, 10000]);
    const [open, close] = r.pick([
      ['(', ')'],
      ['[', ']'],
      ['{{ (', ') }}'],
    ] as const);
    return s.slice(0, at) + open.repeat(n) + '1' + close.repeat(n) + s.slice(at);
  },
  hugeToken: (s, r) => {
    const at = r.below(s.length + 1);
    return s.slice(0, at) + r.pick(['x', '9', ' ', '\u0001']).repeat(r.pick([1000, 100000])) + s.slice(at);
  },
};

/** Text operators (one to three), or byte operators on the UTF-8 text. */
export function mutateText(b: Uint8Array, r: Rng): Uint8Array {
  if (r.chance(0.3)) return mutateBytes(b, r);
  let s = fromUtf8(b);
  const ops = Object.values(textOps);
  for (let k = 1 + r.below(3); k > 0; k--) s = r.pick(ops)(s, r);
  return utf8.encode(s);
}

/** Object keys that name prototype members: a reader that looks them up without hasOwn finds functions. */
export const prototypeKeys = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'];

/** Raw JSON text standing in for a value: deep nesting and huge values are written, not built as objects. */
class RawJson {
  constructor(readonly text: string) {}
}

function replacementValue(r: Rng): unknown {
  const n = r.pick([10, 1000, 10000, 100000]);
  const choices: (() => unknown)[] = [
    () => null,
    () => r.chance(0.5),
    () => r.pick(boundaryValues),
    () => -r.pick(boundaryValues),
    () => r.pick([0.5, -0.5, 1e308, -1e308, 5e-324, 1.5]),
    () => '',
    () => r.pick(prototypeKeys),
    () => r.pick(['F32', 'BF16', 'F16', 'I64', 'llama', 'LlamaForCausalLM', 'BPE', 'Sequence', '\u0000\u001b[31m', 'x']),
    () => 'x'.repeat(n),
    () => '\u0000\u001b'.repeat(n / 2),
    () => [],
    () => ({}),
    () => new RawJson(`[${Array(n).fill('1').join(',')}]`),
    () => new RawJson(`${'['.repeat(n)}${']'.repeat(n)}`),
    () => new RawJson(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
    () => new RawJson(`${'{"type":"Sequence","pretokenizers":['.repeat(Math.min(n, 20000))}{"type":"Whitespace"}${']}'.repeat(Math.min(n, 20000))}`),
    () => new RawJson(`${'{"type":"Sequence","normalizers":['.repeat(Math.min(n, 20000))}{"type":"NFC"}${']}'.repeat(Math.min(n, 20000))}`),
  ];
  return r.pick(choices)();
}

/** Every container of a JSON value with its keys (object keys or array indices), in document order. */
function containers(v: unknown, out: (Record<string, unknown> | unknown[])[] = [], depth = 0): (Record<string, unknown> | unknown[])[] {
  if (depth > 64 || typeof v !== 'object' || v === null) return out;
  out.push(v as Record<string, unknown>);
  for (const x of Object.values(v)) containers(x, out, depth + 1);
  return out;
}

const setOwn = (o: Record<string, unknown> | unknown[], key: string | number, value: unknown): void => {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
};

type JsonOp = (root: Record<string, unknown> | unknown[], r: Rng) => void;
export const jsonOps: Readonly<Record<string, JsonOp>> = {
  replaceValue: (root, r) => {
    const c = r.pick(containers(root));
    const keys = Object.keys(c);
    if (keys.length > 0) setOwn(c, r.pick(keys), replacementValue(r));
  },
  addPrototypeKey: (root, r) => {
    const objects = containers(root).filter((c) => !Array.isArray(c));
    if (objects.length > 0) setOwn(r.pick(objects), r.pick(prototypeKeys), replacementValue(r));
  },
  deleteKey: (root, r) => {
    const c = r.pick(containers(root));
    const keys = Object.keys(c);
    if (keys.length === 0) return;
    if (Array.isArray(c)) c.splice(r.below(c.length), 1);
    else delete c[r.pick(keys)];
  },
  renameKey: (root, r) => {
    const objects = containers(root).filter((c): c is Record<string, unknown> => !Array.isArray(c) && Object.keys(c).length > 0);
    if (objects.length === 0) return;
    const o = r.pick(objects);
    const key = r.pick(Object.keys(o));
    const value = o[key];
    delete o[key];
    setOwn(o, r.pick([...prototypeKeys, '', '../x', 'x'.repeat(1000), '\u0000\u001b', `${key}${key}`]), value);
  },
  resizeArray: (root, r) => {
    const arrays = containers(root).filter((c): c is unknown[] => Array.isArray(c));
    if (arrays.length === 0) return;
    const a = r.pick(arrays);
    if (r.chance(0.5)) a.length = r.below(a.length + 1);
    else a.push(...Array<unknown>(r.pick([1, 10, 1000])).fill(a[0] ?? 0));
  },
  editNumber: (root, r) => {
    const c = r.pick(containers(root));
    const keys = Object.keys(c).filter((k) => typeof (c as Record<string, unknown>)[k] === 'number');
    if (keys.length > 0) setOwn(c, r.pick(keys), r.chance(0.7) ? r.pick(boundaryValues) : -r.pick(boundaryValues));
  },
};

/** JSON operators on the parsed value (one to three), or text operators on the JSON text when it does not parse or by chance. */
/** The longest JSON case a mutation may make. */
const MAX_CASE_CHARS = 64 * 2 ** 20;

export function mutateJson(b: Uint8Array, r: Rng): Uint8Array {
  let root: unknown;
  try {
    root = JSON.parse(fromUtf8(b));
  } catch {
    return mutateText(b, r);
  }
  if (typeof root !== 'object' || root === null || r.chance(0.15)) return mutateText(b, r);
  const container = root as Record<string, unknown> | unknown[];
  const ops = Object.values(jsonOps);
  for (let k = 1 + r.below(3); k > 0; k--) r.pick(ops)(container, r);
  const raws: string[] = [];
  try {
    const text = JSON.stringify(container, (_k, v: unknown) => (v instanceof RawJson ? `\u0000raw${raws.push(v.text) - 1}\u0000` : v));
    const out = text.replace(/"\\u0000raw(\d+)\\u0000"/g, (_m, i: string) => raws[Number(i)]!);
    // copies of a large part (a whole vocabulary, a thousand times) make cases of hundreds of MB, or more than a
    // JavaScript string holds: a text edit instead
    return out.length > MAX_CASE_CHARS ? mutateText(b, r) : utf8.encode(out);
  } catch (e) {
    if (e instanceof RangeError) return mutateText(b, r);
    throw e;
  }
}

// GGUF-aware edits: the fields of a GGUF file (counts, lengths, value types, dimensions, tensor types and offsets).

interface GgufField {
  readonly at: number;
  readonly width: 4 | 8;
  readonly role: 'count' | 'length' | 'type' | 'dims' | 'dim' | 'offset';
}

/** The counts, lengths and types of a GGUF file, where they are; stops quietly where the file does not parse. */
export function ggufFields(b: Uint8Array): { fields: GgufField[]; strings: { at: number; length: number }[]; metadataEnd: number } {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fields: GgufField[] = [];
  const strings: { at: number; length: number }[] = [];
  let pos = 8;
  const u32 = (role: GgufField['role']): number => {
    fields.push({ at: pos, width: 4, role });
    pos += 4;
    return view.getUint32(pos - 4, true);
  };
  const u64 = (role: GgufField['role']): number => {
    fields.push({ at: pos, width: 8, role });
    pos += 8;
    return Number(view.getBigUint64(pos - 8, true));
  };
  const string = (): void => {
    const at = pos;
    const n = u64('length');
    strings.push({ at, length: n });
    pos += n;
  };
  const fixed: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (type: number): void => {
    if (type === 8) return string();
    if (type === 9) {
      const item = u32('type');
      const n = u64('count');
      for (let i = 0; i < n && pos < b.length; i++) value(item);
      return;
    }
    if (fixed[type] === undefined) throw new Error('unknown type');
    pos += fixed[type];
  };
  let metadataEnd = 24;
  try {
    const tensors = u64('count');
    const kvs = u64('count');
    for (let i = 0; i < kvs; i++) {
      string();
      value(u32('type'));
    }
    metadataEnd = pos;
    for (let i = 0; i < tensors; i++) {
      string();
      const n = u32('dims');
      for (let d = 0; d < n; d++) u64('dim');
      u32('type');
      u64('offset');
    }
  } catch {
    // a file already mutated: the fields found so far
  }
  return { fields: fields.filter((f) => f.at + f.width <= b.length), strings: strings.filter((s) => s.at + 8 + s.length <= b.length), metadataEnd };
}

/** A metadata entry `key` holding arrays nested `depth` deep, as GGUF writes one. */
function nestedArrayEntry(key: string, depth: number): Uint8Array {
  const k = utf8.encode(key);
  const parts: Uint8Array[] = [intBytes(k.length, 8), k, intBytes(9, 4)];
  for (let i = 0; i < depth; i++) parts.push(intBytes(9, 4), intBytes(1, 8));
  parts.push(intBytes(4, 4), intBytes(0, 8));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

export const ggufOps: Readonly<Record<string, ByteOp>> = {
  editField: (b, r) => {
    const { fields } = ggufFields(b);
    if (fields.length === 0) return b;
    const f = r.pick(fields);
    const old =
      f.width === 4 ? new DataView(b.buffer, b.byteOffset).getUint32(f.at, true) : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(f.at, true));
    const values =
      f.role === 'type'
        ? [0, 7, 8, 9, 10, 12, 13, 14, 2 ** 31, 2 ** 32 - 1]
        : f.role === 'dims'
          ? [0, 1, 2, 4, 5, 2 ** 32 - 1]
          : [...boundaryValues, old + 1, old - 1, old * 2];
    const out = b.slice();
    out.set(intBytes(r.pick(values), f.width), f.at);
    return out;
  },
  controlCharacterString: (b, r) => {
    const { strings } = ggufFields(b);
    if (strings.length === 0) return b;
    const s = r.pick(strings);
    const text = utf8.encode('\u0000\u001b[2J'.repeat(r.pick([1, 100, 5000])));
    return splice(b, s.at, 8 + s.length, new Uint8Array([...intBytes(text.length, 8), ...text]));
  },
  deepArrays: (b, r) => {
    const { metadataEnd } = ggufFields(b);
    if (b.length < 24) return b;
    const out = splice(b, Math.min(metadataEnd, b.length), 0, nestedArrayEntry('fuzz.nested', r.pick([100, 10000, 100000])));
    const view = new DataView(out.buffer);
    view.setBigUint64(16, view.getBigUint64(16, true) + 1n, true);
    return out;
  },
};

/** GGUF-aware edits, or byte operators. */
export function mutateGguf(b: Uint8Array, r: Rng): Uint8Array {
  let out = b;
  for (let k = 1 + r.below(2); k > 0; k--) out = r.chance(0.6) ? r.pick(Object.values(ggufOps))(out, r) : mutateBytes(out, r);
  return out;
}

const mutators: Readonly<Record<InputKind, (b: Uint8Array, r: Rng) => Uint8Array>> = {
  bytes: mutateBytes,
  text: mutateText,
  json: mutateJson,
  gguf: mutateGguf,
};

/** The largest input a case gives a reader. */
const MAX_INPUT_BYTES = 16 * 1024 * 1024;

/** Case `index` of a run seeded `seed`: one seed input, its target file mutated. */
export function makeCase(reader: ReaderName, seeds: readonly Seed[], seed: number, index: number): Case & { seedName: string } {
  const r = new Rng(caseSeed(seed, reader, index));
  const s = r.pick(seeds);
  // a plain copy: the operators' slice() must copy, and no case may write into the seed
  const original = new Uint8Array(s.files[s.target]!);
  const mutated = mutators[s.kind](original, r);
  // operators stacked on huge values can make a file of gigabytes: such a case flips bits instead
  const files = { ...s.files, [s.target]: mutated.length > MAX_INPUT_BYTES ? byteOps.bitFlip!(original, r) : mutated };
  return { reader, files, params: s.params ?? {}, seedName: s.name };
}

// ---------------------------------------------------------------------------------------------------------------
// The predicate

/** Messages of JavaScript's own errors (and Node's), which a reader must never let through, even wrapped in its own. */
const internalMessages = [
  /Cannot read propert/i,
  /Cannot set propert/i,
  /Cannot convert/i,
  /is not a function/,
  /is not iterable/,
  /is not a constructor/,
  /is not defined/,
  /Invalid array length/,
  /Invalid typed array length/,
  /Invalid string length/,
  /Invalid regular expression/,
  /Maximum call stack size exceeded/,
  /Array buffer allocation failed/,
  /out of memory/i,
  /offset is out of bounds/i,
  /Offset is outside the bounds/i,
  /\bERR_[A-Z_]+\b/,
  /must be of type/,
  /\bNaN\b/,
  /\[object Object\]/,
];

/** The longest message counted clean. */
export const MAX_MESSAGE = 300;

/**
 * Why a thrown value is not one clean error, or undefined when it is: an Error (not one of JavaScript's own kinds)
 * whose message is one line of at most MAX_MESSAGE characters, names `file`, holds no control characters and no
 * message of an internal error.
 */
export function uncleanReason(error: { readonly name: string; readonly message: string; readonly isError: boolean }, file: string): string | undefined {
  const { name, message } = error;
  if (!error.isError) return `a thrown ${name}, not an Error`;
  if (name !== 'Error') return `a ${name}`;
  if (/[\r\n\u2028\u2029]/.test(message)) return 'a message of several lines';
  if (message.length > MAX_MESSAGE) return `a message of ${message.length} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(message)) return 'a raw control character';
  const internal = internalMessages.find((p) => p.test(message));
  if (internal) return `an internal error (${internal.source})`;
  if (!message.includes(file)) return 'a message that does not name the file';
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Running cases

export interface Limits {
  /** a case running longer is a hang */
  readonly timeoutMs: number;
  /** a case growing the process's resident memory by more is a runaway allocation */
  readonly memoryBytes: number;
}

export const defaultLimits: Limits = { timeoutMs: 2000, memoryBytes: 1024 * 1024 * 1024 };

const workerUrl = new URL('./reader-worker.mjs', import.meta.url);

interface WorkerReply {
  readonly ok: boolean;
  readonly name?: string;
  readonly message?: string;
  readonly isError?: boolean;
  readonly path?: string;
}

/** One worker thread that runs cases one at a time, replaced after a hang, a crash or a runaway allocation. */
class CaseRunner {
  private worker: Worker | undefined;
  private readonly dir: string;
  constructor(
    root: string,
    index: number,
    private readonly limits: Limits,
  ) {
    this.dir = join(root, `w${index}`);
  }

  /** The worker, once it has loaded the readers (its start is not part of any case's time). */
  private async start(): Promise<Worker> {
    if (this.worker) return this.worker;
    const worker = new Worker(workerUrl, { resourceLimits: { maxOldGenerationSizeMb: 512, stackSizeMb: 1 } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return (this.worker = worker);
  }

  /** A case's outcome; one that runs past the time limit runs again on a fresh worker, and is a hang if it does again. */
  async run(c: Case): Promise<Outcome> {
    const first = await this.runOnce(c);
    return first.kind === 'unclean' && first.reason.startsWith('a hang') ? this.runOnce(c) : first;
  }

  private async runOnce(c: Case): Promise<Outcome> {
    const dir = join(this.dir, 'case');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of Object.entries(c.files)) writeFileSync(join(dir, name), bytes);
    const worker = await this.start();
    const rssBefore = process.memoryUsage.rss();
    const reply = await new Promise<WorkerReply | { failure: string }>((resolve) => {
      const finish = (v: WorkerReply | { failure: string }): void => {
        clearTimeout(timer);
        clearInterval(memory);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        resolve(v);
      };
      const onMessage = (m: WorkerReply): void => finish(m);
      const onError = (e: Error): void => finish({ failure: `the worker crashed: ${e.message.split('\n')[0]}` });
      const onExit = (code: number): void => finish({ failure: `the worker exited with code ${code}` });
      const timer = setTimeout(() => finish({ failure: `a hang (over ${this.limits.timeoutMs} ms)` }), this.limits.timeoutMs);
      const memory = setInterval(() => {
        const grown = process.memoryUsage.rss() - rssBefore;
        if (grown > this.limits.memoryBytes) finish({ failure: `a runaway allocation (${Math.round(grown / 2 ** 20)} MB)` });
      }, 10);
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ reader: c.reader, dir, params: c.params });
    });
    if ('failure' in reply) {
      await this.stop();
      return { kind: 'unclean', reason: reply.failure, message: '' };
    }
    if (reply.ok) return { kind: 'accepted' };
    const error = { name: reply.name ?? '?', message: reply.message ?? '', isError: reply.isError ?? false };
    const reason = uncleanReason(error, reply.path ?? dir);
    // a flood of a message is judged whole but kept short: a long run holds every outcome
    const message = error.message.length > 1000 ? `${error.message.slice(0, 1000)}...` : error.message;
    return reason ? { kind: 'unclean', reason, message } : { kind: 'clean', message };
  }

  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}

/** A pool of case runners over one temporary folder. */
export class CasePool {
  private readonly root = mkdtempSync(join(tmpdir(), 'weft-fuzz-'));
  private readonly runners: CaseRunner[];
  constructor(size: number, limits: Limits = defaultLimits) {
    this.runners = Array.from({ length: size }, (_, i) => new CaseRunner(this.root, i, limits));
  }

  /** Runs `count` cases made by `make`, each on the first free runner; outcomes in case order. */
  async runAll<C extends Case>(count: number, make: (i: number) => C, done?: (i: number, c: C, o: Outcome) => void): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array(count);
    let next = 0;
    await Promise.all(
      this.runners.map(async (runner) => {
        while (next < count) {
          const i = next++;
          const c = make(i);
          outcomes[i] = await runner.run(c);
          done?.(i, c, outcomes[i]!);
        }
      }),
    );
    return outcomes;
  }

  async close(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * A smaller case with the same outcome: each file the reader does not need for it left out (the reason compared
 * with its numbers masked).
 */
export async function minimize<C extends Case>(pool: CasePool, c: C, reason: string): Promise<C> {
  const same = async (files: Record<string, Uint8Array>): Promise<boolean> => {
    const [o] = await pool.runAll(1, () => ({ ...c, files }));
    return o!.kind === 'unclean' && o!.reason.replace(/\d+/g, 'N') === reason.replace(/\d+/g, 'N');
  };
  let files: Record<string, Uint8Array> = { ...c.files };
  for (const name of Object.keys(files)) {
    const rest = Object.fromEntries(Object.entries(files).filter(([n]) => n !== name));
    if (Object.keys(rest).length > 0 && (await same(rest))) files = rest;
  }
  return { ...c, files };
}

/** One line for a message in a report: escaped, at most `n` characters. */
export const excerpt = (message: string, n = 160): string => {
  const s = JSON.stringify(message)
    .slice(1, -1)
    .replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return s.length > n ? `${s.slice(0, n - 3)}...` : s;
};
