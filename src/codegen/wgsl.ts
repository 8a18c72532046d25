// The WGSL target's quirks in one place: how dims, literals and bindings are written.
// Every kernel reads the run's symbol values (T, P) from the uniform at binding 0.
import type { Affine } from '../affine.js';
import { uniformSymbols, type PlanBinding } from '../runtime/plan.js';

/** A u32 WGSL expression for an affine dim: constants inline, symbols read from the uniform. */
export function u32Expr(d: Affine): string {
  const parts = d.terms.map(([s, k]) => {
    if (!(uniformSymbols as readonly string[]).includes(s)) throw new Error(`symbol ${s} has no uniform slot`);
    if (k < 0) throw new Error(`negative coefficient in ${s}`);
    return k === 1 ? `dims.${s}` : `${k}u * dims.${s}`;
  });
  if (d.c !== 0 || parts.length === 0) parts.push(`${d.c}u`);
  return parts.length === 1 ? parts[0]! : `(${parts.join(' + ')})`;
}

/** An f32 literal that WGSL reads back to the same float32 value. */
export function f32Lit(x: number): string {
  const v = Math.fround(x);
  if (!Number.isFinite(v)) throw new Error(`${x} is not a finite f32`);
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

export interface KernelBinding extends Omit<PlanBinding, 'binding'> {
  readonly var: string;
  readonly type: 'f32' | 'i32';
}

/** The shared header: the uniform and one storage array per binding, numbered from 1. */
export function header(bindings: readonly KernelBinding[]): string {
  const lines = [
    `struct Dims { ${uniformSymbols.map((s) => `${s}: u32`).join(', ')}, pad0: u32, pad1: u32 }`,
    `@group(0) @binding(0) var<uniform> dims: Dims;`,
  ];
  bindings.forEach((b, i) => {
    const access = b.access === 'read' ? 'read' : 'read_write';
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${access}> ${b.var}: array<${b.type}>;`);
  });
  return lines.join('\n');
}
