// Read-only questions passes ask of a graph (nodes by name) and the edits fusion passes share: merging
// adjacent single-node kernels into one, and recording a fusion declined on the kernel it concerns.
import type { FusionDecline, Graph, KernelItem, KernelKind, Op } from '../ir/types.js';

export function nodeMap(g: Graph): Map<string, Op> {
  return new Map(g.nodes.map((n) => [n.name, n]));
}

/**
 * Replaces the kernels holding `members` (each must be a single-node kernel, adjacent in order) by one
 * kernel of `kind`, keeping the declines they carried; undefined when they are not adjacent single-node kernels.
 * A kernel of exactly those members (a pass run again over its own output) stays, as `name` of `kind`.
 */
export function mergeKernels(kernels: readonly KernelItem[], members: readonly string[], name: string, kind: KernelKind): KernelItem[] | undefined {
  const want = new Set(members);
  const whole = kernels.findIndex((k) => k.members.length === want.size && k.members.every((m) => want.has(m)));
  if (whole >= 0) return kernels.map((k, i) => (i === whole ? { ...k, name, kind } : k));
  const at = kernels.findIndex((k) => k.members.some((m) => want.has(m)));
  if (at < 0) return undefined;
  const span = kernels.slice(at, at + members.length);
  if (span.length !== members.length || span.some((k) => k.members.length !== 1 || !want.has(k.members[0]!))) return undefined;
  const declined = span.flatMap((k) => k.declined ?? []);
  const merged: KernelItem = { item: 'kernel', name, kind, members: span.map((k) => k.members[0]!), ...(declined.length > 0 ? { declined } : {}) };
  return [...kernels.slice(0, at), merged, ...kernels.slice(at + members.length)];
}

/** `kernels` without the declines `pass` recorded: a pass run again decides again. */
export function withoutDeclines(kernels: readonly KernelItem[], pass: string): KernelItem[] {
  return kernels.map((k) => {
    if (!k.declined?.some((d) => d.pass === pass)) return k;
    const { declined, ...rest } = k;
    const others = declined.filter((d) => d.pass !== pass);
    return others.length > 0 ? { ...rest, declined: others } : rest;
  });
}

/** `kernels` with `decline` recorded on the kernel that holds node `member`. */
export function recordDecline(kernels: readonly KernelItem[], member: string, decline: FusionDecline): KernelItem[] {
  return kernels.map((k) => (k.members.includes(member) ? { ...k, declined: [...(k.declined ?? []), decline] } : k));
}
