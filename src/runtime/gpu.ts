// Opens a Dawn device: picks the backend (asked for, hinted by WEBGPU_BACKEND, or the first that works),
// requests the adapter's own limits, and turns validation errors and device loss into thrown errors; counts the
// buffers it creates that are not destroyed yet.
import { existsSync, readdirSync } from 'node:fs';
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

export interface GpuOptions {
  /** Dawn backend name: vulkan, opengles, opengl, metal, d3d12, null… */
  readonly backend?: string;
  /** Dawn toggles to enable (e.g. disable_robustness, skip_validation) */
  readonly toggles?: readonly string[];
}

export interface Gpu {
  readonly instance: GPU;
  readonly device: GPUDevice;
  readonly backend: string;
  readonly adapter: string;
  /** a fallback adapter (a CPU implementation such as SwiftShader), where workgroup barriers are slow */
  readonly fallback: boolean;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  /**
   * Kernels may use subgroup operations: the device has the `subgroups` feature, its subgroups are at most
   * SUBGROUP_MAX_SIZE wide, and they hold consecutive local invocation indices (checked on the device).
   */
  readonly subgroups: boolean;
  /**
   * The device's subgroup matrix configurations (Dawn's `chromium-experimental-subgroup-matrix`, offered with the
   * toggles allow_unsafe_apis and use_vulkan_memory_model; none without it), and its subgroup size where it has one size only
   */
  readonly subgroupMatrix: {
    readonly configs: readonly SubgroupMatrixConfig[];
    readonly subgroupSize?: number;
    /** how its i8 16×16×32 loads count offsets and strides in packed int8 words (a probe; absent where no reading gives exact products) */
    readonly int8Unit?: Int8MatrixUnit;
  };
  /** throws the device's loss (every time, once it is lost), else the first validation error seen since the last check */
  check(): void;
  /** maps a buffer for reading; a device lost meanwhile is thrown as its loss, not as the failed mapping */
  mapRead(buffer: GPUBuffer, offset?: number, size?: number): Promise<void>;
  /** a buffer counted in `live` until destroyBuffer */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer;
  destroyBuffer(buffer: GPUBuffer): void;
  /** the buffers createBuffer made that are not destroyed, and their bytes */
  readonly live: { readonly buffers: number; readonly bytes: number };
  destroy(): void;
}

const compatibilityBackends = new Set(['opengles', 'opengl']);

/** Chromium's SwiftShader Vulkan driver, the CPU fallback on machines without a GPU driver. */
export const swiftShaderIcd = '/usr/lib/chromium/vk_swiftshader_icd.json';

const systemIcdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/** Points the Vulkan loader at SwiftShader when nothing else names a driver and no system driver is installed. */
function useSwiftShaderWithoutDriver(): void {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES || !existsSync(swiftShaderIcd)) return;
  const hasSystemDriver = systemIcdDirs.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
  if (!hasSystemDriver) process.env.VK_ICD_FILENAMES = swiftShaderIcd;
}

/** Limits weft never uses; requesting the adapter's values only makes Dawn's GL backend warn. */
const unusedLimits = new Set(['maxDynamicUniformBuffersPerPipelineLayout', 'maxDynamicStorageBuffersPerPipelineLayout']);

function limitsOf(adapter: GPUAdapter, skip: ReadonlySet<string> = unusedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key in adapter.limits) {
    if (skip.has(key)) continue;
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') out[key] = v;
  }
  return out;
}

interface Found {
  readonly instance: GPU;
  readonly adapter: GPUAdapter;
  readonly backend: string;
}

/**
 * Dawn toggles a fallback adapter's devices run without. SwiftShader zeroes workgroup memory for
 * VK_KHR_zero_initialize_workgroup_memory with code it unrolls over every element: a pipeline whose kernel
 * holds 12 KiB of workgroup memory (a tiled matmul) took 1.2 s to create, and a 260K-parameter model's 16
 * pipelines 6.9 s. Without the extension Tint zeroes the same memory with a loop in the shader (64 ms for that
 * pipeline): the memory is still zeroed, only by other code. GPU drivers keep the extension.
 */
const fallbackDisabledToggles: readonly string[] = ['use_vulkan_zero_initialize_workgroup_memory_extension'];

/**
 * Dawn toggles every device runs without: `timestamp_quantization` rounds timestamp queries down to multiples of
 * 65.536 µs (a browser's guard against timing attacks; seen on an H100, BENCHMARKS.md), which leaves the
 * benchmarks' kernel times as artefacts of that grid. A Node process has no page to guard.
 */
const disabledToggles: readonly string[] = ['timestamp_quantization'];

function createInstance(backend: string | undefined, toggles: readonly string[], disabled: readonly string[] = []): GPU {
  const off = [...disabledToggles, ...disabled];
  return create([
    ...(backend ? [`backend=${backend}`] : []),
    ...(toggles.length ? [`enable-dawn-features=${toggles.join(',')}`] : []),
    `disable-dawn-features=${off.join(',')}`,
  ]);
}

async function tryBackend(backend: string | undefined, toggles: readonly string[]): Promise<Found | string> {
  const featureLevel = backend && compatibilityBackends.has(backend) ? 'compatibility' : 'core';
  const request = (instance: GPU): Promise<GPUAdapter | null> => instance.requestAdapter({ featureLevel } as GPURequestAdapterOptions).catch(() => null);
  let navigatorGpu: GPU;
  try {
    navigatorGpu = createInstance(backend, toggles);
  } catch (e) {
    return `${backend ?? 'default'}: ${(e as Error).message.split('\n')[0]}`;
  }
  const adapter = await request(navigatorGpu);
  if (!adapter) return `${backend ?? 'default'}: no adapter`;
  if (isFallback(adapter)) {
    // toggles are the instance's: a fallback adapter is asked for again from an instance without those it runs without
    const instance = createInstance(backend, toggles, fallbackDisabledToggles);
    const again = await request(instance);
    if (again && isFallback(again)) return { instance, adapter: again, backend: backend ?? 'default' };
  }
  return { instance: navigatorGpu, adapter, backend: backend ?? 'default' };
}

/** The widest subgroup weft's subgroup kernels handle: one subgroup never spans two of their 64-lane groups. */
export const SUBGROUP_MAX_SIZE = 64;

/** The most invocations a workgroup of a subgroup kernel has. */
const SUBGROUP_PROBE_INVOCATIONS = 256;

/**
 * Whether the subgroups of a 256-invocation workgroup are all one size, 4 to SUBGROUP_MAX_SIZE (a power of two), and each
 * holds the consecutive local invocation indices from a multiple of its size, as the subgroup kernels
 * assume (WGSL leaves the layout to the implementation). Each invocation writes its subgroup's size, its
 * index in it, and the least and greatest local invocation index in it.
 */
async function subgroupsInOrder(device: GPUDevice): Promise<boolean> {
  const n = SUBGROUP_PROBE_INVOCATIONS;
  const out = await probeKernel(
    device,
    `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<vec4<u32>, ${n}>;
@compute @workgroup_size(${n})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(subgroup_size) size: u32, @builtin(subgroup_invocation_id) id: u32) {
  out[tid] = vec4<u32>(size, id, subgroupMin(tid), subgroupMax(tid));
}`,
    n * 16,
  );
  if (!out) return false;
  const v = new Uint32Array(out);
  for (let t = 0; t < n; t++) {
    const [size, id, least, greatest] = [v[4 * t]!, v[4 * t + 1]!, v[4 * t + 2]!, v[4 * t + 3]!];
    const ordered = id === t % size && least === t - id && greatest === t - id + size - 1;
    if (size !== v[0] || size < 4 || size > SUBGROUP_MAX_SIZE || (size & (size - 1)) !== 0 || !ordered) return false;
  }
  return true;
}

/**
 * One workgroup of a probe kernel `code` (binding 0 its `input` where it has one, then its output of `outBytes`), and
 * the output it wrote; undefined where the kernel does not validate on the device.
 */
async function probeKernel(device: GPUDevice, code: string, outBytes: number, input?: Int8Array<ArrayBuffer>): Promise<ArrayBuffer | undefined> {
  const src = input && device.createBuffer({ size: input.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const out = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    if (src) device.queue.writeBuffer(src, 0, input!);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    const buffers = src ? [src, out] : [out];
    pass.setBindGroup(
      0,
      device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) }),
    );
    pass.dispatchWorkgroups(1);
    pass.end();
    encoder.copyBufferToBuffer(out, 0, read, 0, outBytes);
    device.queue.submit([encoder.finish()]);
    if (await device.popErrorScope()) return undefined;
    await read.mapAsync(GPUMapMode.READ);
    const bytes = read.getMappedRange().slice(0);
    read.unmap();
    return bytes;
  } finally {
    src?.destroy();
    out.destroy();
    read.destroy();
  }
}

const SUBGROUP_MATRIX = 'chromium-experimental-subgroup-matrix';

/** A subgroup matrix configuration: component and result types, M × N results over K. */
export interface SubgroupMatrixConfig {
  readonly componentType: string;
  readonly resultComponentType: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
}

/** Dawn's additions to GPUAdapterInfo (not in @webgpu/types yet). */
interface DawnAdapterInfo {
  readonly subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[];
  readonly subgroupMinSize?: number;
  readonly subgroupMaxSize?: number;
}

async function subgroupMatrices(adapter: GPUAdapter, device: GPUDevice): Promise<Gpu['subgroupMatrix']> {
  const info = adapter.info as GPUAdapterInfo & DawnAdapterInfo;
  const subgroupSize = info.subgroupMinSize !== undefined && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : undefined;
  // plain copies: Dawn's objects go with the adapter
  const configs = device.features.has(SUBGROUP_MATRIX)
    ? (info.subgroupMatrixConfigs ?? []).map(({ componentType, resultComponentType, M, N, K }) => ({ componentType, resultComponentType, M, N, K }))
    : [];
  const i8 = configs.some((c) => c.componentType === 'i8' && c.resultComponentType === 'i32' && c.M === 16 && c.N === 16 && c.K === 32);
  const unit = i8 && subgroupSize !== undefined ? await int8MatrixUnit(device, subgroupSize) : undefined;
  return { configs, ...(subgroupSize !== undefined ? { subgroupSize } : {}), ...(unit ? { int8Unit: unit } : {}) };
}

/**
 * How the device's i8 subgroup matrix loads count their offset and stride in an array<i32> of packed int8: in int8
 * elements, or in the array's i32 words. The extension counts elements of the matrix's component type, but Tint's
 * lowering has counted them both ways, and a tile built on the wrong one multiplies the wrong bytes without any
 * error.
 */
export type Int8MatrixUnit = 'int8' | 'word';

/** Words of the unit probe's workgroup array: room for either reading of the other's offsets and strides. */
const UNIT_PROBE_WORDS = 1040;

/**
 * The unit probe's kernel over `words` words of int8 (8 of padding, then the two matrices) for subgroups of
 * `subgroupSize`: their product loaded with offsets and strides in int8 elements to out[0..256), then in words to
 * out[256..512) (row-major). Its workgroup array has room for either reading of the other's offsets.
 */
export function int8MatrixUnitProbe(words: number, subgroupSize: number): string {
  return `enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> src: array<i32, ${words}>;
@group(0) @binding(1) var<storage, read_write> out: array<i32, 512>;
var<workgroup> m: array<i32, ${UNIT_PROBE_WORDS}>;
@compute @workgroup_size(${subgroupSize})
fn main(@builtin(local_invocation_index) tid: u32) {
  for (var i = tid; i < ${words}u; i += ${subgroupSize}u) { m[i] = src[i]; }
  workgroupBarrier();
  let l0 = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>(&m, 32u, 32u);
  let r0 = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, col_major>(&m, 544u, 32u);
  subgroupMatrixStore<row_major>(&out, 0u, subgroupMatrixMultiply<i32>(l0, r0), 16u);
  let l1 = subgroupMatrixLoad<subgroup_matrix_left<i8, 32, 16>, row_major>(&m, 8u, 8u);
  let r1 = subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>, col_major>(&m, 136u, 8u);
  subgroupMatrixStore<row_major>(&out, 256u, subgroupMatrixMultiply<i32>(l1, r1), 16u);
}`;
}

/**
 * The unit under which a 16×32 left (row-major) and a 32×16 right (column-major) i8 matrix, loaded from workgroup
 * memory after 8 words of padding, multiply to the CPU's product; undefined where neither reading does.
 */
async function int8MatrixUnit(device: GPUDevice, subgroupSize: number): Promise<Int8MatrixUnit | undefined> {
  // 8 pad words, the left matrix's 16 rows of 8 words, the right's 16 columns of 8 words: small distinct int8
  const words = 8 + 2 * 16 * 8;
  const bytes = new Int8Array(4 * words).map((_, i) => (i < 32 ? 0 : ((i * 37 + 11) % 23) - 11));
  const left = (r: number, k: number): number => bytes[32 + 32 * r + k]!;
  const right = (k: number, c: number): number => bytes[32 + 512 + 32 * c + k]!;
  const out = await probeKernel(device, int8MatrixUnitProbe(words, subgroupSize), 512 * 4, bytes);
  if (!out) return undefined;
  const got = new Int32Array(out);
  const exact = (at: number): boolean => {
    for (let r = 0; r < 16; r++)
      for (let c = 0; c < 16; c++) {
        let sum = 0;
        for (let k = 0; k < 32; k++) sum += left(r, k) * right(k, c);
        if (got[at + 16 * r + c] !== sum) return false;
      }
    return true;
  };
  return exact(0) ? 'int8' : exact(256) ? 'word' : undefined;
}

/** The adapter of the backend asked for (`backend`, else WEBGPU_BACKEND), else of the first that gives one: the default, then opengles. */
async function findAdapter(options: GpuOptions): Promise<Found> {
  useSwiftShaderWithoutDriver();
  const hint = process.env.WEBGPU_BACKEND;
  const candidates: (string | undefined)[] = options.backend ? [options.backend] : hint ? [hint] : [undefined, 'opengles'];
  const tried: string[] = [];
  for (const b of candidates) {
    const r = await tryBackend(b, options.toggles ?? []);
    if (typeof r !== 'string') return r;
    tried.push(r);
  }
  throw new Error(`no WebGPU adapter (${tried.join('; ')}); without a GPU, install Debian's chromium and libvulkan1 ` + `(SwiftShader, ${swiftShaderIcd})`);
}

/** An adapter's name as weft reports it: vendor, architecture, device and description, where given. */
function adapterName(adapter: GPUAdapter): string {
  const info = adapter.info;
  return [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') || 'unknown adapter';
}

function isFallback(adapter: GPUAdapter): boolean {
  return (adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
}

/** An adapter without a device: what openGpu would open, for its limits and features. */
export interface Adapter {
  readonly backend: string;
  readonly adapter: string;
  readonly fallback: boolean;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
}

/** The adapter openGpu would open (same backend choice), without requesting a device. */
export async function openAdapter(options: GpuOptions = {}): Promise<Adapter> {
  const { adapter, backend } = await findAdapter(options);
  // a plain copy: Dawn's own object goes with the instance
  const limits = limitsOf(adapter, new Set()) as unknown as GPUSupportedLimits;
  return { backend, adapter: adapterName(adapter), fallback: isFallback(adapter), limits, features: new Set([...adapter.features]) };
}

/** How long a failed mapping waits for the device's lost promise, to report the loss rather than the mapping. */
const LOST_WAIT_MS = 1000;

export async function openGpu(options: GpuOptions = {}): Promise<Gpu> {
  const { instance, adapter, backend } = await findAdapter(options);
  // timestamp queries time kernels in benchmarks where the adapter has them; subgroups speed up reductions
  const requiredFeatures = (['timestamp-query', 'subgroups', SUBGROUP_MATRIX] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits: limitsOf(adapter), requiredFeatures });
  let pending: string | undefined;
  let lost: string | undefined;
  let destroyed = false;
  const live = new Set<GPUBuffer>();
  device.onuncapturederror = (ev) => {
    pending ??= `WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message.split('\n')[0]}`;
  };
  const lostInfo = device.lost.then((info) => {
    if (!destroyed) lost = `the GPU device was lost: ${(info.message || info.reason || 'no reason given').split('\n')[0]}`;
  });
  const check = (): void => {
    if (lost) throw new Error(lost);
    if (pending) {
      const p = pending;
      pending = undefined;
      throw new Error(p);
    }
  };
  return {
    // The instance must outlive the device: dawn.node tears Dawn down when it is collected.
    instance,
    device,
    backend,
    adapter: adapterName(adapter),
    fallback: isFallback(adapter),
    limits: device.limits,
    features: new Set([...device.features]),
    subgroups: device.features.has('subgroups') && (await subgroupsInOrder(device)),
    subgroupMatrix: await subgroupMatrices(adapter, device),
    check,
    async mapRead(buffer, offset, size) {
      try {
        await buffer.mapAsync(GPUMapMode.READ, offset, size);
      } catch (e) {
        // a lost device rejects the mapping before (or just after) its lost promise settles
        await Promise.race([lostInfo, new Promise((resolve) => setTimeout(resolve, LOST_WAIT_MS))]);
        check();
        throw new Error(`reading back from the GPU failed: ${(e as Error).name}${(e as Error).message ? `: ${(e as Error).message.split('\n')[0]}` : ''}`);
      }
    },
    createBuffer(descriptor) {
      const buffer = device.createBuffer(descriptor);
      live.add(buffer);
      return buffer;
    },
    destroyBuffer(buffer) {
      live.delete(buffer);
      buffer.destroy();
    },
    get live() {
      let bytes = 0;
      for (const b of live) bytes += b.size;
      return { buffers: live.size, bytes };
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      device.destroy();
    },
  };
}
