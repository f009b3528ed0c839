/**
 * The federation continues as new in the middle of a stream of BFT proposals (a small history
 * bound forces it): no proposal is lost or failed across the hand-over, each gets a certificate
 * that verifies, and the log holds every one. Guards the hand-over against proposals that arrive
 * while the run waits for its last BFT round's confirmations.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { foundingSites } from '../../activities/consensus-keys';
import { verifyCertificate } from '../../agent/federation/site-keys';
import type { FederationEntry } from '../../core/consensus/entries';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { committedStateQuery, proposeUpdate, type FederationInput } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { useServerAndFederation } from '../helpers/federation';

const CONFIG = {
  federation: 'can',
  sites: [
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 100 } },
    { id: 'dc:london', provider: 'local', trust: 'trusted', capacity: { instances: 100 } },
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 100 } },
    { id: 'edge:lisbon', provider: 'local', trust: 'untrusted', capacity: { instances: 100 } },
  ],
};
const reserve = (workload: string): FederationEntry => ({ kind: 'reservation', op: 'reserve', workload, site: 'edge:lisbon', instances: 1 });

describe('federation continue-as-new under a stream of BFT proposals', () => {
  let handle: WorkflowHandle;
  let publicKeys: Record<string, string>;
  const suite = useServerAndFederation({ config: CONFIG, federationWorkflow: false }, { beforeStop: async () => void (await handle?.terminate('test over').catch(() => undefined)) });

  before(async () => {
    const sites = foundingSites(suite.fed.config, suite.fed.home);
    publicKeys = Object.fromEntries(sites.map((s) => [s.id, s.publicKey]));
    const input: FederationInput = { name: 'can', sites, maxHistoryEvents: 60 };
    handle = await suite.env.client.workflow.start('federation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: federationWorkflowId('can'), args: [input] });
  });

  it('commits every proposal across the hand-over, each with a certificate that verifies', async () => {
    const firstRun = (await handle.describe()).runId;
    // Bursts of proposals; the federation continues as new only with its queue empty and every
    // handler finished, so bursts follow each other at once (they land while it hands over) or
    // after a pause (it hands over in between).
    const BURSTS = [0, 0, 600, 0, 600, 0];
    const PER_BURST = 8;
    const N = BURSTS.length * PER_BURST;
    const results: Awaited<ReturnType<typeof propose>>[] = [];
    const propose = (i: number) => suite.env.client.workflow.getHandle(federationWorkflowId('can')).executeUpdate(proposeUpdate, { args: [{ entries: [reserve(`w${i}`)], requestId: `can-${i}` }] });
    for (const [b, pause] of BURSTS.entries()) {
      await new Promise((r) => setTimeout(r, pause));
      const ids = Array.from({ length: PER_BURST }, (_, k) => b * PER_BURST + k);
      (await Promise.all(ids.map(propose))).forEach((r, k) => (results[ids[k]!] = r));
    }
    const lastRun = (await suite.env.client.workflow.getHandle(federationWorkflowId('can')).describe()).runId;
    assert.notEqual(lastRun, firstRun, 'the history bound made the federation continue as new during the stream');
    for (const [i, r] of results.entries()) {
      assert.equal(r.protocol, 'bft', `proposal ${i}`);
      assert.ok(r.certificate.protocol === 'bft');
      assert.deepEqual(verifyCertificate(r.certificate.certificate, publicKeys), { ok: true }, `proposal ${i}`);
      assert.deepEqual(r.rejected, []);
    }
    const state = await suite.env.client.workflow.getHandle(federationWorkflowId('can')).query(committedStateQuery);
    for (let i = 0; i < N; i++) assert.equal(state.reservations[`w${i}@edge:lisbon`]?.instances, 1, `w${i}`);
  });
});
