// The epilogues of the linear template, one function per kind: each says which w rows a unit's one or two dot
// products read and emits `fn emit(row, unit, a, b)`, which every variant calls once per (row, unit) it owns.
import { match } from 'ts-pattern';
import { activations, readBinding, writeBinding, type KernelBinding } from '../wgsl.js';
import type { LinearEpilogue, LinearSpec } from './spec.js';

/**
 * Which w rows a unit's dots read: `columns` — one dot, row `unit`; `pairs` — rows 2·unit and 2·unit + 1
 * (a RoPE pair); `halves` — rows `unit` and `unit + units` (gate over up).
 */
export type UnitRows = 'columns' | 'pairs' | 'halves';

/** Each epilogue kind's UnitRows. */
export const unitRowsOf: Readonly<Record<LinearEpilogue['kind'], UnitRows>> = {
  store: 'columns',
  residual: 'columns',
  glu: 'halves',
  qkv: 'pairs',
  append: 'columns',
};

/** The epilogue as a WGSL function `emit(row, unit, a, b)` of a unit's one or two dot products. */
export interface Epilogue {
  /** output units of a row: w rows (columns) or pairs of them */
  readonly units: number;
  readonly unitRows: UnitRows;
  readonly dots: 1 | 2;
  /** WGSL expressions of the w rows that a unit's dots read */
  readonly wRows: (unit: string) => readonly [string, string];
  readonly bindings: readonly KernelBinding[];
  /**
   * `fn pre(row, unit) -> vec2<f32>`: what the epilogue reads from memory for a unit, and `fn emitWith(row, unit, a,
   * b, pre)` — a GEMV reads it before its products, so that its latency is not paid after them — and
   * `fn emit(row, unit, a, b)`, the two in one
   */
  readonly emit: string;
}

/** An epilogue's body over a unit's two dots `a`, `b` and `pre`, the vec2 its `load` reads (none: zeros). */
interface Body {
  readonly load?: string;
  readonly body: string;
}

function epilogue(s: LinearSpec, bindings: readonly KernelBinding[], { load, body }: Body): Epilogue {
  const unitRows = unitRowsOf[s.epilogue.kind];
  const units = unitRows === 'columns' ? s.n : s.n / 2;
  const wRows = match(unitRows)
    .with('columns', () => (u: string) => [u, u] as const)
    .with('pairs', () => (u: string) => [`2u * ${u}`, `2u * ${u} + 1u`] as const)
    .with('halves', () => (u: string) => [u, `${u} + ${units}u`] as const)
    .exhaustive();
  const emit = `fn pre(row: u32, unit: u32) -> vec2<f32> {${load ?? '\n  return vec2<f32>(0.0);'}\n}
fn emitWith(row: u32, unit: u32, a: f32, b: f32, pre: vec2<f32>) {${body}\n}
fn emit(row: u32, unit: u32, a: f32, b: f32) { emitWith(row, unit, a, b, pre(row, unit)); }`;
  return { units, unitRows, dots: unitRows === 'columns' ? 1 : 2, wRows, bindings, emit };
}

function storeEpilogue(s: LinearSpec, e: Extract<LinearEpilogue, { kind: 'store' }>): Epilogue {
  return epilogue(s, [writeBinding(e.out, 'out')], { body: `\n  out[row * ${s.n}u + unit] = a;` });
}

function residualEpilogue(s: LinearSpec, e: Extract<LinearEpilogue, { kind: 'residual' }>): Epilogue {
  return epilogue(s, [readBinding(e.residual, 'residual'), writeBinding(e.out, 'out')], {
    load: `\n  return vec2<f32>(residual[row * ${s.n}u + unit], 0.0);`,
    body: `\n  out[row * ${s.n}u + unit] = pre.x + a;`,
  });
}

function gluEpilogue(s: LinearSpec, e: Extract<LinearEpilogue, { kind: 'glu' }>): Epilogue {
  if (s.n % 2 !== 0) throw new Error(`glu needs an even number of stacked rows, got ${s.n}`);
  return epilogue(s, [writeBinding(e.out, 'out')], { body: `\n  out[row * ${s.n / 2}u + unit] = (${activations.silu('a')}) * b;` });
}

function appendEpilogue(s: LinearSpec, e: Extract<LinearEpilogue, { kind: 'append' }>): Epilogue {
  return epilogue(s, [writeBinding(e.cache, 'cache')], { body: `\n  cache[(dims.P + row) * ${s.n}u + unit] = a;` });
}

function qkvEpilogue(s: LinearSpec, e: Extract<LinearEpilogue, { kind: 'qkv' }>): Epilogue {
  const parts = e.vCache === undefined ? 1 : 2;
  if (e.qSize + parts * e.kvSize !== s.n || e.qSize % 2 !== 0 || e.kvSize % 2 !== 0) {
    throw new Error(`qkv columns ${e.qSize}+${parts}·${e.kvSize} do not match the ${s.n} stacked rows`);
  }
  const half = e.headSize / 2;
  const v = e.vCache === undefined ? [] : [writeBinding(e.vCache, 'vCache')];
  return epilogue(s, [readBinding(e.cos, 'cosT'), readBinding(e.sin, 'sinT'), writeBinding(e.q, 'q'), writeBinding(e.kCache, 'kCache'), ...v], {
    // the cosine and sine of a rotated pair (a v pair's are read and not used)
    load: `
  let c0 = 2u * unit;
  let local = select(c0 - ${e.qSize}u, c0, c0 < ${e.qSize}u);
  let at = (dims.P + row) * ${half}u + (local / 2u) % ${half}u;
  return vec2<f32>(cosT[at], sinT[at]);`,
    body: `
  let c0 = 2u * unit;
  let pos = dims.P + row;
  if (c0 < ${e.qSize + e.kvSize}u) {
    let local = select(c0 - ${e.qSize}u, c0, c0 < ${e.qSize}u);
    let c = pre.x;
    let s = pre.y;
    let r0 = a * c - b * s;
    let r1 = a * s + b * c;
    if (c0 < ${e.qSize}u) {
      q[row * ${e.qSize}u + local] = r0;
      q[row * ${e.qSize}u + local + 1u] = r1;
    } else {
      kCache[pos * ${e.kvSize}u + local] = r0;
      kCache[pos * ${e.kvSize}u + local + 1u] = r1;
    }
  }${
    e.vCache === undefined
      ? ''
      : ` else {
    let local = c0 - ${e.qSize + e.kvSize}u;
    vCache[pos * ${e.kvSize}u + local] = a;
    vCache[pos * ${e.kvSize}u + local + 1u] = b;
  }`
  }`,
  });
}

export function epilogueOf(s: LinearSpec): Epilogue {
  return match(s.epilogue)
    .with({ kind: 'store' }, (e) => storeEpilogue(s, e))
    .with({ kind: 'residual' }, (e) => residualEpilogue(s, e))
    .with({ kind: 'glu' }, (e) => gluEpilogue(s, e))
    .with({ kind: 'qkv' }, (e) => qkvEpilogue(s, e))
    .with({ kind: 'append' }, (e) => appendEpilogue(s, e))
    .exhaustive();
}
