// `weft bench --peers llama.cpp` from the command line: weft and llama.cpp's CPU build time one GGUF file, written
// once into --gguf-dir and reused; a file type the model's rows cannot hold is one error line.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runWeft, succeeded } from './weft-process.js';

const stories = new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'weft-bench-llama-cpp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const ggufDir = join(tmp, 'gguf');
const TIMEOUT = 120_000;

const bench = (json: string, ...args: string[]) =>
  runWeft(
    [
      'bench',
      '--model',
      stories,
      '--peers',
      'llama.cpp',
      '--gguf-dir',
      ggufDir,
      '--prompt-tokens',
      '5,12',
      '--decode-tokens',
      '3',
      '--runs',
      '1',
      '--warmup-seconds',
      '0',
      '--no-kernels',
      '--json',
      json,
      ...args,
    ],
    TIMEOUT,
  );

describe('weft bench --peers llama.cpp', () => {
  it(
    'times weft and llama.cpp (cpu) on the same GGUF file, written once and then reused, and the rows name it',
    () => {
      const json = join(tmp, 'rows.json');
      const first = succeeded(bench(json, '--decode-after', '1,9'));
      const [file] = readdirSync(ggufDir);
      expect(file).toMatch(/^stories260K-[0-9a-f]{8}-stored\.gguf$/);
      const path = join(ggufDir, file!);
      expect(first.stderr).toContain(`writing ${path}`);
      expect(first.stdout).toMatch(
        /^weft stories260K\.bin \[f32 weights[^\]]*\]: prefill 5: [\d.]+ tok\/s.*, prefill 12: [\d.]+ tok\/s.*, decode: [\d.]+ tok\/s.*, decode after 9: [\d.]+ tok\/s/m,
      );
      expect(first.stdout).toMatch(
        /^llama\.cpp \(cpu\) stories260K\.bin \[f32 weights\]: prefill 5: [\d.]+ tok\/s, prefill 12: [\d.]+ tok\/s, decode: [\d.]+ tok\/s, decode after 9: [\d.]+ tok\/s \(cpu: .+, \d+ threads\)$/m,
      );
      expect(first.stdout.split('\n').filter((l) => l === `  file: ${path}`)).toHaveLength(2);

      const rows = JSON.parse(readFileSync(json, 'utf8'));
      expect(rows.map((r: { engine: string }) => r.engine)).toEqual(['weft', 'llama.cpp (cpu)']);
      for (const row of rows) {
        expect(row.file).toBe(path);
        expect(row.weights).toBe('f32');
        // decode after a one-token prompt and after a 9-token one, in both engines
        expect(Object.keys(row.decode_after_tokens_per_s)).toEqual(['1', '9']);
        expect(row.decode_tokens_per_s).toBe(row.decode_after_tokens_per_s['1']);
        for (const rate of [...Object.values(row.prefill_tokens_per_s), ...Object.values(row.decode_after_tokens_per_s)]) expect(rate).toBeGreaterThan(0);
      }

      const again = succeeded(bench(json));
      expect(again.stderr).not.toContain('writing');
      expect(readdirSync(ggufDir)).toEqual([file]);
    },
    TIMEOUT,
  );

  it(
    'a file type whose blocks the rows cannot hold is one error line, before anything runs',
    () => {
      const r = bench(join(tmp, 'refused.json'), '--weights', 'q8_0');
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        /^weft: --weights q8_0: .*stories260K\.bin: layers\.0\.w2's rows of 172 values are not whole q8_0 blocks of 32 \(the file type stores it in q8_0\)\n$/,
      );
    },
    TIMEOUT,
  );
});
