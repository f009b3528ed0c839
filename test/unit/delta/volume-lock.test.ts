/** withVolumeLock (agent/capture/volume-journal.ts): one writer per volume at a time, in call order; other volumes do not wait. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { withVolumeLock } from '../../../agent/capture/volume-journal';

describe('withVolumeLock', () => {
  it('runs the holders of one volume one after another, in call order, even when one fails', async () => {
    const events: string[] = [];
    const job = (name: string, ms: number, fail = false) =>
      withVolumeLock('/v/a', async () => {
        events.push(`${name} in`);
        await sleep(ms);
        events.push(`${name} out`);
        if (fail) throw new Error(`${name} failed`);
        return name;
      });
    const results = await Promise.allSettled([job('first', 30, true), job('second', 5), job('third', 1)]);
    assert.deepEqual(events, ['first in', 'first out', 'second in', 'second out', 'third in', 'third out']);
    assert.equal(results[0]!.status, 'rejected');
    assert.deepEqual(results.slice(1).map((r) => (r.status === 'fulfilled' ? r.value : undefined)), ['second', 'third']);
  });

  it('another volume does not wait, and a waiter is called back while it waits', async () => {
    let releaseA!: () => void;
    const a = withVolumeLock('/v/b', () => new Promise<void>((r) => (releaseA = r)));
    await sleep(1);
    assert.equal(await withVolumeLock('/v/c', async () => 'c'), 'c', 'a lock on /v/b held /v/c up');
    let waits = 0;
    const b = withVolumeLock('/v/b', async () => 'b', () => waits++);
    await sleep(1100);
    assert.ok(waits >= 1, `onWait was not called during a 1.1 s wait (${waits})`);
    releaseA();
    await a;
    assert.equal(await b, 'b');
  });
});
