// Malformed and hostile input to every reader (issue 16's findings), each one clear line: sizes checked against the
// file, the run and sane bounds before anything is sized by them; nesting limited; no prototype lookups on keys
// from files; values quoted as short escaped excerpts; only regular files read (a FIFO or /dev/zero gives one line).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCheckpoint, readModelFiles, withContext, withRopeTables } from '../src/api.js';
import { checkNesting, excerpt, MAX_NESTING, parseJson } from '../src/file-input.js';
import { findChatTemplate } from '../models/chat-template.js';
import { readSafetensors } from '../models/safetensors.js';
import { HfTokenizer } from '../src/runtime/hf-tokenizer.js';
import { tokenizerJson } from './bpe-fixture.js';
import { runWeft } from './weft-process.js';

const fixtures = new URL('../../shared/fixtures/hf/', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'weft-bad-input-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of a fixture folder with config.json edited, and files added (objects written as JSON, strings as they are). */
function variant(name: string, edit: (c: Record<string, unknown>) => void, files: Record<string, unknown> = {}, from = 'llama-gqa'): string {
  const dir = join(scratch, name);
  rmSync(dir, { recursive: true, force: true });
  cpSync(join(fixtures, from), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  edit(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}

/** JSON text of a value nested `depth` arrays deep (built as text: JSON.stringify itself overflows at such depths). */
const nestedText = (depth: number, inner = '1'): string => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

/** `f` throws one line, under 400 characters, matching `message`. */
function oneLine(f: () => unknown, message: RegExp): void {
  let error: Error | undefined;
  try {
    f();
  } catch (e) {
    error = e as Error;
  }
  expect(error, 'an error').toBeDefined();
  expect(error!.message).toMatch(message);
  expect(error!.message).not.toMatch(/\n/);
  expect(error!.message.length).toBeLessThan(400);
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('excerpt: values from files as messages quote them', () => {
  it('quotes JSON, escapes control bytes, cuts long values with their length', () => {
    expect(excerpt('F32')).toBe('"F32"');
    expect(excerpt(null)).toBe('null');
    expect(excerpt([1, 2])).toBe('[1,2]');
    expect(excerpt(12345678901234567890n)).toBe('12345678901234567890');
    expect(excerpt('\u0000\u001b[2J\u007f\u2028')).toBe('"\\u0000\\u001b[2J\\u007f\\u2028"');
    const long = excerpt(Array.from({ length: 100_000 }, () => 7));
    expect(long).toMatch(/^\[7,7,7.*… \(200001 characters\)$/);
    expect(long.length).toBeLessThan(110);
    expect(excerpt(JSON.parse(nestedText(100_000)))).toBe('[…]');
  });
});

describe('sizes from metadata are checked before anything is sized by them', () => {
  it.each([
    ['max_position_embeddings', 100_000_000, /max_position_embeddings is 100000000, beyond the 16777216 weft reads$/],
    ['max_position_embeddings', 2147483648, /max_position_embeddings is 2147483648, beyond the 16777216 weft reads$/],
    ['hidden_size', 2 ** 40, /hidden_size is 1099511627776, beyond the 16777216 weft reads$/],
    ['vocab_size', 2 ** 30, /vocab_size is 1073741824, beyond the 16777216 weft reads$/],
    ['num_hidden_layers', 1_000_000, /num_hidden_layers is 1000000, but the tensors hold layers 0 to 2$/],
    ['num_hidden_layers', 4, /num_hidden_layers is 4, but the tensors hold layers 0 to 2$/],
  ])('config.json %s %d: one line naming the field, at once', (key, value, message) => {
    const dir = variant(`size-${key}-${value}`, (c) => (c[key] = value));
    const start = performance.now();
    oneLine(() => readCheckpoint(dir), new RegExp(`^${escape(join(dir, 'config.json'))}: ${message.source}`));
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it("GPT-2's n_layer is checked against the layers the file holds", () => {
    const dir = variant('gpt2-layers', (c) => (c.n_layer = 1_000_000), {}, 'gpt2');
    oneLine(() => readCheckpoint(dir), /config\.json: n_layer is 1000000, but the tensors hold layers 0 to \d+$/);
  });

  it("a Llama 3.1-shaped context (131072 positions): RoPE tables only at the run's context, computed when read", () => {
    const dir = variant('llama31', (c) => {
      c.max_position_embeddings = 131072;
      c.rope_parameters = {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
        rope_theta: 500000,
      };
    });
    const start = performance.now();
    const checkpoint = readCheckpoint(dir);
    expect(checkpoint.config.seqLen).toBe(131072);
    const { tensors } = withRopeTables(withContext(checkpoint, 64));
    expect(tensors.get('rope_cos')!.shape).toEqual([64, 8]);
    expect(tensors.get('rope_sin')!.read().byteLength).toBe(64 * 8 * 4);
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('nesting beyond 64 levels is one line naming the file and the path', () => {
  it('checkNesting walks any depth without recursion', () => {
    expect(() => checkNesting(JSON.parse(nestedText(MAX_NESTING)), 'f.json')).not.toThrow();
    oneLine(() => checkNesting(JSON.parse(nestedText(MAX_NESTING + 1)), 'f.json'), /^f\.json: \[0\](\[0\]){15,}.*… is nested more than 64 levels deep$/);
    oneLine(
      () => checkNesting(JSON.parse(`{"a":{"b c":${nestedText(100_000)}}}`), 'f.json'),
      /^f\.json: a\["b c"\]\[0\]\[0\].* is nested more than 64 levels deep$/,
    );
  });

  it("parseJson counts the text's brackets, not those inside strings", () => {
    const brackets = '[{'.repeat(100);
    // strings of brackets, escaped quotes and backslashes (one just before a closing quote), at the deepest allowed level
    const inner = JSON.stringify({ 'k\\"[': `${brackets}\\`, '"{': [']]]"[[['] });
    const text = `${'['.repeat(MAX_NESTING - 2)}${inner}${']'.repeat(MAX_NESTING - 2)}`;
    expect(JSON.stringify(parseJson(text, 'f.json'))).toBe(JSON.stringify(JSON.parse(text)));
    oneLine(() => parseJson(`[${text}]`, 'f.json'), /^f\.json: (\[0\])+.* is nested more than 64 levels deep$/);
    // brackets after such strings still count: a string ending in an escaped backslash and an escaped quote
    for (const before of [inner, JSON.stringify('\\"')]) {
      oneLine(() => parseJson(`[${before}, ${nestedText(MAX_NESTING)}, "x"]`, 'f.json'), /^f\.json: \[1\](\[0\])+.* is nested more than 64 levels deep$/);
    }
  });

  it('config.json: a value 5,000 deep', () => {
    const dir = variant('deep-config', () => {});
    const path = join(dir, 'config.json');
    writeFileSync(path, readFileSync(path, 'utf8').replace(/\}$/, `,"rope_scaling":{"x":${nestedText(5000)}}}`));
    oneLine(() => readCheckpoint(dir), new RegExp(`^${escape(path)}: rope_scaling\\.x(\\[0\\])+.* is nested more than 64 levels deep$`));
  });

  it('tokenizer_config.json: a value 5,000 deep', () => {
    const dir = variant('deep-tokenizer-config', () => {}, {
      'tokenizer.json': tokenizerJson(),
      'tokenizer_config.json': `{"bos_token":${nestedText(5000, '"<s>"')}}`,
    });
    oneLine(() => readModelFiles(dir), /tokenizer_config\.json: bos_token(\[0\])+.* is nested more than 64 levels deep$/);
  });

  it('safetensors: a dtype nested in arrays', () => {
    const path = join(scratch, 'deep-dtype.safetensors');
    const header = new TextEncoder().encode(`{"a":{"dtype":${nestedText(10_000, '"F32"')},"shape":[1],"data_offsets":[0,4]}}`);
    const bytes = new Uint8Array(8 + header.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    writeFileSync(path, bytes);
    oneLine(() => readSafetensors(path), /deep-dtype\.safetensors header: a\.dtype(\[0\])+.* is nested more than 64 levels deep$/);
  });

  it.each([
    ['pre_tokenizer', (inner: string) => `{"type":"Sequence","pretokenizers":[${inner}]}`, '{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}'],
    ['normalizer', (inner: string) => `{"type":"Sequence","normalizers":[${inner}]}`, '{"type":"NFC"}'],
    ['post_processor', (inner: string) => `{"type":"Sequence","processors":[${inner}]}`, '{"type":"ByteLevel"}'],
    ['decoder', (inner: string) => `{"type":"Sequence","decoders":[${inner}]}`, '{"type":"ByteLevel"}'],
  ])('tokenizer.json: Sequence %ss nested 5,000 deep', (key, wrap, leaf) => {
    let nested = leaf;
    for (let i = 0; i < 5000; i++) nested = wrap(nested);
    const json = JSON.parse(tokenizerJson()) as Record<string, unknown>;
    const text = JSON.stringify({ ...json, [key]: '@' }).replace('"@"', nested);
    oneLine(
      () => HfTokenizer.fromJson(text, 512, 'tokenizer.json'),
      new RegExp(`^tokenizer\\.json: ${key}\\.\\w+\\[0\\].* is nested more than 64 levels deep$`),
    );
  });
});

describe('internal errors do not reach the user: every field checked where it is read', () => {
  const header = (h: string): Uint8Array => {
    const text = new TextEncoder().encode(h);
    const bytes = new Uint8Array(8 + text.length + 8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
    bytes.set(text, 8);
    return bytes;
  };
  it.each([
    ['a tensor entry of null', '{"x":null}', /tensor "x" is not an object$/],
    ['a dtype of "toString"', '{"a":{"dtype":"toString","shape":[2],"data_offsets":[0,8]}}', /tensor "a" has dtype "toString"; weft reads F32, F16 and BF16$/],
    ['a dtype of "constructor"', '{"a":{"dtype":"constructor","shape":[2],"data_offsets":[0,8]}}', /tensor "a" has dtype "constructor"/],
    ['a dtype of "__proto__"', '{"a":{"dtype":"__proto__","shape":[2],"data_offsets":[0,8]}}', /tensor "a" has dtype "__proto__"/],
    ['a tensor named "__proto__" without a dtype', '{"__proto__":{"shape":[2],"data_offsets":[0,8]}}', /tensor "__proto__" has dtype undefined/],
    ['data_offsets null', '{"a":{"dtype":"F32","shape":[2],"data_offsets":null}}', /tensor "a": data_offsets must be two byte offsets, is null$/],
    ['data_offsets []', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[]}}', /tensor "a": data_offsets must be two byte offsets, is \[\]$/],
    ['one data offset', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}', /tensor "a": data_offsets must be two byte offsets, is \[8\]$/],
    [
      'a shape of 100,000 entries',
      `{"a":{"dtype":"F32","shape":[${Array(100_000).fill(1)}],"data_offsets":[0,4]}}`,
      /tensor "a" has a malformed shape \[1,1,1.*… \(200001 characters\)$/,
    ],
    [
      'a name with control bytes, 60,000 long',
      `{${JSON.stringify(`\u0000\u001b[2J${'n'.repeat(60_000)}`)}:null}`,
      /tensor "\\u0000\\u001b\[2Jn+… \(\d+ characters\) is not an object$/,
    ],
  ])('safetensors: %s', (_, h, message) => {
    const path = join(scratch, 'bad.safetensors');
    writeFileSync(path, header(h));
    oneLine(() => readSafetensors(path), new RegExp(`^${escape(path)}: ${message.source}`));
  });

  it.each([
    ['a number as a shard', 7, /weight_map's tensor "model\.norm\.weight" names 7, not a file inside the folder$/],
    [
      'a shard outside the folder',
      '../../../../etc/hostname',
      /weight_map's tensor "model\.norm\.weight" names "\.\.\/\.\.\/\.\.\/\.\.\/etc\/hostname", not a file inside the folder$/,
    ],
    [
      'a shard name with control characters',
      '\u001b[2J.safetensors',
      /weight_map names the shard "\\u001b\[2J\.safetensors": a shard's name has at most 200 characters, none of them a control character$/,
    ],
    ['an empty shard name', '', /weight_map's tensor "model\.norm\.weight" names "", not a file inside the folder$/],
  ])('model.safetensors.index.json: %s', (name, shard, message) => {
    const dir = variant(`index-${name.replaceAll(' ', '-')}`, () => {}, { 'model.safetensors.index.json': { weight_map: { 'model.norm.weight': shard } } });
    oneLine(() => readCheckpoint(dir), new RegExp(`^${escape(join(dir, 'model.safetensors.index.json'))}: ${message.source}`));
  });

  it('config.json: an architecture or rope type named like a prototype key is unknown, not found', () => {
    oneLine(
      () => readCheckpoint(variant('arch-proto', (c) => (c.architectures = ['constructor']))),
      /config\.json: architecture "constructor" is not supported/,
    );
    oneLine(
      () => readCheckpoint(variant('rope-proto', (c) => (c.rope_parameters = { rope_type: 'toString' }))),
      /config\.json: RoPE scaling "toString" is not supported/,
    );
    oneLine(() => readCheckpoint(variant('rope-array', (c) => (c.rope_parameters = [1]))), /config\.json: rope_parameters must be an object, is \[1\]$/);
    oneLine(
      () => readCheckpoint(variant('arch-flood', (c) => (c.architectures = [`\u001b]0;${'x'.repeat(100_000)}`]))),
      /config\.json: architecture "\\u001b\]0;x+… \(100011 characters\) is not supported/,
    );
  });
});

describe('an added token of 100,000 characters', () => {
  it('is read, and encodes as its id', () => {
    const long = 'ab'.repeat(50_000);
    const tok = HfTokenizer.fromJson(tokenizerJson({ added: ['<|endoftext|>', long] }), 512, 'tokenizer.json');
    const id = tok.encode(long, false);
    expect(id).toHaveLength(1);
    expect(tok.encode(`x${long}y`, false)).toEqual(['x'.charCodeAt(0), id[0], 'y'.charCodeAt(0)]);
  });
});

describe('only regular files are read: a FIFO or /dev/zero is one line, not a hang', () => {
  const fifo = (path: string): string => {
    rmSync(path, { force: true });
    execFileSync('mkfifo', [path]);
    return path;
  };
  const notRegular = (path: string): RegExp => new RegExp(`^cannot read \\w+( \\w+)? ${escape(path)}: not a regular file$`);

  it('the checkpoint (weft run and inspect, in a child process that would otherwise block)', () => {
    const path = fifo(join(scratch, 'model.bin'));
    for (const args of [
      ['inspect', path],
      ['run', path, '--prompt-ids', '1'],
    ]) {
      const r = runWeft(args, 30_000);
      expect(r.stderr).toBe(`weft: cannot read checkpoint ${path}: not a regular file\n`);
      expect(r.status).not.toBe(0);
    }
    oneLine(() => readCheckpoint('/dev/zero'), notRegular('/dev/zero'));
  });

  it.each(['config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'])('%s in a folder', (file) => {
    const dir = variant(`fifo-${file}`, () => {}, { 'tokenizer.json': tokenizerJson() });
    const path = fifo(join(dir, file));
    oneLine(() => readModelFiles(dir), notRegular(path));
  });

  it('a shard the index names', () => {
    const dir = variant('fifo-shard', () => {}, { 'model.safetensors.index.json': { weight_map: { 'model.norm.weight': 'part.safetensors' } } });
    const path = fifo(join(dir, 'part.safetensors'));
    oneLine(() => readCheckpoint(dir), notRegular(path));
  });

  it('--tokenizer, a chat template file and chat_template.jinja', () => {
    const dir = join(fixtures, 'llama-gqa');
    const path = fifo(join(scratch, 'tokenizer.json'));
    oneLine(() => readModelFiles(dir, { tokenizer: path }), notRegular(path));
    oneLine(() => readModelFiles(dir, { tokenizer: '/dev/zero' }), notRegular('/dev/zero'));
    const template = fifo(join(scratch, 'template.jinja'));
    oneLine(() => findChatTemplate(dir, { templateFile: template }), notRegular(template));
    oneLine(() => findChatTemplate(dir, { templateFile: '/dev/zero' }), notRegular('/dev/zero'));
    const folder = variant('fifo-jinja', () => {});
    const jinja = fifo(join(folder, 'chat_template.jinja'));
    oneLine(() => findChatTemplate(folder), notRegular(jinja));
  });

  it('a folder with no config.json is still refused as before', () => {
    const dir = join(scratch, 'empty');
    mkdirSync(dir, { recursive: true });
    oneLine(() => readCheckpoint(dir), /a folder must hold a Hugging Face checkpoint/);
  });
});
