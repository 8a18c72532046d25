// Encoding float weights into block formats on worker threads: ggml's reference quantizers are single-threaded and
// slow for k-quants (Q4_K: about 3 M values a second here), so writing a 1B model's Q4_K_M GGUF file takes minutes
// on one core. The pool runs one encode per worker at a time; results come back in the order asked for.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FormatName } from './formats.js';

/** The built worker a pool starts (absent where the sources run unbuilt, as under vitest). */
const workerUrl = new URL('./encode-worker.js', import.meta.url);

export class EncodePool {
  /** Whether a pool can start here: its built worker is there. */
  static available(): boolean {
    return existsSync(fileURLToPath(workerUrl));
  }

  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly waiting: (() => void)[] = [];
  private readonly pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private next = 0;

  /** `size` workers (default: one per core the process may use), started from the built encode-worker.js. */
  constructor(readonly size = availableParallelism()) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(workerUrl);
      worker.on('message', ({ id, bytes, error }: { id: number; bytes?: Uint8Array; error?: string }) => {
        const p = this.pending.get(id)!;
        this.pending.delete(id);
        this.release(worker);
        if (error !== undefined) p.reject(new Error(error));
        else p.resolve(bytes!);
      });
      worker.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  /** `values` encoded in `format` by a free worker (waiting for one); the values are moved to it, not copied. */
  async encode(format: FormatName, values: Float32Array): Promise<Uint8Array> {
    const worker = await this.acquire();
    const id = this.next++;
    // a view of a larger buffer is copied: moving the buffer would take the rest with it
    const own = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength ? values : values.slice();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, format, values: own }, [own.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private acquire(): Promise<Worker> {
    const free = this.idle.pop();
    if (free) return Promise.resolve(free);
    return new Promise((resolve) => this.waiting.push(() => resolve(this.idle.pop()!)));
  }

  private release(worker: Worker): void {
    this.idle.push(worker);
    this.waiting.shift()?.();
  }
}
