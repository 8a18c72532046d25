// Checkpoint tensors as sources read when they are needed: a region of a file (read by offset, never the
// whole file), bytes or values in memory, or values computed on demand; and views of them (rows, rows
// reordered, a transpose). Reading a source gives its bytes in its own format; nothing is kept.
import { closeSync, openSync, read, readSync } from 'node:fs';
import { openRegularFile } from '../file-input.js';
import { weightFormats, type WeightFormat } from './formats.js';

export interface TensorSource {
  /** row-major */
  readonly shape: readonly number[];
  /** how read() gives the values */
  readonly format: WeightFormat;
  /** the tensor's bytes in `format`, read now */
  read(): Uint8Array;
  /** bytes [offset, offset + length) of read()'s, read alone (into `into`, where given), where the source can (a file region) */
  readPart?(offset: number, length: number, into?: Uint8Array): Uint8Array;
  /** readPart's bytes from `offset` into all of `into`, read on other threads (a file region) */
  readPartInto?(offset: number, into: Uint8Array): Promise<void>;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** A source's values as float32 (the format's reference dequantizer). */
export function sourceValues(source: TensorSource): Float32Array {
  return source.format.dequantize(source.read(), elementCount(source.shape));
}

/** The error of a read of bytes [offset, offset + length) of a file that ends at `end`. */
function truncated(path: string, offset: number, length: number, end: number): Error {
  return new Error(`${path}: truncated: bytes [${offset}, ${offset + length}) are past its end at ${end}`);
}

/** Bytes [offset, offset + length) of a file, read in pieces of at most 1 GiB. */
export function readRegion(path: string, offset: number, length: number, out: Uint8Array = new Uint8Array(length)): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
      if (n === 0) throw truncated(path, offset, length, offset + done);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/**
 * Reads a region in up to READ_WAYS parts at once, each at least READ_PART_BYTES: through the upload ring, one
 * thread read a page-cached file into the staging buffers at 4.8–6.4 GB/s on an H100 machine, four at once at
 * 15.7–17.4 GB/s and eight at 19.2–21.4 (scripts/device/upload-reads.mjs). Four, as libuv runs four file reads at a
 * time unless UV_THREADPOOL_SIZE says more.
 */
const READ_WAYS = 4;
const READ_PART_BYTES = 1 << 20;

/** Bytes [offset, offset + into.length) of a file into `into`, in parts read at once on libuv's threads. */
export async function readRegionInto(path: string, offset: number, into: Uint8Array): Promise<void> {
  const ways = Math.min(READ_WAYS, Math.floor(into.length / READ_PART_BYTES));
  // a region too small to split is read here: a read on libuv's threads would only add its round trip
  if (ways < 2) {
    readRegion(path, offset, into.length, into);
    return;
  }
  const fd = openSync(path, 'r');
  const part = Math.ceil(into.length / ways);
  /** bytes [from, to) of the region, in reads of at most 1 GiB */
  const readPart = async (from: number, to: number): Promise<void> => {
    for (let done = from; done < to;) {
      const n = await new Promise<number>((resolve, reject) =>
        read(fd, into, done, Math.min(to - done, 1 << 30), offset + done, (e, bytes) => (e ? reject(e) : resolve(bytes))),
      );
      if (n === 0) throw truncated(path, offset, into.length, offset + done);
      done += n;
    }
  };
  try {
    // every part settled before the file closes, as each reads into `into`
    const parts = await Promise.allSettled(Array.from({ length: ways }, (_, i) => readPart(i * part, Math.min(into.length, (i + 1) * part))));
    const failed = parts.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    closeSync(fd);
  }
}

/** A file's size; only regular files are checkpoints (a FIFO or a device would block or never end). */
export function regularFileSize(path: string, what = 'file'): number {
  const { fd, size } = openRegularFile(path, what);
  closeSync(fd);
  return size;
}

/** A tensor stored at [offset, offset + its bytes) of a file, in `format`. */
export function fileSource(path: string, offset: number, shape: readonly number[], format: WeightFormat): TensorSource {
  const length = (elementCount(shape) / format.blockElements) * format.blockBytes;
  return {
    shape,
    format,
    read: () => readRegion(path, offset, length),
    readPart: (at, bytes, into) => readRegion(path, offset + at, bytes, into?.subarray(0, bytes)),
    readPartInto: (at, into) => readRegionInto(path, offset + at, into),
  };
}

/** Float32 values held in memory. */
export function valuesSource(values: Float32Array, shape: readonly number[] = [values.length]): TensorSource {
  return { shape, format: weightFormats.f32, read: () => new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

/** Bytes in `format` held in memory (a quantized tensor made here). */
export function bytesSource(bytes: Uint8Array, shape: readonly number[], format: WeightFormat): TensorSource {
  return { shape, format, read: () => bytes };
}

/** Float32 values computed each time they are read (RoPE tables). */
export function computedSource(shape: readonly number[], compute: () => Float32Array): TensorSource {
  return {
    shape,
    format: weightFormats.f32,
    read: () => {
      const v = compute();
      return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    },
  };
}

/** Bytes of one row of a [rows, …] tensor; rows must be whole blocks. */
function rowBytes(source: TensorSource): number {
  const cols = elementCount(source.shape.slice(1));
  if (cols % source.format.blockElements !== 0) throw new Error(`rows of ${cols} values are not whole ${source.format.name} blocks`);
  return (cols / source.format.blockElements) * source.format.blockBytes;
}

/**
 * Rows start..start+count-1 of a source (read alone from a file: a fused tensor split in three is read once in all).
 * Parts of them are read alone only where the source reads its parts alone.
 */
export function sourceRows(source: TensorSource, start: number, count: number): TensorSource {
  const row = rowBytes(source);
  const shape = [count, ...source.shape.slice(1)];
  if (source.readPart) {
    const readPart = source.readPart;
    const part = (at: number, bytes: number, into?: Uint8Array): Uint8Array => readPart(start * row + at, bytes, into);
    const readInto = source.readPartInto;
    return {
      shape,
      format: source.format,
      read: () => part(0, count * row),
      readPart: part,
      ...(readInto ? { readPartInto: (at: number, into: Uint8Array) => readInto(start * row + at, into) } : {}),
    };
  }
  return { shape, format: source.format, read: () => source.read().slice(start * row, (start + count) * row) };
}

/** The rows of a source in the order `order` gives (row i of the result is row order[i] of the source). */
export function reorderedRows(source: TensorSource, order: readonly number[]): TensorSource {
  const row = rowBytes(source);
  return {
    shape: source.shape,
    format: source.format,
    read: () => {
      const bytes = source.read();
      const out = new Uint8Array(bytes.length);
      order.forEach((from, i) => out.set(bytes.subarray(from * row, (from + 1) * row), i * row));
      return out;
    },
  };
}

/** A [rows, cols] float tensor transposed to [cols, rows]. */
export function transposedSource(source: TensorSource): TensorSource {
  const [rows, cols] = source.shape as [number, number];
  const size = source.format.blockBytes;
  if (source.format.blockElements !== 1) throw new Error(`a ${source.format.name} tensor cannot be transposed`);
  return {
    shape: [cols, rows],
    format: source.format,
    read: () => {
      const bytes = source.read();
      const out = new Uint8Array(bytes.length);
      const Words = size === 4 ? Uint32Array : Uint16Array;
      const from = new Words(bytes.slice().buffer);
      const to = new Words(out.buffer);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) to[c * rows + r] = from[r * cols + c]!;
      return out;
    },
  };
}
