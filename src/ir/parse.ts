// Reads the IR text form written by `print.ts`, one line at a time, into Graphs with node types as written.
// Checks syntax, known ops and attrs, arity, unique names and that every used name is defined somewhere;
// errors are one line, `source:line: what is wrong`. Type agreement and definition order are `verify.ts`'s job.
import * as A from '../affine.js';
import type { Affine } from '../affine.js';
import { opSignatures } from './types.js';
import type { Decl, DeclKind, DType, Graph, Op, OpName, TensorType } from './types.js';

const NAME = '[A-Za-z0-9_.]+';
const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const HEADER = new RegExp(`^graph\\s+(${NAME})\\s*\\(([^)]*)\\)\\s*\\{$`);
const DECL = new RegExp(`^(input|weight|state)\\s+%(${NAME})\\s*:\\s*(.*)$`);
const NODE = new RegExp(`^%(${NAME})\\s*=\\s*([A-Za-z_][A-Za-z0-9_]*)\\s*\\(([^)]*)\\)\\s*(?:\\{([^}]*)\\}\\s*)?:\\s*(.*)$`);
const OUTPUT = new RegExp(`^output\\s+%(${NAME})$`);
const VALUE = new RegExp(`^%(${NAME})$`);
const TYPE = /^(\w+)\s*\[(.*)\]$/;

const knownOps = Object.keys(opSignatures) as OpName[];

/** Order of the parts of a graph body: declarations, then nodes, then outputs. */
const SECTION = { decl: 0, node: 1, output: 2 } as const;

interface OpenGraph {
  readonly name: string;
  readonly headerLine: number;
  readonly symbols: readonly string[];
  readonly decls: Decl[];
  readonly nodes: Op[];
  readonly outputs: string[];
  readonly defined: Map<string, number>;
  readonly uses: { readonly name: string; readonly line: number }[];
  section: number;
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
  if (!m) throw new Error(`malformed type '${text}': expected dtype[dims]`);
  const dtype = m[1]!;
  if (dtype !== 'f32' && dtype !== 'i32') throw new Error(`malformed type '${text}': dtype must be f32 or i32`);
  const inner = m[2]!.trim();
  let shape: Affine[];
  try {
    shape = inner === '' ? [] : inner.split(',').map((d) => A.parse(d));
  } catch (e) {
    throw new Error(`malformed type '${text}': ${(e as Error).message}`);
  }
  return { dtype: dtype as DType, shape };
}

function parseWithLines(text: string, source: string): { graph: Graph; line: number }[] {
  const done: { graph: Graph; line: number }[] = [];
  let open: OpenGraph | undefined;
  let lineNo = 0;
  const fail = (msg: string, at = lineNo): never => {
    throw new Error(`${source}:${at}: ${msg}`);
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

  const lines = text.split('\n');
  for (const raw of lines) {
    lineNo++;
    const hash = raw.indexOf('#');
    const line = (hash < 0 ? raw : raw.slice(0, hash)).trim();
    if (line === '') continue;

    if (open === undefined) {
      const m = HEADER.exec(line);
      if (!m) fail(`expected 'graph name(symbols) {', got '${line}'`);
      open = {
        name: m![1]!,
        headerLine: lineNo,
        symbols: parseSymbols(m![2]!, fail),
        decls: [],
        nodes: [],
        outputs: [],
        defined: new Map(),
        uses: [],
        section: SECTION.decl,
      };
      continue;
    }

    const g: OpenGraph = open;
    if (line === '}') {
      for (const use of g.uses) if (!g.defined.has(use.name)) fail(`undefined value %${use.name}`, use.line);
      const graph: Graph = { name: g.name, symbols: g.symbols, decls: g.decls, nodes: g.nodes, outputs: g.outputs };
      done.push({ graph, line: g.headerLine });
      open = undefined;
      continue;
    }

    const decl = DECL.exec(line);
    if (decl) {
      enter(g, SECTION.decl, 'declarations');
      const [, kind, name, type] = decl;
      define(g, name!);
      g.decls.push({ kind: kind as DeclKind, name: name!, type: attempt(() => parseType(type!)) });
      continue;
    }

    const node = NODE.exec(line);
    if (node) {
      enter(g, SECTION.node, 'nodes');
      const [, name, op, argText, attrText, type] = node;
      if (!Object.hasOwn(opSignatures, op!)) fail(`unknown op '${op}' (known: ${knownOps.join(', ')})`);
      const sig = opSignatures[op as OpName];
      const args = parseArgs(argText!, fail);
      if (args.length !== sig.args.length) {
        fail(`${op} takes ${sig.args.length} args (${sig.args.join(', ')}), got ${args.length}`);
      }
      const attrs = parseAttrs(attrText ?? '', op!, sig.attrs, fail);
      define(g, name!);
      for (const a of args) g.uses.push({ name: a, line: lineNo });
      const parsed = { op, name: name!, args, attrs, type: attempt(() => parseType(type!)) };
      g.nodes.push(parsed as unknown as Op); // op, arity and attr names were checked against opSignatures
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
    fail(`expected a declaration, a node, an output or '}', got '${line}'`);
  }
  if (open !== undefined) fail(`graph ${open.name} has no closing '}'`, open.headerLine);
  return done;
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
