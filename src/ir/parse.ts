// Reads the IR text form written by `print.ts` line by line into Graphs (types as written; kernel blocks, barriers
// and `@slot`s rebuild `schedule` and `slots`). Checks syntax, ops, attrs, arity, unique and defined names; errors are
// one line, `source:line: what is wrong`. Types, definition order and schedule soundness are `verify.ts`'s job.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import { errorLine, excerpt } from '../file-input.js';
import { parseKind } from './kernel-kinds.js';
import { opSignatures } from './types.js';
import type { BarrierItem, Decl, DeclKind, DType, FusionDecline, Graph, KernelKind, Op, OpName, ScheduleItem, TensorType } from './types.js';

const NAME = '[A-Za-z0-9_.]+';
const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const HEADER = new RegExp(`^graph\\s+(${NAME})\\s*\\(([^)]*)\\)\\s*\\{$`);
const IDENT = new RegExp(`^${NAME}$`);
// The type and what follows it (a decl's `from …`, a node's `@slot`) are split off by splitTail, not by lazy
// groups: a lazy group before `\\s+` backtracks over every run of spaces, quadratic in a long one.
const DECL = new RegExp(`^(input|weight|state)\\s+%(${NAME})\\s*:\\s*(.*)$`);
const NODE = new RegExp(`^%(${NAME})\\s*=\\s*([A-Za-z_][A-Za-z0-9_]*)\\s*\\(([^)]*)\\)\\s*(?:\\{([^}]*)\\}\\s*)?:\\s*(.*)$`);
const KERNEL = new RegExp(`^kernel\\s+(${NAME})\\s*:([^{]*)\\{$`);
const BARRIER = /^barrier\s*\{(.*)\}$/;
const DECLINED = /^declined\s*\{(.*)\}$/;
const LAYER = /^\d{1,6}$/;
const OUTPUT = new RegExp(`^output\\s+%(${NAME})$`);
const VALUE = new RegExp(`^%(${NAME})$`);
const TYPE = /^(\w+)\s*\[(.*)\]$/;

const knownOps = Object.keys(opSignatures) as OpName[];

/** Order of the parts of a graph body: declarations, then nodes (loose or in kernel blocks), then outputs. */
const SECTION = { decl: 0, node: 1, output: 2 } as const;

interface OpenKernel {
  readonly name: string;
  readonly kind: KernelKind;
  readonly members: string[];
  readonly declined: FusionDecline[];
  readonly line: number;
}

interface OpenGraph {
  readonly name: string;
  readonly headerLine: number;
  readonly symbols: readonly string[];
  readonly decls: Decl[];
  readonly nodes: Op[];
  readonly outputs: string[];
  readonly schedule: ScheduleItem[];
  readonly slots: Record<string, string>;
  readonly defined: Map<string, number>;
  readonly uses: { readonly name: string; readonly line: number }[];
  section: number;
  /** loose node lines or kernel blocks and barriers, whichever came first, and its line */
  layout?: { readonly scheduled: boolean; readonly line: number };
  kernel?: OpenKernel;
}

/** Parses text holding exactly one graph. */
export function parseGraph(text: string, source = '<ir>'): Graph {
  const graphs = parseWithLines(text, source);
  if (graphs.length !== 1) {
    const line = graphs.length === 0 ? 1 : graphs[1]!.line;
    throw new Error(`${source}:${line}: expected one graph, found ${graphs.length}`);
  }
  return graphs[0]!.graph;
}

/** Parses text holding any number of graphs (printed separated by blank lines). */
export function parseModule(text: string, source = '<ir>'): Graph[] {
  return parseWithLines(text, source).map((g) => g.graph);
}

export function parseType(text: string): TensorType {
  const m = TYPE.exec(text.trim());
  if (!m) throw new Error(`malformed type ${excerpt(text)}: expected dtype[dims]`);
  const dtype = m[1]!;
  if (dtype !== 'f32' && dtype !== 'i32') throw new Error(`malformed type ${excerpt(text)}: dtype must be f32 or i32`);
  const inner = m[2]!.trim();
  let shape: Affine[];
  try {
    shape = inner === '' ? [] : inner.split(',').map((d) => A.parse(d));
  } catch (e) {
    throw new Error(`malformed type ${excerpt(text)}: ${(e as Error).message}`);
  }
  return { dtype: dtype as DType, shape };
}

function parseWithLines(text: string, source: string): { graph: Graph; line: number }[] {
  const done: { graph: Graph; line: number }[] = [];
  let open: OpenGraph | undefined;
  let lineNo = 0;
  const fail = (msg: string, at = lineNo): never => {
    // messages quote the text they failed on: escaped and cut, as any text read from a file
    throw new Error(`${source}:${at}: ${errorLine(msg, 240)}`);
  };
  const attempt = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return fail((e as Error).message);
    }
  };
  const define = (g: OpenGraph, name: string): void => {
    const first = g.defined.get(name);
    if (first !== undefined) fail(`duplicate name %${name} (first defined on line ${first})`);
    g.defined.set(name, lineNo);
  };
  const enter = (g: OpenGraph, section: number, what: string): void => {
    if (section < g.section) fail(`${what} must come before ${g.section === SECTION.output ? 'outputs' : 'nodes'}`);
    g.section = section;
  };
  const layout = (g: OpenGraph, scheduled: boolean): void => {
    g.layout ??= { scheduled, line: lineNo };
    if (g.layout.scheduled === scheduled) return;
    const [loose, blocks] = scheduled ? [g.layout.line, lineNo] : [lineNo, g.layout.line];
    fail(`a graph cannot mix loose node lines (line ${loose}) with kernel blocks and barriers (line ${blocks})`);
  };

  const lines = text.split('\n');
  for (const raw of lines) {
    lineNo++;
    const line = stripComment(raw).trim();
    if (line === '') continue;

    if (open === undefined) {
      const m = HEADER.exec(line);
      if (!m) fail(`expected 'graph name(symbols) {', got ${excerpt(line)}`);
      open = {
        name: m![1]!,
        headerLine: lineNo,
        symbols: parseSymbols(m![2]!, fail),
        decls: [],
        nodes: [],
        outputs: [],
        schedule: [],
        slots: {},
        defined: new Map(),
        uses: [],
        section: SECTION.decl,
      };
      continue;
    }

    const g: OpenGraph = open;
    if (line === '}' && g.kernel !== undefined) {
      const { name, kind, members, declined } = g.kernel;
      g.schedule.push({ item: 'kernel', name, kind, members, ...(declined.length > 0 ? { declined } : {}) });
      g.kernel = undefined;
      continue;
    }
    if (line === '}') {
      for (const use of g.uses) if (!g.defined.has(use.name)) fail(`undefined value %${use.name}`, use.line);
      const graph: Graph = {
        name: g.name,
        symbols: g.symbols,
        decls: g.decls,
        nodes: g.nodes,
        outputs: g.outputs,
        ...(g.layout?.scheduled ? { schedule: g.schedule } : {}),
        ...(Object.keys(g.slots).length > 0 ? { slots: g.slots } : {}),
      };
      done.push({ graph, line: g.headerLine });
      open = undefined;
      continue;
    }

    const node = NODE.exec(line);
    const declined = DECLINED.exec(line);
    if (g.kernel !== undefined && !node && !declined) fail(`kernel ${g.kernel.name} (line ${g.kernel.line}) has no closing '}'`);
    if (declined) {
      if (g.kernel === undefined) fail(`a 'declined' line belongs inside a kernel block`);
      if (g.kernel!.members.length > 0) fail(`kernel ${g.kernel!.name}: its 'declined' lines come before its nodes`);
      g.kernel!.declined.push(parseDecline(declined[1]!, fail));
      continue;
    }

    const decl = DECL.exec(line);
    if (decl) {
      enter(g, SECTION.decl, 'declarations');
      const [, kind, name, rest] = decl;
      const [type, from] = splitTail(rest!, /\sfrom\b/, 'from'.length);
      define(g, name!);
      const parsed: Decl = { kind: kind as DeclKind, name: name!, type: attempt(() => parseType(type!)) };
      g.decls.push(from === undefined ? parsed : { ...parsed, from: parseCheckpointNames(from, fail) });
      continue;
    }

    if (node) {
      enter(g, SECTION.node, 'nodes');
      if (g.kernel === undefined) layout(g, false);
      const [, name, op, argText, attrText, rest] = node;
      const [typeAndLayer, slot] = splitTail(rest!, /@\S*$/, 1);
      const [type, layer] = splitTail(typeAndLayer, /\slayer=/, 'layer='.length);
      if (layer !== undefined && !LAYER.test(layer)) fail(`malformed layer 'layer=${layer}': expected layer=N`);
      if (!Object.hasOwn(opSignatures, op!)) fail(`unknown op ${excerpt(op)} (known: ${knownOps.join(', ')})`);
      const sig = opSignatures[op as OpName];
      const args = parseArgs(argText!, fail);
      if (args.length !== sig.args.length) {
        fail(`${op} takes ${sig.args.length} args (${sig.args.join(', ')}), got ${args.length}`);
      }
      const attrs = parseAttrs(attrText ?? '', op!, sig.attrs, fail);
      define(g, name!);
      for (const a of args) g.uses.push({ name: a, line: lineNo });
      const parsed = { op, name: name!, args, attrs, type: attempt(() => parseType(type!)), ...(layer !== undefined ? { layer: Number(layer) } : {}) };
      g.nodes.push(parsed as unknown as Op); // op, arity and attr names were checked against opSignatures
      if (slot !== undefined) {
        if (!IDENT.test(slot)) fail(`malformed slot '@${slot}': expected @name`);
        g.slots[name!] = slot;
      }
      g.kernel?.members.push(name!);
      continue;
    }

    const kernel = KERNEL.exec(line);
    if (kernel) {
      enter(g, SECTION.node, 'kernels');
      layout(g, true);
      const kind = parseKind(kernel[2]!.trim());
      if ('error' in kind) fail(`kernel ${kernel[1]}: ${kind.error}`);
      g.kernel = { name: kernel[1]!, kind: kind as KernelKind, members: [], declined: [], line: lineNo };
      continue;
    }

    const barrier = BARRIER.exec(line);
    if (barrier) {
      enter(g, SECTION.node, 'barriers');
      layout(g, true);
      g.schedule.push(parseBarrier(barrier[1]!, fail));
      continue;
    }

    const output = OUTPUT.exec(line);
    if (output) {
      enter(g, SECTION.output, 'outputs');
      g.outputs.push(output[1]!);
      g.uses.push({ name: output[1]!, line: lineNo });
      continue;
    }

    if (HEADER.test(line)) fail(`graph ${g.name} (line ${g.headerLine}) has no closing '}'`);
    fail(`expected a declaration, a node, a kernel, a barrier, an output or '}', got ${excerpt(line)}`);
  }
  if (open?.kernel !== undefined) fail(`kernel ${open.kernel.name} has no closing '}'`, open.kernel.line);
  if (open !== undefined) fail(`graph ${open.name} has no closing '}'`, open.headerLine);
  return done;
}

/**
 * `text` split at the first match of `marker` (a pattern that matches in linear time): the part before it,
 * trimmed, and what follows the marker's first `skip` non-space characters, trimmed; undefined without one.
 */
function splitTail(text: string, marker: RegExp, skip: number): [string, string | undefined] {
  const m = marker.exec(text);
  if (!m) return [text.trimEnd(), undefined];
  const after = text.slice(m.index + m[0].length - m[0].trimStart().length + skip);
  return [text.slice(0, m.index).trimEnd(), after.trim()];
}

/** The line without its `#` comment; a `#` inside a double-quoted string is text. */
function stripComment(raw: string): string {
  let quoted = false;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '#' && !quoted) return raw.slice(0, i);
  }
  return raw;
}

type Fail = (msg: string) => never;

function parseSymbols(text: string, fail: Fail): string[] {
  const symbols = text.trim() === '' ? [] : text.split(',').map((s) => s.trim());
  const seen = new Set<string>();
  for (const s of symbols) {
    if (!SYMBOL.test(s)) fail(`malformed symbol '${s}'`);
    if (seen.has(s)) fail(`duplicate symbol ${s}`);
    seen.add(s);
  }
  return symbols;
}

function parseArgs(text: string, fail: Fail): string[] {
  if (text.trim() === '') return [];
  return text.split(',').map((a) => {
    const m = VALUE.exec(a.trim());
    if (!m) fail(`malformed argument '${a.trim()}': expected %name`);
    return m![1]!;
  });
}

function parseAttrs(text: string, op: string, expected: readonly string[], fail: Fail): Record<string, number> {
  const attrs = new Map<string, number>();
  const expects = expected.length === 0 ? 'none' : expected.join(', ');
  if (text.trim() !== '') {
    for (const part of text.split(',')) {
      const eq = part.indexOf('=');
      const key = (eq < 0 ? part : part.slice(0, eq)).trim();
      const value = eq < 0 ? '' : part.slice(eq + 1).trim();
      if (eq < 0 || !NUMBER.test(value)) fail(`malformed attr '${part.trim()}': expected name=number`);
      if (!expected.includes(key)) fail(`${op} has no attr '${key}' (expects ${expects})`);
      if (attrs.has(key)) fail(`duplicate attr '${key}'`);
      attrs.set(key, Number(value));
    }
  }
  for (const key of expected) if (!attrs.has(key)) fail(`${op} is missing attr '${key}'`);
  return Object.fromEntries(expected.map((key) => [key, attrs.get(key)!]));
}

function parseCheckpointNames(text: string, fail: Fail): string[] {
  if (text.trim() === '') fail(`'from' lists no checkpoint tensors`);
  return text.split(',').map((part) => {
    const name = part.trim();
    if (!IDENT.test(name)) fail(`malformed checkpoint tensor name '${name}' after 'from'`);
    return name;
  });
}

const BARRIER_FIELDS = ['reason', 'producers', 'consumers', 'buffers', 'unfused'] as const;
const FIELD_NAME = /[A-Za-z_]\w*/y;
const STRING = /"(?:[^"\\]|\\.)*"/y;
const KERNEL_NAME = new RegExp(`(${NAME})`, 'y');
const BUFFER = new RegExp(`[%@](${NAME})`, 'y');

/**
 * Reads the inside of a `what {field=value, …}` line: every field in the order given; strings are JSON string
 * literals, lists are bracketed names.
 */
function recordReader(text: string, what: string, order: readonly string[], fail: Fail) {
  let pos = 0;
  const malformed = (msg: string): never => fail(`malformed ${what}: ${msg} at '${text.slice(pos).trim()}'`);
  const token = (re: RegExp): RegExpExecArray | undefined => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m) pos = re.lastIndex;
    return m ?? undefined;
  };
  const punct = (c: string): boolean => {
    while (pos < text.length && /\s/.test(text[pos]!)) pos++;
    if (text[pos] !== c) return false;
    pos++;
    return true;
  };
  const string = (): string => {
    const m = token(STRING) ?? malformed('expected a "string"');
    try {
      return JSON.parse(m[0]) as string;
    } catch {
      return fail(`malformed ${what}: bad escape in string ${m[0]}`);
    }
  };
  const list = (item: RegExp, items: string) => (): string[] => {
    if (!punct('[')) malformed(`expected '[' before the ${items}`);
    const out: string[] = [];
    if (punct(']')) return out;
    do out.push((token(item) ?? malformed(`expected ${items}`))[1]!);
    while (punct(','));
    if (!punct(']')) malformed(`expected ',' or ']' in the ${items}`);
    return out;
  };
  let fields = 0;
  const field = <T>(name: string, value: () => T): T => {
    if (fields++ > 0 && !punct(',')) malformed(`expected ', ${name}=…'`);
    const key = token(FIELD_NAME)?.[0];
    if (key !== name) fail(`${what} fields are ${order.join(', ')} in this order: expected '${name}', got '${key ?? text.slice(pos).trim()}'`);
    if (!punct('=')) malformed(`expected '=' after '${name}'`);
    return value();
  };
  const end = (): void => {
    if (token(/$/y) === undefined) malformed('unexpected text after the last field');
  };
  return { string, list, field, end };
}

/** The inside of `barrier {…}`: every field, in BARRIER_FIELDS order. */
function parseBarrier(text: string, fail: Fail): BarrierItem {
  const { string, list, field, end } = recordReader(text, 'barrier', BARRIER_FIELDS, fail);
  const barrier: BarrierItem = {
    item: 'barrier',
    reason: field('reason', string),
    producers: field('producers', list(KERNEL_NAME, 'kernel names')),
    consumers: field('consumers', list(KERNEL_NAME, 'kernel names')),
    buffers: field('buffers', list(BUFFER, '%value or @slot buffers')),
    unfused: field('unfused', string),
  };
  end();
  return barrier;
}

const DECLINE_FIELDS = ['pass', 'nodes', 'reason'] as const;
const VALUE_NAME = new RegExp(`%(${NAME})`, 'y');

/** The inside of `declined {pass="…", nodes=[%…], reason="…"}`. */
function parseDecline(text: string, fail: Fail): FusionDecline {
  const { string, list, field, end } = recordReader(text, 'declined', DECLINE_FIELDS, fail);
  const decline: FusionDecline = { pass: field('pass', string), nodes: field('nodes', list(VALUE_NAME, '%node names')), reason: field('reason', string) };
  end();
  return decline;
}
