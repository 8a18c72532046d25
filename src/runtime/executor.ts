// Executes plans on a device. Weights and state (the KV cache) are resident and shared by every plan of
// a model; each plan owns its activation buffers, which grow to the largest run seen, and its pipelines.
import * as A from '../affine.js';
import type { Gpu } from './gpu.js';
import { convert, planeOffsets, weightFormats, type WeightFormat } from '../weights/formats.js';
import { EncodePool } from '../weights/encode-pool.js';
import { elementCount, type TensorSource } from '../weights/source.js';
import { uniformSymbols, workgroupCount, type Plan, type PlanBuffer } from './plan.js';
import { mappedWriter, RING_BYTES, ringFits, ringWriter, UploadRing, type BlockWriter } from './upload.js';

const usage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A device buffer's size for `bytes`: whole 16-byte units, at least one. */
const bufferSize = (bytes: number): number => Math.max(16, Math.ceil(bytes / 16) * 16);

/** The uniform of a run at `env`: the symbols' values in uniformSymbols' order, in 16 bytes. */
const uniformWords = (env: A.Env): Uint32Array<ArrayBuffer> => new Uint32Array([...uniformSymbols.map((s) => env[s] ?? 0), 0]);

function elements(b: PlanBuffer, env: A.Env): number {
  return b.shape.reduce((p, d) => p * A.evaluate(d, env), 1);
}

/** Bytes written to the queue between waits for the device, so that staging memory for uploads stays bounded. */
export const UPLOAD_WAIT_BYTES = 256 * 1024 * 1024;

/** Blocks of a weight read at a time where its blocks are laid out anew on the device (Q8_0: 8.5 MiB). */
const UPLOAD_PIECE_BLOCKS = 1 << 18;

/** Values quantized at a time on a worker (a whole number of blocks of every format: 1, 32 or 256 values). */
const QUANTIZE_CHUNK = 1 << 20;

/** Progress of an upload: bytes on the device so far of all the weights to upload, and the weight just uploaded. */
export type UploadProgress = (done: number, total: number, name: string) => void;

/**
 * Weights and state buffers, shared by every plan of a model. Weights are read from their sources one at a
 * time, converted to the plan's format for them where it differs from the source's, laid out as the format
 * says (stacked weights part after part), uploaded and let go: the host keeps no copy. One source bound under
 * two names in one format (a shared classifier) is uploaded once. States start zeroed unless a source gives
 * their initial contents.
 */
export class ResidentBuffers {
  private readonly buffers = new Map<string, GPUBuffer>();
  /** one device buffer per single source and format */
  private readonly uploaded = new Map<TensorSource, Map<string, GPUBuffer>>();
  /** device bytes of the weights and states allocated so far */
  private allocated = 0;
  /** the file bytes of a weight whose blocks are laid out anew, a piece at a time */
  private piece = new Uint8Array(0);

  constructor(
    private readonly gpu: Gpu,
    private readonly tensors: ReadonlyMap<string, TensorSource>,
  ) {}

  /** A weight's or state's buffer; `mapped`: mapped at creation, for its contents to be written in place. */
  private allocate(name: string, bytes: number, mapped = false): GPUBuffer {
    const max = Math.min(this.gpu.limits.maxBufferSize, this.gpu.limits.maxStorageBufferBindingSize);
    if (bytes > max) throw new Error(`${name} needs ${bytes} bytes, the adapter's largest storage buffer is ${max}`);
    this.allocated += bufferSize(bytes);
    return this.gpu.createBuffer({ label: name, size: bufferSize(bytes), usage: usage(), mappedAtCreation: mapped });
  }

  /** Device bytes of every weight and state buffer allocated. */
  get bytes(): number {
    return this.allocated;
  }

  private source(name: string, of: string): TensorSource {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`weight ${of} needs ${name}, which is not in the checkpoint`);
    return t;
  }

  /**
   * A weight's parts read, converted to `format` where needed (quantized on `pool`'s workers, where given, a chunk
   * at a time), and laid out for the device; returns the bytes uploaded.
   */
  private async build(b: PlanBuffer, format: WeightFormat, ring: UploadRing, pool?: () => EncodePool): Promise<{ buffer: GPUBuffer; bytes: number }> {
    const parts = (b.sources ?? [b.name]).map((n) => this.source(n, b.name));
    const count = elements(b, {});
    const total = parts.reduce((n, p) => n + elementCount(p.shape), 0);
    if (total !== count) throw new Error(`weight ${b.name} has ${total} values, its shape needs ${count}`);
    const single = parts.length === 1 ? this.uploaded.get(parts[0]!)?.get(format.name) : undefined;
    if (single) return { buffer: single, bytes: 0 };
    const blocks = count / format.blockElements;
    const { bytes } = planeOffsets(format, blocks);
    const sizes = parts.map((p) => elementCount(p.shape) / format.blockElements);
    const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, n) => a + n, 0));
    // the device layout goes through the staging ring, or where a part's copies would not start on a word, straight
    // into the buffer's mapping; the host holds only the bytes read
    const staged = ringFits(format, blocks, starts);
    const buffer = this.allocate(b.name, bytes, !staged);
    try {
      const writer = staged ? ringWriter(format, ring, buffer, blocks) : mappedWriter(format, new Uint8Array(buffer.getMappedRange(), 0, bytes), blocks);
      for (const [i, p] of parts.entries()) {
        const [n, block] = [sizes[i]!, starts[i]!];
        const size = n * format.blockBytes;
        if (p.format !== format && pool && format.blockElements > 1) await this.quantize(p, format, pool(), writer, block);
        else if (p.format !== format || !p.readPart) await writer.write(convert(p.read(), n * format.blockElements, p.format, format), block);
        else if (!format.toDevice || writer.laysOut) {
          await writer.read(block, size, p.readPartInto ?? ((at, into) => void p.readPart!(at, into.length, into)));
        } else {
          // blocks laid out anew: read a piece of whole blocks at a time into one array
          const pieceBytes = UPLOAD_PIECE_BLOCKS * format.blockBytes;
          if (this.piece.length < pieceBytes) this.piece = new Uint8Array(pieceBytes);
          for (let at = 0; at < size; at += pieceBytes) {
            const piece = p.readPart(at, Math.min(pieceBytes, size - at), this.piece);
            await writer.write(piece, block + at / format.blockBytes);
          }
        }
      }
    } finally {
      if (!staged) buffer.unmap();
    }
    if (parts.length === 1) {
      const formats = this.uploaded.get(parts[0]!) ?? new Map<string, GPUBuffer>();
      formats.set(format.name, buffer);
      this.uploaded.set(parts[0]!, formats);
    }
    return { buffer, bytes };
  }

  /**
   * A part quantized into `format` on the pool's workers, QUANTIZE_CHUNK values at a time (whole blocks of both
   * formats), at most two chunks a worker in flight, each written at block `first` + its own as it comes back.
   */
  private async quantize(p: TensorSource, format: WeightFormat, pool: EncodePool, writer: BlockWriter, first: number): Promise<void> {
    const values = elementCount(p.shape);
    const whole = p.readPart ? undefined : p.read();
    const from = p.format;
    const inFlight: Promise<void>[] = [];
    try {
      for (let v = 0; v < values; v += QUANTIZE_CHUNK) {
        const m = Math.min(QUANTIZE_CHUNK, values - v);
        const [at, length] = [(v / from.blockElements) * from.blockBytes, (m / from.blockElements) * from.blockBytes];
        const bytes = whole ? whole.subarray(at, at + length) : p.readPart!(at, length);
        const block = first + v / format.blockElements;
        inFlight.push(pool.encode(format.name, from.dequantize(bytes, m)).then((encoded) => writer.write(encoded, block)));
        if (inFlight.length >= 2 * pool.size) await inFlight.shift();
      }
      await Promise.all(inFlight);
    } catch (e) {
      // nothing may write into the mapping once it is gone
      await Promise.allSettled(inFlight);
      throw e;
    }
  }

  private async create(b: PlanBuffer, ring: UploadRing, pool?: () => EncodePool): Promise<{ buffer: GPUBuffer; bytes: number }> {
    if (b.dtype === 'i32') throw new Error(`weight ${b.name}: i32 weights are not supported`);
    if (b.role === 'state' && !this.tensors.has(b.name)) return { buffer: this.allocate(b.name, elements(b, {}) * 4), bytes: 0 };
    return this.build(b, weightFormats[b.dtype], ring, pool);
  }

  /**
   * Uploads every weight and state the plans bind that is not on the device yet, one at a time, waiting for
   * the device after every UPLOAD_WAIT_BYTES so that the queue's staging copies are released as it goes. Weights
   * quantized on load are quantized on an encode pool's workers where the built worker is there to start.
   */
  async upload(plans: readonly Plan[], progress?: UploadProgress): Promise<void> {
    const pending = new Map<string, PlanBuffer>();
    for (const plan of plans) {
      for (const b of plan.buffers) if ((b.role === 'weight' || b.role === 'state') && !this.buffers.has(b.name)) pending.set(b.name, b);
    }
    if (pending.size === 0) return;
    const sizeOf = (b: PlanBuffer): number =>
      b.dtype === 'i32' ? 4 * elements(b, {}) : planeOffsets(weightFormats[b.dtype], elements(b, {}) / weightFormats[b.dtype].blockElements).bytes;
    const total = [...pending.values()].reduce((n, b) => n + sizeOf(b), 0);
    let done = 0;
    let unwaited = 0;
    let encoders: EncodePool | undefined;
    const pool = EncodePool.available() ? () => (encoders ??= new EncodePool()) : undefined;
    // staging buffers no larger than the upload needs, with room for four of any format's blocks (a window's least)
    const ring = new UploadRing(this.gpu, Math.min(RING_BYTES, Math.ceil(total / 16) * 16 + 4096));
    try {
      for (const b of pending.values()) {
        const { buffer, bytes } = await this.create(b, ring, pool);
        this.buffers.set(b.name, buffer);
        done += sizeOf(b);
        unwaited += bytes;
        if (unwaited >= UPLOAD_WAIT_BYTES) {
          await this.gpu.device.queue.onSubmittedWorkDone();
          unwaited = 0;
        }
        progress?.(done, total, b.name);
      }
      await ring.done();
    } finally {
      await ring.close();
      await encoders?.close();
    }
    await this.gpu.device.queue.onSubmittedWorkDone();
  }

  /** The device buffer of a weight or state the plans uploaded. */
  get(b: PlanBuffer): GPUBuffer {
    const have = this.buffers.get(b.name);
    if (!have) throw new Error(`${b.name} is not on the device: its plan was not uploaded`);
    return have;
  }

  destroy(): void {
    for (const b of new Set([...this.buffers.values(), ...[...this.uploaded.values()].flatMap((f) => [...f.values()])])) this.gpu.destroyBuffer(b);
    this.buffers.clear();
    this.uploaded.clear();
  }
}

export interface Pipeline {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

export type InputData = Int32Array | Float32Array;

/** Elements `start`..`start + count - 1` of a plan buffer, copied out at the end of a recorded run. */
export interface ReadBack {
  readonly name: string;
  readonly start: number;
  readonly count: number;
}

/** A plan output copied over a plan input at the end of a run, so the next run reads it without the host. */
export interface Feed {
  readonly from: string;
  readonly to: string;
}

/** A run of one or more steps recorded by PlanExecutor.record, to be submitted once. */
export interface RecordedRun {
  readonly envs: readonly A.Env[];
  readonly commands: GPUCommandBuffer;
  readonly staging: GPUBuffer;
  /** each step's uniform and inputs: where they lie in `upload` */
  readonly upload: GPUBuffer;
  readonly uploadBytes: number;
  readonly uploads: readonly {
    readonly offset: number;
    readonly inputs: readonly { readonly name: string; readonly offset: number; readonly bytes: number }[];
  }[];
  /** byte offset and length of each step's reads in the staging buffer */
  readonly reads: readonly (readonly { readonly offset: number; readonly bytes: number }[])[];
}

/** Staging buffers record keeps in turn: as many runs may be recorded and not yet read back. */
export const RECORD_SLOTS = 4;

/**
 * The most steps one recorded run takes. A slot's upload and staging buffers for a chained run (one with a feed)
 * are made for this many steps, so that chained runs of any length up to it reuse them (a greedy generation's
 * runs vary with its step time).
 */
export const RUN_STEPS = 8;

/** Where one run's time goes (PlanExecutor.runCost), seconds; the dispatches it ran (those with workgroups). */
export interface RunCost {
  readonly record: number;
  readonly submit: number;
  readonly gpu?: number;
  readonly dispatches: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Kernels in the first part of a run (PlanExecutor.run) */
export const FIRST_PART = 8;

/** The kernel ranges [from, to) PlanExecutor.run submits a run of `kernels` in: FIRST_PART, then each twice the last. */
export function runParts(kernels: number): [number, number][] {
  const parts: [number, number][] = [];
  for (let from = 0, size = FIRST_PART; from < kernels; from += size, size *= 2) parts.push([from, Math.min(kernels, from + size)]);
  return parts;
}

/** Kernels of one WGSL and binding access share a pipeline. */
const pipelineKey = (k: Plan['kernels'][number]): string => `${k.wgsl}\u0000${k.bindings.map((b) => b.access).join(',')}`;

export class PlanExecutor {
  private readonly uniform: GPUBuffer;
  private readonly local = new Map<string, { buffer: GPUBuffer; bytes: number }>();
  private bindGroups: GPUBindGroup[] | undefined;
  private staging: GPUBuffer | undefined;
  private stagingBusy = false;
  private readonly recordStaging: (GPUBuffer | undefined)[] = Array<GPUBuffer | undefined>(RECORD_SLOTS).fill(undefined);
  private readonly recordUpload: (GPUBuffer | undefined)[] = Array<GPUBuffer | undefined>(RECORD_SLOTS).fill(undefined);
  private recorded = 0;
  private readonly bufferSpecs: Map<string, PlanBuffer>;
  /** the symbols per-run buffer sizes depend on, and their values the buffers were last sized for */
  private readonly sizeSymbols: readonly string[];
  private sizedFor: string | undefined;

  private constructor(
    private readonly gpu: Gpu,
    readonly plan: Plan,
    private readonly resident: ResidentBuffers,
    private readonly pipelines: readonly Pipeline[],
  ) {
    this.uniform = gpu.createBuffer({ label: `${plan.graph}.dims`, size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.bufferSpecs = new Map(plan.buffers.map((b) => [b.name, b]));
    this.sizeSymbols = [...new Set(plan.buffers.filter((b) => b.role !== 'weight' && b.role !== 'state').flatMap((b) => b.shape.flatMap((d) => A.symbols(d))))];
  }

  /** Distinct pipelines a plan compiles: kernels of one WGSL and binding access share one. */
  static pipelineCount(plan: Plan): number {
    return new Set(plan.kernels.map(pipelineKey)).size;
  }

  /**
   * An executor of `plan` once its weights and states are on the device (uploaded here where no one did before)
   * and its pipelines are made: `pipelines` from PlanExecutor.pipelines, asked for earlier (they compile while the
   * weights upload), or asked for here.
   */
  static async create(gpu: Gpu, plan: Plan, resident: ResidentBuffers, pipelines?: Promise<readonly Pipeline[]>): Promise<PlanExecutor> {
    const made = pipelines ?? PlanExecutor.pipelines(gpu, plan);
    const [ready] = await Promise.all([made, resident.upload([plan])]);
    gpu.check();
    return new PlanExecutor(gpu, plan, resident, ready);
  }

  /**
   * Compiles a plan's pipelines at once, calling `compiled` with each kernel's name as its pipeline is ready;
   * kernels of one WGSL and binding access share one.
   */
  static async pipelines(gpu: Gpu, plan: Plan, compiled?: (name: string) => void): Promise<readonly Pipeline[]> {
    const cache = new Map<string, Promise<Pipeline>>();
    const build = async (wgsl: string, kernel: Plan['kernels'][number]): Promise<Pipeline> => {
      const device = gpu.device;
      // WGSL compile errors surface in this validation scope; a pipeline that cannot be made rejects its promise.
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ label: kernel.name, code: wgsl });
      const layout = device.createBindGroupLayout({
        label: kernel.name,
        entries: [
          { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
          ...kernel.bindings.map((b) => ({
            binding: b.binding,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: b.access === 'read' ? ('read-only-storage' as const) : ('storage' as const) },
          })),
        ],
      });
      const created = device
        .createComputePipelineAsync({
          label: kernel.name,
          layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
          compute: { module, entryPoint: 'main' },
        })
        .then(
          (pipeline) => ({ pipeline }),
          (e: Error) => ({ error: e }),
        );
      const invalid = await device.popErrorScope();
      const done = await created;
      const error = invalid?.message ?? ('error' in done ? done.error.message : undefined);
      if (error !== undefined || !('pipeline' in done))
        throw new Error(`kernel ${kernel.name} (${kernel.op}) has no pipeline: ${(error ?? 'no reason given').split('\n')[0]}`);
      return { pipeline: done.pipeline, layout };
    };
    const pipelines = await Promise.all(
      plan.kernels.map((k) => {
        const key = pipelineKey(k);
        let p = cache.get(key);
        if (!p) {
          p = build(k.wgsl, k).then((built) => {
            compiled?.(k.name);
            return built;
          });
          cache.set(key, p);
        }
        return p;
      }),
    );
    gpu.check();
    return pipelines;
  }

  /** The plan buffer of this name; a name the plan lacks is an error. */
  private specOf(name: string): PlanBuffer {
    const b = this.bufferSpecs.get(name);
    if (!b) throw new Error(`${this.plan.graph}: no buffer %${name}`);
    return b;
  }

  private bufferFor(b: PlanBuffer): GPUBuffer {
    if (b.role === 'weight' || b.role === 'state') return this.resident.get(b);
    return this.local.get(b.slot ?? b.name)!.buffer;
  }

  /**
   * Grows per-run buffers to fit `env`; bind groups are rebuilt only when a buffer changed. Sizes are worked out
   * again only when a symbol they depend on changed (a decode step's `P` sizes no buffer).
   */
  private ensureBuffers(env: A.Env): void {
    const key = this.sizeSymbols.map((s) => env[s]).join(',');
    if (key === this.sizedFor && this.bindGroups) return;
    const max = Math.min(this.gpu.limits.maxBufferSize, this.gpu.limits.maxStorageBufferBindingSize);
    const needed = new Map<string, number>();
    for (const b of this.plan.buffers) {
      if (b.role === 'weight' || b.role === 'state') continue;
      const bytes = bufferSize(elements(b, env) * 4);
      if (bytes > max) throw new Error(`${this.plan.graph}: %${b.name} needs ${bytes} bytes, the adapter's largest storage buffer is ${max}`);
      const key = b.slot ?? b.name;
      needed.set(key, Math.max(needed.get(key) ?? 0, bytes));
    }
    for (const [key, bytes] of needed) {
      const have = this.local.get(key);
      if (have && have.bytes >= bytes) continue;
      if (have) this.gpu.destroyBuffer(have.buffer);
      this.local.set(key, { buffer: this.gpu.createBuffer({ label: key, size: bytes, usage: usage() }), bytes });
      this.bindGroups = undefined;
    }
    this.sizedFor = key;
    this.bindGroups ??= this.plan.kernels.map((k, i) =>
      this.gpu.device.createBindGroup({
        label: k.name,
        layout: this.pipelines[i]!.layout,
        entries: [
          { binding: 0, resource: { buffer: this.uniform } },
          ...k.bindings.map((b) => ({ binding: b.binding, resource: { buffer: this.bufferFor(this.bufferSpecs.get(b.buffer)!) } })),
        ],
      }),
    );
  }

  /** Checks the symbols and inputs, sizes the buffers, and writes the uniform and inputs for one run. */
  private prepare(env: A.Env, inputs: Readonly<Record<string, InputData>>): [number, number, number][] {
    const grid = this.grid(env);
    this.write(env, inputs);
    return grid;
  }

  /** Checks the symbols, sizes the buffers, and gives each kernel's workgroup counts. */
  private grid(env: A.Env): [number, number, number][] {
    for (const s of this.plan.symbols) {
      const v = env[s];
      if (v === undefined || !Number.isInteger(v) || v < 0) throw new Error(`${this.plan.graph}: symbol ${s} needs a whole value`);
    }
    this.ensureBuffers(env);
    const maxGroups = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    return this.plan.kernels.map((k) => {
      const counts = k.workgroups.map((w) => workgroupCount(w, env)) as [number, number, number];
      const over = counts.findIndex((c) => c > maxGroups);
      if (over >= 0) throw new Error(`kernel ${k.name} needs ${counts[over]} workgroups along ${'xyz'[over]}, the adapter allows ${maxGroups}`);
      return counts;
    });
  }

  /** Writes the uniform (the symbols' values) and the inputs of one run. */
  private write(env: A.Env, inputs: Readonly<Record<string, InputData>>): void {
    const device = this.gpu.device;
    const checked = this.plan.inputs.map((name) => this.checkedInput(name, inputs[name], env));
    device.queue.writeBuffer(this.uniform, 0, uniformWords(env));
    this.plan.inputs.forEach((name, i) => {
      const data = checked[i]!;
      device.queue.writeBuffer(this.bufferFor(this.specOf(name)), 0, data.buffer, data.byteOffset, data.byteLength);
    });
  }

  /** A run's data for input `name`, which must be given and hold the input's elements at `env`. */
  private checkedInput(name: string, data: InputData | undefined, env: A.Env): InputData {
    if (!data) throw new Error(`${this.plan.graph}: input %${name} is missing`);
    const expected = elements(this.specOf(name), env);
    if (data.length !== expected) throw new Error(`${this.plan.graph}: input %${name} has ${data.length} elements, expected ${expected}`);
    return data;
  }

  /**
   * Records a run of consecutive steps ahead of time, one command buffer for all of them: before each step's
   * pass, its uniform and inputs are copied from an upload buffer that `submit` writes once; after it, `reads`
   * are copied out for readBack and, with `feed`, one output over one input for the step after it (a greedy
   * token fed to the next decode step, within the run or in the run recorded next). `fedFirst`: the first
   * step's `feed.to` is what the run before fed it. One command buffer and one submit for several steps, because
   * a decode step's host cost outside its dispatches (encoder, finish, submit, writes, a readback) is paid once a
   * run. Runs are submitted in the order recorded; at most RECORD_SLOTS may be recorded and not yet read back.
   */
  record(envs: readonly A.Env[], reads: readonly ReadBack[], feed?: Feed, fedFirst = false): RecordedRun {
    if (envs.length === 0 || envs.length > RUN_STEPS) throw new Error(`${this.plan.graph}: a recorded run takes 1 to ${RUN_STEPS} steps, not ${envs.length}`);
    // every step's grid first, so that the buffers are grown (and the bind groups made) before any is encoded
    const grids = envs.map((env) => this.grid(env));
    // one step's reads, each at its offset within the step; step j's lie stepReads · j further on
    let stepReads = 0;
    const stepParts = reads.map((r) => {
      this.specOf(r.name);
      const part = { offset: stepReads, bytes: r.count * 4 };
      stepReads += bufferSize(r.count * 4);
      return part;
    });
    const parts = envs.map((_, j) => stepParts.map((p) => ({ offset: p.offset + j * stepReads, bytes: p.bytes })));
    const [from, to] = feed ? [this.specOf(feed.from), this.specOf(feed.to)] : [];
    const fedAt = (j: number): string | undefined => (feed && (j > 0 || fedFirst) ? feed.to : undefined);
    // each step's uniform (16 bytes) and then its inputs but the fed one; `widest`: a step's with every input
    const uploads: { offset: number; inputs: { name: string; offset: number; bytes: number }[] }[] = [];
    let uploadSize = 0;
    let widest = 0;
    envs.forEach((env, j) => {
      if (feed && from && to && (to.role !== 'input' || from.dtype !== to.dtype || elements(from, env) !== elements(to, env))) {
        throw new Error(`${this.plan.graph}: %${feed.from} cannot feed input %${feed.to}`);
      }
      const offset = uploadSize;
      uploadSize += 16;
      let width = 16;
      const inputs: { name: string; offset: number; bytes: number }[] = [];
      for (const name of this.plan.inputs) {
        const bytes = elements(this.specOf(name), env) * 4;
        width += bufferSize(bytes);
        if (name === fedAt(j)) continue;
        inputs.push({ name, offset: uploadSize, bytes });
        uploadSize += bufferSize(bytes);
      }
      widest = Math.max(widest, width);
      uploads.push({ offset, inputs });
    });
    const slot = this.recorded++ % RECORD_SLOTS;
    // a chained run's buffers are made for RUN_STEPS steps (each step's reads, its uniform and every input), so
    // that chained runs of any length reuse them
    const steps = feed ? RUN_STEPS : envs.length;
    const staging = this.slotBuffer(this.recordStaging, slot, Math.max(16, stepReads * steps), GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const upload = this.slotBuffer(this.recordUpload, slot, Math.max(uploadSize, widest * steps), GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST);
    const encoder = this.gpu.device.createCommandEncoder({ label: this.plan.graph });
    envs.forEach((env, j) => {
      encoder.copyBufferToBuffer(upload, uploads[j]!.offset, this.uniform, 0, 16);
      for (const u of uploads[j]!.inputs) if (u.bytes > 0) encoder.copyBufferToBuffer(upload, u.offset, this.bufferFor(this.specOf(u.name)), 0, u.bytes);
      this.encodePass(encoder, grids[j]!);
      if (from && to) encoder.copyBufferToBuffer(this.bufferFor(from), 0, this.bufferFor(to), 0, elements(to, env) * 4);
      reads.forEach((r, i) => encoder.copyBufferToBuffer(this.bufferFor(this.specOf(r.name)), r.start * 4, staging, parts[j]![i]!.offset, parts[j]![i]!.bytes));
    });
    return { envs, commands: encoder.finish(), staging, upload, uploadBytes: uploadSize, uploads, reads: parts };
  }

  /** The buffer of a record slot, made anew where the one there is smaller than `size`. */
  private slotBuffer(buffers: (GPUBuffer | undefined)[], slot: number, size: number, usage: number): GPUBuffer {
    const have = buffers[slot];
    if (have && have.size >= size) return have;
    if (have) this.gpu.destroyBuffer(have);
    return (buffers[slot] = this.gpu.createBuffer({ size: bufferSize(size), usage }));
  }

  /**
   * Writes the uniforms and inputs of a recorded run's steps (`inputs`, one record a step; the input a feed
   * writes is left out) in one write, and submits it.
   */
  submit(run: RecordedRun, inputs: readonly Readonly<Record<string, InputData>>[]): void {
    if (inputs.length !== run.envs.length) throw new Error(`${this.plan.graph}: ${inputs.length} steps' inputs for a run of ${run.envs.length}`);
    const bytes = new Uint8Array(run.uploadBytes);
    run.envs.forEach((env, j) => {
      const at = run.uploads[j]!;
      bytes.set(new Uint8Array(uniformWords(env).buffer), at.offset);
      const given = inputs[j]!;
      for (const name of Object.keys(given)) {
        if (this.plan.inputs.includes(name) && !at.inputs.some((u) => u.name === name))
          throw new Error(`${this.plan.graph}: input %${name} is fed by the step before`);
      }
      for (const u of at.inputs) {
        const data = this.checkedInput(u.name, given[u.name], env);
        bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), u.offset);
      }
    });
    this.gpu.device.queue.writeBuffer(run.upload, 0, bytes);
    this.gpu.device.queue.submit([run.commands]);
  }

  /**
   * The copies of a submitted run, a list of `reads` for each step. Some backends (OpenGL ES) wait for the GPU
   * inside mapAsync itself, so ask for a run's copies only once the runs after it that should overlap are submitted.
   */
  async readBack(run: RecordedRun): Promise<ArrayBuffer[][]> {
    await this.gpu.mapRead(run.staging, 0, run.staging.size);
    const out = run.reads.map((step) => step.map((r) => run.staging.getMappedRange(r.offset, bufferSize(r.bytes)).slice(0, r.bytes)));
    run.staging.unmap();
    this.gpu.check();
    return out;
  }

  private dispatch(pass: GPUComputePassEncoder, i: number, counts: [number, number, number], times = 1): void {
    const [x, y, z] = counts;
    if (x === 0 || y === 0 || z === 0) return;
    pass.setPipeline(this.pipelines[i]!.pipeline);
    pass.setBindGroup(0, this.bindGroups![i]!);
    for (let r = 0; r < times; r++) pass.dispatchWorkgroups(x, y, z);
  }

  /**
   * Records every kernel of the plan and submits them in parts, each submitted as soon as it is recorded: the
   * first FIRST_PART dispatches, then parts twice as long as the one before. Recording a 1B prefill's ~230
   * dispatches takes the host 0.7–1.5 ms (BENCHMARKS.md), which the GPU would otherwise wait out before its first
   * kernel; a short first part starts it early, and each later part is recorded while the GPU runs the one before.
   */
  run(env: A.Env, inputs: Readonly<Record<string, InputData>>): void {
    const grid = this.prepare(env, inputs);
    for (const kernels of runParts(grid.length)) this.gpu.device.queue.submit([this.encode(grid, undefined, kernels).finish()]);
  }

  /** An encoder holding the plan's kernels (`kernels`: [from, to), default all) in one compute pass, at the given workgroup counts. */
  private encode(grid: readonly [number, number, number][], timestampWrites?: GPUComputePassTimestampWrites, kernels?: [number, number]): GPUCommandEncoder {
    const encoder = this.gpu.device.createCommandEncoder({ label: this.plan.graph });
    this.encodePass(encoder, grid, timestampWrites, kernels);
    return encoder;
  }

  /** The plan's kernels (`kernels`: [from, to), default all) as one compute pass of `encoder`. */
  private encodePass(
    encoder: GPUCommandEncoder,
    grid: readonly [number, number, number][],
    timestampWrites?: GPUComputePassTimestampWrites,
    [from, to]: [number, number] = [0, grid.length],
  ): void {
    const pass = encoder.beginComputePass({ label: this.plan.graph, ...(timestampWrites ? { timestampWrites } : {}) });
    for (let i = from; i < to; i++) this.dispatch(pass, i, grid[i]!);
    pass.end();
  }

  /**
   * GPU seconds of each kernel of one run (the median of `trials`), for benchmarks. With timestamp queries,
   * each kernel runs in a pass of its own between two timestamps; without, each kernel's time is the host
   * clock's difference between submitting it `1 + repeat` times and once, each up to onSubmittedWorkDone.
   * Repeating a kernel repeats its writes, so buffers hold no meaningful values afterwards.
   */
  async profile(env: A.Env, inputs: Readonly<Record<string, InputData>>, trials = 5, repeat = 10): Promise<{ seconds: number[]; clock: 'timestamp' | 'host' }> {
    const grid = this.prepare(env, inputs);
    const device = this.gpu.device;
    const n = grid.length;
    const samples: number[][] = grid.map(() => []);
    if (this.gpu.features.has('timestamp-query')) {
      const stamps = this.passTimes(n);
      try {
        for (let t = 0; t <= trials; t++) {
          const encoder = device.createCommandEncoder();
          grid.forEach((counts, i) => {
            const pass = encoder.beginComputePass({ timestampWrites: stamps.writes(i) });
            this.dispatch(pass, i, counts);
            pass.end();
          });
          stamps.resolve(encoder);
          device.queue.submit([encoder.finish()]);
          const seconds = await stamps.read();
          // the first trial warms up
          if (t > 0) grid.forEach((_, i) => samples[i]!.push(seconds[i]!));
        }
      } finally {
        stamps.destroy();
      }
      this.gpu.check();
      return { seconds: samples.map(median), clock: 'timestamp' };
    }
    const timed = async (i: number, times: number): Promise<number> => {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      this.dispatch(pass, i, grid[i]!, times);
      pass.end();
      const t0 = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / 1000;
    };
    for (let t = 0; t <= trials; t++) {
      for (let i = 0; i < n; i++) {
        const once = await timed(i, 1);
        const more = await timed(i, 1 + repeat);
        if (t > 0) samples[i]!.push(Math.max(0, (more - once) / repeat));
      }
    }
    this.gpu.check();
    return { seconds: samples.map(median), clock: 'host' };
  }

  /**
   * Where one run's time goes, for benchmarks (medians of `trials` after a warm-up, each run alone on an idle
   * queue): the host's recording of it (encoding every dispatch into one pass and finishing the command
   * buffer), its queue.submit, and with timestamp queries the GPU's time from the pass's start to its end —
   * the kernels and whatever the device spends between them, which `profile` (a pass per kernel) leaves out.
   * The kernels named in `without` are left out of the run (what a kernel costs the pass in its place among the
   * others is the difference); what they would have written is not.
   */
  async runCost(env: A.Env, inputs: Readonly<Record<string, InputData>>, trials = 9, without: ReadonlySet<string> = new Set()): Promise<RunCost> {
    const grid = this.prepare(env, inputs).map((counts, i) => (without.has(this.plan.kernels[i]!.name) ? ([0, 0, 0] as [number, number, number]) : counts));
    const device = this.gpu.device;
    const stamps = this.gpu.features.has('timestamp-query') ? this.passTimes(1) : undefined;
    const record: number[] = [];
    const submit: number[] = [];
    const gpu: number[] = [];
    try {
      for (let t = 0; t <= trials; t++) {
        const t0 = performance.now();
        const encoder = this.encode(grid, stamps?.writes(0));
        stamps?.resolve(encoder);
        const commands = encoder.finish();
        const t1 = performance.now();
        device.queue.submit([commands]);
        const t2 = performance.now();
        if (stamps) {
          const [seconds] = await stamps.read();
          if (t > 0) gpu.push(seconds!);
        } else await device.queue.onSubmittedWorkDone();
        // the first trial warms up
        if (t > 0) {
          record.push((t1 - t0) / 1000);
          submit.push((t2 - t1) / 1000);
        }
      }
    } finally {
      stamps?.destroy();
    }
    this.gpu.check();
    const dispatches = grid.filter((counts) => counts.every((c) => c > 0)).length;
    return { record: median(record), submit: median(submit), ...(gpu.length ? { gpu: median(gpu) } : {}), dispatches };
  }

  /**
   * Timestamp queries for `passes` compute passes: the writes that time pass i, the commands that copy every
   * timestamp where `read` finds them once submitted, and each pass's seconds.
   */
  private passTimes(passes: number): {
    writes(i: number): GPUComputePassTimestampWrites;
    resolve(encoder: GPUCommandEncoder): void;
    read(): Promise<number[]>;
    destroy(): void;
  } {
    const querySet = this.gpu.device.createQuerySet({ type: 'timestamp', count: 2 * passes });
    const resolved = this.gpu.createBuffer({ size: 16 * passes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.gpu.createBuffer({ size: 16 * passes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    return {
      writes: (i) => ({ querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 }),
      resolve: (encoder) => {
        encoder.resolveQuerySet(querySet, 0, 2 * passes, resolved, 0);
        encoder.copyBufferToBuffer(resolved, 0, staging, 0, 16 * passes);
      },
      read: async () => {
        await this.gpu.mapRead(staging);
        const ns = new BigInt64Array(staging.getMappedRange().slice(0));
        staging.unmap();
        return Array.from({ length: passes }, (_, i) => Number(ns[2 * i + 1]! - ns[2 * i]!) / 1e9);
      },
      destroy: () => {
        querySet.destroy();
        this.gpu.destroyBuffer(resolved);
        this.gpu.destroyBuffer(staging);
      },
    };
  }

  /** Reads `count` float32 elements of a plan buffer from element `start`, after all submitted work. */
  async read(name: string, start: number, count: number): Promise<Float32Array> {
    const src = this.bufferFor(this.specOf(name));
    const bytes = count * 4;
    const size = bufferSize(bytes);
    // one staging buffer is kept and grown for the next read; a read while it is mapped gets its own
    const owned = !this.stagingBusy;
    if (owned && (this.staging?.size ?? 0) < size) {
      if (this.staging) this.gpu.destroyBuffer(this.staging);
      this.staging = undefined;
    }
    const staging = owned && this.staging ? this.staging : this.gpu.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    if (owned) {
      this.staging = staging;
      this.stagingBusy = true;
    }
    try {
      const encoder = this.gpu.device.createCommandEncoder();
      encoder.copyBufferToBuffer(src, start * 4, staging, 0, Math.ceil(bytes / 4) * 4);
      this.gpu.device.queue.submit([encoder.finish()]);
      await this.gpu.mapRead(staging, 0, size);
      const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      this.gpu.check();
      return out;
    } finally {
      if (owned) this.stagingBusy = false;
      else this.gpu.destroyBuffer(staging);
    }
  }

  destroy(): void {
    for (const slots of [this.recordStaging, this.recordUpload]) {
      for (const b of slots) if (b) this.gpu.destroyBuffer(b);
      slots.fill(undefined);
    }
    if (this.staging) this.gpu.destroyBuffer(this.staging);
    this.staging = undefined;
    for (const { buffer } of this.local.values()) this.gpu.destroyBuffer(buffer);
    this.local.clear();
    this.gpu.destroyBuffer(this.uniform);
  }
}
