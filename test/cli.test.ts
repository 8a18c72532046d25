// The built CLI (dist/src/cli.js, run `npx tsc -p .` first) against the llama2.c fixtures: JSON, dumped
// logits and streamed text as run.c gives them; every bad input exits non-zero with one `weft: ` line on stderr.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runWeft, succeeded, type Result } from './weft-process.js';
import { Tokenizer } from '../src/runtime/tokenizer.js';
import { maxAbsDiff } from './reference.js';
import { bindFlagValues, readCFloat, readCInt, readDecimal, readInteger } from '../src/cli-flags.js';

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
  return readFileSync(join(dir, `${name}.tokens.txt`), 'utf8')
    .trim()
    .split('\n')
    .map(Number);
}

function fixtureLogits(name: string, rows: number): Float32Array {
  const bytes = readFileSync(join(dir, `${name}.logits.f32`));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + rows * VOCAB * 4));
}

function readF32(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
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
    // time to first token counts from the process's start: the load's phases and the prefill are inside it
    const phases = ['read', 'device', 'compile', 'upload', 'pipelines'];
    expect(Object.keys(out.load_s)).toEqual(phases);
    for (const phase of phases) expect(out.load_s[phase], phase).toBeGreaterThanOrEqual(0);
    const loaded = phases.reduce((sum, phase) => sum + out.load_s[phase], 0);
    expect(out.prefill_s).toBeGreaterThan(0);
    expect(out.time_to_first_token_s).toBeGreaterThan(loaded + out.prefill_s);
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
    // the prompt prefilled two tokens a run prints the same, and a chunk of no tokens is refused before the GPU opens
    expect(
      succeeded(
        weft('run', aidreams, '--tokenizer', tokenizer, '--prompt', 'I dream of a quiet city', '--temperature', '0', '--steps', '30', '--prefill-chunk', '2'),
      ).stdout,
    ).toBe(`${printed}\n`);
    const zero = weft('run', aidreams, '--tokenizer', tokenizer, '--prefill-chunk', '0');
    expect(zero.status).toBe(1);
    expect(zero.stderr).toBe('weft: the prefill chunk must be a positive whole number of tokens, got 0\n');
  });
});

describe('weft run: flag values', () => {
  const runJson = (...args: string[]) => JSON.parse(succeeded(weft('run', aidreams, '--tokenizer', tokenizer, '--json', ...args)).stdout);
  const now = (): number => Date.now() / 1000;

  it('takes a --prompt that starts with a dash as the prompt, as run.c -i does', () => {
    const tok = Tokenizer.fromBytes(new Uint8Array(readFileSync(tokenizer)), VOCAB, tokenizer);
    const prompt = tok.encode('-dash first', true);
    const out = runJson('--prompt', '-dash first', '--temperature', '0', '--steps', String(prompt.length + 2));
    expect(out.tokens.slice(0, prompt.length)).toEqual(prompt);
    expect(out.prompt_tokens).toBe(prompt.length);
  });

  it('reads --steps and --seed as atoi does, and reports the seed used', () => {
    const out = runJson('--steps', '1e1', '--seed', '1e3');
    expect(out.tokens).toHaveLength(1); // atoi('1e1') is 1
    expect(out.seed).toBe(1); // atoi('1e3') is 1
    expect(runJson('--steps', '2.9', '--seed', '4294967297').seed).toBe(1); // the low 32 bits
  });

  it('seeds from the time where atoi gives 0, and --json reports that seed', () => {
    for (const seed of ['0x10', '4294967296']) {
      const before = Math.floor(now());
      const out = runJson('--steps', '2', '--seed', seed);
      expect(out.seed).toBeGreaterThanOrEqual(before);
      expect(out.seed).toBeLessThanOrEqual(Math.ceil(now()));
    }
  });
});

describe('flag values', () => {
  it('reads integers as glibc atoi does', () => {
    const cases: [string, number | undefined][] = [
      ['42', 42],
      ['1e3', 1],
      ['0x10', 0],
      [' \t-7x', -7],
      ['+5', 5],
      ['2.9', 2],
      ['4294967296', 0],
      ['4294967297', 1],
      ['2147483648', -2147483648],
      ['99999999999999999999', -1],
      ['-99999999999999999999', 0],
      ['abc', undefined],
      ['', undefined],
      ['-', undefined],
      ['x1', undefined],
    ];
    for (const [text, n] of cases) expect(readCInt(text), text).toBe(n);
  });

  it('reads floats as glibc atof does', () => {
    const cases: [string, number | undefined][] = [
      ['0.9', 0.9],
      ['1e3x', 1000],
      ['1e', 1],
      ['.5', 0.5],
      ['5.', 5],
      ['  -2.5', -2.5],
      ['-1', -1],
      ['0x1p-1', 0.5],
      ['0x.8', 0.5],
      ['0X1.8P1', 3],
      ['0x', 0],
      ['0x1p', 1],
      ['0x0p99999', 0],
      ['0x1p-1074', 5e-324],
      ['0x1p1024', Infinity],
      ['inf', Infinity],
      ['-INFINITY', -Infinity],
      ['infinite', Infinity],
      ['abc', undefined],
      ['', undefined],
      ['e5', undefined],
    ];
    for (const [text, n] of cases) expect(readCFloat(text), text).toBe(n);
    expect(readCFloat('nan(1)')).toBeNaN();
  });

  it("reads weft's own numbers as plain decimals only", () => {
    expect(['10', '-3', '0'].map(readInteger)).toEqual([10, -3, 0]);
    expect(['1e1', '0x10', ' 1', '1.0', '+1', '', '9007199254740993'].map(readInteger)).toEqual(Array(7).fill(undefined));
    expect(['0.5', '67', '-1', '.5'].map(readDecimal)).toEqual([0.5, 67, -1, 0.5]);
    expect(['1e0', '0x1', 'inf', '', '1.2.3'].map(readDecimal)).toEqual(Array(5).fill(undefined));
  });

  it('binds the token after each value-taking flag to it', () => {
    const tables = {
      run: { prompt: { kind: 'text', describe: '' }, json: { kind: 'switch', describe: '' }, 'dump-logits': { kind: 'text', describe: '' } },
    } as const;
    expect(bindFlagValues(['run', 'm', '--prompt', '-x', '--json', '--dumpLogits', '--', '--prompt', '-y'], tables)).toEqual([
      'run',
      'm',
      '--prompt=-x',
      '--json',
      '--dumpLogits=--',
      '--prompt=-y',
    ]);
    expect(bindFlagValues(['run', 'm', '--json', '--', '--prompt', '-y'], tables)).toEqual(['run', 'm', '--json', '--', '--prompt', '-y']);
    expect(bindFlagValues(['run', 'm', '--prompt'], tables)).toEqual(['run', 'm', '--prompt']);
    expect(bindFlagValues(['other', '--prompt', '-x'], tables)).toEqual(['other', '--prompt', '-x']);
  });
});

describe('weft inspect', () => {
  it('prints one graph', () => {
    expect(succeeded(weft('inspect', aidreams, '--graph', 'decode')).stdout).toMatch(/^graph decode\(P\) \{\n/);
  });
});

describe('weft bench', () => {
  /** `weft bench` with ARGS, one timed run, no warm-up time and no kernel profile, its rows written to `json` */
  const quickBench = (json: string, ...args: string[]) => weft('bench', ...args, '--runs', '1', '--warmup-seconds', '0', '--no-kernels', '--json', json);

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
    expect(row.matmul).toBe('float');
    // a one-token prompt's first token after the load began: the load's phases and that run
    const { time_to_first_token_s: ttft, load_s: load, first_run_s: firstRun } = row.cold_start;
    expect(firstRun).toBeGreaterThan(0);
    expect(ttft).toBeGreaterThanOrEqual(firstRun + Object.values(load as Record<string, number>).reduce((a, b) => a + b, 0) - 1e-6);
    expect(r.stdout).toMatch(/^ {2}cold start: first token [\d.]+ s after the load began \(load: read [\d.]+, device/m);
    // where a decode step's time goes: the host's recording and submit, the GPU's pass beside its kernels alone
    const step = row.decode_step;
    expect(step.wall_ms).toBeCloseTo(1000 / row.decode_tokens_per_s, 6);
    for (const ms of [step.record_ms, step.submit_ms, step.pass_ms, step.kernels_ms]) expect(ms).toBeGreaterThan(0);
    expect(step.dispatches).toBeGreaterThan(0);
    expect(step.dispatches).toBeLessThanOrEqual(row.dispatches.decode);
    expect(r.stdout).toMatch(
      /^ {2}decode step: [\d.]+ ms a token; host records [\d.]+ ms and submits [\d.]+ ms of \d+ dispatches; GPU [\d.]+ ms over its pass/m,
    );
  });

  it('--matmul float,int8: a row each, int8 with the matrices as Q8_0', () => {
    const json = join(tmp, 'bench-matmul.json');
    const r = succeeded(quickBench(json, '--model', aidreams, '--prompt-tokens', '5', '--decode-tokens', '2', '--matmul', 'float,int8'));
    const rows = JSON.parse(readFileSync(json, 'utf8'));
    expect(rows.map((row: { matmul: string; weights: string }) => [row.matmul, row.weights])).toEqual([
      ['float', 'f32'],
      ['int8', 'f32+q8_0'],
    ]);
    expect(r.stdout).toMatch(/^weft aidreams260K\.bin \[f32\+q8_0 weights, int8 matmuls/m);
  });

  it("--decode-after: decode timed after each prompt length, the shortest as the row's decode figure", () => {
    const json = join(tmp, 'bench-after.json');
    const r = succeeded(quickBench(json, '--model', stories, '--prompt-tokens', '5', '--decode-tokens', '3', '--decode-after', '300,1'));
    const [row] = JSON.parse(readFileSync(json, 'utf8'));
    expect(Object.keys(row.decode_after_tokens_per_s)).toEqual(['1', '300']);
    expect(row.decode_tokens_per_s).toBe(row.decode_after_tokens_per_s['1']);
    expect(r.stdout).toMatch(/, decode: [\d.]+ tok\/s \([\d.]+ GB\/s of weights\), decode after 300: [\d.]+ tok\/s \(default: /);
    // the context less the timed steps is the longest prompt decode can follow
    const refused = weft('bench', '--model', stories, '--decode-tokens', '3', '--decode-after', '1,510', '--runs', '1');
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe('weft: --decode-after 510 is outside 1..509 (the context less --decode-tokens 3)\n');
    // a synthetic model's context is --context (default 1024), up to Llama 3.2's, checked before the device opens
    const synthetic = (...args: string[]) => weft('bench', '--model', '1B', '--decode-tokens', '64', '--runs', '1', ...args);
    expect(synthetic('--decode-after', '1000').stderr).toBe('weft: --decode-after 1000 is outside 1..960 (the context less --decode-tokens 64)\n');
    expect(synthetic('--context', '4096', '--decode-after', '4040').stderr).toBe(
      'weft: --decode-after 4040 is outside 1..4032 (the context less --decode-tokens 64)\n',
    );
    expect(synthetic('--context', '131073').stderr).toBe('weft: synthetic 1B: a context of 131073 positions is outside 1..131072\n');
  });

  it('times decode with tokens sampled on the host', () => {
    const json = join(tmp, 'bench-sampled.json');
    const r = succeeded(quickBench(json, '--model', stories, '--prompt-tokens', '5', '--decode-tokens', '3', '--temperature', '0.8', '--topp', '0.5'));
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
    ['--steps without a value', ['run', aidreams, '--steps'], /Not enough arguments following: steps/],
    ['--steps with no number', withTok('--steps', 'abc'), /--steps: 'abc' is not a number \(read as C atoi reads it\)/],
    ['--context in exponent notation', withTok('--context', '1e1'), /--context: '1e1' is not a whole number in decimal/],
    ['an empty --prompt-ids item', withTok('--prompt-ids', '1,,2'), /--prompt-ids: item 2 \(''\) is not a token id/],
    ['non-numeric --prompt-ids', withTok('--prompt-ids', 'a,b'), /--prompt-ids: item 1 \('a'\) is not a token id/],
    ['--prompt-ids outside the vocabulary', withTok('--prompt-ids', '1,99999'), /prompt token 1 is 99999, outside the vocabulary 0\.\.511/],
    ['a prompt longer than the context', withTok('--prompt', longPrompt), /the prompt has \d+ tokens, longer than the model's context of 128/],
    ['--prompt without a tokenizer', run(stories, '--prompt', 'hello'), /a text prompt needs a tokenizer/],
    ['an unknown flag', withTok('--bogus'), /unknown argument: bogus/i],
    ['negative --temperature', withTok('--temperature', '-1'), /temperature must be a finite number >= 0, got -1/],
    ['--topp above 1', withTok('--topp', '1.5'), /top-p must be in \[0, 1\], got 1\.5/],
    ['an unknown backend', withTok('--backend', 'nosuchbackend', '--steps', '2'), /no WebGPU adapter \(nosuchbackend/],
    ['an unknown --matmul', withTok('--matmul', 'int4'), /matmul.*int4.*"float", "int8"/],
    [
      '--matmul int8 over weights without int8 blocks',
      withTok('--matmul', 'int8', '--weights', 'f16'),
      /int8 matmuls multiply int8 blocks, and f16 weights have none \(formats with them: q8_0, /,
    ],
    ['an unknown bench --matmul', ['bench', '--model', aidreams, '--matmul', 'float,int4'], /--matmul: 'int4' is not one of auto, float, int8, int8-matrix/],
    // output paths are checked before the work starts: before the checkpoint is read
    [
      '--dump-logits in a missing folder',
      ['run', missing, '--dump-logits', join(dumps, 'no-such-folder', 'x.f32')],
      /--dump-logits .*x\.f32: no folder .*no-such-folder$/m,
    ],
    ['--dump-logits naming a folder', ['run', missing, '--dump-logits', dumps], /--dump-logits .*: is a folder, not a file/],
    ['--dump-logits under a file', ['run', missing, '--dump-logits', join(tenBytes, 'x.f32')], /--dump-logits .*ten\.bin.x\.f32: .*ten\.bin is not a folder/],
    ['bench --json in a missing folder', ['bench', '--model', missing, '--json', join(dumps, 'no-such-folder', 'rows.json')], /--json .*rows\.json: no folder/],
    [
      'compile --dump-dir under a file',
      ['compile', missing, '--graph', 'decode', '--dump-after', 'all', '--dump-dir', join(tenBytes, 'd')],
      /--dump-dir .*: .*ten\.bin is not a folder/,
    ],
    // a value that starts with a dash is the value (these fail later, on the value itself)
    ['--prompt-ids starting with a dash', withTok('--prompt-ids', '-1'), /--prompt-ids: item 1 \('-1'\) is not a token id/],
    ['--tokenizer starting with a dash', run(aidreams, '--tokenizer', '-no-such-tokenizer.bin'), /cannot read tokenizer -no-such-tokenizer\.bin: ENOENT/],
    ['compile --passes starting with a dash', ['compile', aidreams, '--graph', 'decode', '--passes', '-bogus'], /unknown pass '-bogus'/],
    [
      'bench --model starting with a dash',
      ['bench', '--model', '-no-such-model.bin', '--json', join(dumps, 'm.json')],
      /cannot read checkpoint -no-such-model\.bin: ENOENT/,
    ],
    ['chat --system starting with a dash', ['chat', aidreams, '--tokenizer', tokenizer, '--system', '-be brief'], /no chat template/],
    // a single-valued flag given twice is refused
    ['--prompt twice', withTok('--prompt', 'a', '--prompt', 'b'), /^weft: --prompt is given 2 times; give it once$/m],
    ['--tokenizer twice', run(aidreams, '--tokenizer', tokenizer, '--tokenizer', tokenizer), /^weft: --tokenizer is given 2 times; give it once$/m],
    ['--prompt-ids twice, in both spellings', withTok('--prompt-ids', '1', '--promptIds', '2'), /--prompt-ids is given 2 times/],
    ['--dump-logits twice', withTok('--dump-logits', join(dumps, 'a.f32')), /--dump-logits is given 2 times/],
    ['--weights twice', withTok('--weights', 'f16', '--weights', 'f32'), /--weights is given 2 times/],
    ['chat --system twice', ['chat', aidreams, '--system', 'a', '--system', 'b'], /--system is given 2 times/],
    ['chat --max-tokens, not a whole number', ['chat', aidreams, '--max-tokens', '1.5'], /--max-tokens: '1\.5' is not a whole number in decimal/],
    ['compile --graph twice', ['compile', aidreams, '--graph', 'decode', '--graph', 'prefill'], /--graph is given 2 times/],
    [
      'inspect --prompt-tokens in hexadecimal',
      ['inspect', aidreams, '--memory', '--prompt-tokens', '0x10'],
      /--prompt-tokens: '0x10' is not a whole number in decimal/,
    ],
    ['bench --json twice', ['bench', '--model', stories, '--json', join(dumps, 'a.json'), '--json', join(dumps, 'b.json')], /--json is given 2 times/],
    [
      'bench --runs in hexadecimal',
      ['bench', '--model', stories, '--runs', '0x2', '--json', join(dumps, 'r.json')],
      /--runs: '0x2' is not a whole number in decimal/,
    ],
    [
      'bench --prompt-tokens in exponent notation',
      ['bench', '--model', stories, '--prompt-tokens', '5,1e1', '--json', join(dumps, 'e.json')],
      /--prompt-tokens: item 2 \('1e1'\) is not a whole number in decimal/,
    ],
    [
      'bench --warmup-seconds in exponent notation',
      ['bench', '--model', stories, '--warmup-seconds', '1e0', '--json', join(dumps, 'x.json')],
      /--warmup-seconds: '1e0' is not a decimal number/,
    ],
    [
      'bench --model repeated, each read',
      ['bench', '--model', missing, '--model', stories, '--json', join(dumps, 'two.json')],
      /cannot read checkpoint .*missing\.bin: ENOENT/,
    ],
    ['an unknown command', ['bogus'], /unknown command: bogus/i],
    ['no command', [], /name a command: run, chat, inspect, compile or bench/],
    ['inspect on a bad file', ['inspect', truncated], /cut\.bin: truncated/],
    [
      'bench with negative --warmup-seconds',
      ['bench', '--model', stories, '--warmup-seconds', '-1', '--json', join(dumps, 'w.json')],
      /--warmup-seconds must be a number ≥ 0, got -1/,
    ],
    [
      'bench with a negative --temperature',
      ['bench', '--model', stories, '--temperature', '-1', '--json', join(dumps, 't.json')],
      /sampler: temperature must be a finite number >= 0, got -1/,
    ],
    [
      'bench sampling beside peers',
      ['bench', '--model', stories, '--temperature', '0.8', '--peers', 'tfjs', '--json', join(dumps, 's.json')],
      /--temperature: the peers decode greedily only/,
    ],
    [
      'bench with a prompt beyond the context',
      ['bench', '--model', stories, '--prompt-tokens', '600', '--json', join(dumps, 'p.json')],
      /--prompt-tokens 600 is outside 1\.\.512 \(the model's context\)/,
    ],
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
