/** The federation entity's pure input checks (core/federation/validators.ts) and its batching (batching.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyEntries, emptyCommittedState, type CommittedState } from '../../../core/consensus/entries';
import { takeBatch } from '../../../core/federation/batching';
import { foundersProblem, requestIdClash, touchedSites, validateJoin, validateLeave, validateProposal, validateProposeBatch } from '../../../core/federation/validators';
import { MAX_PROPOSALS_PER_UPDATE, type ProposeInput } from '../../../core/contracts/federation';

const KEY = `MCowBQYDK2VwAyEA${'A'.repeat(43)}=`; // 60 characters: the shape of an Ed25519 SPKI key
const state: CommittedState = applyEntries(emptyCommittedState(), [
  { kind: 'membership', op: 'join', site: 'dc:paris', publicKey: KEY, capacity: 2 },
  { kind: 'membership', op: 'join', site: 'dc:london', publicKey: KEY, capacity: 2 },
  { kind: 'placement', workload: 'kv', site: 'dc:paris' },
]);
const trust = { 'dc:paris': 'trusted', 'dc:london': 'untrusted' } as const;
const place = (site: string, requestId?: string): ProposeInput => ({ entries: [{ kind: 'placement', workload: 'w', site }], ...(requestId ? { requestId } : {}) });

describe('federation validators', () => {
  it('accepts a placement and a reservation between members', () => {
    validateProposal(place('dc:london'), state, trust);
    validateProposal({ entries: [{ kind: 'reservation', op: 'reserve', workload: 'w', site: 'dc:paris', instances: 1 }], touches: ['dc:london'] }, state, trust);
  });

  it('names the unknown site and the members', () => {
    assert.throws(() => validateProposal(place('aws:us-east-9'), state, trust), /entries\[0\] \(placement of w\): site 'aws:us-east-9' is not a member of the federation \(members: dc:london, dc:paris\)/);
    assert.throws(() => validateProposal({ ...place('dc:paris'), touches: ['dc:rome'] }, state, trust), /touches: site 'dc:rome' is not a member/);
  });

  it('refuses empty proposals, membership entries and unknown kinds', () => {
    assert.throws(() => validateProposal({ entries: [] }, state, trust), /at least one entry/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'membership', op: 'leave', site: 'dc:paris' }] }, state, trust), /join and leave updates/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'route' } as never] }, state, trust), /kind must be 'placement', 'reservation' or 'workload'; got 'route'/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'reservation', op: 'hold', workload: 'w', site: 'dc:paris' } as never] }, state, trust), /op must be 'reserve' or 'release'; got 'hold'/);
  });

  it('checks workload entries and the records they carry before the log takes them', () => {
    const record = { image: 'fedflow/kv', instance: { provider: 'local' as const, site: 'dc:paris', id: 'i-1' }, volume: { provider: 'local' as const, site: 'dc:paris', id: 'v-1' }, address: 'http://127.0.0.1:1' };
    validateProposal({ entries: [{ kind: 'workload', op: 'add', workload: 'w', site: 'dc:paris', record }] }, state, trust);
    validateProposal({ entries: [{ kind: 'workload', op: 'remove', workload: 'w', site: 'dc:paris' }] }, state, trust);
    assert.throws(() => validateProposal({ entries: [{ kind: 'workload', op: 'add', workload: 'w', site: 'dc:paris' } as never] }, state, trust), /entries\[0\] \(workload w\): needs a record/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'workload', op: 'add', workload: 'w', site: 'dc:paris', record: { ...record, address: '' } }] }, state, trust), /record.address must be a non-empty string/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'workload', op: 'move', workload: 'w', site: 'dc:paris' } as never] }, state, trust), /workload op must be 'add' or 'remove'; got 'move'/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'workload', op: 'add', workload: 'w', site: 'dc:rome', record }] }, state, trust), /\(workload w\): site 'dc:rome' is not a member/);
    assert.throws(() => validateProposal({ entries: [{ kind: 'placement', workload: 'w', site: 'dc:paris', record: { ...record, instance: { id: '' } } } as never] }, state, trust), /\(placement of w\): record.instance must be/);
  });

  it('refuses everything once the run is superseded, with the reason', () => {
    assert.throws(() => validateProposal(place('dc:paris'), state, trust, 'a newer run leads'), /a newer run leads/);
    assert.throws(() => validateLeave('dc:london', state, 'a newer run leads'), /a newer run leads/);
  });

  it('proposeBatch: names the bad proposal by position, and bounds the count', () => {
    assert.throws(() => validateProposeBatch([place('dc:paris'), place('dc:nowhere')], state, trust), /^Error: proposals\[1\]: /);
    assert.throws(() => validateProposeBatch([], state, trust), /takes 1 to 1000 proposals; got 0/);
    assert.throws(() => validateProposeBatch(Array.from({ length: MAX_PROPOSALS_PER_UPDATE + 1 }, () => place('dc:paris')), state, trust), /got 1001/);
  });

  it('join: a new site with a trust level, a capacity and a key', () => {
    validateJoin({ site: 'gcp:europe-west1-b', trust: 'untrusted', capacity: 3, publicKey: KEY }, state);
    assert.throws(() => validateJoin({ site: 'dc:paris', trust: 'trusted', capacity: 1, publicKey: KEY }, state), /already a member/);
    assert.throws(() => validateJoin({ site: 'paris', trust: 'trusted', capacity: 1, publicKey: KEY }, state), /must look like <kind>:<name>/);
    assert.throws(() => validateJoin({ site: 'dc:rome', trust: 'sometimes' as never, capacity: 1, publicKey: KEY }, state), /trust 'sometimes'; expected trusted or untrusted/);
    assert.throws(() => validateJoin({ site: 'dc:rome', trust: 'trusted', capacity: 1.5, publicKey: KEY }, state), /capacity is a whole number/);
    assert.throws(() => validateJoin({ site: 'dc:rome', trust: 'trusted', capacity: 1, publicKey: 'short' }, state), /needs publicKey/);
  });

  it('leave: a member holding nothing, never the last one', () => {
    validateLeave('dc:london', state);
    assert.throws(() => validateLeave('dc:paris', state), /still runs or reserves workloads \(kv\)/);
    assert.throws(() => validateLeave('dc:rome', state), /not a member \(members: dc:london, dc:paris\)/);
    const alone = applyEntries(emptyCommittedState(), [{ kind: 'membership', op: 'join', site: 'dc:paris', publicKey: KEY, capacity: 1 }]);
    assert.throws(() => validateLeave('dc:paris', alone), /the last member/);
  });

  it('founders: at least one, distinct, each with trust and key', () => {
    const site = { id: 'dc:paris', trust: 'trusted' as const, capacity: 1, publicKey: KEY };
    assert.equal(foundersProblem({ name: 'local', sites: [site] }), undefined);
    assert.match(foundersProblem({ name: 'local', sites: [] }) ?? '', /needs at least one founding site/);
    assert.match(foundersProblem({ name: 'local', sites: [site, site] }) ?? '', /federation local: site dc:paris is listed twice/);
  });

  it('a request id may be reused only with the same entries and touches, in any key order', () => {
    const a: ProposeInput = { requestId: 'r', entries: [{ kind: 'placement', workload: 'w', site: 'dc:paris' }], touches: ['dc:london', 'dc:paris'] };
    const b: ProposeInput = { requestId: 'r', entries: [{ site: 'dc:paris', workload: 'w', kind: 'placement' }], touches: ['dc:paris', 'dc:london'] };
    assert.equal(requestIdClash(a, b), undefined);
    assert.match(requestIdClash(a, place('dc:london', 'r')) ?? '', /request id 'r' is already queued with other entries/);
    assert.deepEqual(touchedSites(a), ['dc:london', 'dc:paris']);
  });
});

describe('federation batching', () => {
  const q = (protocol: 'cft' | 'bft', entries: number, membership = false) => ({ protocol, input: { entries: Array.from({ length: entries }) }, ...(membership ? { membership } : {}) });

  it('takes the head protocol, in order, up to the entry limit', () => {
    const queue = [q('cft', 2), q('cft', 2), q('bft', 1), q('cft', 1)];
    assert.equal(takeBatch(queue, 4).length, 2);
    assert.deepEqual(queue.map((p) => p.protocol), ['bft', 'cft'], 'stops at a proposal of the other protocol');
  });

  it('runs a membership change alone, and stops before one', () => {
    const queue = [q('cft', 1, true), q('cft', 1)];
    assert.equal(takeBatch(queue, 10).length, 1);
    const queue2 = [q('cft', 1), q('cft', 1, true)];
    assert.equal(takeBatch(queue2, 10).length, 1);
    assert.throws(() => takeBatch([], 1), /queue is empty/);
  });
});
