// The bench's timing rule, shared by weft and every peer: warm-ups (a least count and a least wall time),
// then the median of the timed runs.
import { describe, expect, it } from 'vitest';
import { median, timeRuns, WARMUP_RUNS } from '../src/peers/peer.js';

describe('timeRuns', () => {
  it('warms up WARMUP_RUNS times when that lasts long enough, then reports the median of the timed runs', async () => {
    const times = [50, 40, 30, 7, 3, 5];
    let calls = 0;
    const ms = await timeRuns(async () => times[calls++]!, 3, 0);
    expect(calls).toBe(WARMUP_RUNS + 3);
    expect(ms).toBe(median(times.slice(WARMUP_RUNS)));
  });

  it('keeps warming up until the least warm-up time has passed after the first run', async () => {
    const started = performance.now();
    const startedAt: number[] = [];
    await timeRuns(
      async () => {
        startedAt.push(performance.now() - started);
        // the first run is slow (compilation); its time does not count towards the warm-up
        await new Promise((resolve) => setTimeout(resolve, startedAt.length === 1 ? 300 : 10));
        return 1;
      },
      2,
      0.2,
    );
    expect(startedAt.length).toBeGreaterThan(WARMUP_RUNS + 2);
    // the first of the two timed runs starts once 0.2 s of warm-ups have passed after the first run
    const afterFirst = startedAt[1]!;
    expect(startedAt[startedAt.length - 2]! - afterFirst).toBeGreaterThanOrEqual(195);
    expect(startedAt[startedAt.length - 3]! - afterFirst).toBeLessThan(200);
  });

  it('leaves out runs that gave no time, and refuses when none did', async () => {
    let calls = 0;
    expect(await timeRuns(async () => (++calls > WARMUP_RUNS && calls % 2 === 0 ? 4 : undefined), 4, 0)).toBe(4);
    await expect(timeRuns(async () => undefined, 3, 0)).rejects.toThrow(/none of the 3 timed runs gave a time/);
  });
});
