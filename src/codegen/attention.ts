// Fused attention, replacing attn_scores → softmax → attn_mix: one flash-attention kernel for prefill and
// split-K flash-decoding (partial, then combine) for a single row. Every index is guarded and every
// workgroupBarrier sits in uniform control flow, so any rows, keys and headSize ≤ 256 are safe.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import {
  f32Lit,
  kernelSource,
  preciseMath,
  readBinding,
  subgroupBuiltins,
  u32Expr,
  wg,
  workgroupReduce,
  writeBinding,
  type KernelParts,
  type KernelSource,
} from './wgsl.js';
import type { WorkgroupCount } from '../runtime/plan.js';

export interface AttentionSpec {
  /** the IR value computed; scratch buffers are named after it (`${name}.partial_o`, …) */
  readonly name: string;
  /** [rows, heads*headSize], already RoPE'd */
  readonly q: string;
  /** the K cache [S, kvHeads*headSize]; rows 0..keys-1 are valid */
  readonly k: string;
  /** the V cache, same layout */
  readonly v: string;
  /** [rows, heads*headSize] */
  readonly out: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headSize: number;
  /** T (prefill) or the constant 1 (decode) */
  readonly rows: Affine;
  /** P+T (or P+1): row r sees keys 0..keys-rows+r */
  readonly keys: Affine;
  /** S, the cache length: an upper bound on keys */
  readonly contextLength: number;
}

export type AttentionKernels = KernelParts;

/** invocations of the decode combine, one per element of a head row in turn */
const COMBINE_THREADS = 64;
/** The masked-score sentinel and the running max before any key: the most negative finite f32. */
const NEG = '-3.402823e38';

/**
 * Values of V a decode group loads before it adds any (8: the 1B decode's 192 keys over 16 groups take two rounds
 * of loads, where one value at a time took twelve load latencies in a row).
 */
const V_IN_FLIGHT = 8;
/** `c0 + i` as WGSL. */
const c0Plus = (i: number): string => (i === 0 ? 'c0' : `c0 + ${i}u`);

/** Decode splits: at most this many, and at least this many cache rows per split. */
const MAX_SPLITS = 32;
/** The adapter's limits that size the kernels. */
export interface AttentionOptions {
  /** the adapter's maxComputeInvocationsPerWorkgroup */
  readonly maxInvocations: number;
  /** workgroup memory the prefill tiles may use (Q, K, V, scores and row state) */
  readonly maxWorkgroupBytes: number;
  /** the most query rows and keys of a prefill tile (a power of two; at least 4 rows whatever it is) */
  readonly maxTile: number;
  /** decode reduces with subgroup operations (see LinearOptions.subgroups) */
  readonly subgroups?: boolean;
  /** keys beyond which decode takes the query heads of a kv head together (default DECODE_GROUP_FROM; see headsTogether) */
  readonly decodeGroupFrom?: number;
  /**
   * prefill takes a query row an invocation where the head allows (prefillRowLayout) instead of register blocks. Off
   * by default: it has not been timed against the register-blocked kernel on a GPU, whose figures BENCHMARKS.md records.
   */
  readonly prefillRows?: boolean;
}

/**
 * Keys beyond which decode attention takes the query heads of a kv head in one workgroup. Up to here a workgroup a
 * head runs: four times the workgroups, which short caches need to fill the GPU; beyond, reading each key once for
 * all the heads is worth more. On an H100 (1B, 4 heads a kv head; decode rates of two runs each), a workgroup a head
 * was 10–21% faster at 1,024 keys, and the heads together 7–31% faster at 4,096 and 11–21% at 8,000 (BENCHMARKS.md).
 */
export const DECODE_GROUP_FROM = 2048;

/** 8 KiB of tiles (half of WebGPU's default workgroup memory), 256 invocations, tiles up to 16×16. */
export const defaultAttentionOptions: AttentionOptions = { maxInvocations: 256, maxWorkgroupBytes: 8192, maxTile: 16 };

/** The most invocations per workgroup the templates use: a power of two up to 256 within the adapter's limit. */
function workgroupThreads(o: AttentionOptions): number {
  let t = 256;
  while (t > 1 && t > o.maxInvocations) t /= 2;
  return t;
}

const one = wg(1);
const u = (n: number): string => `${n}u`;

/** How prefill splits a workgroup's work: its tiles, invocations and each invocation's block of scores and of outputs. */
export interface PrefillLayout {
  /** query rows of a workgroup: row groups of 4, an invocation's rows rowGroup + rowGroups·i */
  readonly rows: number;
  /** keys of a tile */
  readonly keys: number;
  readonly threads: number;
  /** vec4s of a head row */
  readonly width: number;
  /** vec4s from one row of the Q and K tiles to the next: odd, so rows fall in different memory banks */
  readonly stride: number;
  readonly rowGroups: number;
  /** a scoring invocation's keys of a tile are keyGroup + keyGroups·k, keysPerGroup of them */
  readonly keyGroups: number;
  readonly keysPerGroup: number;
  /** output blocks (a row group by a vec4 of the head) each invocation accumulates */
  readonly blocksPerThread: number;
  /** bytes of workgroup memory */
  readonly bytes: number;
}

/** The smallest power of two ≥ n. */
const pow2AtLeast = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/**
 * The layout of `rows` × `keys` tiles: as many invocations (at least 32, at most workgroupThreads) as give each
 * scoring invocation two keys of 4 rows or each output block to one invocation, whichever is more.
 */
function prefillLayoutOf(headSize: number, rows: number, keys: number, o: AttentionOptions): PrefillLayout {
  const width = Math.ceil(headSize / 4);
  const stride = width | 1;
  const rowGroups = rows / 4;
  const threads = Math.min(workgroupThreads(o), pow2AtLeast(Math.max((rowGroups * keys) / 2, (rowGroups * width) / 2, 32)));
  const keyGroups = Math.max(1, Math.min(keys, Math.floor(threads / rowGroups)));
  const vec4s = rows * stride + Math.max(keys * stride, keys * rowGroups) + keys * width + keyGroups * rowGroups + rowGroups;
  return {
    rows,
    keys,
    threads,
    width,
    stride,
    rowGroups,
    keyGroups,
    keysPerGroup: keys / keyGroups,
    blocksPerThread: Math.ceil((rowGroups * width) / threads),
    bytes: threads < rowGroups ? Infinity : 16 * vec4s,
  };
}

/**
 * The prefill layout for a head size: tiles from maxTile × maxTile (a power of two; at least 4 rows), halving the
 * larger edge (rows on a tie, never below 4 rows) until the tiles fit the workgroup memory and invocations.
 */
export function prefillLayout(headSize: number, o: AttentionOptions): PrefillLayout {
  const tile = 2 ** Math.floor(Math.log2(Math.max(1, o.maxTile)));
  let rows = Math.max(4, tile);
  let keys = tile;
  for (;;) {
    const layout = prefillLayoutOf(headSize, rows, keys, o);
    if (layout.bytes <= o.maxWorkgroupBytes) return layout;
    if (rows >= keys && rows > 4) rows /= 2;
    else if (keys > 1) keys /= 2;
    else if (rows > 4) rows /= 2;
    else throw new Error(`headSize ${headSize} does not fit attention's workgroup memory`);
  }
}

/** min(32, ceil(S / keys per tile)) splits: short caches get few, so a split is never much less than one tile of keys. */
function decodeSplits(contextLength: number, tile: number): number {
  return Math.max(1, Math.min(MAX_SPLITS, Math.ceil(contextLength / tile)));
}

export function attentionKernels(spec: AttentionSpec, o: AttentionOptions = defaultAttentionOptions): AttentionKernels {
  const { heads, kvHeads, headSize, contextLength } = spec;
  for (const [what, n] of [
    ['heads', heads],
    ['kvHeads', kvHeads],
    ['headSize', headSize],
    ['contextLength', contextLength],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`attention ${spec.name}: ${what} must be a positive integer, is ${n}`);
  }
  if (heads % kvHeads !== 0) throw new Error(`attention ${spec.name}: ${heads} heads do not divide into ${kvHeads} kv heads`);
  const decode = A.isConstant(spec.rows) && spec.rows.c === 1;
  if (decode) return decodeKernels(spec, o);
  const rowLayout = o.prefillRows ? prefillRowLayout(spec, o) : undefined;
  return { kernels: [{ suffix: 'flash', source: rowLayout ? prefillRowKernel(spec, rowLayout) : prefillKernel(spec, o) }], scratch: [] };
}

/** `code` with every line indented by `n` more spaces. */
const indent = (code: string, n: number): string =>
  code
    .split('\n')
    .map((line) => (line === '' ? line : ' '.repeat(n) + line))
    .join('\n');

/** `code` under `if (cond)`, or alone where every invocation meets the condition. */
const guarded = (cond: string | undefined, code: string): string => (cond === undefined ? code : `if (${cond}) {\n${indent(code, 2)}\n}`);

/**
 * One workgroup per (block of query rows, head), the blocks with the most keys first. Per tile of keys, four
 * phases each ended by a barrier: K and V are stored to workgroup memory from registers loaded while the tile
 * before accumulated its outputs; each scoring invocation computes a block of 4 rows × keysPerGroup keys from q and
 * k read as vec4s, keeps it in registers and stores its largest score of each row; it then reads its rows' largest
 * scores of the tile, moves the running max it keeps in registers (the same in every invocation of a row) and
 * turns its scores into probabilities, stored key-major (4 rows a vec4) over the K tile; each invocation then
 * rescales and accumulates its output blocks (4 rows × a vec4 of the head) from one vec4 of probabilities and one
 * of V a key, and the rows' sums with them as if V were 1. Only keys up to the block's last row's limit are loaded,
 * and scores past a row's limit are masked. Scores add their terms one dimension, and outputs and sums one key, at
 * a time in order.
 */
function prefillKernel(spec: AttentionSpec, o: AttentionOptions): KernelSource {
  const { heads, kvHeads, headSize: hs } = spec;
  const { rows: br, keys: bc, threads, width: hw, stride, rowGroups: rg, keyGroups: kg, keysPerGroup, blocksPerThread } = prefillLayout(hs, o);
  // head rows bound as vec4s where the head allows, else read as four values with zeros past the head
  const packed = hs % 4 === 0;
  const element = packed ? 'vec4<f32>' : 'f32';
  const per = packed ? 4 : 1;
  const [qd, kd, hd] = [heads * hs, kvHeads * hs, hs].map((n) => n / per) as [number, number, number];
  // vec4 `j` of the head row starting at element `at` of `buf`
  const headVec4 = (buf: string, at: string, j: string): string =>
    packed
      ? `${buf}[${at} + ${j}]`
      : `vec4<f32>(${[0, 1, 2, 3].map((c) => `select(0.0, ${buf}[${at} + min(4u * (${j}) + ${c}u, ${hs - 1}u)], 4u * (${j}) + ${c}u < ${u(hs)})`).join(', ')})`;
  const scorers = rg * kg;
  const blocks = rg * hw;
  const staged = bc * hw;
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const [ks, rs, stages, bs] = [range(keysPerGroup), range(4), range(Math.ceil(staged / threads)), range(blocksPerThread)];
  const comps = ['x', 'y', 'z', 'w'];
  const plus = (base: string, n: number): string => (n === 0 ? base : `${base} + ${u(n)}`);
  // `e` as an operand of * / %
  const operand = (e: string): string => (e.includes(' ') ? `(${e})` : e);
  const scorerOnly = scorers < threads ? `lane < ${u(scorers)}` : undefined;
  // staged element i of an invocation: lane + i·threads, all of them but the last's real
  const stagedOnly = (i: number): string | undefined => ((i + 1) * threads <= staged ? undefined : `${plus('lane', i * threads)} < ${u(staged)}`);
  const scoredKey = (k: number): string => plus('keyGroup', k * kg);
  // element i of an invocation's share of a K or V tile: key e / width, vec4 e % width of its head row
  const stagedAt = (i: number): string => operand(plus('lane', i * threads));
  // K and V of the tile from key `t0` into registers; keys past kEnd read the last one again (their scores are
  // masked and their probabilities 0)
  const loadStage = (t0: string): string =>
    stages
      .map((i) =>
        [
          `at = min(${t0} + ${stagedAt(i)} / ${u(hw)}, kEnd - 1u) * ${u(kd)} + kvBase;`,
          `kNext${i} = ${headVec4('k', 'at', `${stagedAt(i)} % ${u(hw)}`)};`,
          `vNext${i} = ${headVec4('v', 'at', `${stagedAt(i)} % ${u(hw)}`)};`,
        ].join('\n'),
      )
      .join('\n');
  const storeStage = stages
    .map((i) =>
      guarded(
        stagedOnly(i),
        `kpTile[(${stagedAt(i)} / ${u(hw)}) * ${u(stride)} + ${stagedAt(i)} % ${u(hw)}] = kNext${i};\nvTile[${plus('lane', i * threads)}] = vNext${i};`,
      ),
    )
    .join('\n');
  const score = [
    `for (var j = 0u; j < ${u(hw)}; j++) {`,
    ...rs.map((i) => `  let a${i} = qTile[${operand(plus('rowGroup', i * rg))} * ${u(stride)} + j];`),
    ...ks.map((k) => `  let b${k} = kpTile[${operand(scoredKey(k))} * ${u(stride)} + j];`),
    ...comps.flatMap((c) => [`  let q${c} = vec4<f32>(a0.${c}, a1.${c}, a2.${c}, a3.${c});`, ...ks.map((k) => `  s${k} += q${c} * b${k}.${c};`)]),
    '}',
    ...ks.map((k) => `s${k} = select(vec4<f32>(${NEG}), scaledScores(s${k}), vec4<u32>(k0 + ${scoredKey(k)}) <= limit);`),
    `groupStat[lane] = ${ks.slice(1).reduce((acc, k) => `max(${acc}, s${k})`, 's0')};`,
  ].join('\n');
  const probabilities = [
    'var mNew = m;',
    `for (var g = 0u; g < ${u(kg)}; g++) { mNew = max(mNew, groupStat[g * ${u(rg)} + rowGroup]); }`,
    'if (keyGroup == 0u) { rowScale[rowGroup] = preciseExp4(m - mNew); }',
    'm = mNew;',
    ...ks.map((k) => `let p${k} = select(vec4<f32>(0.0), preciseExp4(s${k} - mNew), s${k} > vec4<f32>(${NEG}));`),
    ...ks.map((k) => `kpTile[${operand(scoredKey(k))} * ${u(rg)} + rowGroup] = p${k};`),
  ].join('\n');
  // output block b: rows blockRow{b} + rowGroups·i, vec4 blockVec{b} of the head (one V load serves every block where they share it)
  const sharedVec = threads % hw === 0;
  const vOf = (b: number): number => (sharedVec ? 0 : b);
  const accumulate = [
    ...bs.flatMap((b) => [`let scale${b} = rowScale[blockRow${b}];`, ...rs.map((i) => `o${b}${i} *= scale${b}.${comps[i]};`), `sum${b} *= scale${b};`]),
    `for (var c = 0u; c < ${u(bc)}; c++) {`,
    ...bs.flatMap((b) => [
      ...(vOf(b) === b ? [`  let v${b} = vTile[c * ${u(hw)} + blockVec${b}];`] : []),
      `  let p${b} = kpTile[c * ${u(rg)} + blockRow${b}];`,
      `  sum${b} += p${b};`,
      ...rs.map((i) => `  o${b}${i} += p${b}.${comps[i]} * v${vOf(b)};`),
    ]),
    '}',
  ].join('\n');
  const blockOnly = (b: number): string | undefined => ((b + 1) * threads <= blocks ? undefined : `${plus('lane', b * threads)} < ${u(blocks)}`);
  // rows blockRow + rowGroups·i of each output block, one at a time
  const store = bs
    .map((b) => {
      const row = `row0 + blockRow${b} + ${u(rg)} * i`;
      const value = `normalized(rowOut${b}[i], total${b}[i])`;
      const write = packed
        ? `out[(${row}) * ${u(qd)} + qBase + blockVec${b}] = ${value};`
        : [
            `let o = ${value};`,
            ...comps.map((c, ci) => `if (4u * blockVec${b} + ${ci}u < ${u(hs)}) { out[(${row}) * ${u(qd)} + qBase + 4u * blockVec${b} + ${ci}u] = o.${c}; }`),
          ].join('\n');
      return guarded(
        blockOnly(b),
        [
          `let total${b} = groupStat[blockRow${b}];`,
          `var rowOut${b} = array<vec4<f32>, 4>(${rs.map((i) => `o${b}${i}`).join(', ')});`,
          'for (var i = 0u; i < 4u; i++) {',
          indent(guarded(`${row} < rows`, write), 2),
          '}',
        ].join('\n'),
      );
    })
    .join('\n');
  const main = [
    'let rows = ' + u32Expr(spec.rows) + ';',
    'let keys = ' + u32Expr(spec.keys) + ';',
    '// the last row block (the most keys) first',
    `let row0 = ((rows + ${u(br - 1)}) / ${u(br)} - 1u - wid.y) * ${u(br)};`,
    `let qBase = wid.x * ${u(hd)};`,
    `let kvBase = (wid.x / ${u(heads / kvHeads)}) * ${u(hd)};`,
    "// the block's last row sees keys 0..kEnd-1",
    `let kEnd = keys - rows + min(rows, row0 + ${u(br)});`,
    `for (var e = lane; e < ${u(br * hw)}; e += ${u(threads)}) {`,
    `  let row = row0 + e / ${u(hw)};`,
    '  var x = vec4<f32>(0.0);',
    `  if (row < rows) { x = ${headVec4('q', `row * ${u(qd)} + qBase`, `e % ${u(hw)}`)}; }`,
    `  qTile[(e / ${u(hw)}) * ${u(stride)} + e % ${u(hw)}] = x;`,
    '}',
    `// a scoring invocation's rows rowGroup + ${rg}·i and keys keyGroup + ${kg}·k of a tile; each row's last key (rows past the end: the block's)`,
    `let rowGroup = lane % ${u(rg)};`,
    `let keyGroup = lane / ${u(rg)};`,
    `let limit = min(vec4<u32>(keys - rows + row0 + rowGroup) + vec4<u32>(0u, ${u(rg)}, ${u(2 * rg)}, ${u(3 * rg)}), vec4<u32>(kEnd - 1u));`,
    `var m = vec4<f32>(${NEG});`,
    ...bs.flatMap((b) => [
      `let blockRow${b} = min(${operand(plus('lane', b * threads))} / ${u(hw)}, ${u(rg - 1)});`,
      `let blockVec${b} = ${vOf(b) === b ? `${operand(plus('lane', b * threads))} % ${u(hw)}` : 'blockVec0'};`,
      ...rs.map((i) => `var o${b}${i} = vec4<f32>(0.0);`),
      `var sum${b} = vec4<f32>(0.0);`,
    ]),
    'var at: u32;',
    ...stages.flatMap((i) => [`var kNext${i}: vec4<f32>;`, `var vNext${i}: vec4<f32>;`]),
    `let tiles = (kEnd + ${u(bc - 1)}) / ${u(bc)};`,
    "// each pass: tile t's K and V into registers, tile t - 1's outputs, then tile t's scores and probabilities",
    'for (var t = 0u; t <= tiles; t++) {',
    `  let k0 = t * ${u(bc)};`,
    indent(loadStage('k0'), 2),
    '  if (t > 0u) {',
    indent(guarded(blocksPerThread === 1 && blocks < threads ? `lane < ${u(blocks)}` : undefined, accumulate), 4),
    '    workgroupBarrier();',
    '  }',
    '  if (t < tiles) {',
    indent(storeStage, 4),
    '    workgroupBarrier();',
    ...ks.map((k) => `    var s${k} = vec4<f32>(0.0);`),
    indent(guarded(scorerOnly, score), 4),
    '    workgroupBarrier();',
    indent(guarded(scorerOnly, probabilities), 4),
    '    workgroupBarrier();',
    '  }',
    '}',
    ...bs.map((b) => guarded([blockOnly(b), `blockVec${b} == 0u`].filter((c) => c !== undefined).join(' && '), `groupStat[blockRow${b}] = sum${b};`)),
    'workgroupBarrier();',
    store,
  ].join('\n');
  return kernelSource(
    [readBinding(spec.q, 'q', element), readBinding(spec.k, 'k', element), readBinding(spec.v, 'v', element), writeBinding(spec.out, 'out', element)],
    `
var<workgroup> qTile: array<vec4<f32>, ${br * stride}>;
// the tile's K rows; once scored, its probabilities (key-major, a row group's 4 rows a vec4)
var<workgroup> kpTile: array<vec4<f32>, ${Math.max(bc * stride, bc * rg)}>;
var<workgroup> vTile: array<vec4<f32>, ${staged}>;
// per (key group, row group): the largest scores of a tile; at the end, per row group: the rows' sums
var<workgroup> groupStat: array<vec4<f32>, ${kg * rg}>;
var<workgroup> rowScale: array<vec4<f32>, ${rg}>;
${preciseMath}

fn scaledScores(dot: vec4<f32>) -> vec4<f32> {
  var s: vec4<f32>;
  for (var c = 0u; c < 4u; c++) { s[c] = preciseDiv(dot[c], ${f32Lit(Math.sqrt(hs))}); }
  return s;
}

fn normalized(o: vec4<f32>, sum: f32) -> vec4<f32> {
  var n: vec4<f32>;
  for (var c = 0u; c < 4u; c++) { n[c] = preciseDiv(o[c], sum); }
  return n;
}

fn preciseExp4(x: vec4<f32>) -> vec4<f32> {
  var e: vec4<f32>;
  for (var c = 0u; c < 4u; c++) { e[c] = preciseExp(x[c]); }
  return e;
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
${indent(main, 2)}
}`,
    [wg(heads), wg(spec.rows, br), one],
  );
}

/** The row-per-invocation prefill kernel's layout: its rows, query heads and keys a tile. */
export interface PrefillRowLayout {
  /** query rows of a workgroup, one an invocation for each of its heads */
  readonly rows: number;
  /** query heads of a workgroup, of one kv head */
  readonly heads: number;
  /** keys of a K and V tile */
  readonly keys: number;
  readonly threads: number;
}

/** Rows of a row-per-invocation prefill workgroup, for each of its heads. */
const ROW_BLOCK = 32;
/** Head vec4s an invocation keeps of its q row and its output in registers: 64-wide heads at most. */
const ROW_HEAD_VEC4S = 16;

/**
 * The layout of the row-per-invocation prefill kernel, where it applies: heads a whole number of vec4s up to 64 wide
 * (an invocation holds its q row and output row in registers), ROW_BLOCK rows of up to 4 query heads of one kv head a
 * workgroup, keys a tile from the tile option down until K and V fit the workgroup memory. Undefined elsewhere: the
 * register-blocked kernel (prefillKernel) runs.
 */
export function prefillRowLayout(spec: Pick<AttentionSpec, 'heads' | 'kvHeads' | 'headSize'>, o: AttentionOptions): PrefillRowLayout | undefined {
  const { heads, kvHeads, headSize: hs } = spec;
  if (hs % 4 !== 0 || hs / 4 > ROW_HEAD_VEC4S) return undefined;
  const limit = Math.min(workgroupThreads(o), 256);
  if (ROW_BLOCK > limit) return undefined;
  const together = headsTogether(heads, kvHeads, (h) => ROW_BLOCK * h <= limit);
  let keys = 2 ** Math.floor(Math.log2(Math.max(1, Math.min(32, o.maxTile))));
  while (keys > 4 && 2 * keys * hs * 4 > o.maxWorkgroupBytes) keys /= 2;
  if (2 * keys * hs * 4 > o.maxWorkgroupBytes) return undefined;
  return { rows: ROW_BLOCK, heads: together, keys, threads: ROW_BLOCK * together };
}

/**
 * One invocation a query row: a workgroup takes ROW_BLOCK rows of up to 4 query heads of one kv head (the blocks
 * with the most keys first) and keeps each row's q and output in registers. Per tile of keys, K and V go to
 * workgroup memory from registers loaded while the tile before was worked on, and every invocation reads the same
 * key's vec4 at a time (one read serves the whole subgroup): it scores each key of the tile, takes the tile's
 * largest score, rescales its output and sum, and adds each key's probability times V. Two barriers a tile, no
 * reduction across invocations. Scores add their terms one dimension, and outputs and sums one key, at a time in
 * order, with the register-blocked kernel's rescaling: the same bits as it gives.
 */
function prefillRowKernel(spec: AttentionSpec, layout: PrefillRowLayout): KernelSource {
  const { heads, kvHeads, headSize: hs } = spec;
  const { rows: br, heads: hg, keys: bc, threads } = layout;
  const hw = hs / 4;
  const [qd, kd] = [(heads * hs) / 4, (kvHeads * hs) / 4];
  const js = Array.from({ length: hw }, (_, j) => j);
  const staged = bc * hw;
  const stages = Array.from({ length: Math.ceil(staged / threads) }, (_, i) => i);
  const at = (i: number): string => (i === 0 ? 'lane' : `(lane + ${u(i * threads)})`);
  const stagedOnly = (i: number): string | undefined => ((i + 1) * threads <= staged ? undefined : `${at(i)} < ${u(staged)}`);
  const load = (k0: string): string =>
    stages
      .map((i) =>
        [`e = min(${k0} + ${at(i)} / ${u(hw)}, kEnd - 1u) * ${u(kd)} + kvBase + ${at(i)} % ${u(hw)};`, `kNext${i} = k[e];`, `vNext${i} = v[e];`].join('\n'),
      )
      .join('\n');
  const store = stages.map((i) => guarded(stagedOnly(i), `kTile[${at(i)}] = kNext${i};\nvTile[${at(i)}] = vNext${i};`)).join('\n');
  const main = [
    `let rows = ${u32Expr(spec.rows)};`,
    `let keys = ${u32Expr(spec.keys)};`,
    '// the last row block (the most keys) first',
    `let row0 = ((rows + ${u(br - 1)}) / ${u(br)} - 1u - wid.y) * ${u(br)};`,
    `let head = wid.x * ${u(hg)} + lane / ${u(br)};`,
    `let qBase = head * ${u(hw)};`,
    `let kvBase = (head / ${u(heads / kvHeads)}) * ${u(hw)};`,
    "// the block's last row sees keys 0..kEnd-1; this row, keys up to limit (rows past the end: the block's)",
    `let kEnd = keys - rows + min(rows, row0 + ${u(br)});`,
    `let row = row0 + lane % ${u(br)};`,
    'let limit = min(keys - rows + row, kEnd - 1u);',
    ...js.map((j) => `var q${j} = vec4<f32>(0.0);`),
    `if (row < rows) {`,
    ...js.map((j) => `  q${j} = q[row * ${u(qd)} + qBase + ${u(j)}];`),
    '}',
    ...js.map((j) => `var o${j} = vec4<f32>(0.0);`),
    `var m = ${NEG};`,
    'var l = 0.0;',
    `var scores: array<f32, ${bc}>;`,
    'var e: u32;',
    ...stages.flatMap((i) => [`var kNext${i}: vec4<f32>;`, `var vNext${i}: vec4<f32>;`]),
    `let tiles = (kEnd + ${u(bc - 1)}) / ${u(bc)};`,
    load('0u'),
    'for (var t = 0u; t < tiles; t++) {',
    `  let k0 = t * ${u(bc)};`,
    indent(store, 2),
    '  workgroupBarrier();',
    `  if (t + 1u < tiles) {`,
    indent(load(`k0 + ${u(bc)}`), 4),
    '  }',
    '  var mNew = m;',
    `  for (var c = 0u; c < ${u(bc)}; c++) {`,
    '    var s = 0.0;',
    ...js.map((j) => `    { let kv = kTile[c * ${u(hw)} + ${u(j)}]; s = s + q${j}.x * kv.x + q${j}.y * kv.y + q${j}.z * kv.z + q${j}.w * kv.w; }`),
    `    s = select(${NEG}, preciseDiv(s, ${f32Lit(Math.sqrt(hs))}), k0 + c <= limit);`,
    '    scores[c] = s;',
    '    mNew = max(mNew, s);',
    '  }',
    '  let scale = preciseExp(m - mNew);',
    '  m = mNew;',
    ...js.map((j) => `  o${j} *= scale;`),
    '  l *= scale;',
    `  for (var c = 0u; c < ${u(bc)}; c++) {`,
    '    let s = scores[c];',
    `    let p = select(0.0, preciseExp(s - mNew), s > ${NEG});`,
    '    l += p;',
    ...js.map((j) => `    o${j} += p * vTile[c * ${u(hw)} + ${u(j)}];`),
    '  }',
    '  workgroupBarrier();',
    '}',
    'if (row < rows) {',
    ...js.map((j) => `  out[row * ${u(qd)} + qBase + ${u(j)}] = normalized(o${j}, l);`),
    '}',
  ].join('\n');
  return kernelSource(
    [
      readBinding(spec.q, 'q', 'vec4<f32>'),
      readBinding(spec.k, 'k', 'vec4<f32>'),
      readBinding(spec.v, 'v', 'vec4<f32>'),
      writeBinding(spec.out, 'out', 'vec4<f32>'),
    ],
    `
// one invocation a query row: ${br} rows of ${hg} head${hg === 1 ? '' : 's'} a workgroup, ${bc} keys a tile
var<workgroup> kTile: array<vec4<f32>, ${staged}>;
var<workgroup> vTile: array<vec4<f32>, ${staged}>;
${preciseMath}

fn normalized(o: vec4<f32>, sum: f32) -> vec4<f32> {
  var n: vec4<f32>;
  for (var c = 0u; c < 4u; c++) { n[c] = preciseDiv(o[c], sum); }
  return n;
}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
${indent(main, 2)}
}`,
    [wg(heads / hg), wg(spec.rows, br), one],
  );
}

/**
 * Query heads a workgroup takes together: those of one kv head (heads / kvHeads of them), or the most of them up to
 * 4 that divide it and `fit` (a kernel's workgroup memory or invocations). One workgroup reads each key and value of
 * its kv head once for all of them, where one workgroup a head read them once a head; in Llama 3's 4 heads a kv head,
 * that quartered what decode attention reads from L2, whose bandwidth set its time at long contexts.
 */
function headsTogether(heads: number, kvHeads: number, fit: (h: number) => boolean): number {
  const perKv = heads / kvHeads;
  for (let h = Math.min(4, perKv); h > 1; h--) if (perKv % h === 0 && fit(h)) return h;
  return 1;
}

/**
 * Decode: only the splits that have keys run (one per tile of keys, one key per invocation, at most `splits`); split s of each
 * group of query heads (see headsTogether) scores a contiguous chunk of the keys (a whole number of tiles sized at run time
 * from `keys`; a trailing split may still be empty and write m = -max, l = 0, o = 0), reading q and K straight from memory
 * (no barrier before the first key's loads; the q rows are the same for every invocation). An invocation scores its key for
 * each head of the group, each score in run.c's order, and the heads' scores are reduced together as the lanes of one
 * vector. Each tile's weighted sum of V is spread over groups of invocations (a group holds one head row, as vec4s where the
 * head size allows, for every head; group g takes keys g, g + groups, …, its first values loaded before the scores and
 * reductions), and the groups' sums are added at the end, a head at a time. When one split holds every key it writes the
 * normalized outputs itself and the combine is not dispatched; otherwise each split writes its max m, sum l and
 * unnormalized output o of each head, and the combine merges the splits that ran.
 */
function decodeKernels(spec: AttentionSpec, o: AttentionOptions): AttentionKernels {
  const { name, heads, kvHeads, headSize: hs } = spec;
  // one key of a tile per invocation, so one pair of reductions per tile
  const threads = workgroupThreads(o);
  const TILE = threads;
  const splits = decodeSplits(spec.contextLength, TILE);
  const width = hs % 4 === 0 ? 4 : 1;
  const T = width === 4 ? 'vec4<f32>' : 'f32';
  const lanes = hs / width;
  const groups = Math.max(1, Math.floor(threads / lanes));
  if (lanes > threads) throw new Error(`attention ${name}: headSize ${hs} is beyond decode attention's ${threads * 4}`);
  // workgroup memory: the heads' probabilities and the reduction slots (a vector of h: stride 4, 8 or 16 bytes), the groups' sums
  const vectorBytes = (h: number): number => (h === 1 ? 4 : h === 2 ? 8 : 16);
  const together = headsTogether(heads, kvHeads, (h) => 2 * threads * vectorBytes(h) + groups * lanes * 4 * width <= o.maxWorkgroupBytes);
  const from = o.decodeGroupFrom ?? DECODE_GROUP_FROM;
  const kd = (kvHeads * hs) / width;
  const scratch = {
    stats: { name: `${name}.partial_ml`, shape: [A.constant(heads), A.constant(splits), A.constant(2)] },
    out: { name: `${name}.partial_o`, shape: [A.constant(heads), A.constant(splits), A.constant(hs)] },
  };
  const ran = `min((keys + ${u(TILE - 1)}) / ${u(TILE)}, ${u(splits)})`;
  const sg = o.subgroups === true;
  const sgArgs = sg ? ', sgSize, sgLane' : '';
  // a group's weighted sum takes its keys c0, c0 + groups, … V_IN_FLIGHT at a time, all their values loaded first
  // (at clamped rows; only those below n are added, in key order)
  const vis = Array.from({ length: V_IN_FLIGHT }, (_, i) => i);
  const loadValues = (c0: string, indent: string): string =>
    vis.map((i) => `${indent}v${i} = v[(t0 + min(${c0} + ${u(i * groups)}, n - 1u)) * ${u(kd)} + kvBase + d];`).join('\n');
  const normalize = (x: string, l: string): string =>
    width === 4 ? `vec4<f32>(${['x', 'y', 'z', 'w'].map((c) => `preciseDiv(${x}.${c}, ${l})`).join(', ')})` : `preciseDiv(${x}, ${l})`;
  // a workgroup a head up to `from` keys, the heads of a kv head together beyond: along z, one of the two has a workgroup
  const grouped = together > 1 && from < spec.contextLength;
  const upTo: WorkgroupCount = { of: A.add(A.constant(from + 1), A.scale(spec.keys, -1)), per: from + 1, max: 1 };
  const beyond: WorkgroupCount = { of: A.add(spec.keys, A.constant(-from)), per: spec.contextLength, max: 1 };
  const apart = !grouped || from >= 1 ? [partialKernel(1, grouped ? upTo : one)] : [];
  const joint = grouped
    ? [
        from >= 1
          ? partialKernel(together, beyond, `in place of the partial kernel before it (a workgroup a head) where the keys are more than ${from}`)
          : partialKernel(together, one),
      ]
    : [];

  /** The partial kernel taking hg query heads a workgroup, dispatched along z as `gate` says; `instead`: a comment atop it. */
  function partialKernel(hg: number, gate: WorkgroupCount, instead?: string): KernelSource {
    const hs4 = [...Array(hg).keys()];
    // the heads' scores, maxima, sums and probabilities as one value: f32 for one head, else a vector of hg
    const H = (['f32', 'vec2<f32>', 'vec3<f32>', 'vec4<f32>'] as const)[hg - 1]!;
    const lane = (x: string, h: number): string => (hg === 1 ? x : `${x}[${h}]`);
    const perHead = (f: (h: number) => string): string => (hg === 1 ? f(0) : `${H}(${hs4.map(f).join(', ')})`);
    // q·k in run.c's order: one product at a time along the head, for each head of the group
    const dotTerms = hs4
      .map((h) => {
        const qv = `q[(head0 + ${u(h)}) * ${u(lanes)} + j]`;
        return width === 4 ? `{ let qv = ${qv}; ${['x', 'y', 'z', 'w'].map((c) => `dot${h} += qv.${c} * kv.${c};`).join(' ')} }` : `dot${h} += ${qv} * kv;`;
      })
      .join(' ');
    const addValues = vis
      .map(
        (i) =>
          `        if (${c0Plus(i * groups)} < n) { let pr = probs[${c0Plus(i * groups)}]; ${hs4.map((h) => `o${h} += ${lane('pr', h)} * v${i};`).join(' ')} }`,
      )
      .join('\n');
    return kernelSource(
      [
        readBinding(spec.q, 'q', T),
        readBinding(spec.k, 'k', T),
        readBinding(spec.v, 'v', T),
        writeBinding(scratch.stats.name, 'partialStats'),
        writeBinding(scratch.out.name, 'partialOut', T),
        writeBinding(spec.out, 'out', T),
      ],
      `${instead ? `// ${hg} query heads a workgroup, ${instead}\n` : ''}
var<workgroup> probs: array<${H}, ${TILE}>;
var<workgroup> red: array<${H}, ${threads}>;
var<workgroup> sums: array<${T}, ${groups * lanes}>;
${preciseMath}
${workgroupReduce('reduceMax', threads, (a, b) => `max(${a}, ${b})`, sg ? { op: 'subgroupMax' } : undefined, { type: H })}
${workgroupReduce('reduceSum', threads, (a, b) => `${a} + ${b}`, sg ? { op: 'subgroupAdd' } : undefined, { type: H })}

fn preciseExpH(x: ${H}) -> ${H} { return ${perHead((h) => `preciseExp(${lane('x', h)})`)}; }

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32${sg ? `, ${subgroupBuiltins}` : ''}) {
  let keys = ${u32Expr(spec.keys)};
  let chunk = ((keys + ${u(splits - 1)}) / ${u(splits)} + ${u(TILE - 1)}) / ${u(TILE)} * ${u(TILE)};
  let first = min(keys, wid.x * chunk);
  let last = min(keys, first + chunk);
  // this workgroup's query heads: head0 … head0 + ${hg - 1}, of one kv head
  let head0 = wid.y * ${u(hg)};
  let kvBase = (head0 / ${u(heads / kvHeads)}) * ${u(lanes)};
  // this invocation's slot in the weighted sums: group g, element d of the head rows
  let g = lane / ${u(lanes)};
  let d = lane % ${u(lanes)};
  var m = ${H}(${NEG});
  var l = ${H}(0.0);
${hs4.map((h) => `  var acc${h} = ${T}(0.0);`).join('\n')}
${vis.map((i) => `  var v${i}: ${T};`).join('\n')}
  for (var t0 = first; t0 < last; t0 += ${u(TILE)}) {
    let n = min(${u(TILE)}, last - t0);
    // the group's first ${V_IN_FLIGHT} values of the tile, loaded before the scores and reductions they wait for
${loadValues('g', '    ')}
    let key = t0 + lane;
    var s = ${H}(${NEG});
    if (key < last) {
      let kBase = key * ${u(kd)} + kvBase;
${hs4.map((h) => `      var dot${h} = 0.0;`).join('\n')}
      for (var j = 0u; j < ${u(lanes)}; j++) { let kv = k[kBase + j]; ${dotTerms} }
      s = ${perHead((h) => `preciseDiv(dot${h}, ${f32Lit(Math.sqrt(hs))})`)};
    }
    let mNew = max(m, reduceMax(lane, s${sgArgs}));
    var p = ${H}(0.0);
    if (key < last) { p = preciseExpH(s - mNew); }
    probs[lane] = p;
    let scale = preciseExpH(m - mNew);
    // reduceSum's barriers also publish probs
    let sum = reduceSum(lane, p${sgArgs});
    l = l * scale + sum;
    m = mNew;
    if (g < ${u(groups)}) {
${hs4.map((h) => `      var o${h} = acc${h} * ${lane('scale', h)};`).join('\n')}
      for (var c0 = g; c0 < n; c0 += ${u(V_IN_FLIGHT * groups)}) {
        if (c0 != g) {
${loadValues('c0', '          ')}
        }
${addValues}
      }
${hs4.map((h) => `      acc${h} = o${h};`).join('\n')}
    }
  }
  let used = ${ran};
${hs4
  .map(
    (h) => `  // head0 + ${h}: the groups' sums, then its output
  if (g < ${u(groups)}) { sums[lane] = acc${h}; }
  workgroupBarrier();
  if (lane < ${u(lanes)}) {
    var o = ${T}(0.0);
    for (var i = 0u; i < ${u(groups)}; i++) { o += sums[i * ${u(lanes)} + lane]; }
    let head = head0 + ${u(h)};
    if (used == 1u) {
      out[head * ${u(lanes)} + lane] = ${normalize('o', lane('l', h))};
    } else {
      let at = head * ${u(splits)} + wid.x;
      partialOut[at * ${u(lanes)} + lane] = o;
      if (lane == 0u) {
        partialStats[2u * at] = ${lane('m', h)};
        partialStats[2u * at + 1u] = ${lane('l', h)};
      }
    }
  }${h < hg - 1 ? '\n  workgroupBarrier();' : ''}`,
  )
  .join('\n')}
}`,
      // only splits that have keys: one per tile of keys, at most `splits`; a workgroup per group of query heads
      [{ of: spec.keys, per: TILE, max: splits }, wg(heads / hg), gate],
      sg,
    );
  }
  // the splits' terms of each output element in split order, written out so that their loads are all in flight at once
  const combineTerms = Array.from(
    { length: splits },
    (_, s) => `      if (${u(s)} < used) { o += weight[${u(s)}] * partialOut[(base + ${u(s)}) * ${u(hs)} + d]; }`,
  ).join('\n');
  const combine = kernelSource(
    [readBinding(scratch.stats.name, 'partialStats'), readBinding(scratch.out.name, 'partialOut'), writeBinding(spec.out, 'out')],
    `
var<workgroup> splitMax: array<f32, ${splits}>;
var<workgroup> splitSum: array<f32, ${splits}>;
var<workgroup> weight: array<f32, ${splits}>;
${preciseMath}

@compute @workgroup_size(${COMBINE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lane: u32) {
  let keys = ${u32Expr(spec.keys)};
  let base = wid.x * ${u(splits)};
  let used = ${ran};
  // each split's max and sum, loaded by a lane of its own; then the largest max, each split's weight, the total in split order
  for (var s = lane; s < used; s += ${u(COMBINE_THREADS)}) {
    splitMax[s] = partialStats[2u * (base + s)];
    splitSum[s] = partialStats[2u * (base + s) + 1u];
  }
  workgroupBarrier();
  var m = ${NEG};
  for (var s = 0u; s < used; s++) { m = max(m, splitMax[s]); }
  for (var s = lane; s < used; s += ${u(COMBINE_THREADS)}) { weight[s] = preciseExp(splitMax[s] - m); }
  workgroupBarrier();
  var total = 0.0;
  for (var s = 0u; s < used; s++) { total += weight[s] * splitSum[s]; }
  for (var d = lane; d < ${u(hs)}; d += ${u(COMBINE_THREADS)}) {
    var o = 0.0;
${combineTerms}
    out[wid.x * ${u(hs)} + d] = preciseDiv(o, total);
  }
}`,
    // dispatched only when more than one split ran (keys beyond one tile)
    [wg(heads), { of: A.add(spec.keys, A.constant(-TILE)), per: spec.contextLength, max: 1 }, one],
  );
  return {
    kernels: [
      ...apart.map((source) => ({ suffix: 'partial', source })),
      ...joint.map((source) => ({ suffix: apart.length > 0 ? 'partial_heads' : 'partial', source })),
      { suffix: 'combine', source: combine, after: 'split-K: the combine reads the partial max, sum and output of every split' },
    ],
    scratch: [scratch.stats, scratch.out],
  };
}
