/**
 * The BFT router (core/consensus/bft-router.ts) on the in-memory network, with real PBFT replicas
 * at the sites (HMAC stands in for Ed25519, as in bft-property.test.ts), and single steps of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeRound, roundOutcome, routerQuorumWait, startRound, stepRouter } from '../../../core/consensus/bft-router';
import { describeQuorumWait } from '../../../core/consensus/quorum-wait';
import { createRouter, type RouterReply } from '../../../core/consensus/bft-router-state';
import { signVote, verifyCertificate } from '../../../core/consensus/bft';
import { digestOf } from '../../../core/consensus/canonical-json';
import { hmacCrypto } from './bft-cluster';
import { RouterCluster } from './bft-router-cluster';

const SITES = ['dc:a', 'dc:b', 'dc:c', 'dc:d'];
const crypto = hmacCrypto(SITES);

function reply(o: Partial<RouterReply<string>> = {}): RouterReply<string> {
  return { view: 0, messages: [], committed: [], executed: 0, equivocations: [], refused: [], ...o };
}

describe('BFT router on the in-memory network', () => {
  for (const routerVerifies of [true, false]) {
    it(`commits a batch with four honest sites (${routerVerifies ? 'router verifies commit votes' : 'f+1 sites confirm'})`, () => {
      const cl = new RouterCluster(SITES, 1, { crypto, routerVerifies });
      cl.propose('v1');
      cl.runUntilDecided();
      const [d] = cl.router.decided;
      assert.ok(d);
      assert.equal(d.view, 0);
      assert.equal(d.seq, 1);
      assert.equal(d.certificate.digest, digestOf('v1'));
      assert.equal(d.certificate.votes.length, 3, 'a certificate holds the quorum, 2f+1 = 3 of 4');
      assert.deepEqual(verifyCertificate(d.certificate, SITES, crypto.verifier), { ok: true });
      // Hop 4 reaches every site, after the round returned when the router verified.
      cl.net.runUntil(() => SITES.every((s) => cl.values(s).length === 1), 2_000);
      for (const s of SITES) assert.deepEqual(cl.values(s), ['v1'], `${s} executed the batch`);
    });
  }

  it('commits batches one after another, in order, at every site', () => {
    const cl = new RouterCluster(SITES, 2, { crypto, routerVerifies: true });
    for (const v of ['v1', 'v2', 'v3']) cl.propose(v);
    cl.runUntilDecided();
    assert.deepEqual(cl.router.decided.map((d) => [d.seq, d.value]), [[1, 'v1'], [2, 'v2'], [3, 'v3']]);
    cl.net.runUntil(() => SITES.every((s) => cl.values(s).length === 3), 4_000);
    for (const s of SITES) assert.deepEqual(cl.values(s), ['v1', 'v2', 'v3']);
  });

  it('silences the view-0 primary: the round changes view and commits in view 1', () => {
    const cl = new RouterCluster(SITES, 3, { crypto, routerVerifies: true });
    cl.net.crash('dc:a'); // members[0 mod 4]: the primary of view 0
    cl.propose('v1');
    cl.runUntilDecided();
    const [d] = cl.router.decided;
    assert.ok(d);
    assert.equal(d.view, 1, 'committed in view 1');
    assert.equal(cl.router.router.state.view, 1);
    assert.deepEqual(verifyCertificate(d.certificate, SITES, crypto.verifier), { ok: true });
    assert.equal(d.certificate.view, 1);
    assert.ok(!d.certificate.votes.some((v) => v.site === 'dc:a'), 'the silent primary signed nothing');
    assert.deepEqual(cl.router.statuses, ['primary dc:a of view 0 did not answer; retrying in view 1 (primary dc:b)']);
    cl.net.runUntil(() => ['dc:b', 'dc:c', 'dc:d'].every((s) => cl.values(s).length === 1), 2_000);
    for (const s of ['dc:b', 'dc:c', 'dc:d']) assert.deepEqual(cl.values(s), ['v1']);
    // The next round starts in view 1 too: a view whose primary fails is not tried again.
    cl.propose('v2');
    cl.runUntilDecided();
    assert.deepEqual(cl.router.decided.map((x) => [x.view, x.seq]), [[1, 1], [1, 2]]);
  });

  it('waits, without committing, while only two of four sites answer; commits once a third returns', () => {
    const cl = new RouterCluster(SITES, 4, { crypto, routerVerifies: true });
    cl.net.crash('dc:c');
    cl.net.crash('dc:d');
    cl.propose('v1');
    assert.equal(cl.net.runUntil(() => !cl.router.busy, 3_000), -1, 'no certificate from two of four');
    assert.equal(roundOutcome(cl.router.router), 'open');
    assert.equal(describeQuorumWait(routerQuorumWait(cl.router.router.state, cl.router.now)), 'waiting for quorum: 2 of 4 sites reachable, need 3 (silent: dc:c, dc:d)');
    cl.net.restart('dc:c');
    cl.runUntilDecided();
    assert.equal(cl.router.decided[0]?.view, 0);
  });

  it('a site that was down during a round catches up through another site\'s certificates, once it answers in a later round', () => {
    const cl = new RouterCluster(SITES, 5, { crypto, routerVerifies: false });
    cl.net.crash('dc:d');
    cl.propose('v1');
    cl.runUntilDecided();
    cl.net.restart('dc:d');
    // The router learns how far a site executed from its answers in a round; an idle router does
    // not look for laggards, so the catch-up comes at the end of a round dc:d takes part in.
    for (const v of ['v2', 'v3']) {
      cl.propose(v);
      cl.runUntilDecided();
    }
    assert.notEqual(cl.net.runUntil(() => cl.values('dc:d').length === 3, 4_000), -1, `dc:d executed ${JSON.stringify(cl.values('dc:d'))}`);
    assert.deepEqual(cl.values('dc:d'), ['v1', 'v2', 'v3']);
  });

  // Deliveries lost before a site runs them (its worker was away), and answers reordered. Not
  // covered: an answer lost after the site ran the delivery, or a delivery run twice; see
  // docs/consensus.md, "Left to do" (the router does not recover those).
  it('commits when deliveries are lost and answers reordered, with every site agreeing (20 seeds)', () => {
    for (let seed = 10; seed < 30; seed++) {
      const cl = new RouterCluster(SITES, seed, { crypto, routerVerifies: seed % 2 === 0, loseDeliveries: 0.15 });
      cl.net.faults = { reorder: true };
      for (const v of ['x', 'y']) cl.propose(`${v}${seed}`);
      cl.runUntilDecided(60_000);
      assert.deepEqual(cl.router.decided.map((d) => d.value), [`x${seed}`, `y${seed}`], `seed ${seed}`);
    }
  });
});

describe('BFT router steps', () => {
  const router = () => createRouter<string>({ members: SITES, view: 0, tickLength: 2, liveWindow: 6, maxInFlight: 2 }, crypto.verifier);

  it('proposes to the view primary only, then keeps at most maxInFlight deliveries per site', () => {
    const rt = router();
    const ready = startRound(rt, 'v', 0);
    assert.deepEqual(ready.deliveries.map((d) => [d.site, d.propose]), [['dc:a', 'v']]);
    const pp = signVote(crypto.signer('dc:a'), { type: 'pre-prepare', view: 0, seq: 1, digest: digestOf('v') });
    const out = stepRouter(rt, { type: 'reply', site: 'dc:a', reply: reply({ messages: [{ type: 'pre-prepare', to: 'dc:b', vote: pp, value: 'v' }] }), now: 1 });
    assert.deepEqual(out.deliveries.map((d) => [d.site, d.forSeq, d.messages.map((m) => m.type)]), [['dc:b', 1, ['pre-prepare']], ['dc:c', 1, ['pre-prepare']], ['dc:d', 1, ['pre-prepare']]]);
    // A tick sends the stage again: dc:b now has two deliveries in flight, the most it may.
    assert.ok(stepRouter(rt, { type: 'tick', now: 3 }).deliveries.some((d) => d.site === 'dc:b'));
    assert.ok(!stepRouter(rt, { type: 'tick', now: 5 }).deliveries.some((d) => d.site === 'dc:b'), 'no third delivery while two are in flight');
    assert.deepEqual(stepRouter(rt, { type: 'settled', site: 'dc:b', now: 6 }).deliveries.map((d) => d.site), ['dc:b'], 'a freed slot is used at once');
  });

  it('abandons the round when the primary fails before any pre-prepare', () => {
    const rt = router();
    startRound(rt, 'v', 0);
    stepRouter(rt, { type: 'failed', site: 'dc:b', now: 5 });
    assert.equal(roundOutcome(rt), 'open', 'a backup failing does not move the view');
    stepRouter(rt, { type: 'failed', site: 'dc:a', now: 5 });
    assert.equal(roundOutcome(rt), 'abandoned');
  });

  it('refuses a vote a site hands in for another site, and one for another sequence', () => {
    const rt = router();
    startRound(rt, 'v', 0);
    const digest = digestOf('v');
    const pp = signVote(crypto.signer('dc:a'), { type: 'pre-prepare', view: 0, seq: 1, digest });
    stepRouter(rt, { type: 'reply', site: 'dc:a', reply: reply({ messages: [{ type: 'pre-prepare', to: 'dc:b', vote: pp, value: 'v' }] }), now: 1 });
    assert.equal(rt.state.round?.seq, 1);
    const forged = signVote(crypto.signer('dc:c'), { type: 'prepare', view: 0, seq: 1, digest });
    const out = stepRouter(rt, { type: 'reply', site: 'dc:b', reply: reply({ forSeq: 1, messages: [{ type: 'prepare', to: 'dc:a', vote: forged }] }), now: 2 });
    assert.match(String(out.reports[0]?.type === 'refusal' && out.reports[0].reason), /claims to be signed by dc:c/);
    const old = signVote(crypto.signer('dc:b'), { type: 'prepare', view: 0, seq: 7, digest });
    const out2 = stepRouter(rt, { type: 'reply', site: 'dc:b', reply: reply({ forSeq: 1, messages: [{ type: 'prepare', to: 'dc:a', vote: old }] }), now: 2 });
    assert.match(String(out2.reports[0]?.type === 'refusal' && out2.reports[0].reason), /replayed prepare from dc:b .* seq 7/);
    assert.equal(rt.state.round?.matching.size, 0, 'neither counted');
  });

  it('leaves a commit vote whose signature does not verify out of the certificate', () => {
    const rt = router();
    startRound(rt, 'v', 0);
    const digest = digestOf('v');
    const vote = (site: string, type: 'pre-prepare' | 'prepare' | 'commit') => signVote(crypto.signer(site), { type, view: 0, seq: 1, digest });
    stepRouter(rt, { type: 'reply', site: 'dc:a', reply: reply({ messages: [{ type: 'pre-prepare', to: 'dc:b', vote: vote('dc:a', 'pre-prepare'), value: 'v' }] }), now: 1 });
    for (const s of ['dc:b', 'dc:c']) stepRouter(rt, { type: 'reply', site: s, reply: reply({ forSeq: 1, messages: [{ type: 'prepare', to: 'dc:a', vote: vote(s, 'prepare') }] }), now: 2 });
    const forged = { ...vote('dc:d', 'commit'), sig: 'AAAA' };
    const out = stepRouter(rt, { type: 'reply', site: 'dc:d', reply: reply({ forSeq: 1, messages: [{ type: 'commit', to: 'dc:a', vote: forged }] }), now: 3 });
    assert.ok(out.reports.some((r) => r.type === 'refusal' && r.accused === 'dc:d' && /does not verify/.test(r.reason)));
    for (const s of ['dc:a', 'dc:b', 'dc:c']) stepRouter(rt, { type: 'reply', site: s, reply: reply({ forSeq: 1, messages: [{ type: 'commit', to: 'dc:d', vote: vote(s, 'commit') }] }), now: 4 });
    assert.equal(roundOutcome(rt), 'done');
    const { certificate } = closeRound(rt, 5);
    assert.deepEqual(certificate.votes.map((v) => v.site), ['dc:a', 'dc:b', 'dc:c']);
  });
});
