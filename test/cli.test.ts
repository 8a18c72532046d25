// The built CLI (dist/src/cli.js, run `npx tsc -p .` first) against the llama2.c fixtures: JSON, dumped
// logits and streamed text as run.c gives them; every bad input exits non-zero with one `weft: ` line on stderr.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runWeft, type Result } from './weft-process.js';
import { Tokenizer } from '../src/runtime/tokenizer.js';
import { maxAbsDiff } from './reference.js';

const dir = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;
const aidreams = join(dir, 'aidreams260K.bin');
const stories = join(dir, 'stories260K.bin');
const tokenizer = join(dir, 'tok512-aidreams.bin');
const VOCAB = 512;
const LOGIT_TOLERANCE = 1e-4;

const tmp = mkdtempSync(join(tmpdir(), 'weft-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const weft = (...args: string[]): Result => runWeft(args, 90_000);

function fixtureTokens(name: string): number[] {
  return readFileSync(join(dir, `${name}.tokens.txt`), 'utf8').trim().split('\n').map(Number);
}

function fixtureLogits(name: string, rows: number): Float32Array {
  const bytes = readFileSync(join(dir, `${name}.logits.f32`));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + rows * VOCAB * 4));
}

function readF32(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function succeeded(r: Result): Result {
  expect(r.stderr.split('\n').filter((line) => line.startsWith('weft: '))).toEqual([]);
  expect(r.status).toBe(0);
  return r;
}

describe('weft run', () => {
  it('samples top-p as run.c does, with --json and --dump-logits', () => {
    const dump = join(tmp, 'topp.f32');
    const r = succeeded(
      weft('run', aidreams, '--tokenizer', tokenizer, '--temperature', '1', '--topp', '0.9', '--seed', '42', '--steps', '20', '--json', '--dump-logits', dump),
    );
    const out = JSON.parse(r.stdout);
    expect(out.tokens).toEqual(fixtureTokens('aidreams-topp').slice(0, 20));
    expect(typeof out.text).toBe('string');
    for (const key of ['prompt_tokens', 'decode_tokens', 'prefill_tokens_per_s', 'decode_tokens_per_s']) {
      expect(typeof out[key], key).toBe('number');
    }
    expect(out.prompt_tokens + out.decode_tokens).toBe(out.tokens.length);
    const logits = readF32(dump);
    expect(logits.length).toBe(20 * VOCAB);
    expect(maxAbsDiff(logits, fixtureLogits('aidreams-topp', 20))).toBeLessThan(LOGIT_TOLERANCE);
  });

  it('feeds --prompt-ids as given on a model without a tokenizer', () => {
    const expected = fixtureTokens('stories-greedy').slice(0, 10);
    const dump = join(tmp, 'stories.f32');
    const promptIds = expected.slice(0, 3).join(',');
    const r = succeeded(weft('run', stories, '--prompt-ids', promptIds, '--steps', '10', '--temperature', '0', '--json', '--dump-logits', dump));
    const out = JSON.parse(r.stdout);
    expect(out.tokens).toEqual(expected);
    expect(out.text).toBeNull();
    expect(out.prompt_tokens).toBe(3);
    expect(maxAbsDiff(readF32(dump), fixtureLogits('stories-greedy', 10))).toBeLessThan(LOGIT_TOLERANCE);
  });

  it('streams the text run.c prints for a prompt', () => {
    const r = succeeded(weft('run', aidreams, '--tokenizer', tokenizer, '--prompt', 'I dream of a quiet city', '--temperature', '0', '--steps', '30'));
    const tok = Tokenizer.fromBytes(new Uint8Array(readFileSync(tokenizer)), VOCAB, tokenizer);
    const printed = Buffer.from(tok.decode(fixtureTokens('aidreams-prompt').slice(0, 31))).toString('utf8');
    expect(r.stdout).toBe(`${printed}\n`);
    expect(readFileSync(join(dir, 'aidreams-prompt.stdout.txt'), 'utf8').startsWith(printed)).toBe(true);
  });
});

describe('weft inspect', () => {
  it('prints one graph', () => {
    expect(succeeded(weft('inspect', aidreams, '--graph', 'decode')).stdout).toMatch(/^graph decode\(P\) \{\n/);
  });
});

describe('weft bench', () => {
  it('times prefill at each prompt length and decode, and writes the rows as JSON', () => {
    const json = join(tmp, 'bench.json');
    const r = succeeded(
      weft('bench', '--model', stories, '--prompt-tokens', '5,12', '--decode-tokens', '3', '--runs', '2', '--warmup-seconds', '0', '--json', json),
    );
    const rows = JSON.parse(readFileSync(json, 'utf8'));
    expect(rows).toHaveLength(1);
    const [row] = rows;
    expect(row.engine).toBe('weft');
    expect(row.model).toBe('stories260K.bin');
    expect(Object.keys(row.prefill_tokens_per_s)).toEqual(['5', '12']);
    for (const rate of [...Object.values(row.prefill_tokens_per_s), row.decode_tokens_per_s]) expect(rate).toBeGreaterThan(0);
    expect(row.dispatches.decode).toBeGreaterThan(0);
    expect(Object.keys(row.kernels.prefill)).toEqual(['5', '12']);
    expect(r.stdout).toMatch(/^weft stories260K\.bin \[f32 weights[^\]]*\]: prefill 5: [\d.]+ tok\/s/);
    expect(row.decode_sampling).toBe('greedy');
  });

  it('times decode with tokens sampled on the host', () => {
    const json = join(tmp, 'bench-sampled.json');
    const r = succeeded(
      weft('bench', '--model', stories, '--prompt-tokens', '5', '--decode-tokens', '3', '--runs', '1', '--warmup-seconds', '0', '--no-kernels', '--temperature', '0.8', '--topp', '0.5', '--json', json),
    );
    const [row] = JSON.parse(readFileSync(json, 'utf8'));
    expect(row.decode_sampling).toBe('temperature 0.8, top-p 0.5');
    expect(row.decode_tokens_per_s).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/decode \(sampled: temperature 0\.8, top-p 0\.5\): [\d.]+ tok\/s/);
  });
});

describe('bad input', () => {
  const checkpoint = readFileSync(aidreams);
  const file = (name: string, bytes: Uint8Array): string => {
    const path = join(tmp, name);
    writeFileSync(path, bytes);
    return path;
  };
  const tenBytes = file('ten.bin', new Uint8Array(10));
  const truncated = file('cut.bin', checkpoint.subarray(0, checkpoint.length - 100));
  const huge = Buffer.from(checkpoint);
  huge.writeInt32LE(2 ** 30, 0); // dim
  const absurd = file('huge.bin', huge);
  const missing = join(tmp, 'missing.bin');
  const smallTokenizer = file('tok100.bin', firstTokens(readFileSync(tokenizer), 100));
  const longPrompt = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');

  // Output files of failed runs land here; none may stay.
  const dumps = mkdtempSync(join(tmp, 'dumps-'));
  let n = 0;
  const run = (...args: string[]): string[] => ['run', ...args, '--dump-logits', join(dumps, `${n++}.f32`)];
  const withTok = (...args: string[]): string[] => run(aidreams, '--tokenizer', tokenizer, ...args);

  it.each<[string, string[], RegExp]>([
    ['a tokenizer as the model', run(tokenizer), /tok512-aidreams\.bin: header \w+ = -?\d+ is out of range/],
    ['a 10-byte file', run(tenBytes), /ten\.bin: too short for a llama2\.c header/],
    ['a truncated checkpoint', run(truncated), /cut\.bin: truncated: expected \d+ bytes for this header, got \d+/],
    ['an absurd header', run(absurd), /huge\.bin: header dim = 1073741824 is out of range/],
    ['a missing checkpoint', run(missing), /cannot read checkpoint .*missing\.bin: ENOENT/],
    ['a tokenizer of another vocabulary', run(aidreams, '--tokenizer', smallTokenizer), /tok100\.bin: tokenizer has 100 tokens, model vocabulary is 512/],
    ['--steps beyond the context', withTok('--steps', '129'), /steps 129 is beyond the model's context of 128/],
    ['negative --steps', withTok('--steps', '-1'), /--steps must be a whole number >= 0, got -1/],
    ['fractional --steps', withTok('--steps', '1.5'), /--steps must be a whole number >= 0, got 1\.5/],
    ['--steps without a value', withTok('--steps'), /steps/],
    ['an empty --prompt-ids item', withTok('--prompt-ids', '1,,2'), /--prompt-ids: item 2 \(''\) is not a token id/],
    ['non-numeric --prompt-ids', withTok('--prompt-ids', 'a,b'), /--prompt-ids: item 1 \('a'\) is not a token id/],
    ['--prompt-ids outside the vocabulary', withTok('--prompt-ids', '1,99999'), /prompt token 1 is 99999, outside the vocabulary 0\.\.511/],
    ['a prompt longer than the context', withTok('--prompt', longPrompt), /the prompt has \d+ tokens, longer than the model's context of 128/],
    ['--prompt without a tokenizer', run(stories, '--prompt', 'hello'), /a text prompt needs a tokenizer/],
    ['an unknown flag', withTok('--bogus'), /unknown argument: bogus/i],
    ['negative --temperature', withTok('--temperature', '-1'), /temperature must be a finite number >= 0, got -1/],
    ['--topp above 1', withTok('--topp', '1.5'), /top-p must be in \[0, 1\], got 1\.5/],
    ['an unknown backend', withTok('--backend', 'nosuchbackend', '--steps', '2'), /no WebGPU adapter \(nosuchbackend/],
    ['an unwritable --dump-logits', ['run', aidreams, '--steps', '2', '--json', '--dump-logits', join(dumps, 'no-such-folder', 'x.f32')], /cannot write .*x\.f32: ENOENT/],
    ['an unknown command', ['bogus'], /unknown command: bogus/i],
    ['no command', [], /name a command: run, chat, inspect, compile or bench/],
    ['inspect on a bad file', ['inspect', truncated], /cut\.bin: truncated/],
    ['bench with negative --warmup-seconds', ['bench', '--model', stories, '--warmup-seconds', '-1', '--json', join(dumps, 'w.json')], /--warmup-seconds must be a number ≥ 0, got -1/],
    ['bench with a negative --temperature', ['bench', '--model', stories, '--temperature', '-1', '--json', join(dumps, 't.json')], /sampler: temperature must be a finite number >= 0, got -1/],
    ['bench sampling beside peers', ['bench', '--model', stories, '--temperature', '0.8', '--peers', 'tfjs', '--json', join(dumps, 's.json')], /--temperature: the peers decode greedily only/],
    ['bench with a prompt beyond the context', ['bench', '--model', stories, '--prompt-tokens', '600', '--json', join(dumps, 'p.json')], /--prompt-tokens 600 is outside 1\.\.512 \(the model's context\)/],
    ['inspect on an unknown graph', ['inspect', aidreams, '--graph', 'nope'], /graph.*nope/],
  ])('%s', (_, args, message) => {
    const r = weft(...args);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^weft: [^\n]+\n$/);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/^ {4}at /m);
    expect(readdirSync(dumps, { recursive: true })).toEqual([]);
  });
});

/** The header and first `count` entries of a llama2.c tokenizer file: a valid tokenizer of `count` tokens. */
function firstTokens(bytes: Buffer, count: number): Buffer {
  let offset = 4;
  for (let i = 0; i < count; i++) offset += 8 + bytes.readInt32LE(offset + 4);
  return bytes.subarray(0, offset);
}
