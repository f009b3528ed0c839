/** Quorum math against dumb references (after etcd-io/raft quorum/quick_test.go), plus protocol choice and timeouts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chooseProtocol } from '../../../core/consensus/protocol-choice';
import { bftSizes, committedIndex, majority, maxFaulty, sitesForFaults } from '../../../core/consensus/quorum';
import { describeQuorumWait, quorumWait } from '../../../core/consensus/quorum-wait';
import { roundTimeoutTicks } from '../../../core/consensus/timeouts';

/** The dumb way: the largest index that at least a majority has acked, trying every candidate. */
function dumbCommittedIndex(voters: string[], acked: Record<string, number>): number {
  const candidates = [0, ...voters.map((v) => acked[v] ?? 0)];
  let best = 0;
  for (const c of candidates) {
    const count = voters.filter((v) => (acked[v] ?? 0) >= c).length;
    if (count * 2 > voters.length && c > best) best = c;
  }
  return best;
}

test('committedIndex matches the dumb reference over 50,000 random cases', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 9 }).chain((n) =>
        fc.tuple(fc.constant(Array.from({ length: n }, (_, i) => `s${i}`)), fc.array(fc.option(fc.nat(20), { nil: undefined }), { minLength: n, maxLength: n })),
      ),
      ([voters, acks]) => {
        const acked: Record<string, number> = {};
        voters.forEach((v, i) => {
          if (acks[i] !== undefined) acked[v] = acks[i] as number;
        });
        acked['not-a-voter'] = 1000; // acks from non-voters never count
        assert.equal(committedIndex(voters, acked), dumbCommittedIndex(voters, acked));
      },
    ),
    { seed: 50000, numRuns: 50_000 },
  );
});

test('BFT sizes: quorums of n sites meet in at least f+1 sites and n-f sites can always form one', () => {
  for (let n = 1; n <= 100; n++) {
    const { f, quorum } = bftSizes(n);
    // Dumb: the largest f with 3f+1 ≤ n, and the smallest q with 2q - n ≥ f + 1.
    let df = 0;
    while (3 * (df + 1) + 1 <= n) df++;
    let dq = 1;
    while (2 * dq - n < df + 1) dq++;
    assert.equal(f, df, `f for n=${n}`);
    assert.equal(maxFaulty(n), df);
    assert.equal(quorum, dq, `quorum for n=${n}`);
    assert.ok(quorum <= n - f, `n=${n}: ${n - f} honest sites must be able to form a quorum of ${quorum}`);
    if (n === 3 * f + 1) assert.equal(quorum, 2 * f + 1, `n=${n}=3f+1: quorum is 2f+1`);
  }
  assert.equal(sitesForFaults(2), 7);
  assert.equal(majority(4), 3);
  assert.throws(() => bftSizes(0), /whole number of sites ≥ 1; got 0/);
  assert.throws(() => committedIndex([], {}), /at least one voter/);
});

test('chooseProtocol: CFT only when every touched site is trusted', () => {
  const trust: Record<string, 'trusted' | 'untrusted'> = { 'dc:paris': 'trusted', 'aws:us-east-1': 'trusted', 'gcp:x': 'untrusted' };
  const of = (s: string) => trust[s];
  assert.equal(chooseProtocol(['dc:paris', 'aws:us-east-1'], of), 'cft');
  assert.equal(chooseProtocol(['dc:paris', 'gcp:x'], of), 'bft');
  assert.throws(() => chooseProtocol(['dc:nowhere'], of), /site 'dc:nowhere' has no trust level/);
  assert.throws(() => chooseProtocol([], of), /got none/);
});

test('round timeouts scale with the RTT of the quorum-th fastest link', () => {
  assert.equal(roundTimeoutTicks({ baseTicks: 5, k: 3, rttTicks: [2, 10, 4] }), 5 + 3 * 10);
  assert.equal(roundTimeoutTicks({ baseTicks: 5, k: 3, rttTicks: [2, 10, 4], quorum: 2 }), 5 + 3 * 4);
  assert.equal(roundTimeoutTicks({ baseTicks: 1, k: 1.5, rttTicks: [3] }), 6);
  assert.throws(() => roundTimeoutTicks({ baseTicks: 1, k: 1, rttTicks: [1, -2] }), /rttTicks\[1\] must be a finite number ≥ 0; got -2/);
  assert.throws(() => roundTimeoutTicks({ baseTicks: 1, k: 1, rttTicks: [1], quorum: 2 }), /quorum must be a whole number from 1 to 1/);
  fc.assert(
    fc.property(fc.nat(100), fc.nat(10), fc.array(fc.nat(1000), { minLength: 1, maxLength: 9 }), (base, k, rtts) => {
      const t = roundTimeoutTicks({ baseTicks: base, k, rttTicks: rtts });
      assert.equal(t, base + k * Math.max(...rtts));
      assert.ok(roundTimeoutTicks({ baseTicks: base, k, rttTicks: rtts.map((r) => r * 2) }) >= t, 'longer links never shorten the timeout');
    }),
    { seed: 7, numRuns: 300 },
  );
});

test('quorumWait counts sites heard within the window', () => {
  const w = quorumWait(['a', 'b', 'c', 'd'], { a: 10, b: 3, c: 9 }, 5, 3);
  assert.deepEqual(w, { reachable: 2, needed: 3, total: 4, silent: ['b', 'd'] });
  assert.equal(describeQuorumWait(w), 'waiting for quorum: 2 of 4 sites reachable, need 3 (silent: b, d)');
});
