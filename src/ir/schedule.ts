// Checks a Graph's schedule: every node in exactly one kernel, kernels and members in node order; a barrier
// between any two kernels that touch one buffer where either writes it (RAW, WAR, WAW), and none that guards
// nothing; no buffer written while a value in it is still to be read. Throws `graph <name>: ...`.
import { formatKind, graphIndex, kindMismatch, singleNodeKernel } from './kernel-kinds.js';
import { formatBuffer } from './print.js';
import type { BarrierItem, Graph, KernelItem, Op } from './types.js';

export interface KernelAccess {
  /** buffers of the arguments its members take from outside the kernel */
  readonly reads: ReadonlySet<string>;
  /** buffers of its members used outside the kernel or output, and the caches its kv_writes fill */
  readonly writes: ReadonlySet<string>;
}

/** What one kernel touches: buffers, the values it writes into them, and the outside values it reads. */
interface KernelFacts extends KernelAccess {
  readonly kernel: KernelItem;
  readonly index: number;
  readonly written: readonly { readonly value: string; readonly buffer: string }[];
  readonly readValues: ReadonlySet<string>;
}

type HazardKind = 'read-after-write' | 'write-after-read' | 'write-after-write';

interface Hazard {
  readonly kind: HazardKind;
  readonly buffer: string;
  readonly earlier: KernelFacts;
  readonly later: KernelFacts;
}

/** The buffer a value lives in: its slot, else a kv_write's cache, else its own name (declarations are their own buffers). */
export function bufferOf(g: Graph, value: string): string {
  let find = finders.get(g);
  if (!find) finders.set(g, (find = bufferFinder(g)));
  return find(value);
}

/** bufferFinder of each graph asked about: graphs are immutable, and a finder scans every node once. */
const finders = new WeakMap<Graph, (value: string) => string>();

/** Per kernel, by name in schedule order, the buffers it reads and writes; empty for a graph without schedule. */
export function kernelAccess(g: Graph): ReadonlyMap<string, KernelAccess> {
  return new Map(analyse(g).map((f) => [f.kernel.name, { reads: f.reads, writes: f.writes }]));
}

/** Does nothing for a graph without schedule. Barrier numbers in messages count barriers from 0. */
export function verifySchedule(g: Graph): void {
  if (g.schedule === undefined) return;
  const fail = (msg: string): never => {
    throw new Error(`graph ${g.name}: ${msg}`);
  };
  const buffer = (b: string): string => formatBuffer(g, b);

  checkLayout(g.schedule, fail);
  checkMembers(g, fail);
  const facts = analyse(g);

  for (const f of facts) {
    for (const b of f.reads) if (f.writes.has(b)) fail(`kernel ${f.kernel.name} reads and writes ${buffer(b)}`);
  }

  const segmentOf = segmentIndices(g.schedule);
  for (const later of facts) {
    for (const earlier of facts.slice(0, later.index)) {
      if (segmentOf[earlier.index] !== segmentOf[later.index]) continue;
      const h = hazardsBetween(earlier, later)[0];
      if (h === undefined) continue;
      const what = {
        'read-after-write': `reads ${buffer(h.buffer)} written by`,
        'write-after-read': `writes ${buffer(h.buffer)} read by`,
        'write-after-write': `writes ${buffer(h.buffer)} also written by`,
      }[h.kind];
      fail(`kernel ${later.kernel.name} ${what} ${earlier.kernel.name} with no barrier between them (${h.kind})`);
    }
  }

  checkClobbers(g, facts, fail);
  checkBarriers(g, facts, fail);
}

function isKernel(item: KernelItem | BarrierItem): item is KernelItem {
  return item.item === 'kernel';
}

/** Kernels are non-empty with unique names; barriers stand between two kernels, one at a time. */
function checkLayout(schedule: readonly (KernelItem | BarrierItem)[], fail: (msg: string) => never): void {
  const names = new Set<string>();
  let barriers = 0;
  schedule.forEach((item, i) => {
    if (isKernel(item)) {
      if (names.has(item.name)) fail(`kernel name ${item.name} is used twice`);
      names.add(item.name);
      if (item.members.length === 0) fail(`kernel ${item.name} is empty`);
      return;
    }
    if (i === 0) fail('the schedule starts with a barrier');
    if (i === schedule.length - 1) fail('the schedule ends with a barrier');
    if (!isKernel(schedule[i - 1]!)) fail(`barrier ${barriers} directly follows barrier ${barriers - 1}`);
    barriers++;
  });
}

/** Every node is in exactly one kernel, and the kernels' members, concatenated, are the node list. */
function checkMembers(g: Graph, fail: (msg: string) => never): void {
  const nodes = new Set(g.nodes.map((n) => n.name));
  const kernelOf = new Map<string, string>();
  const order: { readonly member: string; readonly kernel: string }[] = [];
  for (const k of g.schedule!.filter(isKernel)) {
    for (const m of k.members) {
      if (!nodes.has(m)) fail(`kernel ${k.name}: %${m} is not a node`);
      const other = kernelOf.get(m);
      if (other === k.name) fail(`node %${m} is listed twice in kernel ${k.name}`);
      if (other !== undefined) fail(`node %${m} is in kernels ${other} and ${k.name}`);
      kernelOf.set(m, k.name);
      order.push({ member: m, kernel: k.name });
    }
  }
  for (const n of g.nodes) if (!kernelOf.has(n.name)) fail(`node %${n.name} is in no kernel`);
  g.nodes.forEach((n, i) => {
    const { member, kernel } = order[i]!;
    if (member !== n.name) {
      fail(`kernel ${kernel} schedules %${member} before %${n.name} (kernel ${kernelOf.get(n.name)}), against node order`);
    }
  });
}

/** Every kernel's kind fits its members, and its declines name nodes (verifyGraph's check, after the schedule's). */
export function verifyKernelKinds(g: Graph): void {
  if (g.schedule === undefined) return;
  const fail = (msg: string): never => {
    throw new Error(`graph ${g.name}: ${msg}`);
  };
  const index = graphIndex(g);
  const byName = index.nodes;
  for (const k of g.schedule!.filter(isKernel)) {
    const mismatch = kindMismatch(
      k.kind,
      k.members.map((m) => byName.get(m)!),
      index,
    );
    if (mismatch !== undefined) fail(`kernel ${k.name}: ${formatKind(k.kind)} ${mismatch}`);
    for (const d of k.declined ?? []) for (const n of d.nodes) if (!byName.has(n)) fail(`kernel ${k.name}: a decline of ${d.pass} names %${n}, not a node`);
  }
}

function bufferFinder(g: Graph): (value: string) => string {
  const kvWrites = new Map(g.nodes.filter((n) => n.op === 'kv_write').map((n) => [n.name, n.args[0]]));
  return (value) => g.slots?.[value] ?? kvWrites.get(value) ?? value;
}

/** The values a node reads: its args, except a kv_write's cache, which it only writes. */
function readArgs(node: Op): readonly string[] {
  return node.op === 'kv_write' ? [node.args[1]] : node.args;
}

function analyse(g: Graph): KernelFacts[] {
  const kernels = (g.schedule ?? []).filter(isKernel);
  const bufferOfValue = bufferFinder(g);
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const kernelOf = new Map<string, number>();
  kernels.forEach((k, i) => k.members.forEach((m) => kernelOf.set(m, i)));
  const outputs = new Set(g.outputs);
  /** value → kernels (undefined: none) of the nodes that read it */
  const readers = new Map<string, Set<number | undefined>>();
  for (const n of g.nodes) {
    for (const a of readArgs(n)) {
      if (!readers.has(a)) readers.set(a, new Set());
      readers.get(a)!.add(kernelOf.get(n.name));
    }
  }

  return kernels.map((kernel, index) => {
    const members = kernel.members.flatMap((m) => byName.get(m) ?? []);
    const reads = new Set<string>();
    const readValues = new Set<string>();
    const written: { value: string; buffer: string }[] = [];
    for (const m of members) {
      for (const a of readArgs(m)) {
        if (kernelOf.get(a) === index) continue;
        reads.add(bufferOfValue(a));
        readValues.add(a);
      }
      const write = (buffer: string): void => {
        if (!written.some((w) => w.value === m.name && w.buffer === buffer)) written.push({ value: m.name, buffer });
      };
      if (outputs.has(m.name) || [...(readers.get(m.name) ?? [])].some((k) => k !== index)) write(bufferOfValue(m.name));
      if (m.op === 'kv_write') write(m.args[0]);
    }
    return { kernel, index, reads, writes: new Set(written.map((w) => w.buffer)), written, readValues };
  });
}

/** Hazards between an earlier and a later kernel, in the order RAW, WAR, WAW. */
function hazardsBetween(earlier: KernelFacts, later: KernelFacts): Hazard[] {
  const on = (kind: HazardKind, a: ReadonlySet<string>, b: ReadonlySet<string>): Hazard[] =>
    [...a].filter((x) => b.has(x)).map((buffer) => ({ kind, buffer, earlier, later }));
  return [
    ...on('read-after-write', later.reads, earlier.writes),
    ...on('write-after-read', later.writes, earlier.reads),
    ...on('write-after-write', later.writes, earlier.writes),
  ];
}

/** For each kernel (by index among kernels), how many barriers come before it. */
function segmentIndices(schedule: readonly (KernelItem | BarrierItem)[]): number[] {
  const segments: number[] = [];
  let barriers = 0;
  for (const item of schedule) {
    if (isKernel(item)) segments.push(barriers);
    else barriers++;
  }
  return segments;
}

/** Between a kernel writing a value and the last kernel reading it (or the end, for an output), nothing else writes its buffer. */
function checkClobbers(g: Graph, facts: readonly KernelFacts[], fail: (msg: string) => never): void {
  const outputs = new Set(g.outputs);
  for (const writer of facts) {
    for (const { value, buffer } of writer.written) {
      const readers = facts.filter((f) => f.index > writer.index && f.readValues.has(value));
      const until = outputs.has(value) ? facts.length : Math.max(-1, ...readers.map((f) => f.index));
      if (until < 0) continue;
      const twin = writer.written.find((w) => w.buffer === buffer && w.value !== value);
      if (twin) fail(`kernel ${writer.kernel.name} writes both %${value} and %${twin.value} into ${formatBuffer(g, buffer)}`);
      for (const between of facts.slice(writer.index + 1, until)) {
        const other = between.written.find((w) => w.buffer === buffer);
        if (other === undefined) continue;
        const reader = readers.find((f) => f.index > between.index);
        const use = reader === undefined ? 'the graph outputs it' : `kernel ${reader.kernel.name} reads it`;
        fail(
          `${formatBuffer(g, buffer)} is clobbered: kernel ${between.kernel.name} writes %${other.value} into it ` +
            `after kernel ${writer.kernel.name} wrote %${value} there and before ${use}`,
        );
      }
    }
  }
}

/** Each barrier separates a hazard between the kernels just before and just after it, and lists only what those hazards involve. */
function checkBarriers(g: Graph, facts: readonly KernelFacts[], fail: (msg: string) => never): void {
  const segments: KernelFacts[][] = [[]];
  const barriers: BarrierItem[] = [];
  let k = 0;
  for (const item of g.schedule!) {
    if (isKernel(item)) segments.at(-1)!.push(facts[k++]!);
    else {
      barriers.push(item);
      segments.push([]);
    }
  }
  const names = (fs: readonly KernelFacts[]): string => fs.map((f) => f.kernel.name).join(', ');
  const buffersOf = (bs: Iterable<string>): string => [...bs].map((b) => formatBuffer(g, b)).join(', ');

  const across = barriers.map((_, n) => {
    const before = segments[n]!;
    const after = segments[n + 1]!;
    const hazards = before.flatMap((e) => after.flatMap((l) => hazardsBetween(e, l)));
    if (hazards.length === 0) {
      const between = `between kernels ${before.at(-1)!.kernel.name} and ${after[0]!.kernel.name}`;
      fail(`barrier ${n} (${between}) guards nothing: no hazard between kernels ${names(before)} and ${names(after)}`);
    }
    return { before, after, hazards };
  });

  const kernelNames = new Set(facts.map((f) => f.kernel.name));
  barriers.forEach((barrier, n) => {
    const { before, after, hazards } = across[n]!;
    const sides = [
      { role: 'producer', where: 'before', listed: barrier.producers, segment: before, involved: new Set(hazards.map((h) => h.earlier.kernel.name)) },
      { role: 'consumer', where: 'after', listed: barrier.consumers, segment: after, involved: new Set(hazards.map((h) => h.later.kernel.name)) },
    ];
    for (const { role, where, listed, segment, involved } of sides) {
      for (const name of listed) {
        const lists = `barrier ${n} lists ${role} ${name}`;
        if (!kernelNames.has(name)) fail(`${lists}, which is not a kernel`);
        if (!segment.some((f) => f.kernel.name === name)) fail(`${lists}, which is not among the kernels just ${where} it (${names(segment)})`);
        if (!involved.has(name)) fail(`${lists}, which has no hazard across it (${role}s with one: ${[...involved].join(', ')})`);
      }
    }
    const buffers = new Set(hazards.map((h) => h.buffer));
    for (const b of barrier.buffers) {
      if (!buffers.has(b)) fail(`barrier ${n} lists buffer ${formatBuffer(g, b)}, which no hazard across it involves (hazards on: ${buffersOf(buffers)})`);
    }
  });
}

/** The kernels of a graph: its schedule's, or one per node named after it. */
export function scheduledKernels(g: Graph): KernelItem[] {
  if (g.schedule) return g.schedule.filter((i): i is KernelItem => i.item === 'kernel');
  return g.nodes.map(singleNodeKernel);
}

/** Values read outside the kernel that computes them, or returned: the ones that need a buffer. */
export function materializedValues(g: Graph): Set<string> {
  const kernelOf = new Map<string, string>();
  for (const k of scheduledKernels(g)) for (const m of k.members) kernelOf.set(m, k.name);
  const out = new Set(g.outputs);
  for (const n of g.nodes) for (const a of n.args) if (kernelOf.has(a) && kernelOf.get(a) !== kernelOf.get(n.name)) out.add(a);
  return out;
}
