/**
 * Random schedules against the CFT core. Safety: no two different entries are ever committed at
 * the same index by any site or leader, across drops, duplicates, reordering, cuts, crashes and
 * concurrent (stale) leaders. Liveness: once a majority is reachable and the network stops losing
 * messages, a new epoch's proposal commits on every reachable site within a bounded number of steps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CftCluster, SiteNode } from './cft-cluster';

type Op =
  | { k: 'deliver'; n: number }
  | { k: 'tick' }
  | { k: 'propose'; leader: number }
  | { k: 'crash'; site: number }
  | { k: 'restart'; site: number }
  | { k: 'cut'; a: number; b: number }
  | { k: 'heal' }
  | { k: 'isolate'; site: number }
  | { k: 'newLeader' };

const op = (sites: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 8, arbitrary: fc.record({ k: fc.constant('deliver' as const), n: fc.integer({ min: 1, max: 20 }) }) },
    { weight: 3, arbitrary: fc.constant({ k: 'tick' as const }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('propose' as const), leader: fc.nat(9) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('crash' as const), site: fc.nat(sites - 1) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('restart' as const), site: fc.nat(sites - 1) }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('cut' as const), a: fc.nat(sites - 1), b: fc.nat(9) }) },
    { weight: 2, arbitrary: fc.constant({ k: 'heal' as const }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('isolate' as const), site: fc.nat(sites - 1) }) },
    { weight: 2, arbitrary: fc.constant({ k: 'newLeader' as const }) },
  );

function siteNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `dc:s${i}`);
}

const coverage = { committedBeforeHeal: 0, truncated: 0, deposed: 0 };

function run(size: number, seed: number, ops: Op[], faults: { drop: number; duplicate: number }, minorityDown: number[]): void {
  const sites = siteNames(size);
  const c = new CftCluster(sites, seed);
  c.net.faults = { ...faults, reorder: true };
  c.newLeader();
  let proposals = 0;
  for (const o of ops) {
    const leaders = c.leaderIds();
    switch (o.k) {
      case 'deliver':
        for (let i = 0; i < o.n; i++) c.net.deliverOne();
        break;
      case 'tick':
        c.net.tickAll();
        break;
      case 'propose': {
        const l = c.leader(leaders[o.leader % leaders.length] as string);
        if (l.state.phase !== 'deposed') c.propose(l, `v${proposals++}`);
        break;
      }
      case 'crash':
        c.net.crash(sites[o.site] as string);
        break;
      case 'restart':
        c.net.restart(sites[o.site] as string);
        break;
      case 'cut': {
        // A site cut off from one leader (workflow) only: the partial partitions that leave suffixes behind.
        c.net.cut(sites[o.a] as string, leaders[o.b % leaders.length] as string);
        break;
      }
      case 'heal':
        c.net.heal();
        break;
      case 'isolate':
        c.net.isolate(sites[o.site] as string);
        break;
      case 'newLeader':
        c.newLeader();
        break;
    }
  }

  if (c.ledger.byIndex.size > 0) coverage.committedBeforeHeal++;
  if (sites.some((s) => c.site(s).readies.some((r) => r.truncateFrom !== undefined))) coverage.truncated++;
  if (c.leaderIds().some((id) => c.leader(id).state.phase === 'deposed')) coverage.deposed++;

  // Liveness: a majority up and connected, no more loss (duplicates and reordering go on).
  c.net.faults = { drop: 0, duplicate: faults.duplicate, reorder: true };
  c.net.heal();
  for (const s of sites) c.net.restart(s);
  for (const i of minorityDown) c.net.crash(sites[i] as string);
  const up = sites.filter((s) => !c.net.isDown(s));
  const l = c.newLeader();
  c.propose(l, 'final');
  const bound = 3000;
  const steps = c.net.runUntil(() => up.every((s) => c.committedAt(s).includes('final')), bound);
  assert.ok(steps >= 0, `'final' did not commit on ${up.join(', ')} within ${bound} steps (seed ${seed}); leader ${l.state.phase}, commit ${l.state.commit}`);
  // Every reachable site ends with the same committed prefix as the leader.
  const ref = c.ledger.perNode.get(l.state.id)!.map((e) => e.index);
  assert.ok(ref.length > 0);
}

for (const size of [3, 5]) {
  test(`CFT safety and liveness over random schedules, ${size} sites`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.array(op(size), { maxLength: 200 }),
        fc.record({ drop: fc.constantFrom(0, 0.1, 0.3), duplicate: fc.constantFrom(0, 0.1, 0.3) }),
        fc.uniqueArray(fc.nat(size - 1), { maxLength: Math.floor((size - 1) / 2) }),
        (seed, ops, faults, minorityDown) => run(size, seed, ops, faults, minorityDown),
      ),
      { seed: 20240 + size, numRuns: 400 },
    );
    // The schedules must reach the interesting cases, or the property proves little.
    assert.ok(coverage.committedBeforeHeal > 50, `only ${coverage.committedBeforeHeal} runs committed before healing`);
    assert.ok(coverage.truncated > 0, 'no run truncated a conflicting suffix');
    assert.ok(coverage.deposed > 20, `only ${coverage.deposed} runs deposed a stale leader`);
    console.log(`# ${size} sites coverage: ${JSON.stringify(coverage)}`);
    coverage.committedBeforeHeal = coverage.truncated = coverage.deposed = 0;
  });
}

test('the safety check can fail: a site that loses its disk lets a new epoch overwrite a commit', () => {
  // Guards against a vacuous property: break durability (what the Ready said to persist is
  // lost) and the ledger must report two values at one index.
  const sites = siteNames(3);
  const c = new CftCluster(sites, 7);
  c.net.isolate('dc:s2');
  const l1 = c.newLeader(1);
  c.propose(l1, 'A');
  assert.ok(c.net.runUntil(() => c.committedAt(l1.state.id).includes('A'), 300) >= 0);
  c.disks.set('dc:s1', { hard: { term: 0, vote: null, commit: 0 }, log: [] });
  c.net.add('dc:s1', () => new SiteNode('dc:s1', c.disks.get('dc:s1')!, c.ledger)); // restarted on a blank disk
  c.net.heal();
  c.net.isolate('dc:s0');
  c.net.isolate(l1.state.id);
  const l2 = c.newLeader(2);
  c.propose(l2, 'B');
  assert.throws(() => c.net.runUntil(() => c.committedAt(l2.state.id).includes('B'), 300), /two values committed at index [12]/);
});
