// Runs one fuzz case at a time in a worker thread: the reader named in the message reads the case's folder,
// through the built readers (dist/), and the reply says whether it accepted the input or what it threw.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';

const dist = new URL('../../dist/', import.meta.url);
const load = (path) => import(new URL(path, dist).href);
const [
  { readLlama2c },
  { Tokenizer },
  { readSafetensors },
  { readHuggingFace },
  { readGguf, ggufTokenizer },
  { HfTokenizer },
  { parseModule },
  { printModule },
  { chatTemplate },
] = await Promise.all(
  [
    'models/llama2c.js',
    'src/runtime/tokenizer.js',
    'models/safetensors.js',
    'models/huggingface.js',
    'models/gguf.js',
    'src/runtime/hf-tokenizer.js',
    'src/ir/parse.js',
    'src/ir/print.js',
    'models/chat-template.js',
  ].map(load),
);

/** One encode and one streamed decode of a short text, as a first prompt would have. */
function exercise(tokenizer) {
  const ids = tokenizer.encode('Hello world, héllo 日本 <s>', true);
  const stream = tokenizer.stream();
  for (const id of ids) stream.push(id);
  stream.flush();
}

const messages = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi.' },
  { role: 'user', content: 'And now?' },
];

/** Each reader: the file (or folder) it is given, and what it does with it. */
const readers = {
  llama2c: (dir) => [join(dir, 'model.bin'), (path) => readLlama2c(path)],
  'llama2c-tokenizer': (dir, params) => [
    join(dir, 'tokenizer.bin'),
    (path) => exercise(Tokenizer.fromBytes(new Uint8Array(readFileSync(path)), params.vocabSize, path)),
  ],
  safetensors: (dir) => [join(dir, 'model.safetensors'), (path) => readSafetensors(path)],
  'safetensors-index': (dir) => [dir, (path) => readHuggingFace(path)],
  'config-json': (dir) => [dir, (path) => readHuggingFace(path)],
  gguf: (dir) => [
    join(dir, 'model.gguf'),
    (path) => {
      const { config, file } = readGguf(path);
      const tokenizer = ggufTokenizer(file, config.vocabSize, path);
      if (tokenizer) exercise(tokenizer);
    },
  ],
  'tokenizer-json': (dir, params) => [
    join(dir, 'tokenizer.json'),
    (path) => exercise(HfTokenizer.fromJson(readFileSync(path, 'utf8'), params.vocabSize, path)),
  ],
  ir: (dir) => [join(dir, 'graph.ir'), (path) => printModule(parseModule(readFileSync(path, 'utf8'), path))],
  'chat-template': (dir) => [
    join(dir, 'template.jinja'),
    (path) => chatTemplate(readFileSync(path, 'utf8'), path, { bos: '<s>', eos: '</s>' }, () => new Date(0)).render(messages, { addGenerationPrompt: true }),
  ],
};

parentPort.postMessage({ ready: true });
parentPort.on('message', ({ reader, dir, params }) => {
  const [path, read] = readers[reader](dir, params);
  try {
    read(path);
    parentPort.postMessage({ ok: true, path });
  } catch (e) {
    const isError = e instanceof Error;
    parentPort.postMessage({ ok: false, path, isError, name: isError ? e.name : typeof e, message: isError ? String(e.message) : String(e) });
  }
});
