// Golden IR: the graphs the llama definition lowers to for a real checkpoint, as `weft inspect` prints
// them. Accept an intended change with `npx vitest run test/golden.test.ts -u` and review the diff.
import { describe, expect, it } from 'vitest';
import { buildGraphs, readCheckpoint } from '../src/api.js';
import { parseGraph } from '../src/ir/parse.js';
import { printGraph } from '../src/ir/print.js';
import { verifyGraph } from '../src/ir/verify.js';

const dir = new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname;

describe('golden IR', () => {
  for (const model of ['aidreams260K', 'stories260K']) {
    const graphs = buildGraphs(readCheckpoint(`${dir}${model}.bin`).config);
    for (const kind of ['prefill', 'decode'] as const) {
      it(`${model} ${kind}`, async () => {
        const text = printGraph(graphs[kind]);
        await expect(text).toMatchFileSnapshot(`golden/${model}.${kind}.ir`);
        const reparsed = parseGraph(text, `${model}.${kind}.ir`);
        verifyGraph(reparsed);
        expect(printGraph(reparsed)).toBe(text);
      });
    }
  }
});
