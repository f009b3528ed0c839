/** applyEntries: the committed state every site derives from the federation log. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { applyEntries, emptyCommittedState, type FederationEntry } from '../../../core/consensus/entries';

const join = (site: string, capacity: number): FederationEntry => ({ kind: 'membership', op: 'join', site, publicKey: `pk-${site}`, capacity });

test('reserve, place and release move capacity as a migration does', () => {
  const s = applyEntries(emptyCommittedState(), [
    join('dc:paris', 2),
    join('dc:berlin', 1),
    { kind: 'placement', workload: 'kv', site: 'dc:paris' },
    { kind: 'reservation', op: 'reserve', workload: 'kv', site: 'dc:berlin', instances: 1 },
    { kind: 'reservation', op: 'reserve', workload: 'web', site: 'dc:berlin', instances: 1 },
    { kind: 'placement', workload: 'kv', site: 'dc:berlin' },
  ]);
  assert.deepEqual(s.placements, { kv: 'dc:berlin' });
  assert.deepEqual(s.reservations, {});
  assert.deepEqual(s.used, { 'dc:paris': 0, 'dc:berlin': 1 });
  assert.deepEqual(s.rejected, [{ ordinal: 5, reason: 'site dc:berlin has 0 of 1 instances free; web asks for 1' }]);
  assert.deepEqual(Object.keys(s.members).sort(), ['dc:berlin', 'dc:paris']);
});

test('invalid entries are rejected with the reason and change nothing', () => {
  const s = applyEntries(emptyCommittedState(), [
    { kind: 'placement', workload: 'kv', site: 'dc:nowhere' },
    join('dc:paris', 1),
    join('dc:paris', 1),
    { kind: 'placement', workload: 'kv', site: 'dc:paris' },
    { kind: 'membership', op: 'leave', site: 'dc:paris' },
    { kind: 'reservation', op: 'release', workload: 'kv', site: 'dc:paris' },
  ]);
  assert.deepEqual(s.rejected.map((r) => r.ordinal), [1, 3, 5, 6]);
  assert.match(s.rejected[0]!.reason, /cannot place kv on dc:nowhere: not a member \(members: none\)/);
  assert.match(s.rejected[2]!.reason, /still runs or reserves workloads \(kv\); move or release them before it leaves/);
  assert.deepEqual(s.placements, { kv: 'dc:paris' });
});

const entry = fc.oneof(
  fc.record({ kind: fc.constant('membership' as const), op: fc.constant('join' as const), site: fc.constantFrom('a:x', 'b:y', 'c:z'), publicKey: fc.constant('k'), capacity: fc.nat(3) }),
  fc.record({ kind: fc.constant('membership' as const), op: fc.constant('leave' as const), site: fc.constantFrom('a:x', 'b:y', 'c:z') }),
  fc.record({ kind: fc.constant('placement' as const), workload: fc.constantFrom('w1', 'w2', 'w3'), site: fc.constantFrom('a:x', 'b:y', 'c:z') }),
  fc.record({ kind: fc.constant('reservation' as const), op: fc.constant('reserve' as const), workload: fc.constantFrom('w1', 'w2'), site: fc.constantFrom('a:x', 'b:y'), instances: fc.integer({ min: 1, max: 2 }) }),
  fc.record({ kind: fc.constant('reservation' as const), op: fc.constant('release' as const), workload: fc.constantFrom('w1', 'w2'), site: fc.constantFrom('a:x', 'b:y') }),
) as fc.Arbitrary<FederationEntry>;

test('applyEntries is a fold: any split gives the same state; used never exceeds capacity and matches a recount', () => {
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 40 }), fc.nat(40), (entries, cut) => {
      const whole = applyEntries(emptyCommittedState(), entries);
      const split = applyEntries(applyEntries(emptyCommittedState(), entries.slice(0, cut)), entries.slice(cut));
      assert.deepEqual(split, whole);
      for (const [site, m] of Object.entries(whole.members)) {
        const placed = Object.values(whole.placements).filter((s) => s === site).length;
        const reserved = Object.values(whole.reservations).filter((r) => r.site === site).reduce((a, r) => a + r.instances, 0);
        assert.equal(whole.used[site], placed + reserved, `used on ${site}`);
        assert.ok((whole.used[site] ?? 0) <= m.capacity, `${site} over capacity`);
      }
      for (const site of Object.values(whole.placements)) assert.ok(whole.members[site], `placement on non-member ${site}`);
    }),
    { seed: 11, numRuns: 500 },
  );
});
