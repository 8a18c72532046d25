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

  it('keeps warming up until the least warm-up time has passed', async () => {
    const started = performance.now();
    const startedAt: number[] = [];
    await timeRuns(
      async () => {
        startedAt.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 10));
        return 1;
      },
      2,
      0.2,
    );
    expect(startedAt.length).toBeGreaterThan(WARMUP_RUNS + 2);
    // the first of the two timed runs starts once 0.2 s of warm-ups have passed
    expect(startedAt[startedAt.length - 2]!).toBeGreaterThanOrEqual(200);
    expect(startedAt[startedAt.length - 3]!).toBeLessThan(200);
  });

  it('leaves out runs that gave no time, and refuses when none did', async () => {
    let calls = 0;
    expect(await timeRuns(async () => (++calls > WARMUP_RUNS && calls % 2 === 0 ? 4 : undefined), 4, 0)).toBe(4);
    await expect(timeRuns(async () => undefined, 3, 0)).rejects.toThrow(/none of the 3 timed runs gave a time/);
  });
});
