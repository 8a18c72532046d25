// The command line's flags: one table of value kinds (how each reads its text, as run.c's C library or as plain
// decimals), the yargs options a command's flag table gives, and the pass over argv that binds each value-taking
// flag to the token after it. A single-valued flag is given at most once; output paths are checked before any work.
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Options } from 'yargs';

/** `text` quoted for a message: at most 40 characters, control characters escaped. */
function quote(text: string): string {
  const short = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return `'${JSON.stringify(short).slice(1, -1)}'`;
}

const C_SPACE = '[ \\t\\n\\v\\f\\r]*';
const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);

/**
 * glibc's `atoi`: `(int) strtol(text, NULL, 10)` — blanks, a sign and the digits up to the first other
 * character ('1e3' is 1, '0x10' is 0), saturated at 64 bits, then the low 32 bits as a signed int.
 * Undefined where C finds no digits at all (atoi's 0).
 */
export function readCInt(text: string): number | undefined {
  const m = new RegExp(`^${C_SPACE}([+-]?\\d+)`).exec(text);
  if (!m) return undefined;
  const n = BigInt(m[1]!);
  return Number(BigInt.asIntN(32, n > LONG_MAX ? LONG_MAX : n < LONG_MIN ? LONG_MIN : n));
}

const C_FLOAT = new RegExp(
  `^${C_SPACE}(?<sign>[+-]?)(?:0x(?:(?<hexInt>[0-9a-f]+)(?:\\.(?<hexFrac>[0-9a-f]*))?|\\.(?<hexOnlyFrac>[0-9a-f]+))(?:p(?<hexExp>[+-]?\\d+))?` +
    `|(?<decimal>(?:\\d+\\.?\\d*|\\.\\d+)(?:e[+-]?\\d+)?)|(?<inf>inf(?:inity)?)|nan(?:\\([0-9a-z_]*\\))?)`,
  'i',
);

/**
 * glibc's `atof`: `strtod(text, NULL)` — the longest prefix that is a decimal or hexadecimal float
 * ('0x1p-1' is 0.5), inf or nan, the rest ignored ('1e3x' is 1000). Undefined where C finds no number (atof's 0).
 */
export function readCFloat(text: string): number | undefined {
  const m = C_FLOAT.exec(text);
  if (!m) return undefined;
  const { sign, hexInt, hexFrac, hexOnlyFrac, hexExp, decimal, inf } = m.groups!;
  const fraction = hexFrac ?? hexOnlyFrac ?? '';
  const mantissa = Number(BigInt(`0x0${hexInt ?? ''}${fraction}`));
  const exponent = Number(hexExp ?? 0) - 4 * fraction.length;
  const half = Math.trunc(exponent / 2); // in two factors, so that neither overflows where the product does not
  const magnitude =
    decimal !== undefined
      ? Number(decimal)
      : inf !== undefined
        ? Infinity
        : hexInt === undefined && hexOnlyFrac === undefined
          ? NaN
          : mantissa === 0
            ? 0
            : mantissa * 2 ** half * 2 ** (exponent - half);
  return sign === '-' ? -magnitude : magnitude;
}

/** A plain decimal integer ('-3', '128'): no sign but '-', no exponent, no hexadecimal, no blanks. */
export function readInteger(text: string): number | undefined {
  const n = Number(text);
  return /^-?\d+$/.test(text) && Number.isSafeInteger(n) ? n : undefined;
}

/** A plain decimal number ('0.5', '-1', '67'): digits with at most one point, no exponent. */
export function readDecimal(text: string): number | undefined {
  return /^-?(\d+\.?\d*|\.\d+)$/.test(text) ? Number(text) : undefined;
}

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
}

function checkWritableFolder(flag: string, path: string, folder: string): void {
  const stat = statOf(folder);
  if (!stat) throw new Error(`${flag} ${path}: no folder ${folder}`);
  if (!stat.isDirectory()) throw new Error(`${flag} ${path}: ${folder} is not a folder`);
  try {
    accessSync(folder, constants.W_OK);
  } catch (e) {
    throw new Error(`${flag} ${path}: cannot write in ${folder}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A file to be written at the end: its folder exists and is writable, and the path is not a folder. */
export function checkOutputFile(flag: string, path: string): void {
  if (path === '') throw new Error(`${flag}: the path is empty`);
  if (statOf(path)?.isDirectory()) throw new Error(`${flag} ${path}: is a folder, not a file`);
  checkWritableFolder(flag, path, dirname(resolve(path)));
}

/** A folder to be created (with its parents) and written at the end: it is a folder if it exists, else the nearest folder above it is writable. */
export function checkOutputFolder(flag: string, path: string): void {
  if (path === '') throw new Error(`${flag}: the path is empty`);
  const stat = statOf(path);
  if (stat && !stat.isDirectory()) throw new Error(`${flag} ${path}: is a file, not a folder`);
  let existing = resolve(path);
  while (!statOf(existing) && dirname(existing) !== existing) existing = dirname(existing);
  checkWritableFolder(flag, path, existing);
}

function numberReader(read: (text: string) => number | undefined, expected: string) {
  return (text: string, flag: string): number => {
    const n = read(text);
    if (n === undefined) throw new Error(`${flag}: ${quote(text)} is not ${expected}`);
    return n;
  };
}

/**
 * How each kind of flag reads its value. run.c's flags read as its C library does (`atoi`, `atof`); weft's own
 * numbers are plain decimals; output paths are checked as they are read. `switch` is a boolean and takes no value.
 */
const flagKinds = {
  switch: undefined,
  text: (text: string): string => text,
  choice: (text: string): string => text,
  atoi: numberReader(readCInt, 'a number (read as C atoi reads it)'),
  atof: numberReader(readCFloat, 'a number (read as C atof reads it)'),
  integer: numberReader(readInteger, 'a whole number in decimal'),
  integers: (text: string, flag: string): number[] =>
    text.split(',').map((p, i) => {
      const n = readInteger(p.trim());
      if (n === undefined) throw new Error(`${flag}: item ${i + 1} (${quote(p.trim())}) is not a whole number in decimal`);
      return n;
    }),
  decimal: numberReader(readDecimal, 'a decimal number'),
  'output-file': (text: string, flag: string): string => (checkOutputFile(flag, text), text),
  'output-folder': (text: string, flag: string): string => (checkOutputFolder(flag, text), text),
} as const;

export interface Flag {
  readonly kind: keyof typeof flagKinds;
  readonly describe: string;
  readonly default?: unknown;
  readonly choices?: readonly string[];
  /** may be given several times: the values in order */
  readonly array?: boolean;
  readonly demandOption?: boolean;
}

/** A command's flags by their names on the command line. */
export type FlagTable = Readonly<Record<string, Flag>>;

/** The yargs options of a flag table: every value-taking flag needs its value, reads it by its kind, and is refused when given twice unless it is an array. */
export function flagOptions(table: FlagTable): Record<string, Options> {
  return Object.fromEntries(
    Object.entries(table).map(([name, f]) => {
      const read = flagKinds[f.kind];
      const common = { describe: f.describe, ...(f.default !== undefined ? { default: f.default } : {}), ...(f.demandOption ? { demandOption: true } : {}) };
      if (read === undefined) return [name, { ...common, type: 'boolean' }];
      const flag = `--${name}`;
      const coerce = (v: unknown): unknown => {
        if (f.array) return (v as unknown[]).map((item) => (typeof item === 'string' ? read(item, flag) : item));
        if (Array.isArray(v)) throw new Error(`${flag} is given ${v.length} times; give it once`);
        return typeof v === 'string' ? read(v, flag) : v; // a default may be given as its value
      };
      // yargs hands over the text as typed (it parses no number); the kind reads it
      const type = f.kind === 'text' || f.kind === 'choice' || f.kind.startsWith('output') ? { type: 'string' as const } : {};
      return [name, { ...common, ...type, ...(f.choices ? { choices: [...f.choices] } : {}), ...(f.array ? { array: true } : {}), requiresArg: true, coerce }];
    }),
  );
}

const camel = (name: string): string => name.replace(/-+([^-])/g, (_, c: string) => c.toUpperCase());

/**
 * `args` with each value-taking flag of the command joined to the token after it (`--prompt -dash` becomes
 * `--prompt=-dash`), so the token is the flag's value whatever it starts with, as run.c takes `argv[i + 1]`;
 * `--temperature -1` stays a negative number. Flags before the command's name and everything after `--` stay as they are.
 */
export function bindFlagValues(args: readonly string[], commands: Readonly<Record<string, FlagTable>>): string[] {
  const at = args.findIndex((a) => !a.startsWith('-'));
  const table = at >= 0 ? commands[args[at]!] : undefined;
  if (!table) return [...args];
  const takesValue = new Set(
    Object.entries(table)
      .filter(([, f]) => flagKinds[f.kind] !== undefined)
      .map(([name]) => camel(name)),
  );
  const bound = args.slice(0, at + 1);
  for (let i = at + 1; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return [...bound, ...args.slice(i)];
    const name = /^--([^=]+)$/.exec(arg)?.[1];
    if (name !== undefined && takesValue.has(camel(name)) && i + 1 < args.length) bound.push(`${arg}=${args[++i]!}`);
    else bound.push(arg);
  }
  return bound;
}
