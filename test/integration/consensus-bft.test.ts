/**
 * The federation's Byzantine rounds on a real dev server: four sites in this process (three
 * trusted, one untrusted, so f = 1 and a quorum is 3). A proposal that touches the untrusted site
 * runs in BFT. A site goes "down" by stopping just its Worker; a Byzantine site is a worker on its
 * task queue whose agent signs with the site's real key but lies.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { createConsensusActivities } from '../../activities/consensus';
import { configPublicKeys, foundingSites } from '../../activities/consensus-keys';
import type { BftBatch, BftDeliverInput, BftMsg } from '../../core/contracts/consensus-payloads';
import { BFT_STORE_FILE, type BftRecord } from '../../agent/federation/bft-store';
import { scanRecords } from '../../agent/federation/log-records';
import { siteDir } from '../../agent/site/home';
import { ed25519Verifier, loadSiteSigner, verifyCertificate } from '../../agent/federation/site-keys';
import { checkEquivocationProof, signVote, type SignedVote } from '../../core/consensus/bft';
import type { FederationEntry } from '../../core/consensus/entries';
import { CONTROL_TASK_QUEUE, siteTaskQueue } from '../../core/contracts/task-queues';
import { federationCommitStatusQuery, type FederationChangeResult } from '../../workflows/federation/client';
import { committedStateQuery, consensusStatusQuery, proposeUpdate, type FederationInput } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { useServerAndFederation } from '../helpers/federation';
import { eventually } from '../helpers/eventually';

const CONFIG = {
  federation: 'bft',
  sites: [
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 50 } },
    { id: 'dc:london', provider: 'local', trust: 'trusted', capacity: { instances: 50 } },
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 50 } },
    { id: 'edge:lisbon', provider: 'local', trust: 'untrusted', capacity: { instances: 50 } },
  ],
};
// Touching the untrusted site makes every one of these a BFT proposal.
const reserve = (workload: string): FederationEntry => ({ kind: 'reservation', op: 'reserve', workload, site: 'edge:lisbon', instances: 1 });

/** Sequences a site has durably committed in `view`, read from its bft.log without opening it for writing. */
function committedSeqs(home: string, site: string, view: number): number[] {
  const path = join(siteDir(site, home), BFT_STORE_FILE);
  if (!existsSync(path)) return [];
  return scanRecords<BftRecord<BftBatch>>(readFileSync(path), path)
    .records.flatMap((r) => (r.t === 'committed' && r.view === view ? [r.c.seq] : []))
    .sort((a, b) => a - b);
}

describe('federation BFT rounds on a real dev server', () => {
  let handle: WorkflowHandle;
  let publicKeys: Record<string, string>;
  /** The worker now serving each site that the test took over (restarted or Byzantine). */
  const taken = new Map<string, { worker: Worker; run: Promise<void> }>();

  async function stopSite(site: string): Promise<void> {
    const t = taken.get(site);
    const w = t?.worker ?? suite.fed.runtime.agents.get(site)!.worker;
    if (w.getState() === 'RUNNING') w.shutdown();
    await eventually(`${site}'s worker to stop`, () => w.getState() === 'STOPPED');
    taken.delete(site);
  }
  async function startSite(site: string, activities: Record<string, (...a: never[]) => Promise<unknown>>): Promise<void> {
    const worker = await Worker.create({ connection: suite.env.nativeConnection, namespace: suite.env.namespace ?? 'default', taskQueue: siteTaskQueue(site), activities });
    taken.set(site, { worker, run: worker.run() });
  }
  const honest = (site: string) => createConsensusActivities({ site, dir: siteDir(site, suite.fed.home), keys: configPublicKeys(suite.fed.config, suite.fed.home) });
  const propose = (workload: string) => handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve(workload)] }] });

  const suite = useServerAndFederation(
    { config: CONFIG, federationWorkflow: false },
    {
      beforeStop: async () => {
        await handle?.terminate('test over').catch(() => undefined);
        for (const t of taken.values()) {
          if (t.worker.getState() === 'RUNNING') t.worker.shutdown();
          await t.run;
        }
      },
    },
  );
  before(async () => {
    const sites = foundingSites(suite.fed.config, suite.fed.home);
    publicKeys = Object.fromEntries(sites.map((s) => [s.id, s.publicKey]));
    const input: FederationInput = { name: 'bft', sites };
    handle = await suite.env.client.workflow.start('federation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: federationWorkflowId('bft'), args: [input] });
  });

  it('commits with 2f+1 signed commit votes that verify with the sites public keys, and a tampered certificate does not', async () => {
    const r = await propose('b1');
    assert.equal(r.protocol, 'bft');
    assert.ok(r.certificate.protocol === 'bft');
    const cert = r.certificate.certificate;
    assert.equal(cert.votes.length, 3);
    assert.deepEqual(r.quorum, { needed: 3, total: 4, got: 3 });
    assert.deepEqual(verifyCertificate(cert, publicKeys), { ok: true });
    // The same votes with one digest changed, or one vote dropped, must not verify.
    const altered = { ...cert, votes: cert.votes.map((v, i) => (i === 0 ? { ...v, digest: 'ab'.repeat(32) } : v)) };
    assert.equal(verifyCertificate(altered, publicKeys).ok, false);
    assert.match(String((verifyCertificate({ ...cert, votes: cert.votes.slice(1) }, publicKeys) as { reason: string }).reason), /2 valid commit votes, a certificate needs 3 of 4 sites/);
    assert.equal(r.summary.protocol, 'bft');
    assert.ok(r.summary.protocol === 'bft' && r.summary.signers.length === 3 && !('votes' in r.summary));
  });

  it('still commits with 1 of 4 sites down', async () => {
    await stopSite('dc:paris');
    const r = await propose('b2');
    assert.ok(r.certificate.protocol === 'bft');
    assert.ok(!r.certificate.certificate.votes.some((v) => v.site === 'dc:paris'), 'the down site cannot have voted');
    assert.deepEqual(verifyCertificate(r.certificate.certificate, publicKeys), { ok: true });
  });

  it('with 2 of 4 down a migration-style commit waits with a clear status, then commits once a site returns, and restarted sites catch up', async () => {
    await stopSite('dc:london');
    const probe = await suite.env.client.workflow.start('federationCommitProbe', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: 'probe-2-of-4',
      args: [[reserve('b3')], { federation: 'bft', touches: ['dc:frankfurt'] }],
    });
    await eventually('the waiting-for-quorum status', async () => {
      const pending = await probe.query(federationCommitStatusQuery);
      return pending.some((p) => p.status.startsWith('waiting for quorum: 2 of 4 sites reachable, need 3'));
    });
    const [pending] = await probe.query(federationCommitStatusQuery);
    assert.match(pending!.status, /^waiting for quorum: 2 of 4 sites reachable, need 3 \(silent: dc:london, dc:paris\)$/);
    const fedStatus = await handle.query(consensusStatusQuery);
    assert.equal(fedStatus.phase, 'waiting');
    assert.match(fedStatus.status, /^waiting for quorum: 2 of 4 sites reachable, need 3/);
    // Nothing committed half-way: the reservation is not in the committed state yet.
    assert.equal((await handle.query(committedStateQuery)).reservations['b3@edge:lisbon'], undefined);
    assert.equal((await probe.describe()).status.name, 'RUNNING');

    await startSite('dc:london', honest('dc:london'));
    const r = (await probe.result()) as FederationChangeResult;
    assert.equal(r.protocol, 'bft');
    assert.equal(r.waited, true);
    assert.ok(r.certificate.protocol === 'bft' && r.certificate.signers.length === 3);
    assert.equal((await handle.query(committedStateQuery)).reservations['b3@edge:lisbon']?.instances, 1);

    // dc:paris missed two sequences; after it restarts, the next round brings it certificates.
    await startSite('dc:paris', honest('dc:paris'));
    const last = await propose('b4');
    assert.ok(last.certificate.protocol === 'bft');
    const { view, seq } = last.certificate.certificate;
    const all = Array.from({ length: seq }, (_, i) => i + 1);
    await eventually('dc:paris to hold every committed sequence', () => committedSeqs(suite.fed.home, 'dc:paris', view).join() === all.join());
    await eventually('dc:london to hold every committed sequence', () => committedSeqs(suite.fed.home, 'dc:london', view).join() === all.join());
  });

  it('a Byzantine site that equivocates, forges and replays is caught with proof, and the commit stays correct', async () => {
    const liar = 'dc:london';
    await stopSite(liar);
    const base = honest(liar);
    const signer = loadSiteSigner(siteDir(liar, suite.fed.home), liar);
    let oldCommit: SignedVote | undefined;
    let ownPrepare: SignedVote | undefined;
    await startSite(liar, {
      ...base,
      async bftDeliver(input: BftDeliverInput) {
        const res = await base.bftDeliver(input);
        const out: BftMsg[] = [];
        for (const m of res.messages) {
          if (m.type === 'prepare' && m.vote.site === liar) {
            out.push(m);
            ownPrepare = m.vote;
            // Equivocation: a second prepare, validly signed, for another digest at the same (view, seq).
            out.push({ ...m, vote: signVote(signer, { type: 'prepare', view: m.vote.view, seq: m.vote.seq, digest: 'e'.repeat(64) }) });
            // Forged identity: a vote it signed itself but claims for dc:paris.
            out.push({ ...m, vote: { ...m.vote, site: 'dc:paris' } });
          } else if (m.type === 'commit' && m.vote.site === liar) {
            // Type confusion: its own validly signed prepare, handed in as its commit vote.
            if (ownPrepare?.seq === m.vote.seq) out.push({ ...m, vote: ownPrepare });
            // Replay: its commit vote from an earlier sequence, validly signed.
            if (oldCommit) out.push({ ...m, vote: oldCommit });
            oldCommit = m.vote;
            // Forgery: its commit vote with a broken signature.
            const sig = Buffer.from(m.vote.sig, 'base64');
            sig[0] = sig[0]! ^ 0xff;
            out.push({ ...m, vote: { ...m.vote, sig: sig.toString('base64') } });
          } else out.push(m);
        }
        return { ...res, messages: out };
      },
    });
    // Every kind of lie must be seen and refused. A round ends once 2f+1 commit votes verify, so
    // whether the liar's late commit messages (where the replay rides) reach a round before it ends
    // is a matter of timing: rounds go on, up to eight, until each kind has shown up.
    const lies = [
      /commit for seq \d+ claims site dc:london but its signature does not verify \(forged or altered\)/,
      /replayed commit from dc:london/,
      /prepare from dc:london claims to be signed by dc:paris/,
      /commit message from dc:london carries a prepare vote \(not routed\)/,
    ];
    const proposed: string[] = [];
    let status = await handle.query(consensusStatusQuery);
    for (const w of ['z1', 'z2', 'z3', 'z4', 'z5', 'z6', 'z7', 'z8']) {
      const r = await propose(w);
      proposed.push(w);
      assert.ok(r.certificate.protocol === 'bft');
      assert.deepEqual(verifyCertificate(r.certificate.certificate, publicKeys), { ok: true }, `round for ${w}`);
      assert.ok(!r.certificate.certificate.votes.some((v) => v.site === liar), 'the forged commit vote is left out');
      status = await handle.query(consensusStatusQuery);
      if (proposed.length >= 3 && lies.every((re) => status.refusals.some((x) => re.test(x.reason)))) break;
    }
    const proof = status.byzantine.find((p) => p.site === liar);
    assert.ok(proof, `an equivocation proof against ${liar}: ${JSON.stringify(status.byzantine)}`);
    assert.equal(checkEquivocationProof(proof, ed25519Verifier(publicKeys)), null, 'the proof verifies with the public keys');
    assert.notEqual(proof.first.digest, proof.second.digest);
    const reasons = status.refusals.map((r) => r.reason);
    for (const re of lies) assert.ok(reasons.some((r) => re.test(r)), `no refusal matching ${re} after ${proposed.length} rounds:\n${reasons.join('\n')}`);
    // Every round committed and applied, whatever the liar said.
    const state = await handle.query(committedStateQuery);
    for (const w of proposed) assert.equal(state.reservations[`${w}@edge:lisbon`]?.instances, 1);
  });
});
