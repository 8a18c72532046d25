// Files a user names, read as untrusted input: only regular files (a FIFO would block, a device never end),
// JSON nested at most MAX_NESTING levels deep, and values from files quoted in messages as short escaped excerpts.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** The deepest nesting of arrays and objects read from a file (real configs and tokenizers nest under ten). */
export const MAX_NESTING = 64;

/** The most characters of a value a message quotes. */
const EXCERPT_CHARS = 80;

/**
 * A value from a file as a message quotes it: JSON (a string in quotes), every control, line-separator and
 * unpaired surrogate character escaped, cut to about 80 characters with "…" and the full length when longer.
 */
export function excerpt(value: unknown): string {
  const text = escapeControls(jsonText(value));
  return text.length <= EXCERPT_CHARS ? text : `${text.slice(0, EXCERPT_CHARS - 1)}… (${text.length} characters)`;
}

function jsonText(value: unknown): string {
  if (typeof value === 'bigint') return String(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) ?? String(value);
  } catch {
    // a value nested too deep to stringify: its kind is all a message needs
    return Array.isArray(value) ? '[…]' : '{…}';
  }
}

/** JSON.stringify leaves DEL, C1 controls, U+2028 and U+2029 as they are: they are escaped too. */
function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A regular file opened for reading, without blocking on a FIFO; errors name `what` and the path. */
export function openRegularFile(path: string, what = 'file'): { fd: number; size: number } {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once, so its kind can be checked
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`cannot read ${what} ${path}: not a regular file`);
    return { fd, size: stat.size };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** A regular file's whole content (at most the size it had when opened). */
export function readRegularFile(path: string, what = 'file'): Uint8Array {
  const { fd, size } = openRegularFile(path, what);
  try {
    const out = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, out, done, Math.min(size - done, 1 << 30), done);
      if (n === 0) break;
      done += n;
    }
    return out.subarray(0, done);
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** A JSON object (not null, not an array), as files' values are checked before their fields are read. */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A field of an object read from a file, never one of its prototype's ("constructor", "__proto__"); undefined when absent or null. */
export function ownField(o: object, key: string): unknown {
  return Object.hasOwn(o, key) ? ((o as Record<string, unknown>)[key] ?? undefined) : undefined;
}

/** A JSON file that must hold an object; errors name the file (`what` in a read error). */
export function readJsonObject(path: string, what = 'file'): Record<string, unknown> {
  const value = readJsonFile(path, what);
  if (!isJsonObject(value)) throw new Error(`${path}: not a JSON object`);
  return value;
}

/** A JSON file's value, its nesting checked; errors name the file. */
export function readJsonFile(path: string, what = 'file'): unknown {
  const text = new TextDecoder().decode(readRegularFile(path, what));
  return parseJson(text, path);
}

/** JSON text's value, its nesting checked; errors name `source`. */
export function parseJson(text: string, source: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${errorLine(e)})`);
  }
  // the text's brackets first: walking a large value (a tokenizer's 280k merges) costs far more than reading the text
  if (textNesting(text) > MAX_NESTING) checkNesting(value, source);
  return value;
}

/** How deep arrays and objects nest in valid JSON text (brackets outside strings). */
function textNesting(text: string): number {
  let depth = 0;
  let most = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: to its closing quote, past escaped characters
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) most = Math.max(most, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return most;
}

/** The first line of an error's message, escaped and cut to `chars`: a parser's or a library's may quote the text it failed on. */
export function errorLine(e: unknown, chars = 2 * EXCERPT_CHARS): string {
  const message = escapeControls((e instanceof Error ? e.message : String(e)).split('\n')[0]!);
  return message.length <= chars ? message : `${message.slice(0, chars - 1)}…`;
}

/**
 * Fails (naming `source` and the path to the value) when arrays and objects nest more than MAX_NESTING levels
 * deep: code that walks a value recursively (JSON.stringify, the tokenizer library) would overflow the stack.
 * Walks with its own stack, so any depth is checked safely.
 */
export function checkNesting(value: unknown, source: string): void {
  interface Nested {
    readonly value: object;
    readonly depth: number;
    /** the container holding it, and its index or key there (absent at the top) */
    readonly parent?: Nested;
    readonly key?: number | string;
  }
  if (typeof value !== 'object' || value === null) return;
  const stack: Nested[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const at = stack.pop()!;
    if (at.depth > MAX_NESTING) throw new Error(`${source}: ${cutPath(pathOf(at))} is nested more than ${MAX_NESTING} levels deep`);
    const push = (x: unknown, key: number | string): void => {
      if (typeof x === 'object' && x !== null) stack.push({ value: x, depth: at.depth + 1, parent: at, key });
    };
    if (Array.isArray(at.value)) at.value.forEach(push);
    else for (const [k, x] of Object.entries(at.value)) push(x, k);
  }
}

/** The path from the top-level value to a nested one: `.name`, `["odd name"]` and `[index]` steps. */
function pathOf(n: { readonly parent?: typeof n; readonly key?: number | string }): string {
  const steps: string[] = [];
  for (let p: typeof n | undefined = n; p?.key !== undefined; p = p.parent) steps.push(typeof p.key === 'number' ? `[${p.key}]` : keyStep(p.key));
  return steps.reverse().join('');
}

/** One key of a path: `.name` for a plain name, else `["…"]` escaped and cut. */
function keyStep(key: string): string {
  if (/^[A-Za-z_$][\w$]{0,39}$/.test(key)) return `.${key}`;
  const quoted = escapeControls(JSON.stringify(key));
  return `[${quoted.length <= 24 ? quoted : `${quoted.slice(0, 22)}…"`}]`;
}

/** A path to a value, its start kept when long. */
function cutPath(path: string): string {
  const text = path === '' ? 'the top-level value' : path.replace(/^\./, '');
  return text.length <= EXCERPT_CHARS ? text : `${text.slice(0, EXCERPT_CHARS - 1)}…`;
}
