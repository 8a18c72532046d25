// Read-only questions passes ask of a graph (who uses a value, nodes by name) and the one edit fusion
// passes share: merging adjacent single-node kernels into one.
import type { Graph, KernelItem, Op } from '../ir/types.js';

export function usersOf(g: Graph): Map<string, Op[]> {
  const users = new Map<string, Op[]>();
  for (const n of g.nodes) for (const a of n.args) users.set(a, [...(users.get(a) ?? []), n]);
  return users;
}

export function nodeMap(g: Graph): Map<string, Op> {
  return new Map(g.nodes.map((n) => [n.name, n]));
}

/**
 * Replaces the kernels holding `members` (each must be a single-node kernel, adjacent in order) by one
 * kernel; returns undefined when they are not adjacent single-node kernels.
 */
export function mergeKernels(kernels: readonly KernelItem[], members: readonly string[], name: string, template: string): KernelItem[] | undefined {
  const want = new Set(members);
  const at = kernels.findIndex((k) => k.members.some((m) => want.has(m)));
  if (at < 0) return undefined;
  const span = kernels.slice(at, at + members.length);
  if (span.length !== members.length || span.some((k) => k.members.length !== 1 || !want.has(k.members[0]!))) return undefined;
  return [...kernels.slice(0, at), { item: 'kernel', name, template, members: span.map((k) => k.members[0]!) }, ...kernels.slice(at + members.length)];
}
