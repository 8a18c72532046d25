// Compares weft's logits with the transformers references that scripts/hf-checkpoints.py writes: one line per
// model with the largest |logit difference| over the prompt positions and over the greedy decode rows, the
// largest reference logit and greedy agreement; exits 1 when a difference exceeds the tolerance.
//   node scripts/compare-logits.mjs --tolerance 1e-3 OUT/llama-3.2-1b [OUT/qwen2.5-0.5b …]
// Each folder holds reference.json, logits.f32 and decode_logits.f32, and weft's output beside them, as the
// command hf-checkpoints.py prints writes it:
//   weft run DIR --prompt-ids … --steps 23 --context 32 --temperature 0 --json --dump-logits DIR/weft-logits.f32 > DIR/weft.json
// Decode rows are compared while weft's greedy tokens agree with the reference's (and the row where they first
// differ, whose inputs still agree); later rows were fed other tokens. A token that differs fails unless the
// reference's logits of the two are within two tolerances (a near tie).
import { existsSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { tolerance: { type: 'string' } }, allowPositionals: true });
const tolerance = Number(values.tolerance);
if (values.tolerance === undefined || !(tolerance >= 0) || positionals.length === 0) {
  console.error('usage: node scripts/compare-logits.mjs --tolerance X DIR [DIR …]');
  process.exit(2);
}
if (endianness() !== 'LE') throw new Error('the .f32 files are little-endian; this machine is not');

/** float32 rows of `vocab` values from a little-endian file */
function readRows(path, vocab) {
  const bytes = readFileSync(path);
  if (bytes.length % (4 * vocab) !== 0) throw new Error(`${path}: ${bytes.length} bytes is not a whole number of rows of ${vocab} float32`);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return Array.from({ length: bytes.length / (4 * vocab) }, (_, i) => all.subarray(i * vocab, (i + 1) * vocab));
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(rows) {
  let m = 0;
  for (const row of rows) for (const v of row) m = Math.max(m, Math.abs(v));
  return m;
}

const fmt = (x) => x.toExponential(2);

/** one model's summary line and whether it passes */
function compare(dir) {
  const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  const vocab = ref.config.vocab_size;
  const prefill = readRows(join(dir, 'logits.f32'), vocab);
  const decode = readRows(join(dir, 'decode_logits.f32'), vocab);
  for (const f of ['weft.json', 'weft-logits.f32']) if (!existsSync(join(dir, f))) return { line: `no ${f}`, ok: false };
  const weft = JSON.parse(readFileSync(join(dir, 'weft.json'), 'utf8'));
  const rows = readRows(join(dir, 'weft-logits.f32'), vocab);
  const T = ref.prompt.length;
  if (ref.prompt.some((t, i) => weft.tokens[i] !== t)) return { line: `weft was fed ${weft.tokens.slice(0, T)}, not the reference prompt`, ok: false };
  if (rows.length < T) return { line: `weft wrote ${rows.length} rows of logits, fewer than the ${T} prompt positions`, ok: false };

  const prefillDiff = Math.max(...prefill.map((row, p) => maxAbsDiff(rows[p], row)));
  const steps = Math.min(ref.greedy.length, rows.length - T + 1); // decode rows weft ran: row i is its position T-1+i
  let agree = 0;
  while (agree < steps && weft.generated[T - 1 + agree] === ref.greedy[agree]) agree++;
  const compared = Math.min(steps, agree + 1);
  const decodeDiff = Math.max(0, ...decode.slice(0, compared).map((row, i) => maxAbsDiff(rows[T - 1 + i], row)));
  // where weft chose another token, the reference must hold a near tie: its two logits within 2 tolerances
  const margin = agree < steps ? decode[agree][ref.greedy[agree]] - decode[agree][weft.generated[T - 1 + agree]] : 0;
  // weft stops early only where the reference's greedy run reaches an end-of-sequence id
  const expected = ref.greedy_stops_at == null ? ref.greedy.length : Math.min(ref.greedy.length, ref.greedy_stops_at + 1);
  const short = agree === steps && steps < expected;
  const ok = prefillDiff <= tolerance && decodeDiff <= tolerance && margin <= 2 * tolerance && !short;
  const stopped = steps < ref.greedy.length ? ` (weft ran ${steps} decode rows${short ? `, ${expected} expected` : ', then its end-of-sequence id'})` : '';
  const tie = agree < steps ? ` (row ${agree}: reference margin ${fmt(margin)})` : '';
  return {
    line:
      `prefill max|Δ| ${fmt(prefillDiff)} over ${T} rows, decode max|Δ| ${fmt(decodeDiff)} over ${compared}/${decode.length} rows, ` +
      `max|logit| ${maxAbs([...prefill, ...decode]).toFixed(3)}, greedy ${agree}/${ref.greedy.length}${tie}${stopped}`,
    ok,
  };
}

let failed = false;
for (const dir of positionals) {
  let result;
  try {
    result = compare(dir);
  } catch (e) {
    result = { line: e.message, ok: false };
  }
  failed ||= !result.ok;
  console.log(`${basename(dir)}: ${result.line} — ${result.ok ? 'ok' : `FAIL (tolerance ${tolerance})`}`);
}
process.exit(failed ? 1 : 0);
