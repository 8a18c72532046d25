// Weights uploaded from files: the device bytes equal the CPU's device layout (deviceLayout) for weights read as stored,
// laid out anew a piece at a time (more blocks than a piece, at odd file offsets), stacked (through the staging ring, or
// its mapping where a part starts within a word), through a small ring, and quantized on load (here, and on the built
// encode pool's workers a chunk at a time).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as A from '../src/affine.js';
import { ResidentBuffers } from '../src/runtime/executor.js';
import { openGpu, type Gpu } from '../src/runtime/gpu.js';
import type { PlanBuffer } from '../src/runtime/plan.js';
import { ringFits, ringWriter, UploadRing } from '../src/runtime/upload.js';
import { deviceLayout, weightFormats, type FormatName } from '../src/weights/formats.js';
import { bytesSource, fileSource, readRegionInto, sourceRows, type TensorSource } from '../src/weights/source.js';
import { randomArray } from './reference.js';

let gpu: Gpu;
let dir: string;
beforeAll(async () => {
  gpu = await openGpu();
  dir = mkdtempSync(join(tmpdir(), 'weft-upload-'));
});
afterAll(() => {
  gpu?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** The device buffer's bytes. */
async function deviceBytes(buffer: GPUBuffer, bytes: number): Promise<Uint8Array> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = gpu.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const encoder = gpu.device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, 0, staging, 0, size);
    gpu.device.queue.submit([encoder.finish()]);
    await gpu.mapRead(staging, 0, size);
    const out = new Uint8Array(staging.getMappedRange(0, size).slice(0, bytes));
    staging.unmap();
    return out;
  } finally {
    gpu.destroyBuffer(staging);
  }
}

/** `rows` × `cols` values in `format`, written to a file after `pad` bytes; the source of them and their file bytes. */
function fileTensor(name: string, format: FormatName, rows: number, cols: number, pad: number, seed: number): { source: TensorSource; file: Uint8Array } {
  const file = weightFormats[format].encode(randomArray(rows * cols, seed));
  const path = join(dir, `${name}.bin`);
  writeFileSync(path, Buffer.concat([Buffer.alloc(pad, 0xa5), file, Buffer.alloc(3, 0x5a)]));
  return { source: fileSource(path, pad, [rows, cols], weightFormats[format]), file };
}

async function upload(tensors: Map<string, TensorSource>, weight: PlanBuffer, expected: Uint8Array): Promise<void> {
  const resident = new ResidentBuffers(gpu, tensors);
  try {
    await resident.upload([{ graph: 'upload', symbols: [], buffers: [weight], kernels: [], inputs: [], outputs: [] }]);
    const got = await deviceBytes(resident.get(weight), expected.length);
    expect(Buffer.compare(got, expected)).toBe(0);
  } finally {
    resident.destroy();
  }
}

describe('weights uploaded from files', () => {
  // Q8_0, Q4_0 and Q6_K lay their blocks out anew (a piece of 2^18 blocks at a time); f16 and Q4_K are read as stored
  const cases: { format: FormatName; rows: number; cols: number; pad: number }[] = [
    { format: 'q8_0', rows: 2051, cols: 4096, pad: 7 },
    { format: 'q8_0', rows: 3, cols: 96, pad: 0 },
    { format: 'q4_0', rows: 1030, cols: 8192, pad: 13 },
    { format: 'f16', rows: 33, cols: 70, pad: 1 },
    { format: 'q4_k', rows: 5, cols: 512, pad: 2 },
    { format: 'q6_k', rows: 3, cols: 768, pad: 9 },
    { format: 'q6_k', rows: 1, cols: 256, pad: 3 },
  ];
  cases.forEach((c, i) => {
    it(`${c.format}, ${c.rows} × ${c.cols}, after ${c.pad} bytes`, async () => {
      const { source, file } = fileTensor(`w${i}`, c.format, c.rows, c.cols, c.pad, 40 + i);
      const weight: PlanBuffer = { name: 'w', role: 'weight', dtype: c.format, shape: [A.constant(c.rows), A.constant(c.cols)] };
      await upload(new Map([['w', source]]), weight, deviceLayout(weightFormats[c.format], [{ file, count: c.rows * c.cols }]));
    });
  });

  it('stacked Q8_0 parts: rows of a file tensor, and bytes held in memory', async () => {
    const { source, file } = fileTensor('stack', 'q8_0', 2100, 1024, 5, 60);
    const row = (1024 / 32) * 34;
    const held = weightFormats.q8_0.encode(randomArray(7 * 1024, 61));
    const tensors = new Map<string, TensorSource>([
      ['a', sourceRows(source, 3, 2090)],
      ['b', bytesSource(held, [7, 1024], weightFormats.q8_0)],
      ['c', sourceRows(sourceRows(bytesSource(held, [7, 1024], weightFormats.q8_0), 1, 5), 2, 3)],
    ]);
    const weight: PlanBuffer = { name: 'abc', role: 'weight', dtype: 'q8_0', shape: [A.constant(2100), A.constant(1024)], sources: ['a', 'b', 'c'] };
    const expected = deviceLayout(weightFormats.q8_0, [
      { file: file.subarray(3 * row, 2093 * row), count: 2090 * 1024 },
      { file: held, count: 7 * 1024 },
      { file: held.subarray(3 * row, 6 * row), count: 3 * 1024 },
    ]);
    await upload(tensors, weight, expected);
  });
});

describe('weights whose parts start within a word', () => {
  // a part's copies out of the staging ring would start within a word: these go straight into the buffer's mapping
  it('f16 parts of odd lengths, and Q8_0 parts of odd block counts', async () => {
    for (const [format, rowsA, rowsB, cols] of [
      ['f16', 3, 2, 5],
      ['q8_0', 1, 4, 32],
    ] as const) {
      const a = weightFormats[format].encode(randomArray(rowsA * cols, 70));
      const b = weightFormats[format].encode(randomArray(rowsB * cols, 71));
      const tensors = new Map<string, TensorSource>([
        ['a', bytesSource(a, [rowsA, cols], weightFormats[format])],
        ['b', bytesSource(b, [rowsB, cols], weightFormats[format])],
      ]);
      const weight: PlanBuffer = { name: 'ab', role: 'weight', dtype: format, shape: [A.constant(rowsA + rowsB), A.constant(cols)], sources: ['a', 'b'] };
      const expected = deviceLayout(weightFormats[format], [
        { file: a, count: rowsA * cols },
        { file: b, count: rowsB * cols },
      ]);
      await upload(tensors, weight, expected);
    }
  });
});

describe('the staging ring', () => {
  // a ring of 1 KiB buffers: many sends a weight, its last block's planes rounded up to a word
  const cases: { format: FormatName; blocks: number; read: boolean }[] = [
    { format: 'q8_0', blocks: 301, read: false },
    { format: 'q6_k', blocks: 13, read: false },
    { format: 'q4_0', blocks: 99, read: false },
    { format: 'f16', blocks: 2047, read: true },
    { format: 'q4_k', blocks: 21, read: true },
  ];
  for (const c of cases) {
    it(`${c.format}, ${c.blocks} blocks${c.read ? ', read as stored' : ''}`, async () => {
      const format = weightFormats[c.format];
      const file = format.encode(randomArray(c.blocks * format.blockElements, 90));
      const expected = deviceLayout(format, [{ file, count: c.blocks * format.blockElements }]);
      const buffer = gpu.createBuffer({
        size: Math.ceil(expected.length / 16) * 16,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      const ring = new UploadRing(gpu, 1024);
      try {
        expect(ringFits(format, c.blocks, [0])).toBe(true);
        const writer = ringWriter(format, ring, buffer, c.blocks);
        if (c.read) await writer.read(0, file.length, (at, into) => into.set(file.subarray(at, at + into.length)));
        else {
          // in two calls, the first ending on a multiple of four blocks
          const cut = Math.floor(c.blocks / 8) * 4;
          await writer.write(file.subarray(0, cut * format.blockBytes), 0);
          await writer.write(file.subarray(cut * format.blockBytes), cut);
        }
        await ring.done();
        await ring.close();
        expect(Buffer.compare(await deviceBytes(buffer, expected.length), expected)).toBe(0);
      } finally {
        gpu.destroyBuffer(buffer);
      }
    });
  }
});

describe('the staging ring with fills that overlap', () => {
  /** A promise and what resolves it: a fill held until the test lets it go. */
  const gate = (): { opened: Promise<void>; open: () => void } => {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    return { opened, open };
  };

  /** `body` given a ring of two 64-byte staging buffers and a copy of 16 bytes into a target buffer; both let go after. */
  const withRing = async (body: (ring: UploadRing, copy: Parameters<UploadRing['send']>[2], buffer: GPUBuffer) => Promise<void>): Promise<void> => {
    const buffer = gpu.createBuffer({ size: 64, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const ring = new UploadRing(gpu, 64);
    try {
      await body(ring, [{ from: 0, to: buffer, at: 0, bytes: 16 }], buffer);
    } finally {
      await ring.close();
      gpu.destroyBuffer(buffer);
    }
  };

  it('takes the next send while a fill is pending, and submits the copies in the order asked for', () =>
    withRing(async (ring, copy, buffer) => {
      const held = gate();
      const order: string[] = [];
      // the first send's fill waits; the second writes the same bytes of the target after it, so its copy must land last
      await ring.send(
        16,
        async (into) => {
          order.push('fill 1');
          await held.opened;
          into.fill(1);
        },
        copy,
      );
      await ring.send(
        16,
        (into) => {
          order.push('fill 2');
          into.fill(2);
        },
        copy,
      );
      expect(order).toEqual(['fill 1', 'fill 2']);
      held.open();
      await ring.done();
      expect([...(await deviceBytes(buffer, 16))]).toEqual(new Array(16).fill(2));
    }));

  it('reports a failed fill through done and the sends after it, and still closes', () =>
    withRing(async (ring, copy) => {
      await ring.send(
        16,
        async () => {
          throw new Error('the file went away');
        },
        copy,
      );
      // the other staging buffer is free: this send is taken, and is not submitted after the failure
      await ring.send(16, (into) => void into.fill(3), copy);
      // the failed send's buffer is not: taking it again fails with the first failure
      await expect(ring.send(16, (into) => void into.fill(4), copy)).rejects.toThrow('the file went away');
      await expect(ring.done()).rejects.toThrow('the file went away');
    }));

  it('closes only once a fill still pending after a failure has ended, and reports the first failure', () =>
    withRing(async (ring, copy) => {
      const held = gate();
      let filling = true;
      await ring.send(
        16,
        async () => {
          throw new Error('the first read failed');
        },
        copy,
      );
      // a read into the other staging buffer, still running when the failure is known, and failing later itself
      await ring.send(
        16,
        async () => {
          await held.opened;
          filling = false;
          throw new Error('the second read failed');
        },
        copy,
      );
      let closed = false;
      const closing = ring.close().then(() => (closed = true));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(closed).toBe(false);
      held.open();
      await closing;
      expect(filling).toBe(false);
      await expect(ring.done()).rejects.toThrow('the first read failed');
    }));
});

describe('weights quantized on load', () => {
  // more values than a chunk of 2^20, in a float file and in memory; Q8_0 (blocks of 32) and Q4_K (of 256)
  const cases: { format: FormatName; rows: number; cols: number; file: boolean }[] = [
    { format: 'q8_0', rows: 520, cols: 2048, file: true },
    { format: 'q4_k', rows: 9, cols: 512, file: true },
    { format: 'q8_0', rows: 3, cols: 64, file: false },
  ];
  for (const built of [false, true]) {
    cases.forEach((c, i) => {
      it(`f32 to ${c.format}, ${c.rows} × ${c.cols} ${c.file ? 'from a file' : 'in memory'}${built ? ', on the built encode pool' : ''}`, async () => {
        // the built modules (their pool starts its workers from the built encode-worker.js) take their own format table and sources
        const [executor, formats, sources] = built
          ? await Promise.all([
              import(new URL('../dist/src/runtime/executor.js', import.meta.url).href) as Promise<typeof import('../src/runtime/executor.js')>,
              import(new URL('../dist/src/weights/formats.js', import.meta.url).href) as Promise<typeof import('../src/weights/formats.js')>,
              import(new URL('../dist/src/weights/source.js', import.meta.url).href) as Promise<typeof import('../src/weights/source.js')>,
            ])
          : [{ ResidentBuffers }, { weightFormats }, { fileSource, bytesSource }];
        const values = randomArray(c.rows * c.cols, 80 + i);
        const f32 = new Uint8Array(values.buffer);
        let source: TensorSource;
        if (c.file) {
          const path = join(dir, `quantize${i}-${built}.bin`);
          writeFileSync(path, Buffer.concat([Buffer.alloc(3), f32]));
          source = sources.fileSource(path, 3, [c.rows, c.cols], formats.weightFormats.f32);
        } else source = sources.bytesSource(f32, [c.rows, c.cols], formats.weightFormats.f32);
        const weight: PlanBuffer = { name: 'w', role: 'weight', dtype: c.format, shape: [A.constant(c.rows), A.constant(c.cols)] };
        const expected = deviceLayout(weightFormats[c.format], [{ file: weightFormats[c.format].encode(values), count: values.length }]);
        const resident = new executor.ResidentBuffers(gpu, new Map([['w', source]]));
        try {
          await resident.upload([{ graph: 'upload', symbols: [], buffers: [weight], kernels: [], inputs: [], outputs: [] }]);
          expect(Buffer.compare(await deviceBytes(resident.get(weight), expected.length), expected)).toBe(0);
        } finally {
          resident.destroy();
        }
      });
    });
  }
});

describe('a file region read in parts at once', () => {
  it('gives the bytes one read gives, at lengths that split unevenly, and names a truncated file', async () => {
    const bytes = new Uint8Array(randomArray((9 << 20) / 4, 70).buffer);
    const path = join(dir, 'region.bin');
    writeFileSync(path, bytes);
    for (const [offset, length] of [
      [0, 1],
      [7, (3 << 20) + 5],
      [1, (9 << 20) - 1],
    ] as const) {
      const into = new Uint8Array(length);
      await readRegionInto(path, offset, into);
      expect(Buffer.from(into).equals(Buffer.from(bytes.subarray(offset, offset + length))), `${offset} + ${length}`).toBe(true);
    }
    await expect(readRegionInto(path, 5 << 20, new Uint8Array(5 << 20))).rejects.toThrow(
      /region\.bin: truncated: bytes \[5242880, 10485760\) are past its end/,
    );
  });
});
