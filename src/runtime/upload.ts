// How a weight's device bytes reach its buffer as they are made: through a ring of reused staging buffers and
// copies, or, where a copy cannot start or end on a word, straight into the buffer's mapping.
import type { Gpu } from './gpu.js';
import { planeOffsets, writeDevice, type WeightFormat } from '../weights/formats.js';
import { LAY_OUT_THREADS, layOutWgsl } from '../codegen/layout.js';

/**
 * Staging buffers of the ring and their size. A buffer mapped at creation maps fresh host memory, whose first touch
 * set the pace: an H100 machine filled 1 GiB of 64 MiB buffers at 0.85–1.03 GB/s that way, at 3.7–4.4 GB/s through
 * two or four reused staging buffers of 16 or 64 MiB (alike), and at 1.0 GB/s by queue.writeBuffer
 * (scripts/device/upload-ways.mjs).
 */
export const RING_BUFFERS = 2;
export const RING_BYTES = 16 * 1024 * 1024;

/** A copy out of a staging buffer. */
interface Copy {
  readonly from: number;
  readonly to: GPUBuffer;
  readonly at: number;
  readonly bytes: number;
}

/**
 * Reused MAP_WRITE staging buffers, taken in turn: each is filled while mapped, unmapped, copied from, and mapped
 * again once the copy is done, before it is filled again. A send takes its buffer in the order asked for, and its
 * fill may run while the sends before it still fill theirs (a file read into one buffer while the host encodes the
 * last buffer's copies, or allocates the next weight); the copies are submitted in the order asked for.
 */
export class UploadRing {
  private readonly buffers: GPUBuffer[];
  /** each buffer's last send: submitted, and the buffer mapped again */
  private readonly free: Promise<void>[];
  private next = 0;
  /** the last send taken: its buffer free and its fill started */
  private taken: Promise<void> = Promise.resolve();
  /** the last send submitted; rejects with the first failure of any send */
  private tail: Promise<void> = Promise.resolve();
  private scratchBuffer?: GPUBuffer;
  private paramsBuffer?: GPUBuffer;
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  constructor(
    private readonly gpu: Gpu,
    readonly bytes = RING_BYTES,
    count = RING_BUFFERS,
  ) {
    this.buffers = Array.from({ length: count }, (_, i) =>
      gpu.createBuffer({ label: `upload ring ${i}`, size: bytes, usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true }),
    );
    this.free = this.buffers.map(() => Promise.resolve());
  }

  /**
   * The next staging buffer's first `size` bytes filled by `fill`, then copied out as `copies` say; `after` encodes
   * what follows the copies in the same submit. Resolves once the buffer is taken and `fill` has been called (a
   * fill that returns at once has written everything): so at most one send a buffer waits, and the caller's next
   * send is taken while this one fills. `done` waits for the copies' submits and rejects with any send's failure.
   */
  send(size: number, fill: (into: Uint8Array) => void | Promise<void>, copies: readonly Copy[], after?: (encoder: GPUCommandEncoder) => void): Promise<void> {
    if (size > this.bytes) throw new Error(`an upload of ${size} bytes does not fit a staging buffer of ${this.bytes}`);
    const i = this.next;
    this.next = (i + 1) % this.buffers.length;
    const buffer = this.buffers[i]!;
    let filled!: Promise<void>;
    const taken = Promise.all([this.taken, this.free[i]]).then(() => {
      filled = Promise.resolve(fill(new Uint8Array(buffer.getMappedRange(), 0, size)));
    });
    // its own fill settles first, so that no failure lets close destroy the buffer while a file read still writes
    // into its mapping; then the sends before it, so that the failure reported is the first
    const before = this.tail;
    const sent = taken
      .then(() => Promise.allSettled([filled]))
      .then(async ([own]) => {
        await before;
        if (own!.status === 'rejected') throw own!.reason;
      })
      .then(() => {
        buffer.unmap();
        const encoder = this.gpu.device.createCommandEncoder({ label: 'upload' });
        for (const c of copies) encoder.copyBufferToBuffer(buffer, c.from, c.to, c.at, c.bytes);
        after?.(encoder);
        this.gpu.device.queue.submit([encoder.finish()]);
      });
    this.taken = taken;
    this.tail = sent;
    this.free[i] = sent.then(() => buffer.mapAsync(GPUMapMode.WRITE));
    // failures reach the caller through `taken`, the next sends, or done; none is left unhandled meanwhile
    for (const p of [taken, sent, this.free[i]!]) p.catch(() => undefined);
    return taken;
  }

  /** Waits for every send taken so far to be submitted; rejects with the first failure of any. */
  done(): Promise<void> {
    return this.tail;
  }

  /** A device buffer of the ring's size that the staging buffers' copies may fill, for a kernel to read. */
  get scratch(): GPUBuffer {
    return (this.scratchBuffer ??= this.gpu.createBuffer({
      label: 'upload scratch',
      size: this.bytes,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    }));
  }

  /**
   * Encodes, after this send's copy of n blocks' file bytes into `scratch`, their layout into `to` from block
   * `first` (scaleHalfAt formats): the kernel's parameters are written to the queue before the submit, so each
   * dispatch reads its own.
   */
  layOut(format: WeightFormat, to: GPUBuffer, first: number, n: number, scalesWord: number): (encoder: GPUCommandEncoder) => void {
    const key = `${format.blockBytes}:${format.scaleHalfAt}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const module = this.gpu.device.createShaderModule({ label: `lay out ${format.name}`, code: layOutWgsl(format) });
      pipeline = this.gpu.device.createComputePipeline({ label: `lay out ${format.name}`, layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.pipelines.set(key, pipeline);
    }
    const workgroups = Math.ceil((n * ((format.blockBytes - 2) / 4) + Math.ceil(n / 2)) / LAY_OUT_THREADS);
    const most = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups > most) throw new Error(`laying out ${n} ${format.name} blocks takes ${workgroups} workgroups, the adapter allows ${most}`);
    const params = (this.paramsBuffer ??= this.gpu.createBuffer({ label: 'lay out', size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }));
    const kernel = pipeline;
    return (encoder) => {
      this.gpu.device.queue.writeBuffer(params, 0, new Uint32Array([first, n, scalesWord, 0]));
      const group = this.gpu.device.createBindGroup({
        layout: kernel.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: params } },
          { binding: 1, resource: { buffer: this.scratch } },
          { binding: 2, resource: { buffer: to } },
        ],
      });
      const pass = encoder.beginComputePass({ label: `lay out ${format.name}` });
      pass.setPipeline(kernel);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(workgroups);
      pass.end();
    };
  }

  /** Waits for every send to end, whether it failed or not, then lets the staging buffers go. */
  async close(): Promise<void> {
    await Promise.allSettled([this.taken, this.tail, ...this.free]);
    for (const b of [...this.buffers, this.scratchBuffer, this.paramsBuffer]) if (b) this.gpu.destroyBuffer(b);
  }
}

/** Where a weight's blocks go as they are made, by block index. */
export interface BlockWriter {
  /** whether `read` takes file bytes of a format whose device layout differs (the writer lays them out) */
  readonly laysOut: boolean;
  /** blocks `first`.. from their file bytes (whole blocks), laid out as the format says */
  write(file: Uint8Array, first: number): Promise<void>;
  /**
   * `bytes` file bytes of whole blocks from block `first`, of a format whose file layout is the device's (or any,
   * where laysOut): `read` fills `into` with the bytes from `offset` of that range (any number of calls, in order).
   */
  read(first: number, bytes: number, read: (offset: number, into: Uint8Array) => void | Promise<void>): Promise<void>;
}

/** Writes into a buffer's mapping (`out`, the whole buffer), for a weight of `blocks` blocks. */
export function mappedWriter(format: WeightFormat, out: Uint8Array, blocks: number): BlockWriter {
  return {
    laysOut: false,
    write: async (file, first) => writeDevice(format, file, out, first, blocks),
    read: async (first, bytes, read) => await read(0, out.subarray(first * format.blockBytes, first * format.blockBytes + bytes)),
  };
}

/** Blocks a staging buffer takes at once: a multiple of four, so that every plane's copies start on a word. */
function ringBlocks(format: WeightFormat, ring: UploadRing): number {
  const n = Math.floor((ring.bytes - 4 * format.planes.length) / format.blockBytes) & ~3;
  if (n === 0) throw new Error(`a ${format.name} block does not fit a staging buffer of ${ring.bytes} bytes`);
  return n;
}

/**
 * Whether the ring can write a weight whose parts start at blocks `starts`: every plane of every part must start on a
 * word of the buffer (copies start and end on words; a part's last copy ends where the next part's first starts).
 */
export function ringFits(format: WeightFormat, blocks: number, starts: readonly number[]): boolean {
  const { offsets } = planeOffsets(format, blocks);
  return starts.every((s) => format.planes.every((bytes, p) => (offsets[p]! + s * bytes) % 4 === 0));
}

/**
 * Writes through `ring` into `buffer`, a weight of `blocks` blocks whose parts ringFits. Blocks of a scaleHalfAt
 * format go to the device as file bytes and are laid out there: the host only copies them (Q8_0's layout on the
 * host runs at 1.1–1.7 GB/s on the CPU machine, against the ring's 4 GB/s on an H100 machine).
 */
export function ringWriter(format: WeightFormat, ring: UploadRing, buffer: GPUBuffer, blocks: number): BlockWriter {
  const { offsets } = planeOffsets(format, blocks);
  const most = ringBlocks(format, ring);
  // a copy's bytes: whole words, the last block's plane rounded up into the plane's padding
  const words = (bytes: number, last: boolean): number => (last ? Math.ceil(bytes / 4) * 4 : bytes);
  if (format.scaleHalfAt !== undefined) {
    // n blocks' file bytes from block `first` into the scratch buffer, then laid out from there
    const send = (first: number, n: number, fill: (into: Uint8Array) => void | Promise<void>): Promise<void> => {
      const size = n * format.blockBytes;
      const copy = { from: 0, to: ring.scratch, at: 0, bytes: words(size, true) };
      const zeroed = (into: Uint8Array): void | Promise<void> => {
        into.fill(0, size);
        return fill(into.subarray(0, size));
      };
      return ring.send(words(size, true), zeroed, [copy], ring.layOut(format, buffer, first, n, offsets[1]! / 4));
    };
    const read = async (first: number, bytes: number, read: (offset: number, into: Uint8Array) => void | Promise<void>): Promise<void> => {
      const n = bytes / format.blockBytes;
      for (let b = 0; b < n; b += most) {
        const m = Math.min(most, n - b);
        await send(first + b, m, (into) => read(b * format.blockBytes, into));
      }
    };
    // file bytes in memory go as read ones do
    return { laysOut: true, read, write: (file, first) => read(first, file.length, (at, into) => into.set(file.subarray(at, at + into.length))) };
  }
  return {
    laysOut: false,
    async write(file, first) {
      const n = file.length / format.blockBytes;
      for (let b = 0; b < n; b += most) {
        const m = Math.min(most, n - b);
        const local = planeOffsets(format, m);
        const last = first + b + m === blocks;
        const copies = format.planes.map((bytes, p) => ({
          from: local.offsets[p]!,
          to: buffer,
          at: offsets[p]! + (first + b) * bytes,
          bytes: words(m * bytes, last),
        }));
        const part = file.subarray(b * format.blockBytes, (b + m) * format.blockBytes);
        // the planes' padding zeroed, as a buffer mapped at creation has it
        const fill = (into: Uint8Array): void => {
          format.planes.forEach((bytes, p) => into.fill(0, local.offsets[p]! + m * bytes, local.offsets[p]! + Math.ceil((m * bytes) / 4) * 4));
          writeDevice(format, part, into, 0, m);
        };
        await ring.send(local.bytes, fill, copies);
      }
    },
    async read(first, bytes, read) {
      const step = most * format.blockBytes;
      for (let at = 0; at < bytes; at += step) {
        const size = Math.min(step, bytes - at);
        const last = first * format.blockBytes + at + size === blocks * format.blockBytes;
        const copy = { from: 0, to: buffer, at: first * format.blockBytes + at, bytes: words(size, last) };
        const fill = (into: Uint8Array): void | Promise<void> => {
          into.fill(0, size);
          return read(at, into.subarray(0, size));
        };
        await ring.send(words(size, true), fill, [copy]);
      }
    },
  };
}
