// Model.load's progress: bytes uploaded, then pipelines compiled, each rising to its total; and the bar
// that draws them on a terminal (a stream that says it is one) and nowhere else.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadModel, type LoadPhase } from '../src/api.js';
import { loadProgressBar } from '../src/progress-bar.js';

const stories = new URL('../../shared/fixtures/llama2c/stories260K.bin', import.meta.url).pathname;

interface Call {
  readonly done: number;
  readonly total: number;
  readonly name: string;
  readonly phase: LoadPhase;
}

/** A stream that says it is a terminal, keeping what is written. */
function terminal(): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 160 });
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('load progress', () => {
  it('reports uploaded bytes, then compiled pipelines, each rising to its total', async () => {
    const calls: Call[] = [];
    const { stream, text } = terminal();
    const bar = loadProgressBar(stream)!;
    const model = await loadModel(stories, {
      onProgress: (done, total, name, phase) => {
        calls.push({ done, total, name, phase });
        bar.onProgress(done, total, name, phase);
      },
    });
    try {
      const phases = calls.map((c) => c.phase);
      expect(phases.indexOf('compile')).toBe(phases.lastIndexOf('upload') + 1); // every upload, then every compile
      for (const phase of ['upload', 'compile'] as const) {
        const of = calls.filter((c) => c.phase === phase);
        expect(of.length, phase).toBeGreaterThan(1);
        expect(new Set(of.map((c) => c.total)).size, phase).toBe(1);
        for (let i = 1; i < of.length; i++) expect(of[i]!.done, `${phase} ${of[i]!.name}`).toBeGreaterThan(of[i - 1]!.done);
        expect(of.at(-1)!.done, phase).toBe(of[0]!.total);
      }
      const compiles = calls.filter((c) => c.phase === 'compile');
      expect(compiles.map((c) => c.done)).toEqual(compiles.map((_, i) => i + 1));
      expect(calls.find((c) => c.phase === 'upload' && c.name === 'tok_embeddings')).toBeDefined();
      // the load awaits the decode graph's pipelines only: its argmax and split attention are among them, prefill's
      // tiles (one pipeline a kernel, as many as decode's GEMVs and more) are not
      const names = compiles.map((c) => c.name);
      expect(names).toContain('next');
      expect(names.filter((n) => /\.(partial|combine)$/.test(n))).toHaveLength(2);
      expect(compiles.at(-1)!.total).toBe(names.length);
      // the bar drew both phases and cleared itself once the last pipeline compiled
      expect(text()).toContain('uploading weights');
      expect(text()).toMatch(/compiling pipelines .* (\d+) of \1/);
      expect(text().endsWith('\x1b[2K')).toBe(true);
    } finally {
      model.release();
    }
  });

  it('draws nothing where the stream is not a terminal', () => {
    expect(loadProgressBar(Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream)).toBeUndefined();
  });
});
