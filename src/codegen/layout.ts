// The kernel that lays out blocks of a format on the device from their file bytes, for uploads (src/runtime/upload.ts):
// formats whose device layout moves each block's scale halfword to a plane of its own (WeightFormat.scaleHalfAt).
import type { WeightFormat } from '../weights/formats.js';

/** Invocations of the layout kernel's workgroup. */
export const LAY_OUT_THREADS = 256;

/**
 * The kernel that lays out n blocks of a scaleHalfAt format from their file bytes (`src`, from byte 0): an invocation
 * a word of plane 0 (the block's other bytes, in order), then one a word of plane 1 (the halfwords of two blocks).
 * Blocks are 2 bytes over whole words, so a block's bytes start on a word or halfway into one.
 */
export function layOutWgsl(format: WeightFormat): string {
  const B = format.blockBytes;
  const at = format.scaleHalfAt!;
  if (B % 4 !== 2 || (at !== 0 && at !== B - 2)) throw new Error(`${format.name} blocks cannot be laid out on the device`);
  const W = (B - 2) / 4;
  return `
struct Params { first: u32, n: u32, scales: u32, unused: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// the four bytes from byte o (o even)
fn wordAt(o: u32) -> u32 {
  if ((o & 3u) == 0u) { return src[o >> 2u]; }
  return (src[o >> 2u] >> 16u) | (src[(o >> 2u) + 1u] << 16u);
}

fn halfAt(o: u32) -> u32 { return (src[o >> 2u] >> (8u * (o & 3u))) & 0xffffu; }

@compute @workgroup_size(${LAY_OUT_THREADS})
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  let words = params.n * ${W}u;
  if (i < words) {
    let b = i / ${W}u;
    let j = i % ${W}u;
    dst[(params.first + b) * ${W}u + j] = wordAt(b * ${B}u + ${at === 0 ? '2u' : '0u'} + 4u * j);
    return;
  }
  let k = i - words;
  if (k < (params.n + 1u) / 2u) {
    let b = 2u * k;
    let high = select(0u, halfAt((b + 1u) * ${B}u + ${at}u), b + 1u < params.n);
    dst[params.scales + params.first / 2u + k] = halfAt(b * ${B}u + ${at}u) | (high << 16u);
  }
}`;
}
