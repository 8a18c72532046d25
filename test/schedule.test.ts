// The schedule verifier: scheduled.ir passes; every barrier in it is needed and none may be added; missing
// RAW/WAR/WAW barriers, clobbered slots, in-place kernels, out-of-order members and mislabelled barriers fail.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseGraph } from '../src/ir/parse.js';
import { bufferOf, kernelAccess, verifySchedule } from '../src/ir/schedule.js';
import type { BarrierItem, Graph, KernelItem, ScheduleItem } from '../src/ir/types.js';
import { verifyGraph } from '../src/ir/verify.js';

const scheduled = parseGraph(readFileSync(new URL('./ir/hazards.ir', import.meta.url), 'utf8'));

/** Schedule positions of the barriers. */
const barrierAt = (g: Graph): number[] => g.schedule!.flatMap((item, i) => (item.item === 'barrier' ? [i] : []));
const withSchedule = (g: Graph, schedule: readonly ScheduleItem[]): Graph => ({ ...g, schedule });
const withSlot = (g: Graph, value: string, slot: string): Graph => ({ ...g, slots: { ...g.slots, [value]: slot } });
const editKernel = (g: Graph, name: string, edit: (k: KernelItem) => KernelItem): Graph =>
  withSchedule(
    g,
    g.schedule!.map((i) => (i.item === 'kernel' && i.name === name ? edit(i) : i)),
  );
const editBarrier = (g: Graph, n: number, edit: Partial<BarrierItem>): Graph =>
  withSchedule(
    g,
    g.schedule!.map((i, at) => (at === barrierAt(g)[n] ? { ...(i as BarrierItem), ...edit } : i)),
  );
const barrier = (producers: string[], consumers: string[], buffers: string[]): BarrierItem => ({
  item: 'barrier',
  reason: 'test',
  producers,
  consumers,
  buffers,
  unfused: 'test',
});

describe('a valid schedule', () => {
  it("hazards.ir passes; only its kernels' kinds fail verifyGraph", () => {
    expect(() => verifySchedule(scheduled)).not.toThrow();
    expect(() => verifyGraph(scheduled)).toThrow(/^graph layer0: kernel l0\.q: elementwise takes elementwise ops only, not slice %l0\.q$/);
  });

  it('reads and writes buffers: slots, kv_write caches, declarations; only values used outside are written', () => {
    const access = kernelAccess(scheduled);
    expect([...access.keys()]).toEqual(['embed', 'l0.qkv', 'l0.q', 'l0.kv', 'l0.attn', 'l0.out']);
    expect(access.get('l0.qkv')).toEqual({ reads: new Set(['s0', 'layers.0.attention_norm', 'layers.0.wqkv']), writes: new Set(['s1']) });
    expect(access.get('l0.kv')).toEqual({ reads: new Set(['s1', 'rope.cos', 'rope.sin']), writes: new Set(['layers.0.k_cache', 'layers.0.v_cache']) });
    expect(access.get('l0.attn')).toEqual({ reads: new Set(['s2', 'layers.0.k_cache', 'layers.0.v_cache']), writes: new Set(['s1']) });
    expect(bufferOf(scheduled, 'l0.keys')).toBe('layers.0.k_cache');
    expect(bufferOf(scheduled, 'l0.k')).toBe('l0.k');
    expect(bufferOf(scheduled, 'tokens')).toBe('tokens');
  });

  it('a kv_write writes its cache even when its result is unused', () => {
    const g = parseGraph(
      'graph g(T, P) {\n  input %x: f32[T, 8]\n  state %c: f32[64, 8]\n' +
        '  kernel w: kv_write {\n    %k = kv_write(%c, %x) : f32[P+T, 8]\n  }\n  output %x\n}\n',
    );
    expect(kernelAccess(g).get('w')).toEqual({ reads: new Set(['x']), writes: new Set(['c']) });
  });

  it('a graph without schedule is not checked', () => {
    const { schedule: _, ...loose } = scheduled;
    expect(() => verifySchedule(loose)).not.toThrow();
    expect(kernelAccess(loose).size).toBe(0);
  });
});

describe('barriers', () => {
  const expected = [
    /^graph layer0: kernel l0\.qkv reads @s0 written by embed with no barrier between them \(read-after-write\)$/,
    /^graph layer0: kernel l0\.q reads @s1 written by l0\.qkv with no barrier between them \(read-after-write\)$/,
    /^graph layer0: kernel l0\.attn reads @s2 written by l0\.q with no barrier between them \(read-after-write\)$/,
    /^graph layer0: kernel l0\.out reads @s1 written by l0\.attn with no barrier between them \(read-after-write\)$/,
  ];

  it('hazards.ir has the barriers this test expects', () => {
    expect(barrierAt(scheduled)).toHaveLength(expected.length);
  });

  it.each(expected.map((message, n) => [n, message] as const))('removing barrier %i is rejected', (n, message) => {
    const at = barrierAt(scheduled)[n]!;
    const g = withSchedule(
      scheduled,
      scheduled.schedule!.filter((_, i) => i !== at),
    );
    expect(() => verifyGraph(g)).toThrow(message);
  });

  it('rejects a barrier between independent kernels', () => {
    const at = scheduled.schedule!.findIndex((i) => i.item === 'kernel' && i.name === 'l0.kv');
    const schedule = [...scheduled.schedule!.slice(0, at), barrier([], [], []), ...scheduled.schedule!.slice(at)];
    expect(() => verifyGraph(withSchedule(scheduled, schedule))).toThrow(
      /^graph layer0: barrier 2 \(between kernels l0\.q and l0\.kv\) guards nothing: no hazard between kernels l0\.q and l0\.kv$/,
    );
  });

  it('rejects a missing write-after-read barrier', () => {
    const g = parseGraph(`graph g(T) {
  input %x: f32[T, 4]
  kernel k0: silu {
    %a = silu(%x) : f32[T, 4] @s0
  }
  barrier {reason="k1 reads %a", producers=[k0], consumers=[k1], buffers=[@s0], unfused=""}
  kernel k1: silu {
    %b = silu(%a) : f32[T, 4] @s1
  }
  kernel k2: silu {
    %c = silu(%x) : f32[T, 4] @s0
  }
  barrier {reason="k3 reads %b and %c", producers=[k1, k2], consumers=[k3], buffers=[@s1, @s0], unfused=""}
  kernel k3: add {
    %d = add(%b, %c) : f32[T, 4] @s2
  }
  output %d
}
`);
    expect(() => verifyGraph(g)).toThrow(/^graph g: kernel k2 writes @s0 read by k1 with no barrier between them \(write-after-read\)$/);
  });

  it('rejects a missing write-after-write barrier', () => {
    const g = parseGraph(
      'graph g(T, P) {\n  input %x: f32[T, 8]\n  state %c: f32[64, 8]\n' +
        '  kernel w0: kv_write {\n    %k0 = kv_write(%c, %x) : f32[P+T, 8]\n  }\n' +
        '  kernel w1: kv_write {\n    %k1 = kv_write(%c, %x) : f32[P+T, 8]\n  }\n  output %x\n}\n',
    );
    expect(() => verifyGraph(g)).toThrow(/^graph g: kernel w1 writes %c also written by w0 with no barrier between them \(write-after-write\)$/);
  });

  it('rejects barriers that list kernels or buffers with no hazard across them', () => {
    expect(() => verifyGraph(editBarrier(scheduled, 0, { producers: ['l0.qkv'] }))).toThrow(
      /^graph layer0: barrier 0 lists producer l0\.qkv, which is not among the kernels just before it \(embed\)$/,
    );
    expect(() => verifyGraph(editBarrier(scheduled, 0, { consumers: ['l0.attn'] }))).toThrow(
      /^graph layer0: barrier 0 lists consumer l0\.attn, which is not among the kernels just after it \(l0\.qkv\)$/,
    );
    expect(() => verifyGraph(editBarrier(scheduled, 1, { producers: ['nope'] }))).toThrow(
      /^graph layer0: barrier 1 lists producer nope, which is not a kernel$/,
    );
    expect(() => verifyGraph(editBarrier(scheduled, 0, { buffers: ['s0', 's1'] }))).toThrow(
      /^graph layer0: barrier 0 lists buffer @s1, which no hazard across it involves \(hazards on: @s0\)$/,
    );
    const g = parseGraph(`graph g(T) {
  input %x: f32[T, 4]
  kernel k0: silu {
    %a = silu(%x) : f32[T, 4] @s0
  }
  kernel k1: silu {
    %b = silu(%x) : f32[T, 4] @s1
  }
  barrier {reason="k2 reads %a", producers=[k0, k1], consumers=[k2], buffers=[@s0], unfused=""}
  kernel k2: silu {
    %c = silu(%a) : f32[T, 4] @s2
  }
  output %b
  output %c
}
`);
    expect(() => verifyGraph(g)).toThrow(/^graph g: barrier 0 lists producer k1, which has no hazard across it \(producers with one: k0\)$/);
  });

  it.each([
    ['first', (s: readonly ScheduleItem[]) => [barrier([], [], []), ...s], /^graph layer0: the schedule starts with a barrier$/],
    ['last', (s: readonly ScheduleItem[]) => [...s, barrier([], [], [])], /^graph layer0: the schedule ends with a barrier$/],
    ['twice in a row', (s: readonly ScheduleItem[]) => [s[0]!, s[1]!, s[1]!, ...s.slice(2)], /^graph layer0: barrier 1 directly follows barrier 0$/],
  ])('rejects a barrier %s', (_what, edit, message) => {
    expect(() => verifyGraph(withSchedule(scheduled, edit(scheduled.schedule!)))).toThrow(message);
  });
});

describe('buffers', () => {
  it('rejects a slot clobbered before its value is read', () => {
    expect(() => verifyGraph(withSlot(scheduled, 'l0.qr', 's0'))).toThrow(
      /^graph layer0: @s0 is clobbered: kernel l0\.q writes %l0\.qr into it after kernel embed wrote %x there and before kernel l0\.out reads it$/,
    );
  });

  it('rejects an output clobbered before the graph ends', () => {
    const g = parseGraph(`graph g(T) {
  input %x: f32[T, 4]
  kernel k0: silu {
    %y = silu(%x) : f32[T, 4] @s0
  }
  barrier {reason="k1 reads %y", producers=[k0], consumers=[k1], buffers=[@s0], unfused=""}
  kernel k1: silu {
    %z = silu(%y) : f32[T, 4] @s1
  }
  barrier {reason="k2 reads %z and overwrites @s0", producers=[k1], consumers=[k2], buffers=[@s1, @s0], unfused=""}
  kernel k2: silu {
    %w = silu(%z) : f32[T, 4] @s0
  }
  output %y
  output %w
}
`);
    expect(() => verifyGraph(g)).toThrow(
      /^graph g: @s0 is clobbered: kernel k2 writes %w into it after kernel k0 wrote %y there and before the graph outputs it$/,
    );
  });

  it('rejects two values written into one slot by one kernel', () => {
    const g = { ...withSlot(scheduled, 'l0.o', 's2'), outputs: [...scheduled.outputs, 'l0.o'] };
    expect(() => verifyGraph(g)).toThrow(/^graph layer0: kernel l0\.out writes both %l0\.o and %x\.1 into @s2$/);
  });

  it('rejects a kernel that reads and writes one buffer', () => {
    expect(() => verifyGraph(withSlot(scheduled, 'x.1', 's0'))).toThrow(/^graph layer0: kernel l0\.out reads and writes @s0$/);
  });
});

describe('kernels', () => {
  it('rejects members out of node order', () => {
    const g = editKernel(scheduled, 'l0.qkv', (k) => ({ ...k, members: [...k.members].reverse() }));
    expect(() => verifyGraph(g)).toThrow(/^graph layer0: kernel l0\.qkv schedules %l0\.qkv before %l0\.attn_in \(kernel l0\.qkv\), against node order$/);
  });

  it('rejects kernels out of node order', () => {
    const s = scheduled.schedule!;
    const q = s.findIndex((i) => i.item === 'kernel' && i.name === 'l0.q');
    const swapped = s.map((item, i) => (i === q ? s[q + 1]! : i === q + 1 ? s[q]! : item));
    expect(() => verifyGraph(withSchedule(scheduled, swapped))).toThrow(
      /^graph layer0: kernel l0\.kv schedules %l0\.k before %l0\.q \(kernel l0\.q\), against node order$/,
    );
  });

  it.each([
    ['a node in no kernel', (k: KernelItem) => ({ ...k, members: k.members.slice(1) }), /^graph layer0: node %l0\.attn_in is in no kernel$/],
    [
      'a node listed twice',
      (k: KernelItem) => ({ ...k, members: [...k.members, k.members[0]!] }),
      /^graph layer0: node %l0\.attn_in is listed twice in kernel l0\.qkv$/,
    ],
    ['an unknown member', (k: KernelItem) => ({ ...k, members: [...k.members, 'nope'] }), /^graph layer0: kernel l0\.qkv: %nope is not a node$/],
    ['an empty kernel', (k: KernelItem) => ({ ...k, members: [] }), /^graph layer0: kernel l0\.qkv is empty$/],
    ['a duplicate kernel name', (k: KernelItem) => ({ ...k, name: 'embed' }), /^graph layer0: kernel name embed is used twice$/],
  ])('rejects %s', (_what, edit, message) => {
    expect(() => verifyGraph(editKernel(scheduled, 'l0.qkv', edit))).toThrow(message);
  });

  it('rejects a node in two kernels', () => {
    const g = editKernel(scheduled, 'l0.q', (k) => ({ ...k, members: ['l0.qkv', ...k.members] }));
    expect(() => verifyGraph(g)).toThrow(/^graph layer0: node %l0\.qkv is in kernels l0\.qkv and l0\.q$/);
  });
});
