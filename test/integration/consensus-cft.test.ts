/**
 * The federation's crash-tolerant rounds on a real dev server, three trusted sites in this
 * process. A site goes "down" by stopping just its Worker: its activities then sit unanswered on
 * its task queue, exactly as when its agent's machine is gone.
 */
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { createConsensusActivities } from '../../activities/consensus';
import { configPublicKeys, foundingSites } from '../../activities/consensus-keys';
import { scanRecords, type LogRecord } from '../../agent/federation/log-records';
import { FEDERATION_LOG_FILE } from '../../agent/federation/log';
import { siteDir } from '../../agent/site/home';
import type { FederationEntry } from '../../core/consensus/entries';
import { CONTROL_TASK_QUEUE, siteTaskQueue } from '../../core/contracts/task-queues';
import { committedStateQuery, consensusStatusQuery, joinUpdate, leaveUpdate, membershipQuery, proposeUpdate, type FederationInput } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import type { CommitProposalResult } from '../../workflows/federation/commit-proposal';
import { useServerAndFederation } from '../helpers/federation';
import { eventually } from '../helpers/eventually';

const SITES = ['dc:frankfurt', 'dc:london', 'dc:paris'];
const CONFIG = {
  federation: 'cft',
  sites: SITES.map((id) => ({ id, provider: 'local', trust: 'trusted', capacity: { instances: 50 } })),
};

const reserve = (workload: string, site: string): FederationEntry => ({ kind: 'reservation', op: 'reserve', workload, site, instances: 1 });

/** A site's committed entries, read from its federation.log without opening it for writing. */
function committedAtSite(home: string, site: string): FederationEntry[] {
  const path = join(siteDir(site, home), FEDERATION_LOG_FILE);
  if (!existsSync(path)) return [];
  const entries: { kind: string; value?: FederationEntry }[] = [];
  let commit = 0;
  for (const r of scanRecords<LogRecord>(readFileSync(path), path).records) {
    if (r.t === 'entry') entries.push(r.entry as never);
    else if (r.t === 'truncate') entries.length = Math.min(entries.length, r.from - 1);
    else commit = r.meta.commit;
  }
  return entries.slice(0, commit).flatMap((e) => (e.kind === 'value' ? [e.value!] : []));
}

describe('federation CFT rounds on a real dev server', () => {
  let handle: WorkflowHandle;
  const extraWorkers: { worker: Worker; run: Promise<void> }[] = [];

  async function restartSite(site: string): Promise<void> {
    const worker = await Worker.create({
      connection: suite.env.nativeConnection,
      namespace: suite.env.namespace ?? 'default',
      taskQueue: siteTaskQueue(site),
      // A fresh agent: its replica comes back from the site's directory alone.
      activities: createConsensusActivities({ site, dir: siteDir(site, suite.fed.home), keys: configPublicKeys(suite.fed.config, suite.fed.home) }),
    });
    extraWorkers.push({ worker, run: worker.run() });
  }

  const suite = useServerAndFederation(
    { config: CONFIG, federationWorkflow: false },
    {
      beforeStop: async () => {
        await handle?.terminate('test over').catch(() => undefined);
        for (const w of extraWorkers) {
          w.worker.shutdown();
          await w.run;
        }
      },
    },
  );
  before(async () => {
    const input: FederationInput = { name: 'cft', sites: foundingSites(suite.fed.config, suite.fed.home), maxHistoryEvents: 400 };
    handle = await suite.env.client.workflow.start('federation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: federationWorkflowId('cft'), args: [input] });
  });

  it('commits with every site up: a majority of acks in the leader term is the certificate', async () => {
    const r = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('w1', 'dc:paris')] }] });
    assert.equal(r.protocol, 'cft');
    assert.equal(r.certificate.protocol, 'cft');
    assert.ok(r.certificate.protocol === 'cft' && r.certificate.ackedBy.length >= 2, JSON.stringify(r.certificate));
    assert.deepEqual(r.quorum, { needed: 2, total: 3, got: r.certificate.ackedBy.length });
    assert.deepEqual(r.rejected, []);
    const state = await handle.query(committedStateQuery);
    assert.equal(state.reservations['w1@dc:paris']?.instances, 1);
  });

  it('still commits with 1 of 3 sites down, and the restarted site catches up from its own log', async () => {
    await suite.fed.stopAgents('dc:london');
    const results = await Promise.all(
      ['w2', 'w3', 'w4'].map((w) => handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve(w, 'dc:frankfurt')] }] })),
    );
    for (const r of results) {
      assert.ok(r.certificate.protocol === 'cft');
      assert.deepEqual(r.certificate.ackedBy, ['dc:frankfurt', 'dc:paris'], 'the down site cannot have acked');
    }
    assert.ok(committedAtSite(suite.fed.home, 'dc:london').length <= 1, 'the down site holds only what it saw before');

    await restartSite('dc:london');
    // No new proposal: the idle heartbeat alone brings it up to date.
    await eventually('dc:london to hold all 4 committed entries', () => committedAtSite(suite.fed.home, 'dc:london').length === 4);
    // The commit index reaches every site with the idle heartbeat; then all three logs agree.
    await eventually('dc:paris to learn the last commit', () => committedAtSite(suite.fed.home, 'dc:paris').length === 4);
    assert.deepEqual(committedAtSite(suite.fed.home, 'dc:london'), committedAtSite(suite.fed.home, 'dc:paris'));
  });

  it('refuses a join or leave with a clear error in the validator, before it enters history', async () => {
    const bad = await handle.executeUpdate(joinUpdate, { args: [{ site: 'dc:oslo', trust: 'trusted', capacity: 2, publicKey: 'not-a-key' }] }).then(
      () => assert.fail('join with a bad key must be refused'),
      (e: unknown) => e,
    );
    assert.ok(bad instanceof WorkflowUpdateFailedError);
    assert.match(String((bad.cause as Error).message), /site dc:oslo needs publicKey: its Ed25519 public key as base64 SPKI DER/);
    const leave = await handle.executeUpdate(leaveUpdate, { args: [{ site: 'dc:oslo' }] }).then(
      () => assert.fail('leave of a non-member must be refused'),
      (e: unknown) => e,
    );
    assert.match(String(((leave as WorkflowUpdateFailedError).cause as Error).message), /site 'dc:oslo' is not a member \(members: dc:frankfurt, dc:london, dc:paris\)/);
    const unknown = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('w9', 'dc:oslo')] }] }).then(
      () => assert.fail('a proposal naming a non-member must be refused'),
      (e: unknown) => e,
    );
    assert.match(String(((unknown as WorkflowUpdateFailedError).cause as Error).message), /site 'dc:oslo' is not a member of the federation/);
  });

  it('a superseded run cannot write: after continue-as-new takes a new term, the old term is refused by every site', async () => {
    const first = await handle.query(consensusStatusQuery);
    // Enough rounds to pass maxHistoryEvents, so the workflow continues as new with term + 1.
    for (let i = 0; i < 40; i++) await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve(`v${i}`, 'dc:paris')] }] });
    await eventually('a new run with a higher term', async () => (await handle.query(consensusStatusQuery)).term > first.term);
    const now = await handle.query(consensusStatusQuery);
    // The new run must write before the sites know its term: one more commit.
    await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('after-can', 'dc:paris')] }] });
    const hasAfterCan = () => committedAtSite(suite.fed.home, 'dc:paris').some((e) => e.kind === 'reservation' && e.workload === 'after-can');
    await eventually('dc:paris to learn the last commit', hasAfterCan);
    const before = committedAtSite(suite.fed.home, 'dc:paris').length;

    // The old epoch comes back (a late leader with the previous run's term and name).
    const stale = suite.env.client.workflow.execute('commitProposal', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: 'stale-leader',
      args: [{ federation: 'cft', sites: SITES.map((id) => ({ id, trust: 'trusted' })), entries: [reserve('stale', 'dc:paris')], term: first.term, leaderId: federationWorkflowId('cft') }],
    }) as Promise<CommitProposalResult>;
    const err = await stale.then(
      () => assert.fail('a stale leader must not commit'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    const msg = (err.cause as Error).message;
    assert.match(msg, new RegExp(`leader federation-cft of term ${first.term} was superseded`));
    // The federation may have continued as new again since (its history keeps growing), so the
    // sites' term is at least the one we saw, never the stale one.
    const siteTerm = Number(/is at term (\d+)/.exec(msg)?.[1]);
    assert.ok(siteTerm >= now.term && siteTerm > first.term, `sites at term ${siteTerm}, expected >= ${now.term}: ${msg}`);
    // Wait for an event that comes after anything the stale leader could have left pending: a
    // proposal committed by the live leader since, reaching dc:paris. Its log is in order, so what
    // it holds before that marker is all the stale leader could have written there.
    await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('after-stale', 'dc:paris')] }] });
    const marker = (e: FederationEntry) => e.kind === 'reservation' && e.workload === 'after-stale';
    await eventually('dc:paris to hold the commit made after the stale leader', () => committedAtSite(suite.fed.home, 'dc:paris').some(marker));
    const atParis = committedAtSite(suite.fed.home, 'dc:paris');
    assert.equal(atParis.length, before + 1, 'the stale leader wrote nothing: dc:paris holds only the commit made since');
    assert.ok(marker(atParis.at(-1)!));
    assert.ok(!atParis.some((e) => e.kind === 'reservation' && e.workload === 'stale'));
  });

  it('a site leaves and joins again through committed membership changes, each starting a new run', async () => {
    const left = await handle.executeUpdate(leaveUpdate, { args: [{ site: 'dc:london' }] });
    assert.equal(left.protocol, 'cft');
    assert.deepEqual(left.rejected, []);
    await eventually('the membership without dc:london', async () => (await handle.query(membershipQuery)).members.map((m) => m.id).join() === 'dc:frankfurt,dc:paris');
    const refused = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('gone', 'dc:london')] }] }).then(
      () => assert.fail('a proposal for a site that left must be refused'),
      (e: unknown) => e,
    );
    assert.match(String(((refused as WorkflowUpdateFailedError).cause as Error).message), /site 'dc:london' is not a member of the federation \(members: dc:frankfurt, dc:paris\)/);
    // Two trusted sites left: a majority is both, and the federation still commits.
    const two = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('two', 'dc:paris')] }] });
    assert.ok(two.certificate.protocol === 'cft');
    assert.deepEqual(two.certificate.ackedBy, ['dc:frankfurt', 'dc:paris']);

    const publicKey = foundingSites(suite.fed.config, suite.fed.home).find((s) => s.id === 'dc:london')!.publicKey;
    const joined = await handle.executeUpdate(joinUpdate, { args: [{ site: 'dc:london', trust: 'trusted', capacity: 5, publicKey }] });
    assert.deepEqual(joined.rejected, []);
    await eventually('dc:london back in the membership', async () => (await handle.query(membershipQuery)).members.some((m) => m.id === 'dc:london' && m.capacity === 5));
    const back = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [reserve('back', 'dc:london')] }] });
    assert.ok(back.certificate.protocol === 'cft');
    assert.deepEqual(back.quorum, { needed: 2, total: 3, got: back.certificate.ackedBy.length });
    await eventually('dc:london to hold the reservation made after it joined', () =>
      committedAtSite(suite.fed.home, 'dc:london').some((e) => e.kind === 'reservation' && e.workload === 'back'),
    );
  });
});
