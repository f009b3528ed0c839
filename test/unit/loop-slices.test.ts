/**
 * LoopSlices (agent/loop-slices.ts): long synchronous work that asks `due()` between small steps
 * and `pause()`s when a slice is used up lets timers (a front's, a transfer's) run meanwhile;
 * the same work without it holds them until it ends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoopSlices } from '../../agent/loop-slices';

/** Busy for `ms`, in steps of ~0.1 ms, pausing per `slices` if given; how often a 1 ms interval fired meanwhile. */
async function busy(ms: number, slices?: LoopSlices): Promise<number> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const step = performance.now() + 0.1;
      while (performance.now() < step);
      if (slices?.due()) await slices.pause();
    }
    return ticks;
  } finally {
    clearInterval(timer);
  }
}

describe('LoopSlices', () => {
  it('is due once its slice is used up, and a pause starts the next one', async () => {
    const s = new LoopSlices(30);
    assert.equal(s.due(), false);
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(s.due(), true);
    await s.pause();
    assert.equal(s.due(), false);
  });

  it('gives timers turns during long synchronous work; without it they wait for its end', async () => {
    assert.equal(await busy(60), 0, 'no turn at all without slices');
    assert.ok((await busy(60, new LoopSlices(5))) >= 3, 'timers ran between the slices');
  });
});
