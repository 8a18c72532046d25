// Chat templates: the Jinja text a checkpoint ships (chat_template.jinja, tokenizer_config.json's chat_template,
// GGUF tokenizer.chat_template, or a --template file), compiled once with @huggingface/jinja and rendered with the
// variables transformers' apply_chat_template passes. Every error is one line that names where the template came from.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
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

/** A message on one line, cut at 240 characters: the template's own text may appear in it. */
/** A Jinja error as one line: its lines joined, control characters escaped, cut (it may quote the template). */
const oneLine = (message: string): string => errorLine(message.replace(/\s*\n\s*/g, ' ').trim(), 240);

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

/** Python's range(), as Jinja templates call it. */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/**
 * Compiles a chat template once. render passes what transformers' apply_chat_template does: messages,
 * add_generation_prompt, the special tokens' texts that are known, tools and documents as none, raise_exception
 * and strftime_now (reading `clock`, which tests fix).
 */
export function chatTemplate(text: string, source: string, specials: SpecialTokenTexts, clock: () => Date = () => new Date()): ChatTemplate {
  const fail = (e: unknown): never => {
    throw new Error(`${source}: chat template: ${oneLine(e instanceof Error ? e.message : String(e))}`);
  };
  let template: Template;
  try {
    template = new Template(text);
  } catch (e) {
    return fail(e);
  }
  const tokens = Object.fromEntries(
    (['bos', 'eos', 'pad', 'unk'] as const).flatMap((k) => (specials[k] === undefined ? [] : [[`${k}_token`, specials[k]]])),
  );
  return {
    source,
    render(messages, { addGenerationPrompt }) {
      // Template.render's globals, declared here because it lets none be replaced (strftime_now reads `clock`)
      const env = new Environment();
      const variables: Record<string, unknown> = {
        true: true,
        false: false,
        none: null,
        True: true,
        False: false,
        None: null,
        range,
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
        return String(new Interpreter(env).run(template.parsed).value);
      } catch (e) {
        return fail(e);
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
  const keys = { bos: 'tokenizer.ggml.bos_token_id', eos: 'tokenizer.ggml.eos_token_id', pad: 'tokenizer.ggml.padding_token_id', unk: 'tokenizer.ggml.unknown_token_id' };
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
  const found = options.templateFile === undefined ? shippedTemplate(shipped) : { ...shipped, text: readChatTemplateFile(options.templateFile), source: options.templateFile };
  return found && chatTemplate(found.text, found.source, found.specials, options.clock);
}
