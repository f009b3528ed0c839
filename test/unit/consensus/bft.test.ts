/** BFT fault cases on 4 sites (f = 1) with real Ed25519 keys from agent/federation/site-keys.ts (PBFT §4.2). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ed25519Verifier, ensureSiteKey, loadSiteSigner, verifyCertificate } from '../../../agent/federation/site-keys';
import { checkEquivocationProof, replicaQuorumWait, signVote, type BftMessage } from '../../../core/consensus/bft';
import { digestOf } from '../../../core/consensus/canonical-json';
import { describeQuorumWait } from '../../../core/consensus/quorum-wait';
import type { Signer } from '../../../core/consensus/signing';
import { BftCluster } from './bft-cluster';

const SITES = ['aws:us-east-1', 'azure:westeurope', 'gcp:europe-west1', 'dc:paris'];
const home = mkdtempSync(join(tmpdir(), 'fedflow-bft-'));
after(() => rmSync(home, { recursive: true, force: true }));
const publicKeys = Object.fromEntries(SITES.map((s) => [s, ensureSiteKey(join(home, s.replace(':', '_')))]));
const signers = new Map<string, Signer>(SITES.map((s) => [s, loadSiteSigner(join(home, s.replace(':', '_')), s)]));
const ed25519 = { signer: (s: string) => signers.get(s) as Signer, verifier: ed25519Verifier(publicKeys) };

const committedEverywhere = (c: BftCluster, sites: readonly string[], v: string) => () => sites.every((s) => c.ledger.values(s).includes(v));

test('4 sites: a proposal commits everywhere with a certificate anyone can verify', () => {
  const c = new BftCluster(SITES, 1, ed25519);
  c.propose('place kv on dc:paris');
  assert.ok(c.net.runUntil(committedEverywhere(c, SITES, 'place kv on dc:paris'), 500) >= 0);
  const got = c.ledger.perNode.get('dc:paris')![0]!;
  assert.equal(got.certificate.votes.length >= 3, true);
  assert.deepEqual(verifyCertificate(got.certificate, publicKeys), { ok: true });
});

test('1 of 4 sites down: still commits (n = 3f+1, f = 1)', () => {
  const c = new BftCluster(SITES, 2, ed25519);
  c.net.crash('dc:paris');
  c.propose('v1');
  const live = SITES.filter((s) => s !== 'dc:paris');
  assert.ok(c.net.runUntil(committedEverywhere(c, live, 'v1'), 500) >= 0, 'v1 did not commit with 3 of 4 sites');
});

test('2 of 4 sites down: no commit, "2 of 4 reachable, need 3"; commits once one returns', () => {
  const c = new BftCluster(SITES, 3, ed25519);
  c.net.crash('gcp:europe-west1');
  c.net.crash('dc:paris');
  c.propose('v1');
  assert.equal(c.net.runUntil(() => c.ledger.bySeq.size > 0, 400), -1, 'committed with only 2 of 4 sites');
  const wait = replicaQuorumWait(c.node('aws:us-east-1').replica.state);
  assert.deepEqual([wait.reachable, wait.needed, wait.total], [2, 3, 4]);
  assert.equal(describeQuorumWait(wait), 'waiting for quorum: 2 of 4 sites reachable, need 3 (silent: dc:paris, gcp:europe-west1)');
  c.net.restart('dc:paris');
  const live = SITES.filter((s) => s !== 'gcp:europe-west1');
  assert.ok(c.net.runUntil(committedEverywhere(c, live, 'v1'), 600) >= 0, 'v1 did not commit after a third site returned');
});

test('a Byzantine site signing two digests is reported with proof, and the honest commit stands', () => {
  const c = new BftCluster(SITES, 4, ed25519);
  const liar = 'gcp:europe-west1';
  c.byzantine.add(liar);
  c.lie = 'both';
  c.propose('honest value');
  const honest = SITES.filter((s) => s !== liar);
  assert.ok(c.net.runUntil(committedEverywhere(c, honest, 'honest value'), 800) >= 0);
  for (const s of honest) assert.deepEqual(c.ledger.values(s), ['honest value']);
  const proofs = honest.flatMap((s) => c.node(s).proofs);
  assert.ok(proofs.length > 0, 'no site reported the equivocation');
  for (const p of proofs) {
    assert.equal(p.site, liar);
    assert.notEqual(p.first.digest, p.second.digest);
    assert.equal(checkEquivocationProof(p, ed25519.verifier), null, 'the proof must verify with public keys alone');
  }
  const tampered = { ...proofs[0]!, second: { ...proofs[0]!.second, digest: proofs[0]!.first.digest === 'x' ? 'y' : 'x' } };
  assert.match(checkEquivocationProof(tampered, ed25519.verifier) ?? '', /does not verify/);
});

test('a Byzantine primary sending different values to different sites cannot make them commit different values', () => {
  const c = new BftCluster(SITES, 5, ed25519);
  c.byzantine.add(SITES[0]!); // the primary of view 0
  c.propose('v1');
  c.net.runUntil(() => false, 800);
  const honest = SITES.slice(1);
  const digests = new Set(honest.flatMap((s) => c.ledger.perNode.get(s) ?? []).map((x) => x.digest));
  assert.ok(digests.size <= 1, `honest sites committed different digests: ${[...digests].join(', ')}`);
});

test('a forged vote and a replayed vote are refused', () => {
  const c = new BftCluster(SITES, 6, ed25519);
  c.propose('v1');
  assert.ok(c.net.runUntil(committedEverywhere(c, SITES, 'v1'), 500) >= 0);
  const target = c.node('dc:paris');
  const before = target.replica.state.executed;

  // Forged: azure's name, signed with aws's key.
  const forged = { ...signVote(signers.get('aws:us-east-1')!, { type: 'commit', view: 0, seq: 2, digest: digestOf('evil') }), site: 'azure:westeurope' };
  let out = target.receive({ type: 'commit', to: 'dc:paris', vote: forged });
  assert.match(target.readies.at(-1)!.refused[0]?.reason ?? '', /claims site azure:westeurope but its signature does not verify/);

  // Replayed: a real commit vote of sequence 1, delivered again after it executed.
  const old = c.disks.get('azure:westeurope')!.signed.find((r) => r.vote.type === 'commit' && r.vote.seq === 1)!.vote;
  out = target.receive({ type: 'commit', to: 'dc:paris', vote: old });
  assert.match(target.readies.at(-1)!.refused[0]?.reason ?? '', /replayed commit from azure:westeurope: sequence 1 is already executed/);
  assert.ok(out.every((m) => m.type === 'certificate'), 'a replay may only earn the sender a certificate');

  // Replayed within an open sequence: counted once only.
  c.propose('v2');
  const node = c.node('dc:paris');
  const prep = signVote(signers.get('azure:westeurope')!, { type: 'prepare', view: 0, seq: 2, digest: digestOf('v2') });
  node.receive({ type: 'prepare', to: 'dc:paris', vote: prep });
  node.receive({ type: 'prepare', to: 'dc:paris', vote: prep });
  assert.match(node.readies.at(-1)!.refused[0]?.reason ?? '', /replayed prepare from azure:westeurope for seq 2: already counted/);
  // From an older view.
  const oldView = signVote(signers.get('azure:westeurope')!, { type: 'prepare', view: 0, seq: 3, digest: digestOf('v3') });
  const v1 = new BftCluster(SITES, 7, ed25519, 1);
  const r = v1.node('dc:paris');
  r.receive({ type: 'prepare', to: 'dc:paris', vote: oldView } as BftMessage<string>);
  assert.match(r.readies.at(-1)!.refused[0]?.reason ?? '', /view 0 is older than the current view 1/);
  assert.equal(node.replica.state.executed >= before, true);
});

test('a restarted site catches up from certificates and does not sign a different digest', () => {
  const c = new BftCluster(SITES, 8, ed25519);
  c.propose('v1');
  assert.ok(c.net.runUntil(committedEverywhere(c, SITES, 'v1'), 500) >= 0);
  c.net.crash('dc:paris');
  c.propose('v2');
  c.propose('v3');
  const live = SITES.filter((s) => s !== 'dc:paris');
  assert.ok(c.net.runUntil(committedEverywhere(c, live, 'v3'), 800) >= 0);
  c.net.restart('dc:paris');
  assert.ok(c.net.runUntil(committedEverywhere(c, ['dc:paris'], 'v3'), 800) >= 0, 'restarted site did not catch up');
  assert.deepEqual(c.ledger.values('dc:paris'), ['v1', 'v2', 'v3']);
});

test('verifyCertificate with Ed25519 keys refuses duplicates, unknown sites, wrong digest/view/seq, forgeries and short certificates', () => {
  const c = new BftCluster(SITES, 9, ed25519);
  c.propose('v1');
  assert.ok(c.net.runUntil(committedEverywhere(c, SITES, 'v1'), 500) >= 0);
  const cert = c.ledger.perNode.get('aws:us-east-1')![0]!.certificate;
  assert.deepEqual(verifyCertificate(cert, publicKeys), { ok: true });
  const v = cert.votes;
  const cases: [string, typeof cert, RegExp][] = [
    ['duplicate', { ...cert, votes: [v[0]!, v[0]!, v[1]!] }, /a second vote from .*; each site counts once/],
    ['unknown site', { ...cert, votes: [...v.slice(0, 2), { ...v[2]!, site: 'dc:nowhere' }] }, /site dc:nowhere is not a member/],
    ['wrong digest', { ...cert, digest: digestOf('other') }, /digest .*, the certificate is for digest/],
    ['wrong view', { ...cert, view: 1 }, /view 0, the certificate is for view 1/],
    ['wrong seq', { ...cert, seq: 2 }, /sequence 1, the certificate is for sequence 2/],
    ['forged', { ...cert, votes: [{ ...v[0]!, sig: v[1]!.sig }, ...v.slice(1)] }, /signature does not verify/],
    ['too few', { ...cert, votes: v.slice(0, 2) }, /2 valid commit votes, a certificate needs 3 of 4 sites/],
  ];
  for (const [name, bad, why] of cases) {
    const r = verifyCertificate(bad, publicKeys);
    assert.equal(r.ok, false, `${name} certificate was accepted`);
    assert.match((r as { reason: string }).reason, why, name);
  }
});

test('a replica whose votes were lost sends them again when the primary repeats its pre-prepare', () => {
  // Two sites down, so nothing commits; the pre-prepare and dc:paris's prepare went out, and are
  // taken as lost. The primary sends the pre-prepare again: dc:paris answers with its prepare again
  // (signed as before), where it used to refuse the repeat and the round stalled for good.
  const c = new BftCluster(SITES, 9, ed25519);
  c.net.crash('gcp:europe-west1');
  c.net.crash('azure:westeurope');
  c.propose('v1');
  assert.equal(c.net.runUntil(() => c.ledger.bySeq.size > 0, 300), -1, 'committed with 2 of 4 sites');
  const primary = SITES[0]!;
  const prePrepare = c.disks.get(primary)!.signed.find((r) => r.vote.type === 'pre-prepare' && r.vote.seq === 1)!.vote;
  const paris = c.node('dc:paris');
  const sent = c.disks.get('dc:paris')!.signed.find((r) => r.vote.type === 'prepare' && r.vote.seq === 1)!.vote;
  const out = paris.receive({ type: 'pre-prepare', to: 'dc:paris', vote: prePrepare, value: 'v1' } as BftMessage<string>);
  assert.deepEqual(paris.readies.at(-1)!.refused, [], 'the repeat is not refused');
  const again = out.filter((m) => m.type === 'prepare');
  assert.deepEqual(new Set(again.map((m) => m.to)), new Set(SITES.filter((s) => s !== 'dc:paris')));
  for (const m of again) assert.deepEqual((m as { vote: unknown }).vote, sent, 'the same signed vote, not a new signature');
  // A pre-prepare for the same sequence with another digest is still refused.
  const other = signVote(signers.get(primary)!, { type: 'pre-prepare', view: 0, seq: 1, digest: digestOf('v1 changed') });
  paris.receive({ type: 'pre-prepare', to: 'dc:paris', vote: other, value: 'v1 changed' } as BftMessage<string>);
  assert.ok(paris.readies.at(-1)!.refused.length > 0, 'a second digest for seq 1 is refused');
});
