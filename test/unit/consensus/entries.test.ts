/** applyEntries: the committed state every site derives from the federation log. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { applyEntries, emptyCommittedState, workloadRecordProblem, type FederationEntry, type WorkloadRecord } from '../../../core/consensus/entries';

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

function record(workload: string, site: string): WorkloadRecord {
  return { image: 'fedflow/kv', instance: { provider: 'local', site, id: `i-${workload}` }, volume: { provider: 'local', site, id: `${workload}-data` }, address: `http://127.0.0.1:1/${workload}` };
}

test('a workload enters placed with its record, moves with the placement that names its new record, and leaves', () => {
  const paris = record('kv', 'dc:paris');
  const berlin = record('kv', 'dc:berlin');
  const s = applyEntries(emptyCommittedState(), [
    join('dc:paris', 1),
    join('dc:berlin', 1),
    { kind: 'workload', op: 'add', workload: 'kv', site: 'dc:paris', record: paris },
    { kind: 'workload', op: 'add', workload: 'kv', site: 'dc:berlin', record: berlin },
    { kind: 'workload', op: 'add', workload: 'web', site: 'dc:paris', record: record('web', 'dc:paris') },
    { kind: 'reservation', op: 'reserve', workload: 'kv', site: 'dc:berlin', instances: 1 },
    { kind: 'workload', op: 'remove', workload: 'kv', site: 'dc:paris' },
    { kind: 'placement', workload: 'kv', site: 'dc:berlin', record: berlin },
  ]);
  assert.deepEqual(s.rejected.map((r) => r.ordinal), [4, 5, 7]);
  assert.match(s.rejected[0]!.reason, /kv is in the federation already \(on dc:paris\); remove it first/);
  assert.match(s.rejected[1]!.reason, /site dc:paris is full \(1 of 1 instances used\); cannot add web/);
  assert.match(s.rejected[2]!.reason, /holds a reservation on dc:berlin \(a migration is under way\)/);
  assert.deepEqual(s.placements, { kv: 'dc:berlin' });
  assert.deepEqual(s.workloads, { kv: berlin });
  assert.deepEqual(s.used, { 'dc:paris': 0, 'dc:berlin': 1 });

  const gone = applyEntries(s, [
    { kind: 'workload', op: 'remove', workload: 'kv', site: 'dc:paris' },
    { kind: 'workload', op: 'remove', workload: 'kv', site: 'dc:berlin' },
  ]);
  assert.match(gone.rejected.at(-1)!.reason, /kv runs on dc:berlin, not on dc:paris/);
  assert.deepEqual(gone.placements, {});
  assert.deepEqual(gone.workloads, {});
  assert.deepEqual(gone.used, { 'dc:paris': 0, 'dc:berlin': 0 });
});

test('a placement without a record (committed before records existed) keeps the workload\'s record', () => {
  const paris = record('kv', 'dc:paris');
  const s = applyEntries(emptyCommittedState(), [join('dc:paris', 1), join('dc:berlin', 1), { kind: 'workload', op: 'add', workload: 'kv', site: 'dc:paris', record: paris }, { kind: 'placement', workload: 'kv', site: 'dc:berlin' }]);
  assert.deepEqual(s.placements, { kv: 'dc:berlin' });
  assert.deepEqual(s.workloads, { kv: paris });
  // A state carried from a run before workload records (no `workloads` field) still folds.
  const { workloads: _w, ...old } = s;
  assert.deepEqual(applyEntries(old, [{ kind: 'workload', op: 'remove', workload: 'kv', site: 'dc:berlin' }]).placements, {});
});

const entry = fc.oneof(
  fc.record({ kind: fc.constant('membership' as const), op: fc.constant('join' as const), site: fc.constantFrom('a:x', 'b:y', 'c:z'), publicKey: fc.constant('k'), capacity: fc.nat(3) }),
  fc.record({ kind: fc.constant('membership' as const), op: fc.constant('leave' as const), site: fc.constantFrom('a:x', 'b:y', 'c:z') }),
  fc.record({ kind: fc.constant('placement' as const), workload: fc.constantFrom('w1', 'w2', 'w3'), site: fc.constantFrom('a:x', 'b:y', 'c:z') }),
  fc.record({ kind: fc.constant('reservation' as const), op: fc.constant('reserve' as const), workload: fc.constantFrom('w1', 'w2'), site: fc.constantFrom('a:x', 'b:y'), instances: fc.integer({ min: 1, max: 2 }) }),
  fc.record({ kind: fc.constant('reservation' as const), op: fc.constant('release' as const), workload: fc.constantFrom('w1', 'w2'), site: fc.constantFrom('a:x', 'b:y') }),
  fc.constantFrom('w1', 'w2', 'w3').chain((workload) =>
    fc.constantFrom('a:x', 'b:y', 'c:z').map((site) => ({ kind: 'workload' as const, op: 'add' as const, workload, site, record: record(workload, site) })),
  ),
  fc.record({ kind: fc.constant('workload' as const), op: fc.constant('remove' as const), workload: fc.constantFrom('w1', 'w2', 'w3'), site: fc.constantFrom('a:x', 'b:y', 'c:z') }),
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
      // A record exists only for a placed workload.
      for (const w of Object.keys(whole.workloads ?? {})) assert.ok(whole.placements[w], `record of unplaced ${w}`);
    }),
    { seed: 11, numRuns: 500 },
  );
});

test('a workload added with its spec keeps the spec when a placement moves it with a record that has none', () => {
  const spec = { id: 'pg', marker: { nested: [1, 2] } } as unknown as NonNullable<WorkloadRecord['spec']>;
  const s1 = applyEntries(emptyCommittedState(), [
    join('dc:paris', 1),
    join('dc:berlin', 1),
    { kind: 'workload', op: 'add', workload: 'pg', site: 'dc:paris', record: { ...record('pg', 'dc:paris'), spec } },
  ]);
  assert.deepEqual(s1.workloads!.pg!.spec, spec);
  assert.notEqual(s1.workloads!.pg!.spec, spec, 'the state holds its own copy');
  const s2 = applyEntries(s1, [
    { kind: 'reservation', op: 'reserve', workload: 'pg', site: 'dc:berlin', instances: 1 },
    { kind: 'placement', workload: 'pg', site: 'dc:berlin', record: record('pg', 'dc:berlin') },
  ]);
  assert.equal(s2.placements.pg, 'dc:berlin');
  assert.equal(s2.workloads!.pg!.instance.site, 'dc:berlin');
  assert.deepEqual(s2.workloads!.pg!.spec, spec, 'the spec follows the workload');
  // A record that carries a spec of its own replaces it.
  const newer = { ...spec, marker: 'v2' } as unknown as NonNullable<WorkloadRecord['spec']>;
  const s3 = applyEntries(s2, [{ kind: 'placement', workload: 'pg', site: 'dc:berlin', record: { ...record('pg', 'dc:berlin'), spec: newer } }]);
  assert.deepEqual(s3.workloads!.pg!.spec, newer);
  assert.equal(workloadRecordProblem({ ...record('pg', 'dc:paris'), spec: 'postgres' }), 'record.spec must be a workload spec (an object with an id); got "postgres"');
  assert.equal(workloadRecordProblem({ ...record('pg', 'dc:paris'), spec }), undefined);
});
