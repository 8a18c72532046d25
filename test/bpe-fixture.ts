// Small byte-level BPE tokenizer.json files for tests: GPT-2's byte map, a few merges, added tokens, and
// Llama 3's pre-tokenizer as its tokenizer.json writes it.

export const LLAMA3_PATTERN = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/** GPT-2's bytes_to_unicode, written out as in its encoder.py. */
export const byteChar: string[] = (() => {
  const bs = [...range(0x21, 0x7e), ...range(0xa1, 0xac), ...range(0xae, 0xff)];
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out: string[] = [];
  bs.forEach((b, i) => (out[b] = String.fromCharCode(cs[i])));
  return out;
})();

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** Token b (0..255) is byte b; merged tokens follow in merge order; then the added tokens. */
export function tokenizerJson(
  opts: { merges?: string[]; preTokenizer?: unknown; model?: Record<string, unknown>; added?: string[]; arrayMerges?: boolean } = {},
): string {
  const merges = opts.merges ?? ['Ġ t', 'h e', 'Ġt h', 'Ġth e'];
  const vocab: Record<string, number> = {};
  byteChar.forEach((c, b) => (vocab[c] = b));
  for (const m of merges) vocab[m.replace(' ', '')] ??= Object.keys(vocab).length;
  const added = (opts.added ?? ['<|endoftext|>']).map((content, i) => ({ id: Object.keys(vocab).length + i, content, special: true }));
  return JSON.stringify({
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: opts.preTokenizer ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges: opts.arrayMerges ? merges.map((m) => m.split(' ')) : merges, ...opts.model },
  });
}

export const llama3PreTokenizer = {
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
};
