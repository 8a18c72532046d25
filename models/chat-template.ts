// Chat templates: the Jinja text a checkpoint ships (chat_template.jinja, tokenizer_config.json's chat_template,
// GGUF tokenizer.chat_template, or a --template file), compiled once with @huggingface/jinja and rendered with the
// variables transformers' apply_chat_template passes. Every error is one line that names where the template came from.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';
import { errorLine, excerpt, ownField, readJsonObject, readRegularFile } from '../src/file-input.js';
import { addedTokenText } from '../src/runtime/hf-tokenizer.js';
import { ggufTokenId, type GgufFile } from './gguf.js';

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChatTemplate {
  /** where the template came from, for messages */
  readonly source: string;
  render(messages: readonly ChatMessage[], options: { addGenerationPrompt: boolean }): string;
}

/** The special tokens' texts a template sees as bos_token, eos_token, pad_token, unk_token. */
export interface SpecialTokenTexts {
  readonly bos?: string;
  readonly eos?: string;
  readonly pad?: string;
  readonly unk?: string;
}

/** A template's text as a checkpoint ships it, with the special tokens' texts it is rendered with. */
export interface ChatTemplateText {
  readonly text: string;
  readonly source: string;
  readonly specials: SpecialTokenTexts;
}

/** A Jinja error as one line: its lines joined, control characters escaped, cut (it may quote the template). */
const oneLine = (message: string): string => errorLine(message.replace(/\s*\n\s*/g, ' ').trim(), 160);

// Limits on what @huggingface/jinja is given, each for a cost that library leaves unbounded. Real chat templates
// are a few KiB to a few tens of KiB, indent by a few dozen spaces, nest brackets and blocks under ten deep, and
// render in a few dozen interpreter steps per message (Llama 3.1, Mistral, Phi-3, Qwen2.5: 22–31 over 200 messages).
/** A template longer than this is refused before it is read further. */
const MAX_TEMPLATE_CHARS = 1 << 20;
/**
 * The library's lexer first runs a regular expression (`(\s*){%…generation…%}`) that backtracks over every run of
 * whitespace: time quadratic in a run's length (100,000 spaces in a tag took 35 s). 512 keeps the worst template
 * of MAX_TEMPLATE_CHARS under half a second.
 */
const MAX_WHITESPACE_RUN = 512;
/** Its parser and interpreter recurse once per bracket and per block: deeper nesting would overflow the stack. */
const MAX_TEMPLATE_NESTING = 64;
/** As transformers' sandboxed Jinja (MAX_RANGE): range() of more items is refused. */
const MAX_RANGE = 100_000;
/**
 * Interpreter steps (expressions, statements and loop bodies evaluated, range() items made) a rendering may take,
 * the base plus so many per message: loops within loops would otherwise run for hours (the interpreter takes
 * about a microsecond a step, several where a for loop builds its scopes).
 */
const RENDER_STEPS_BASE = 250_000;
const RENDER_STEPS_PER_MESSAGE = 10_000;

/** Where `index` falls in `text`, as `line L, column C`. */
function position(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  return `line ${line}, column ${index - before.lastIndexOf('\n')}`;
}

/** The first limit the template's text breaks, as a message; undefined when it keeps them all. */
function textLimit(text: string): string | undefined {
  if (text.length > MAX_TEMPLATE_CHARS) return `${text.length} characters, more than ${MAX_TEMPLATE_CHARS}`;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && /\s/.test(text[i]!)) continue;
    if (i - start > MAX_WHITESPACE_RUN) {
      return `a run of ${i - start} whitespace characters at ${position(text, start)}, more than ${MAX_WHITESPACE_RUN} (the Jinja lexer's time grows with the square of such a run)`;
    }
    start = i + 1;
  }
  return undefined;
}

const OPENERS = new Set(['OpenParen', 'OpenSquareBracket', 'OpenCurlyBracket']);
const CLOSERS = new Set(['CloseParen', 'CloseSquareBracket', 'CloseCurlyBracket']);
const BLOCKS = new Set(['if', 'for', 'macro', 'call', 'filter']);

/** Whether the set statement whose tokens start at `from` is a block set ({% set x %} … {% endset %}): no '=' before its %}. */
function isBlockSet(tokens: readonly { readonly type: string }[], from: number): boolean {
  for (let i = from; i < tokens.length && tokens[i]!.type !== 'CloseStatement'; i++) if (tokens[i]!.type === 'Equals') return false;
  return true;
}

/** Brackets within brackets, and blocks within blocks ({% if %} … {% endif %}), deeper than MAX_TEMPLATE_NESTING. */
function nestingLimit(tokens: readonly { readonly type: string; readonly value: string }[]): string | undefined {
  let brackets = 0;
  let blocks = 0;
  for (let i = 0; i < tokens.length; i++) {
    const { type } = tokens[i]!;
    if (OPENERS.has(type)) brackets++;
    else if (CLOSERS.has(type)) brackets = Math.max(0, brackets - 1);
    else if (type === 'OpenStatement' && tokens[i + 1]?.type === 'Identifier') {
      const name = tokens[i + 1]!.value;
      if (BLOCKS.has(name) || (name === 'set' && isBlockSet(tokens, i + 2))) blocks++;
      else if (name.startsWith('end')) blocks = Math.max(0, blocks - 1);
    }
    if (brackets > MAX_TEMPLATE_NESTING) return `brackets nested more than ${MAX_TEMPLATE_NESTING} deep`;
    if (blocks > MAX_TEMPLATE_NESTING) return `blocks nested more than ${MAX_TEMPLATE_NESTING} deep`;
  }
  return undefined;
}

/**
 * An error from inside the library as what it means for the template: JavaScript's own kinds (a stack overflow,
 * a read past the last token) and the library's message for a call of a non-function are put in the template's
 * terms; its other errors (SyntaxError, Error) keep their messages.
 */
function libraryFailure(e: unknown, phase: 'parse' | 'render'): string {
  if (!(e instanceof Error)) return String(e);
  // the library's words for a call of a name the template never defines (or of a value): say which kind of value
  const called = /^Cannot call something that is not a function: got (\w+)Value$/.exec(e.message);
  if (called) return `it calls ${called[1] === 'Undefined' ? 'an undefined name' : `a value of type ${called[1]!.toLowerCase()}`}, not a function or macro`;
  if (e.name === 'Error' || e.name === 'SyntaxError') return e.message;
  if (/Maximum call stack/.test(e.message)) return `nested or recursing too deeply to ${phase}`;
  // the parser reads past its last token (in building a message about it) where a tag or block is left open
  if (phase === 'parse' && e instanceof TypeError) return 'the template ends inside a tag, an expression or a block it does not close';
  if (/Invalid (string|array) length/.test(e.message)) return 'rendering built a text or list longer than JavaScript allows';
  return `the Jinja ${phase === 'parse' ? 'parser' : 'interpreter'} failed on it (a ${e.name} inside the library)`;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's datetime.strftime in the C locale, for the directives chat templates use; the local time of `date`. */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const hour12 = date.getHours() % 12 === 0 ? 12 : date.getHours() % 12;
  const directives: Record<string, () => string> = {
    Y: () => String(date.getFullYear()),
    y: () => pad(date.getFullYear() % 100),
    m: () => pad(date.getMonth() + 1),
    d: () => pad(date.getDate()),
    B: () => MONTHS[date.getMonth()]!,
    b: () => MONTHS[date.getMonth()]!.slice(0, 3),
    A: () => DAYS[date.getDay()]!,
    a: () => DAYS[date.getDay()]!.slice(0, 3),
    H: () => pad(date.getHours()),
    I: () => pad(hour12),
    p: () => (date.getHours() < 12 ? 'AM' : 'PM'),
    M: () => pad(date.getMinutes()),
    S: () => pad(date.getSeconds()),
    '%': () => '%',
  };
  return format.replace(/%(.)/gs, (whole, d: string) => directives[d]?.() ?? whole);
}

/** The interpreter steps a rendering has left: shared by the interpreter and range(). */
interface StepBudget {
  left: number;
  take(n: number): void;
}

function stepBudget(steps: number): StepBudget {
  return {
    left: steps,
    take(n) {
      if ((this.left -= n) < 0) throw new Error('rendering runs too long (more interpreter steps than its limit: loops within loops?)');
    },
  };
}

/**
 * Python's range(), as Jinja templates call it, of at most MAX_RANGE items; each item costs a step of `budget`
 * (a for loop over it builds a scope per item before its body runs).
 */
const rangeOf =
  (budget: StepBudget) =>
  (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error('range() arg 3 must not be zero');
    const length = Math.max(0, Math.ceil((stop - start) / step));
    if (!(length <= MAX_RANGE)) throw new Error(`range() of ${length} items: at most ${MAX_RANGE}, as transformers' sandbox allows`);
    budget.take(length);
    const out: number[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
    return out;
  };

/** What is used of the library's interpreter (its declarations do not resolve under NodeNext). */
interface JinjaInterpreter {
  run(program: unknown): { readonly value: unknown };
  evaluate(node: unknown, scope: unknown): unknown;
  evaluateBlock(nodes: unknown, scope: unknown): unknown;
}

/**
 * The library's interpreter, stopped when `budget` runs out: it evaluates every node through this.evaluate, and
 * each loop iteration's body through this.evaluateBlock (empty bodies too), so both take a step.
 */
function boundedInterpreter(env: Environment, budget: StepBudget): JinjaInterpreter {
  const interpreter = new Interpreter(env) as JinjaInterpreter;
  const evaluate = interpreter.evaluate.bind(interpreter);
  const evaluateBlock = interpreter.evaluateBlock.bind(interpreter);
  interpreter.evaluate = (node, scope) => (budget.take(1), evaluate(node, scope));
  interpreter.evaluateBlock = (nodes, scope) => (budget.take(1), evaluateBlock(nodes, scope));
  return interpreter;
}

/**
 * Compiles a chat template once. render passes what transformers' apply_chat_template does: messages,
 * add_generation_prompt, the special tokens' texts that are known, tools and documents as none, raise_exception
 * and strftime_now (reading `clock`, which tests fix).
 */
export function chatTemplate(text: string, source: string, specials: SpecialTokenTexts, clock: () => Date = () => new Date()): ChatTemplate {
  const fail = (message: string): never => {
    throw new Error(`${source}: chat template: ${oneLine(message)}`);
  };
  const limit = textLimit(text);
  if (limit !== undefined) fail(limit);
  // as the library's Template does, with the tokens checked before they are parsed
  let lexed: ReturnType<typeof tokenize>;
  try {
    lexed = tokenize(text, { lstrip_blocks: true, trim_blocks: true });
  } catch (e) {
    return fail(libraryFailure(e, 'parse'));
  }
  const nesting = nestingLimit(lexed);
  if (nesting !== undefined) fail(nesting);
  let program: ReturnType<typeof parse>;
  try {
    program = parse(lexed);
  } catch (e) {
    return fail(libraryFailure(e, 'parse'));
  }
  const tokens = Object.fromEntries((['bos', 'eos', 'pad', 'unk'] as const).flatMap((k) => (specials[k] === undefined ? [] : [[`${k}_token`, specials[k]]])));
  return {
    source,
    render(messages, { addGenerationPrompt }) {
      // Template.render's globals, declared here because it lets none be replaced (strftime_now reads `clock`)
      const env = new Environment();
      const budget = stepBudget(RENDER_STEPS_BASE + RENDER_STEPS_PER_MESSAGE * messages.length);
      const variables: Record<string, unknown> = {
        true: true,
        false: false,
        none: null,
        True: true,
        False: false,
        None: null,
        range: rangeOf(budget),
        raise_exception: (message: unknown) => {
          throw new Error(String(message));
        },
        strftime_now: (format: unknown) => strftime(clock(), String(format)),
        messages: messages.map(({ role, content }) => ({ role, content })),
        add_generation_prompt: addGenerationPrompt,
        tools: null,
        documents: null,
        ...tokens,
      };
      for (const [name, value] of Object.entries(variables)) env.set(name, value);
      try {
        return String(boundedInterpreter(env, budget).run(program).value);
      } catch (e) {
        return fail(libraryFailure(e, 'render'));
      }
    },
  };
}

/** A tokenizer_config.json special token: a string, an AddedToken object's content, or absent (null too). */
function specialText(path: string, config: Record<string, unknown>, key: string): string | undefined {
  const v = ownField(config, key);
  if (v === undefined) return undefined;
  const text = addedTokenText(v);
  if (text !== undefined) return text;
  throw new Error(`${path}: ${key} must be a string or an object with a string content, is ${excerpt(v)}`);
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template} of which "default" is taken. */
function configTemplate(path: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  const fail = (): never => {
    throw new Error(`${path}: chat_template must be a string or a list of {name, template}, is ${excerpt(value)}`);
  };
  if (!Array.isArray(value)) return fail();
  for (const entry of value) {
    if (typeof entry !== 'object' || entry === null || typeof entry.name !== 'string' || typeof entry.template !== 'string') fail();
  }
  return (value as { name: string; template: string }[]).find((e) => e.name === 'default')?.template;
}

/** What a checkpoint ships: its template's text (undefined when it has none) and its special tokens' texts. */
interface Shipped {
  readonly text: string | undefined;
  readonly source: string;
  readonly specials: SpecialTokenTexts;
}

const shippedTemplate = ({ text, source, specials }: Shipped): ChatTemplateText | undefined => (text === undefined ? undefined : { text, source, specials });

/** chat_template.jinja (newer transformers save it there) before tokenizer_config.json's chat_template and special tokens. */
function huggingFaceFolder(dir: string): Shipped {
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJsonObject(configPath) : {};
  const specials: SpecialTokenTexts = Object.fromEntries(
    (['bos', 'eos', 'pad', 'unk'] as const).flatMap((k) => {
      const text = specialText(configPath, config, `${k}_token`);
      return text === undefined ? [] : [[k, text]];
    }),
  );
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) return { text: readChatTemplateFile(jinjaPath), source: jinjaPath, specials };
  return { text: configTemplate(configPath, ownField(config, 'chat_template')), source: `${configPath} chat_template`, specials };
}

/** tokenizer.chat_template, with the texts of the BOS, EOS, padding and unknown token ids. */
function ggufMetadata(file: GgufFile): Shipped {
  const m = file.metadata;
  const text = m.get('tokenizer.chat_template');
  if (text !== undefined && typeof text !== 'string') {
    throw new Error(`${file.path}: tokenizer.chat_template must be a string, is ${excerpt(text)}`);
  }
  const value = m.get('tokenizer.ggml.tokens');
  const tokens: readonly unknown[] = Array.isArray(value) ? value : [];
  const token = (key: string): string | undefined => {
    const id = ggufTokenId(file, key, tokens.length);
    const t = id === undefined ? undefined : tokens[id];
    return typeof t === 'string' ? t : undefined;
  };
  const keys = {
    bos: 'tokenizer.ggml.bos_token_id',
    eos: 'tokenizer.ggml.eos_token_id',
    pad: 'tokenizer.ggml.padding_token_id',
    unk: 'tokenizer.ggml.unknown_token_id',
  };
  const specials: SpecialTokenTexts = Object.fromEntries(
    Object.entries(keys).flatMap(([k, key]) => {
      const t = token(key);
      return t === undefined ? [] : [[k, t]];
    }),
  );
  return { text, source: `${file.path} tokenizer.chat_template`, specials };
}

/** A Hugging Face folder's chat template (chat_template.jinja, else tokenizer_config.json's); undefined when it has none. */
export function huggingFaceChatTemplate(dir: string): ChatTemplateText | undefined {
  return shippedTemplate(huggingFaceFolder(dir));
}

/** A GGUF file's tokenizer.chat_template; undefined when it has none. */
export function ggufChatTemplate(file: GgufFile): ChatTemplateText | undefined {
  return shippedTemplate(ggufMetadata(file));
}

/** A template file given on its own (--template FILE): its whole text. */
export function readChatTemplateFile(path: string): string {
  return new TextDecoder().decode(readRegularFile(path, 'chat template'));
}

/**
 * The chat template of a checkpoint (a Hugging Face folder, or a parsed GGUF file), compiled; `templateFile`
 * replaces the checkpoint's text but keeps its special tokens. Undefined when there is none.
 */
export function findChatTemplate(checkpoint: string | GgufFile, options: { templateFile?: string; clock?: () => Date } = {}): ChatTemplate | undefined {
  const shipped = typeof checkpoint === 'string' ? huggingFaceFolder(checkpoint) : ggufMetadata(checkpoint);
  const found =
    options.templateFile === undefined
      ? shippedTemplate(shipped)
      : { ...shipped, text: readChatTemplateFile(options.templateFile), source: options.templateFile };
  return found && chatTemplate(found.text, found.source, found.specials, options.clock);
}
