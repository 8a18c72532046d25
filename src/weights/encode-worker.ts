// A worker of the encode pool (encode-pool.ts): encodes the values it is sent in the weight format named with them,
// by the format table's encoder, and sends the bytes back (moved, not copied).
import { parentPort } from 'node:worker_threads';
import { weightFormats, type FormatName } from './formats.js';

parentPort!.on('message', ({ id, format, values }: { id: number; format: FormatName; values: Float32Array }) => {
  try {
    const bytes = weightFormats[format].encode(values);
    parentPort!.postMessage({ id, bytes }, [bytes.buffer as ArrayBuffer]);
  } catch (e) {
    parentPort!.postMessage({ id, error: (e as Error).message });
  }
});
