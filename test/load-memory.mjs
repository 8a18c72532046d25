// Loads a checkpoint in a process of its own and reports the process's peak memory: the resident size before
// the load, the peak over the whole run (getrusage's maxrss), the device bytes of the weights, and the
// logits of a short greedy run, written to a file. Usage: node test/load-memory.mjs MODEL IDS STEPS LOGITS_OUT
import { writeFileSync } from 'node:fs';
import { loadModel } from '../dist/src/index.js';

const [model, ids, steps, out] = process.argv.slice(2);
const before = process.memoryUsage().rss;
const loaded = await loadModel(model, { context: Number(steps) });
const afterLoad = process.resourceUsage().maxRSS * 1024;
const logits = [];
const tokens = [];
try {
  for await (const s of loaded.generate({ promptIds: ids.split(',').map(Number), steps: Number(steps), temperature: 0, logits: true })) {
    tokens.push(s.token);
    logits.push(s.logits);
  }
} finally {
  loaded.release();
}
const all = new Float32Array(logits.reduce((n, l) => n + l.length, 0));
logits.reduce((at, l) => (all.set(l, at), at + l.length), 0);
writeFileSync(out, all);
console.log(JSON.stringify({ rssBefore: before, peakAfterLoad: afterLoad, tokens, residentBytes: loaded.residentBytes }));
