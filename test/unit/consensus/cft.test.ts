/** CFT fault cases on a 3-site federation led by a workflow (Raft paper sections cited per test). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leaderQuorumWait, stepFollower, type Append, type AppendResponse } from '../../../core/consensus/cft';
import { describeQuorumWait } from '../../../core/consensus/quorum-wait';
import { CftCluster } from './cft-cluster';

const SITES = ['dc:paris', 'dc:frankfurt', 'aws:us-east-1'];

test('a proposal commits on every site when all are up', () => {
  const c = new CftCluster(SITES, 1);
  const l = c.newLeader();
  c.propose(l, 'place kv on dc:paris');
  const steps = c.net.runUntil(() => SITES.every((s) => c.committedAt(s).includes('place kv on dc:paris')), 500);
  assert.ok(steps >= 0, 'proposal did not commit on every site within 500 steps');
  assert.deepEqual(c.committedAt(l.state.id), ['place kv on dc:paris']);
});

test('1 of 3 sites down: the majority still commits, and the wait reports 2 of 3 reachable (§5.2)', () => {
  const c = new CftCluster(SITES, 2);
  c.net.crash('aws:us-east-1');
  const l = c.newLeader();
  c.propose(l, 'v1');
  assert.ok(c.net.runUntil(() => c.committedAt(l.state.id).includes('v1'), 500) >= 0, 'v1 did not commit with 2 of 3 sites');
  c.net.runUntil(() => ['dc:paris', 'dc:frankfurt'].every((s) => c.committedAt(s).includes('v1')), 200);
  for (const s of ['dc:paris', 'dc:frankfurt']) assert.deepEqual(c.committedAt(s), ['v1']);
  assert.deepEqual(c.committedAt('aws:us-east-1'), []);
  for (let i = 0; i < 12; i++) c.net.tickAll();
  c.net.runUntil(() => c.net.pending() === 0, 200);
  const wait = leaderQuorumWait(l.state);
  assert.deepEqual({ reachable: wait.reachable, needed: wait.needed, silent: wait.silent }, { reachable: 2, needed: 2, silent: ['aws:us-east-1'] });
  assert.match(describeQuorumWait(wait), /quorum reachable: 2 of 3 sites reachable, need 2/);
});

test('2 of 3 sites down: nothing commits and the wait says so', () => {
  const c = new CftCluster(SITES, 3);
  c.net.crash('aws:us-east-1');
  c.net.crash('dc:frankfurt');
  const l = c.newLeader();
  c.propose(l, 'v1');
  assert.equal(c.net.runUntil(() => c.committedAt(l.state.id).length > 0, 400), -1, 'committed without a majority');
  assert.equal(describeQuorumWait(leaderQuorumWait(l.state)), 'waiting for quorum: 1 of 3 sites reachable, need 2 (silent: aws:us-east-1, dc:frankfurt)');
  c.net.restart('dc:frankfurt');
  assert.ok(c.net.runUntil(() => c.committedAt(l.state.id).includes('v1'), 400) >= 0, 'v1 did not commit once a majority returned');
});

test('a stale leader is fenced: its appends are refused and it is deposed (§5.1)', () => {
  const c = new CftCluster(SITES, 4);
  const old = c.newLeader();
  c.propose(old, 'old-1');
  c.net.runUntil(() => SITES.every((s) => c.committedAt(s).includes('old-1')), 500);
  const next = c.newLeader();
  c.propose(next, 'new-1');
  c.net.runUntil(() => SITES.every((s) => c.committedAt(s).includes('new-1')), 500);
  // The old workflow's next heartbeat (or a write it still tries) reaches sites that have seen term 2.
  if (old.state.phase !== 'deposed') c.net.send(old.propose('stale-write'));
  c.net.runUntil(() => old.state.phase === 'deposed', 200);
  const refusals = SITES.flatMap((s) => c.site(s).readies.flatMap((r) => r.messages.flatMap((m) => (m.type === 'append-resp' && !m.success && m.reason ? [m.reason] : []))));
  assert.ok(refusals.some((r) => /stale leader wf-1-0 at term 1: site .* has seen term 2/.test(r)), `no stale-term refusal; got ${JSON.stringify(refusals)}`);
  assert.equal(old.state.phase, 'deposed');
  assert.throws(() => old.propose('again'), /was deposed .* start a new epoch with a term above 2/);
  for (const s of SITES) assert.deepEqual(c.committedAt(s), ['old-1', 'new-1'], `site ${s}`);
});

test('a follower refuses an append whose prevIndex/prevTerm does not match, with a hint (§5.3)', () => {
  const f = { id: 's', term: 3, vote: 'L', log: [
    { index: 1, term: 1, kind: 'value' as const, value: 'a' },
    { index: 2, term: 2, kind: 'value' as const, value: 'b' },
    { index: 3, term: 2, kind: 'value' as const, value: 'c' },
  ], commit: 1, applied: 1 };
  const base: Append<string> = { type: 'append', from: 'L', to: 's', term: 3, prevIndex: 3, prevTerm: 3, entries: [], commit: 1 };
  const resp = stepFollower(f, base).messages[0] as AppendResponse;
  assert.equal(resp.success, false);
  assert.equal(resp.rejectedPrevIndex, 3);
  assert.equal(resp.hintIndex, 2, 'entry 3 has term 2, not 3, so the next probe is at index 2');
  const resp2 = stepFollower(f, { ...base, prevIndex: 3, prevTerm: 1 }).messages[0] as AppendResponse;
  assert.equal(resp2.hintIndex, 1, 'entries of term 2 cannot match prevTerm 1; skip back to index 1');
  const resp3 = stepFollower(f, { ...base, prevIndex: 7, prevTerm: 3 }).messages[0] as AppendResponse;
  assert.equal(resp3.hintIndex, 3);
  assert.match(resp3.reason ?? '', /has no entry at prevIndex 7 \(its last index is 3\)/);
  assert.equal(f.log.length, 3, 'a refused append must not change the log');
});

test('a restarted site catches up on what it missed (§5.3)', () => {
  const c = new CftCluster(SITES, 5);
  const l = c.newLeader();
  c.propose(l, 'v1');
  c.net.runUntil(() => SITES.every((s) => c.committedAt(s).includes('v1')), 500);
  c.net.crash('dc:frankfurt');
  for (const v of ['v2', 'v3', 'v4']) c.propose(l, v);
  c.net.runUntil(() => c.committedAt(l.state.id).includes('v4'), 500);
  assert.deepEqual(c.disks.get('dc:frankfurt')?.log.map((e) => (e.kind === 'value' ? e.value : 'noop')), ['noop', 'v1']);
  c.net.restart('dc:frankfurt');
  assert.ok(c.net.runUntil(() => c.committedAt('dc:frankfurt').includes('v4'), 500) >= 0, 'restarted site did not catch up');
  assert.deepEqual(c.disks.get('dc:frankfurt')?.log, c.disks.get('dc:paris')?.log);
});

test('a site with a conflicting uncommitted suffix is truncated and repaired (§5.3, figure 7)', () => {
  const c = new CftCluster(SITES, 6);
  const [a, b, d] = SITES as [string, string, string];
  const l1 = c.newLeader();
  c.propose(l1, 'c1');
  assert.ok(c.net.runUntil(() => SITES.every((s) => c.committedAt(s).includes('c1')), 500) >= 0);
  // l1 keeps leading but only site a hears it: its new entries land on a alone, uncommitted.
  c.net.cut(l1.state.id, b);
  c.net.cut(l1.state.id, d);
  c.propose(l1, 'lost-1');
  c.propose(l1, 'lost-2');
  c.net.runUntil(() => c.net.pending() === 0, 300);
  assert.deepEqual(c.disks.get(a)!.log.slice(-2).map((e) => e.kind === 'value' && e.value), ['lost-1', 'lost-2']);
  assert.ok(!c.committedAt(l1.state.id).includes('lost-1'), 'nothing may commit with one of three sites');

  // A new epoch wins b and d and commits different entries at the same indexes.
  c.net.isolate(a);
  c.net.isolate(l1.state.id);
  const l2 = c.newLeader();
  c.propose(l2, 'kept-1');
  assert.ok(c.net.runUntil(() => c.committedAt(l2.state.id).includes('kept-1'), 500) >= 0, 'l2 did not commit with b and d');

  c.net.heal();
  c.net.isolate(l1.state.id);
  assert.ok(c.net.runUntil(() => c.committedAt(a).includes('kept-1'), 500) >= 0, `site ${a} was not repaired`);
  assert.ok(c.site(a).readies.some((r) => r.truncateFrom !== undefined), `site ${a} never truncated its conflicting suffix`);
  assert.deepEqual(c.disks.get(a)!.log, c.disks.get(b)!.log);
  assert.deepEqual(c.committedAt(a), ['c1', 'kept-1']);
});
