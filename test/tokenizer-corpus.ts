// A seeded corpus of 300+ varied strings for comparing tokenizers with their references (the same strings on
// every run): words, code, numbers, scripts, emoji, whitespace runs, accents, special-token text and long words.

function seeded(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
}

/** 20,000 random lowercase letters: one pre-tokenizer word, merged as a whole. */
export function longWord(seed: number, length = 20_000): string {
  const random = seeded(seed);
  let word = '';
  for (let i = 0; i < length; i++) word += String.fromCharCode(97 + random(26));
  return word;
}

/** 300+ strings, seeded: English, code, scripts, emoji, whitespace runs, accents, special-token text, long words, mixes. */
export function buildCorpus(): string[] {
  const random = seeded(20261204);
  const pick = <T>(items: readonly T[]): T => items[random(items.length)];
  const english = [
    'The quick brown fox jumps over the lazy dog.',
    "I'm sure you'll see we've done what they'd said: it's fine, isn't it?",
    'SHOUTING IN CAPITALS, then whispering in lowercase.',
    'Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal.',
    'e.g. i.e. etc. U.S.A. Ph.D. 3 p.m.',
    '"Quoted," she said; (parenthesised) [bracketed] {braced} <angled>.',
    'Hyphen-ated words, em—dashes, en–dashes and ellipses…',
    'tl;dr: it works!!! ??? ... --- ***',
    'https://example.com/path?query=1&other=two#anchor',
    'user@example.org wrote: > quoted reply',
  ];
  const words = [
    'time',
    'model',
    'token',
    'weight',
    'graph',
    'kernel',
    'buffer',
    'the',
    'of',
    'and',
    'Transformer',
    'GPU',
    'WebGPU',
    "don't",
    'naïve',
    'x',
    'compile',
  ];
  const code = [
    'function add(a, b) {\n  return a + b;\n}\n',
    'const xs = [1, 2, 3].map((x) => x * 2);',
    'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
    '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
    'fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!("{:?}", v);\n}',
    'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
    'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }',
    '<div class="box"><span id=\'a\'>text</span></div>',
    '{"key": [1, 2.5, null, true], "nested": {"a": "b"}}',
    '    indented(4);\n\t\ttabbed(2);\n',
    'x += y ** 2 // 3 % 4 << 1 >>> 2 != 0 && !z || w',
    '$ ls -la | grep "\\.ts$" > out.txt 2>&1',
    'public static void Main(string[] args) { Console.WriteLine("C#"); }',
    'let rec fact n = if n = 0 then 1 else n * fact (n - 1);;',
    '@media (max-width: 600px) { .a { color: #ff00aa; } }',
  ];
  const specials = [
    '<|begin_of_text|>',
    '<|end_of_text|>',
    '<|eot_id|>',
    '<s>',
    '</s>',
    '<unk>',
    '<|im_start|>',
    '<|im_end|>',
    '<start_of_turn>',
    '<end_of_turn>',
    '<bos>',
    '<｜begin▁of▁sentence｜>',
    '<｜end▁of▁sentence｜>',
    '<|endoftext|>',
  ];
  const scripts = [
    '日本語のテキストです。',
    '中文文本，包括标点符号。',
    '漢字と ひらがな と カタカナ',
    '한국어 텍스트입니다.',
    '안녕하세요 세계',
    'مرحبا بالعالم',
    'العربية: ١٢٣٤٥',
    'שלום עולם',
    'עברית עם ניקוד: שָׁלוֹם',
    'नमस्ते दुनिया',
    'हिन्दी में पाठ',
    'สวัสดีชาวโลก',
    'ภาษาไทยไม่มีช่องว่าง',
    'Привет, мир!',
    'Ελληνικά κείμενα',
    'Tiếng Việt có dấu',
    'ქართული',
    'Հայերեն',
    'አማርኛ',
    '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙',
  ];
  const emoji = ['😀', '🎉', '👍🏽', '👩🏿‍💻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷🇯🇵', '1️⃣', '❤️‍🔥', '🧑🏻‍🤝‍🧑🏾', '🤖', '🫠', '☕️'];
  const whitespace = [' ', '  ', '\t', '\n', '\n\n', '\r\n', '\u0085', '\u00a0', '\u2028', '\ufeff', '\u3000', ' \t ', '\r'];
  const accented = ['café', 'naïve', 'résumé', 'Ångström', 'señor', 'Zürich', 'façade', 'Øre', 'Dvořák', 'piñata'];
  const pool = [...english.join(' '), ...scripts.join(''), ...emoji, ...whitespace, ...'0123456789', ...specials, ...'<>|[]{}()"\'`~!@#$%^&*_-+=\\/?'];

  const corpus: string[] = ['', ' ', 'a', ' leading space', 'trailing space ', '  both  ', '\n', '\uFFFD', 'x\uFFFD'];
  corpus.push(...english, ...code, ...scripts);
  for (let i = 0; i < 30; i++) corpus.push(Array.from({ length: 1 + random(12) }, () => pick(words)).join(pick([' ', '  ', ', ', '\n'])));
  // numbers and long digit runs
  for (let i = 0; i < 25; i++) corpus.push(Array.from({ length: 1 + random(i < 10 ? 8 : 60) }, () => String(random(10))).join(''));
  corpus.push('3.14159', '1,234,567.89', '-42', '1e-10', '0x1F', '2026-12-04T23:59:43Z', '+1 (555) 123-4567', '१२३४५', '١٢٣');
  // whitespace runs, alone and around words
  for (let i = 0; i < 30; i++) {
    const run = Array.from({ length: 1 + random(6) }, () => pick(whitespace)).join('');
    corpus.push(i % 3 === 0 ? run : i % 3 === 1 ? `${pick(words)}${run}${pick(words)}` : `${run}${pick(words)}${run}`);
  }
  // emoji, ZWJ sequences, skin tones, flags, keycaps
  for (let i = 0; i < 20; i++) corpus.push(Array.from({ length: 1 + random(5) }, () => pick(emoji)).join(random(2) ? '' : ' '));
  // accents: composed (NFC) and decomposed (NFD) forms, and combining marks stacked on letters
  for (const word of accented) corpus.push(word.normalize('NFC'), word.normalize('NFD'), `${word.normalize('NFD')} ${word.normalize('NFC')}`);
  corpus.push('e\u0301\u0302\u0303', 'Z\u0351\u0352\u0353a\u0316\u0317l\u0318g\u0319o', 'ﬁ ﬂ ㎏ ①', 'Ａｂｃ　全角');
  // literal special-token text, alone, embedded and run together
  for (const s of specials) corpus.push(s, `${s}hello`, ` ${s} world`);
  for (let i = 0; i < 10; i++) corpus.push(Array.from({ length: 2 + random(4) }, () => (random(2) ? pick(specials) : pick(words))).join(random(2) ? '' : ' '));
  // very long words
  corpus.push(longWord(1), 'a'.repeat(5000), 'ab'.repeat(1500), longWord(2, 300).toUpperCase(), 'é'.repeat(2000), '日本'.repeat(1000), '9'.repeat(3000));
  // random mixes of all of the above
  for (let i = 0; i < 60; i++) corpus.push(Array.from({ length: 1 + random(40) }, () => pick(pool)).join(''));
  return [...new Set(corpus)];
}
