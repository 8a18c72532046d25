// Where each plane of a weight's device buffer starts: a buffer of B blocks holds plane 0 of every block,
// then plane 1 of every block, …, each plane padded to whole words.
import type { WeightFormat } from './formats.js';

/** Byte offset of each plane, and the total, for a buffer of `blocks` blocks. */
export function planeOffsets(format: Pick<WeightFormat, 'planes'>, blocks: number): { offsets: number[]; bytes: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const p of format.planes) {
    offsets.push(at);
    at += Math.ceil((p * blocks) / 4) * 4;
  }
  return { offsets, bytes: at };
}

/** u32 word offset of plane p for `count` elements, as a WGSL literal. */
export function planeWord(format: Pick<WeightFormat, 'planes' | 'blockElements'>, plane: number, count: number): string {
  return `${planeOffsets(format, count / format.blockElements).offsets[plane]! / 4}u`;
}
