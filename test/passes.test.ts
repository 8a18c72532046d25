// Each pass on small IR texts: test/passes/<pass>/<case>.before.ir, run through that pass alone and verified,
// prints as <case>.expected.ir. Accept an intended change with `npx vitest run test/passes.test.ts -u` and review the diff.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseGraph, printGraph } from '../src/ir/index.js';
import { defaultPassContext, type Pass, type PassContext } from '../src/passes/pass.js';
import { pipeline } from '../src/passes/pipeline.js';
import { runPipeline } from '../src/passes/run-pipeline.js';

const dir = new URL('passes/', import.meta.url);
const BEFORE = '.before.ir';
const EXPECTED = '.expected.ir';

const files = (pass: string): string[] => readdirSync(new URL(`${pass}/`, dir)).sort();

/**
 * The PassContext a case asks for in its first line, `# maxStorageBuffers: 5` or `# formats: layers.0.wv=q6_k, …`
 * (several fields separated by `;`); the default otherwise.
 */
function caseContext(text: string, source: string): PassContext {
  const first = /^#\s*(\w+\s*:.*)$/.exec(text.slice(0, text.indexOf('\n')));
  if (!first) return defaultPassContext;
  const fail = (msg: string): never => {
    throw new Error(`${source}:1: ${msg}`);
  };
  let ctx: PassContext = defaultPassContext;
  for (const field of first[1]!.split(';')) {
    const colon = field.indexOf(':');
    const [key, value] = [field.slice(0, colon).trim(), field.slice(colon + 1).trim()];
    if (key === 'maxStorageBuffers') {
      if (!/^\d+$/.test(value)) fail(`maxStorageBuffers must be a whole number, is '${value}'`);
      ctx = { ...ctx, maxStorageBuffers: Number(value) };
    } else if (key === 'formats') {
      const pairs = value.split(',').map((pair) => /^\s*([\w.]+)\s*=\s*(\w+)\s*$/.exec(pair) ?? fail(`formats are tensor=format pairs, not '${pair.trim()}'`));
      ctx = { ...ctx, formats: new Map(pairs.map(([, tensor, format]) => [tensor!, format!])) };
    } else {
      fail(`unknown pass context field '${key}' (fields: maxStorageBuffers, formats)`);
    }
  }
  return ctx;
}

describe('pass cases', () => {
  it('every pass has a folder of Before cases, every folder is a pass, and every Expected has its Before', () => {
    expect(readdirSync(dir).sort()).toEqual(pipeline.map((p) => p.name).sort());
    for (const p of pipeline) {
      const names = files(p.name);
      expect(names.filter((f) => f.endsWith(BEFORE)).length, p.name).toBeGreaterThan(0);
      const strays = names.filter((f) => !f.endsWith(BEFORE) && !(f.endsWith(EXPECTED) && names.includes(f.slice(0, -EXPECTED.length) + BEFORE)));
      expect(strays, p.name).toEqual([]);
    }
  });

  for (const pass of pipeline) {
    describe(pass.name, () => {
      for (const file of files(pass.name).filter((f) => f.endsWith(BEFORE))) {
        const name = file.slice(0, -BEFORE.length);
        it(name, async () => {
          const source = `${pass.name}/${file}`;
          const text = readFileSync(new URL(source, dir), 'utf8');
          // runPipeline verifies the Before and the graph the pass returns
          const after = printGraph(runPipeline(parseGraph(text, source), [pass], caseContext(text, source)));
          await expect(after).toMatchFileSnapshot(`passes/${pass.name}/${name}${EXPECTED}`);
          expect(printGraph(parseGraph(after))).toBe(after);
        });
      }
    });
  }
});

describe('checking only the ends of a pipeline', () => {
  const text = readFileSync(new URL('fuse-elementwise/' + files('fuse-elementwise').find((f) => f.endsWith(BEFORE))!, dir), 'utf8');
  const graph = parseGraph(text);
  // a pass that leaves an output no node defines
  const breaks: Pass = { name: 'breaks-outputs', description: 'names an output nothing defines', run: (g) => ({ ...g, outputs: [...g.outputs, 'nowhere'] }) };
  // a pass that throws on a graph another pass broke
  const trips: Pass = {
    name: 'trips',
    description: 'fails on an undefined output',
    run: (g) => {
      if (g.outputs.includes('nowhere')) throw new TypeError('cannot read what is not there');
      return g;
    },
  };

  it('gives the graph every-pass checking gives', () => {
    expect(printGraph(runPipeline(graph, pipeline, defaultPassContext, undefined, 'ends'))).toBe(printGraph(runPipeline(graph, pipeline)));
  });

  it('names the pass that broke the graph, as every-pass checking does, where the result or a later pass fails', () => {
    for (const passes of [[breaks], [breaks, trips], [pipeline[0]!, breaks, ...pipeline.slice(1)]]) {
      expect(() => runPipeline(graph, passes, defaultPassContext, undefined, 'ends')).toThrow(/^after pass breaks-outputs: /);
    }
  });
});
