/**
 * FrontSet.sync(): a caller gets a read of the log begun after its call, even while a read begun
 * before it (a poll) is in flight. The log here is a function whose answers the test controls; the
 * fronts are real TCP listeners on loopback.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FrontSet, type PlacedAddress } from '../../../agent/front/front-set';

describe('FrontSet.sync', () => {
  const sets: FrontSet[] = [];
  after(async () => {
    for (const s of sets) await s.close();
  });

  it('a sync called while an older read is in flight waits for a read begun after it', async () => {
    // The log's content, and each read's release: a read answers what the log held when it began.
    let log: PlacedAddress[] = [];
    const pending: (() => void)[] = [];
    let reads = 0;
    const set = new FrontSet({
      read: () => {
        reads++;
        const answer = [...log];
        return new Promise((resolve) => pending.push(() => resolve(answer)));
      },
    });
    sets.push(set);
    const first = set.sync();
    assert.equal(reads, 1);
    // The placement is committed while that read is in flight.
    log = [{ id: 'kv-demo', address: 'http://127.0.0.1:9' }];
    let secondDone = false;
    const second = set.sync().then(() => (secondDone = true));
    const third = set.sync();
    // The older read answers (without kv-demo): the second caller is not done with it.
    pending.shift()!();
    await first;
    await new Promise((r) => setImmediate(r));
    assert.equal(secondDone, false, 'the second sync resolved with a read begun before it was called');
    assert.equal(set.address('kv-demo'), undefined);
    // One more read, shared by the second and third callers.
    assert.equal(reads, 2);
    pending.shift()!();
    await Promise.all([second, third]);
    assert.equal(reads, 2);
    assert.ok(set.address('kv-demo'), 'the front of the workload committed before the call');
  });

  it('with no read in flight, a sync reads at once', async () => {
    let reads = 0;
    const set = new FrontSet({ read: async () => (reads++, []) });
    sets.push(set);
    await set.sync();
    await set.sync();
    assert.equal(reads, 2);
  });
});
