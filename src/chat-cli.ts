// `weft chat`: a conversation in the terminal. Each line typed is a user message; the reply streams as it is
// generated. On a terminal, Ctrl-C stops a reply (what was said stays), /reset starts over, /exit or Ctrl-D ends;
// from a pipe, every line is one turn. Notes about the conversation (context full, messages left out, with
// --verbose each turn's positions) go to stderr, the replies alone to stdout.
import { createInterface } from 'node:readline';
import type { Model } from './api.js';
import type { ChatReply } from './chat.js';

export interface ChatArgs {
  readonly system?: string;
  readonly maxTokens?: number;
  readonly temperature: number;
  readonly topp: number;
  readonly seed: number;
  readonly verbose: boolean;
}

const note = (text: string): void => {
  process.stderr.write(`[${text}]\n`);
};

/** What a turn did, for --verbose: positions reused and prefilled, tokens generated, how it ended. */
export function turnSummary(turn: number, reply: ChatReply, seconds: number, positions: number, context: number): string {
  const generated = reply.ids.length;
  return (
    `turn ${turn}: reused ${reply.reused} positions, prefilled ${reply.prefilled}, generated ${generated} token${generated === 1 ? '' : 's'} ` +
    `(${reply.finish}) in ${seconds.toFixed(2)} s; the conversation holds ${positions} of ${context} positions`
  );
}

export async function chatLoop(model: Model, a: ChatArgs): Promise<void> {
  const session = model.chatSession({ system: a.system });
  const context = model.config.seqLen;
  const terminal = process.stdin.isTTY === true;
  const lines = createInterface({ input: process.stdin, output: process.stdout, terminal, prompt: '> ' });
  let replying: AbortController | undefined;
  lines.on('SIGINT', () => {
    if (replying) replying.abort();
    else lines.close();
  });
  if (terminal) {
    note(`weft chat: ${context} positions of context; /reset starts over, /exit or Ctrl-D ends, Ctrl-C stops a reply`);
    lines.prompt();
  }
  let turn = 0;
  for await (const line of lines) {
    const text = line.trim();
    if (text === '/exit') break;
    if (text === '/reset') {
      session.reset();
      note('a new conversation');
    } else if (text !== '') {
      replying = new AbortController();
      const start = performance.now();
      const reply = await session.send(line, {
        maxTokens: a.maxTokens,
        temperature: a.temperature,
        topp: a.topp,
        seed: a.seed === 0 ? undefined : a.seed,
        signal: replying.signal,
        onText: (piece) => process.stdout.write(piece),
      });
      replying = undefined;
      process.stdout.write('\n');
      turn++;
      if (reply.dropped.length > 0) note(`the context was full: the ${reply.dropped.length} oldest messages were left out of the conversation`);
      if (reply.finish === 'abort') note('reply stopped');
      if (reply.contextFull) note(`the context is full (${context} positions): the reply was cut; the next turn leaves out the oldest messages`);
      if (a.verbose) note(turnSummary(turn, reply, (performance.now() - start) / 1000, session.positions, context));
    }
    if (terminal) lines.prompt();
  }
  lines.close();
}
