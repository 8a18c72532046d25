// Conversations. A chat template renders the messages; the text is encoded without the tokenizer's own additions
// (templates write BOS themselves, as transformers' apply_chat_template assumes); each turn continues the token
// history of the turns before it, so the KV cache they left is reused and a turn prefills only its own tokens.
import type { ChatMessage, ChatTemplate } from '../models/chat-template.js';
import type { GeneratedToken, Model } from './api.js';
import type { TextTokenizer } from './runtime/tokenizer.js';

export interface ChatOptions {
  /** the most tokens of a reply; default: until a stop token or the end of the context */
  readonly maxTokens?: number;
  /** 0 is greedy; default 1 */
  readonly temperature?: number;
  /** default 0.9 */
  readonly topp?: number;
  /** default: the current time */
  readonly seed?: number;
  /** ends the reply between two tokens; the reply so far is kept, with finish 'abort' */
  readonly signal?: AbortSignal;
  /** the reply's text as it becomes printable (whole characters only) */
  readonly onText?: (text: string) => void;
  /** attach each position's logits to the turn's steps */
  readonly logits?: boolean;
}

/** Why a reply ended: a stop token, the token limit or the end of the context, or the caller's signal. */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface ChatReply {
  readonly text: string;
  /** the reply's token ids (the stop token not included) */
  readonly ids: readonly number[];
  readonly finish: FinishReason;
  /** the reply ended because the context is full (finish 'length') */
  readonly contextFull: boolean;
  /** positions of the turn's prompt the KV cache already held, and those this turn prefilled */
  readonly reused: number;
  readonly prefilled: number;
  /** the oldest messages left out of the conversation to make room for this turn */
  readonly dropped: readonly ChatMessage[];
  /** every position this turn ran */
  readonly steps: readonly GeneratedToken[];
}

/** What a chat needs of a model's files: its chat template and tokenizer (one line saying which is missing). */
export function chatFiles(files: {
  readonly chatTemplate?: ChatTemplate;
  readonly chatTemplateError?: string;
  readonly tokenizer: TextTokenizer | undefined;
}): { template: ChatTemplate; tokenizer: TextTokenizer } {
  const template = files.chatTemplate;
  if (files.chatTemplateError !== undefined) throw new Error(`${files.chatTemplateError}; give --template FILE`);
  if (!template) {
    throw new Error(
      `this model has no chat template (chat_template.jinja, tokenizer_config.json's chat_template, or GGUF's tokenizer.chat_template): give --template FILE`,
    );
  }
  if (!files.tokenizer) throw new Error(`a chat needs the model's tokenizer (--tokenizer FILE)`);
  return { template, tokenizer: files.tokenizer };
}

/** The share of the context a turn keeps free for its reply when old messages must go (the rest holds the conversation). */
const REPLY_SHARE = 4;

/**
 * One conversation with a model: the messages so far and the tokens they were fed as. A model has one KV cache:
 * sessions (and plain generations) in turn each reuse what the last one left where it matches their tokens.
 */
export class ChatSession {
  private readonly history: ChatMessage[] = [];
  /** the tokens the conversation was fed as: the last turn's prompt and reply */
  private fed: number[] = [];
  /** the text `fed` stands for, as the template rendered it and the reply decoded */
  private fedText = '';

  constructor(
    private readonly model: Model,
    private readonly template: ChatTemplate,
    private readonly tokenizer: TextTokenizer,
    /** the ids that end a reply */
    readonly stopIds: readonly number[],
    system?: string,
  ) {
    if (system !== undefined) this.history.push({ role: 'system', content: system });
  }

  get messages(): readonly ChatMessage[] {
    return this.history;
  }

  /** The tokens the conversation was fed as: the last turn's prompt and its reply. */
  get tokens(): readonly number[] {
    return this.fed;
  }

  /** The tokens of the conversation: the last turn's prompt and its reply (whose last token is not fed yet). */
  get positions(): number {
    return this.fed.length;
  }

  /** Adds a user message and generates the assistant's reply to it. */
  send(content: string, options: ChatOptions = {}): Promise<ChatReply> {
    this.history.push({ role: 'user', content });
    return this.reply(options);
  }

  /** Takes `messages` as the conversation so far (a system message among them replaces this session's). */
  load(messages: readonly ChatMessage[]): void {
    this.history.splice(0, this.history.length, ...messages);
  }

  /** Forgets the conversation (the system message stays). */
  reset(): void {
    this.history.splice(this.history[0]?.role === 'system' ? 1 : 0);
    this.fed = [];
    this.fedText = '';
  }

  /** Generates the assistant's reply to the messages as they stand, and adds it to them. */
  async reply(options: ChatOptions = {}): Promise<ChatReply> {
    const context = this.model.config.seqLen;
    const room = Math.max(1, Math.min(options.maxTokens ?? context, Math.floor(context / REPLY_SHARE)));
    const { ids, text, dropped } = this.fit(room);
    const maxTokens = options.maxTokens ?? context;
    const reused = this.model.reusable(ids);
    const steps: GeneratedToken[] = [];
    const reply: number[] = [];
    const decoder = new TextDecoder();
    let replyText = '';
    let finish: FinishReason = 'length';
    try {
      for await (const step of this.model.generate({
        promptIds: ids,
        steps: Math.min(context, ids.length + maxTokens - 1),
        reuseCache: true,
        stop: this.stopIds,
        temperature: options.temperature,
        topp: options.topp,
        seed: options.seed,
        logits: options.logits,
        signal: options.signal,
      })) {
        steps.push(step);
        if (step.position < ids.length - 1) continue;
        if (step.stop) finish = 'stop';
        else reply.push(step.next);
        const piece = decoder.decode(step.piece, { stream: true });
        replyText += piece;
        if (piece) options.onText?.(piece);
      }
    } catch (e) {
      if (!options.signal?.aborted) throw e;
      finish = 'abort';
    }
    this.history.push({ role: 'assistant', content: replyText });
    this.fed = [...ids, ...reply];
    this.fedText = text + replyText;
    const contextFull = finish === 'length' && ids.length + reply.length >= context;
    return { text: replyText, ids: reply, finish, contextFull, reused, prefilled: ids.length - reused, dropped, steps };
  }

  /**
   * The conversation's prompt tokens, leaving out its oldest messages (after the system message) until `room`
   * positions are left for the reply. A message the template renders after the last turn's text keeps that
   * turn's tokens and encodes only the new text, so the cache they left is reused as it is.
   */
  private fit(room: number): { ids: number[]; text: string; dropped: ChatMessage[] } {
    const context = this.model.config.seqLen;
    const dropped: ChatMessage[] = [];
    for (;;) {
      const text = this.template.render(this.history, { addGenerationPrompt: true });
      const ids =
        this.fedText && text.startsWith(this.fedText)
          ? [...this.fed, ...this.tokenizer.encode(text.slice(this.fedText.length), false)]
          : this.tokenizer.encode(text, false);
      if (ids.length + room <= context) return { ids, text, dropped };
      const first = this.history[0]?.role === 'system' ? 1 : 0;
      // the last message is the one to reply to; user and assistant messages go in pairs, so roles still alternate
      if (this.history.length - first <= 1) {
        throw new Error(
          `the conversation's last message needs ${ids.length} positions with its template, and the context holds ${context} with ${room} kept for the reply`,
        );
      }
      dropped.push(...this.history.splice(first, this.history[first + 1]?.role === 'assistant' && this.history.length - first > 2 ? 2 : 1));
    }
  }
}
