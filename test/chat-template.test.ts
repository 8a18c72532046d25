// Chat templates: each family's rendered prompt against its documented format; every template and conversation
// against Python's jinja2 set up as transformers' apply_chat_template sets it up (scripts/render-chat-template.py,
// run once for all cases); where templates are found (Hugging Face folders, GGUF metadata, --template files);
// errors as one line naming the template's source.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chatTemplate,
  findChatTemplate,
  ggufChatTemplate,
  huggingFaceChatTemplate,
  readChatTemplateFile,
  type ChatMessage,
  type ChatTemplateText,
} from '../models/chat-template.js';
import type { GgufFile, GgufValue } from '../models/gguf.js';

const root = new URL('../', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'weft-chat-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** the clock both renderers read: 5 March 2025, 09:07:03 local time */
const NOW = new Date(2025, 2, 5, 9, 7, 3);
const NOW_ISO = '2025-03-05T09:07:03';
const clock = (): Date => NOW;

/** A template from test/chat-templates, with its model's special tokens. */
const file = (name: string, specials: ChatTemplateText['specials']): ChatTemplateText => {
  const path = join(root, 'test/chat-templates', name);
  return { text: readChatTemplateFile(path), source: path, specials };
};
/** A template an installed @lenml/tokenizer-* package ships, read as a Hugging Face folder. */
const installed = (pkg: string): ChatTemplateText => huggingFaceChatTemplate(join(root, 'node_modules/@lenml', pkg, 'models'))!;

const templates: Record<string, ChatTemplateText> = {
  'llama-3': installed('tokenizer-llama3'),
  'llama-3.1': file('llama-3.1.jinja', { bos: '<|begin_of_text|>', eos: '<|eot_id|>' }),
  'llama-3.2': file('llama-3.2.jinja', { bos: '<|begin_of_text|>', eos: '<|eot_id|>' }),
  'qwen2.5': file('qwen2.5.jinja', { eos: '<|im_end|>', pad: '<|endoftext|>' }),
  qwen3: installed('tokenizer-qwen3'),
  'mistral-v0.2': file('mistral-v0.2.jinja', { bos: '<s>', eos: '</s>', unk: '<unk>' }),
  'mistral-nemo': file('mistral-nemo.jinja', { bos: '<s>', eos: '</s>', unk: '<unk>' }),
  gemma3: installed('tokenizer-gemma3'),
  'phi-3': file('phi-3.jinja', { bos: '<s>', eos: '<|endoftext|>', unk: '<unk>', pad: '<|endoftext|>' }),
  'deepseek-v3': installed('tokenizer-deepseek_v3'),
};
const compiled = (family: string) => {
  const t = templates[family]!;
  return chatTemplate(t.text, t.source, t.specials, clock);
};

const withSystem: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4' },
  { role: 'user', content: 'And 3+3?' },
];
const withoutSystem: ChatMessage[] = [
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: 'Hi there.' },
  { role: 'user', content: 'How are you?' },
];

describe('each family renders its documented prompt format', () => {
  const llama31System = (date: string, system: string) =>
    `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ${date}\n\n${system}<|eot_id|>`;
  const llamaTurns = (turns: [string, string][]) =>
    turns.map(([r, c]) => `<|start_header_id|>${r}<|end_header_id|>\n\n${c}<|eot_id|>`).join('') + '<|start_header_id|>assistant<|end_header_id|>\n\n';
  const chatml = (turns: [string, string][]) => turns.map(([r, c]) => `<|im_start|>${r}\n${c}<|im_end|>\n`).join('') + '<|im_start|>assistant\n';
  const qa: [string, string][] = [
    ['user', 'What is 2+2?'],
    ['assistant', '4'],
    ['user', 'And 3+3?'],
  ];
  const hi: [string, string][] = [
    ['user', 'Hello!'],
    ['assistant', 'Hi there.'],
    ['user', 'How are you?'],
  ];
  const qwenDefault = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';

  it.each<[string, string, string]>([
    ['llama-3', `<|begin_of_text|>${llamaTurns([['system', 'You are a helpful assistant.'], ...qa])}`, `<|begin_of_text|>${llamaTurns(hi)}`],
    ['llama-3.1', llama31System('26 Jul 2024', 'You are a helpful assistant.') + llamaTurns(qa), llama31System('26 Jul 2024', '') + llamaTurns(hi)],
    ['llama-3.2', llama31System('05 Mar 2025', 'You are a helpful assistant.') + llamaTurns(qa), llama31System('05 Mar 2025', '') + llamaTurns(hi)],
    ['qwen2.5', chatml([['system', 'You are a helpful assistant.'], ...qa]), chatml([['system', qwenDefault], ...hi])],
    ['qwen3', chatml([['system', 'You are a helpful assistant.'], ...qa]), chatml(hi)],
    [
      'mistral-v0.2',
      '<s> [INST] You are a helpful assistant.\n\nWhat is 2+2? [/INST] 4</s> [INST] And 3+3? [/INST]',
      '<s> [INST] Hello! [/INST] Hi there.</s> [INST] How are you? [/INST]',
    ],
    [
      'mistral-nemo',
      '<s>[INST]What is 2+2?[/INST]4</s>[INST]You are a helpful assistant.\n\nAnd 3+3?[/INST]',
      '<s>[INST]Hello![/INST]Hi there.</s>[INST]How are you?[/INST]',
    ],
    [
      'gemma3',
      '<bos><start_of_turn>user\nYou are a helpful assistant.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n',
      '<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi there.<end_of_turn>\n<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n',
    ],
    [
      'phi-3',
      '<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n',
      '<|user|>\nHello!<|end|>\n<|assistant|>\nHi there.<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\n',
    ],
  ])('%s', (family, expectedWithSystem, expectedWithoutSystem) => {
    const t = compiled(family);
    expect(t.render(withSystem, { addGenerationPrompt: true })).toBe(expectedWithSystem);
    expect(t.render(withoutSystem, { addGenerationPrompt: true })).toBe(expectedWithoutSystem);
  });

  it('qwen3 drops the reasoning of assistant turns before the last user turn and keeps it after', () => {
    const t = compiled('qwen3');
    const thought = { role: 'assistant', content: '<think>\nAdd them.\n</think>\n\n4' };
    expect(t.render([{ role: 'user', content: 'What is 2+2?' }, thought, { role: 'user', content: 'Sure?' }], { addGenerationPrompt: true })).toBe(
      chatml([
        ['user', 'What is 2+2?'],
        ['assistant', '4'],
        ['user', 'Sure?'],
      ]),
    );
    expect(t.render([{ role: 'user', content: 'What is 2+2?' }, thought], { addGenerationPrompt: false })).toBe(
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nAdd them.\n</think>\n\n4<|im_end|>\n',
    );
  });

  it('phi-3 ends with EOS when no generation prompt is asked for; llama 3.2 reads the clock it is given', () => {
    expect(compiled('phi-3').render(withoutSystem.slice(0, 2), { addGenerationPrompt: false })).toBe(
      '<|user|>\nHello!<|end|>\n<|assistant|>\nHi there.<|end|>\n<|endoftext|>',
    );
    const t = templates['llama-3.2']!;
    const later = chatTemplate(t.text, t.source, t.specials, () => new Date(2031, 11, 24, 23, 59));
    expect(later.render(withoutSystem, { addGenerationPrompt: true })).toContain('Today Date: 24 Dec 2031\n\n');
  });
});

/** The Python that has jinja2: Debian's (setup.sh installs python3-jinja2), else the one on PATH. */
function pythonWithJinja(): string {
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(python, ['-c', 'import jinja2']).status === 0) return python;
  }
  throw new Error('no python3 with jinja2 (scripts/setup.sh installs python3-jinja2)');
}

describe('the same text as transformers (jinja2, its environment, filters and globals)', () => {
  const conversations: Record<string, ChatMessage[]> = {
    'with a system message': withSystem,
    'without a system message': withoutSystem,
    'one user turn': [{ role: 'user', content: 'Hi' }],
    unicode: [
      { role: 'system', content: 'Réponds en français — brièvement.' },
      { role: 'user', content: 'Grüße 👋 日本語のテキスト ✓ «ünïcödé»' },
    ],
    'multi-line and padded content': [
      { role: 'user', content: '  line one\nline two\n\n    indented\n' },
      { role: 'assistant', content: '\nfirst\n  second  ' },
      { role: 'user', content: 'tabs\tand "quotes" and {{ braces }} and {% tags %}' },
    ],
    'empty content': [
      { role: 'user', content: '' },
      { role: 'assistant', content: '' },
      { role: 'user', content: 'still here?' },
    ],
    'reasoning in the history': [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '<think>\nTwo plus two.\n</think>\n\nIt is 4.' },
      { role: 'user', content: 'And 3+3?' },
    ],
    'two user turns in a row': [
      { role: 'user', content: 'one' },
      { role: 'user', content: 'two' },
    ],
    'reasoning in the last turn': [
      { role: 'system', content: 'Think first.' },
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '<think>\n\n</think>\n\n4' },
    ],
  };
  const cases = Object.keys(templates).flatMap((family) =>
    Object.entries(conversations).flatMap(([name, messages]) => [true, false].map((addGenerationPrompt) => ({ family, name, messages, addGenerationPrompt }))),
  );
  let reference: ({ text: string } | { error: string })[] = [];
  /** Where @huggingface/jinja renders otherwise than jinja2, and why; each is checked to still differ. */
  const divergences: Record<string, string> = {
    // Mistral Nemo checks alternation over `messages | selectattr("tool_calls", "undefined")`, which keeps no message
    // in @huggingface/jinja 0.5.11 (a missing attribute fails every test there): its raise_exception never runs
    'mistral-nemo, two user turns in a row': 'renders where transformers raises',
  };

  beforeAll(() => {
    const request = cases.map(({ family, messages, addGenerationPrompt }) => {
      const { text, specials } = templates[family]!;
      return {
        template: text,
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: specials.bos,
        eos_token: specials.eos,
        pad_token: specials.pad,
        unk_token: specials.unk,
        now: NOW_ISO,
      };
    });
    const out = execFileSync(pythonWithJinja(), [join(root, 'scripts/render-chat-template.py')], { input: JSON.stringify(request), maxBuffer: 64 << 20 });
    reference = JSON.parse(out.toString('utf8'));
    expect(reference).toHaveLength(cases.length);
  });

  it.each(cases.map((c, i) => [c.family, c.name, c.addGenerationPrompt, i] as const))(
    '%s, %s, add_generation_prompt %s',
    (family, _, addGenerationPrompt, i) => {
      const expected = reference[i]!;
      const render = () => compiled(family).render(cases[i]!.messages, { addGenerationPrompt });
      const divergence = divergences[`${family}, ${cases[i]!.name}`];
      if (divergence) {
        expect('error' in expected, divergence).toBe(true);
        expect(render, divergence).not.toThrow();
        return;
      }
      // raise_exception's message is the template's own: the same on both sides
      const raised = 'error' in expected && /^TemplateError: (.*)$/s.exec(expected.error);
      if (raised) expect(render).toThrow(`chat template: ${raised[1]}`);
      else if ('error' in expected) expect(render, expected.error).toThrow(/chat template: /);
      else expect(render()).toBe(expected.text);
    },
  );

  it('every family renders most conversations (the comparison is not of errors)', () => {
    for (const family of Object.keys(templates)) {
      const ok = cases.flatMap((c, i) => (c.family === family && 'text' in reference[i]! ? [c] : []));
      expect(ok.length, family).toBeGreaterThanOrEqual(14);
    }
  });
});

describe('where templates are found', () => {
  let n = 0;
  /** A Hugging Face folder holding `files` (objects are written as JSON). */
  const folder = (files: Record<string, string | object>): string => {
    const dir = join(scratch, `hf-${n++}`);
    mkdirSync(dir);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
    return dir;
  };
  const hello = [{ role: 'user', content: 'hello' }];
  const render = (t: ReturnType<typeof findChatTemplate>) => t!.render(hello, { addGenerationPrompt: true });

  it("reads tokenizer_config.json's chat_template with its special tokens, strings or AddedToken objects", () => {
    const dir = folder({
      'tokenizer_config.json': {
        chat_template: '{{ bos_token }}[{{ messages[0].content }}]{{ eos_token }}{{ pad_token }}',
        bos_token: { content: '<s>', lstrip: false },
        eos_token: '</s>',
        pad_token: null,
      },
    });
    const t = findChatTemplate(dir);
    expect(t!.source).toBe(`${join(dir, 'tokenizer_config.json')} chat_template`);
    expect(render(t)).toBe('<s>[hello]</s>');
  });

  it('takes the template named "default" from a list, and chat_template.jinja before tokenizer_config.json', () => {
    const list = [
      { name: 'tool_use', template: 'tools' },
      { name: 'default', template: 'default {{ messages | length }}' },
    ];
    expect(render(findChatTemplate(folder({ 'tokenizer_config.json': { chat_template: list } })))).toBe('default 1');
    const dir = folder({
      'tokenizer_config.json': { chat_template: 'from the config', bos_token: '<s>' },
      'chat_template.jinja': '{{ bos_token }}from the file\n',
    });
    const t = findChatTemplate(dir);
    expect(t!.source).toBe(join(dir, 'chat_template.jinja'));
    expect(render(t)).toBe('<s>from the file');
  });

  it('is undefined for a folder without one; a --template file replaces the text and keeps the special tokens', () => {
    const dir = folder({ 'tokenizer_config.json': { bos_token: '<s>' } });
    expect(findChatTemplate(dir)).toBeUndefined();
    expect(findChatTemplate(folder({}))).toBeUndefined();
    const templateFile = join(scratch, 'override.jinja');
    writeFileSync(templateFile, '{{ bos_token }}override: {{ messages[0].content }}');
    const t = findChatTemplate(dir, { templateFile });
    expect(t!.source).toBe(templateFile);
    expect(render(t)).toBe('<s>override: hello');
  });

  it("reads a GGUF file's tokenizer.chat_template with the texts of its BOS and EOS ids", () => {
    const gguf = (metadata: [string, GgufValue][]): GgufFile => ({
      version: 3,
      metadata: new Map(metadata),
      tensors: new Map(),
      path: '/models/m.gguf',
      dataStart: 0,
    });
    const tokens: [string, GgufValue] = ['tokenizer.ggml.tokens', ['<unk>', '<|begin_of_text|>', '<|eot_id|>', 'a']];
    const file = gguf([
      tokens,
      ['tokenizer.ggml.bos_token_id', 1n],
      ['tokenizer.ggml.eos_token_id', 2],
      ['tokenizer.chat_template', '{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ unk_token }}'],
    ]);
    expect(ggufChatTemplate(file)).toEqual({
      text: expect.any(String),
      source: '/models/m.gguf tokenizer.chat_template',
      specials: { bos: '<|begin_of_text|>', eos: '<|eot_id|>' },
    });
    expect(render(findChatTemplate(file))).toBe('<|begin_of_text|>hello<|eot_id|>');
    expect(findChatTemplate(gguf([tokens]))).toBeUndefined();
  });
});

describe('errors are one line naming the template', () => {
  const oneLine = (f: () => unknown, message: RegExp) => {
    expect(f).toThrow(message);
    try {
      f();
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  };

  it('a syntax error, when the template is compiled', () => {
    oneLine(() => chatTemplate('{% for m in messages %}{{ m.content }', 'broken.jinja', {}), /^broken\.jinja: chat template: .+$/);
    oneLine(() => chatTemplate('{% if %}\n{% endif %}', 'broken.jinja', {}), /^broken\.jinja: chat template: .+$/);
  });

  it("raise_exception, with the template's message", () => {
    const twoUsers = [
      { role: 'user', content: 'one' },
      { role: 'user', content: 'two' },
    ];
    const mistral = templates['mistral-v0.2']!;
    oneLine(
      () => compiled('mistral-v0.2').render(twoUsers, { addGenerationPrompt: true }),
      new RegExp(
        `^${escape(mistral.source)}: chat template: After the optional system message, conversation roles must alternate user/assistant/user/assistant/\\.\\.\\.$`,
      ),
    );
    oneLine(
      () => compiled('gemma3').render(twoUsers, { addGenerationPrompt: true }),
      /tokenizer_config\.json chat_template: chat template: Conversation roles must alternate user\/assistant\/user\/assistant\/\.\.\.$/,
    );
  });

  it('an error while rendering', () => {
    oneLine(
      () => chatTemplate('{{ messages[0].content.nosuchmethod() }}', 'm.jinja', {}).render([{ role: 'user', content: 'x' }], { addGenerationPrompt: false }),
      /^m\.jinja: chat template: .+$/,
    );
  });

  it('limits the Jinja library does not keep: length, whitespace runs, nesting, range(), rendering steps', () => {
    const user = [{ role: 'user', content: 'x' }];
    const render = (text: string) => () => chatTemplate(text, 't.jinja', {}).render(user, { addGenerationPrompt: false });
    oneLine(render(`{{ 'a' }}${' '.repeat((1 << 20) + 1)}`), /^t\.jinja: chat template: 1048586 characters, more than 1048576$/);
    oneLine(
      render(`{% if x %}\n  ${' '.repeat(600)}{% endif %}`),
      /^t\.jinja: chat template: a run of 603 whitespace characters at line 1, column 11, more than 512 \(/,
    );
    expect(render(`{% if x %}${' '.repeat(512)}{% endif %}`)).not.toThrow();
    oneLine(render(`{{ ${'('.repeat(65)}1${')'.repeat(65)} }}`), /^t\.jinja: chat template: brackets nested more than 64 deep$/);
    expect(render(`{{ ${'['.repeat(64)}1${']'.repeat(64)} }}`)).not.toThrow();
    oneLine(render(`${'{% if x %}'.repeat(65)}${'{% endif %}'.repeat(65)}`), /^t\.jinja: chat template: blocks nested more than 64 deep$/);
    // a block set opens a block, a set with '=' does not
    expect(render(`${'{% set y = 1 %}{% for i in [1] %}'.repeat(64)}${'{% endfor %}'.repeat(64)}{% set z %}a{% endset %}{{ z }}`)).not.toThrow();
    oneLine(render(`{{ ${'not '.repeat(20000)}x }}`), /^t\.jinja: chat template: nested or recursing too deeply to parse$/);
    oneLine(render('{{ range(100001)|length }}'), /^t\.jinja: chat template: range\(\) of 100001 items: at most 100000, as transformers' sandbox allows$/);
    expect(render('{{ range(100000)|length }}')()).toBe('100000');
    oneLine(render('{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}'), /^t\.jinja: chat template: rendering runs too long \(/);
    oneLine(render('{% for i in range(600) %}{% for j in range(600) %}{% endfor %}{% endfor %}'), /^t\.jinja: chat template: rendering runs too long \(/);
    oneLine(
      render('{% set ns = namespace(s="ab") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}'),
      /^t\.jinja: chat template: rendering built a text or list longer than JavaScript allows$/,
    );
  });

  it('a call of a name the template does not define, or of a value that is no function', () => {
    const render = (text: string) => () => chatTemplate(text, 't.jinja', {}).render([{ role: 'user', content: 'x' }], { addGenerationPrompt: false });
    oneLine(render('{{ nope() }}'), /^t\.jinja: chat template: it calls an undefined name, not a function or macro$/);
    oneLine(render('{% set x = 3 %}{{ x() }}'), /^t\.jinja: chat template: it calls a value of type integer, not a function or macro$/);
  });

  it('a template that ends inside a tag or an open block', () => {
    for (const text of ['{%- if messages[0]', '{% if x %}abc', '{% for m in messages %}x'])
      oneLine(() => chatTemplate(text, 't.jinja', {}), /^t\.jinja: chat template: the template ends inside a tag, an expression or a block it does not close$/);
    oneLine(() => chatTemplate('{{ messages', 't.jinja', {}), /^t\.jinja: chat template: Unexpected end of input$/);
  });

  it('a chat_template or special token of the wrong type names the file and key', () => {
    const dir = join(scratch, 'wrong');
    mkdirSync(dir);
    const config = join(dir, 'tokenizer_config.json');
    writeFileSync(config, JSON.stringify({ chat_template: 42 }));
    oneLine(() => findChatTemplate(dir), new RegExp(`^${escape(config)}: chat_template must be a string or a list of \\{name, template\\}, is 42$`));
    writeFileSync(config, JSON.stringify({ chat_template: [{ name: 'default' }] }));
    oneLine(() => findChatTemplate(dir), new RegExp(`^${escape(config)}: chat_template must be a string or a list`));
    writeFileSync(config, JSON.stringify({ chat_template: 'x', eos_token: 7 }));
    oneLine(() => findChatTemplate(dir), new RegExp(`^${escape(config)}: eos_token must be a string or an object with a string content, is 7$`));
    const gguf: GgufFile = { version: 3, metadata: new Map([['tokenizer.chat_template', 7]]), tensors: new Map(), path: '/models/m.gguf', dataStart: 0 };
    oneLine(() => findChatTemplate(gguf), /^\/models\/m\.gguf: tokenizer\.chat_template must be a string, is 7$/);
  });

  it('a --template file that cannot be read', () => {
    const missing = join(scratch, 'missing.jinja');
    oneLine(() => findChatTemplate(join(scratch, 'none'), { templateFile: missing }), new RegExp(`^cannot read chat template ${escape(missing)}: ENOENT$`));
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
