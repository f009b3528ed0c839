/**
 * A migration whose federation commit cannot reach quorum waits, says why, and goes on once a
 * site returns; it neither fails nor commits half-way. On a real dev server with the default
 * four-site federation: kv-demo moves dc:paris -> edge:lisbon (untrusted, so BFT: 3 of 4 needed)
 * while dc:london and edge:lisbon are down.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sampleValue } from '../../agent/workload/sample';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { type MigrationResult } from '../../core/migration';
import { migrationWorkflowId } from '../../core/contracts/task-queues';
import type { RunningFederation } from '../../worker/federation-runtime';
import { progressQuery } from '../../core/contracts/migration-messages';
import { committedStateQuery } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { eventually } from '../helpers/eventually';
import { useServerAndFederation } from '../helpers/federation';

describe('a migration waits for quorum and commits once a site returns', () => {
  let lisbon: RunningFederation | undefined;
  // Every agent comes up once (so each site has published its key), then two go down.
  const suite = useServerAndFederation({}, { beforeStop: async () => lisbon?.shutdown() });


  it('reports "waiting for quorum: 2 of 4 sites reachable, need 3", then completes with a BFT certificate', async () => {
    await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home, keys: 50, valueBytes: 64 });
    await suite.fed.stopAgents('dc:london', 'edge:lisbon');

    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'edge:lisbon' }],
    });
    const waiting = await eventually('the migration to report that it waits for quorum', async () => {
      const p = await handle.query(progressQuery);
      return p.consensus?.status?.startsWith('waiting for quorum') ? p : undefined;
    });
    assert.match(waiting.consensus!.status!, /^waiting for quorum: 2 of 4 sites reachable, need 3/);
    assert.equal(waiting.phase, 'reserving');
    assert.match(waiting.steps.find((s) => s.id === 'reserve')!.detail ?? '', /waiting for quorum/);
    // Nothing committed half-way, nothing failed: still running, no reservation in the log.
    assert.equal((await handle.describe()).status.name, 'RUNNING');
    const fedHandle = suite.env.client.workflow.getHandle(federationWorkflowId(suite.fed.config.federation));
    const before = await fedHandle.query(committedStateQuery);
    assert.deepEqual(before.reservations, {});
    assert.equal(before.placements['kv-demo'], 'dc:paris');

    // edge:lisbon's agent comes back (a new process would do the same: same directory, same key).
    lisbon = await suite.fed.restartAgents('edge:lisbon');
    const r = (await handle.result()) as MigrationResult;
    assert.equal(r.status, 'completed');
    assert.equal(r.target, 'edge:lisbon');
    const reservation = r.consensus!.reservation;
    assert.equal(reservation.protocol, 'bft');
    assert.equal(reservation.waited, true);
    // The last status the commit saw: still the wait, or, when a round reported between lisbon's
    // return and the commit, that quorum was reachable again (both true; which one is a race).
    assert.match(reservation.lastStatus ?? '', /^(waiting for quorum: 2 of 4 sites reachable, need 3|committing: quorum reachable: 3 of 4 sites reachable, need 3)/);
    assert.equal(r.consensus!.placement.protocol, 'bft');
    assert.deepEqual([r.consensus!.placement.quorum.needed, r.consensus!.placement.quorum.total], [3, 4]);
    const committed = await fedHandle.query(committedStateQuery);
    assert.equal(committed.placements['kv-demo'], 'edge:lisbon');
    assert.deepEqual(committed.reservations, {});
    // The reservation was sent several times under one request id (by update, again each time a
    // wait ran out): the log holds it once, then the placement. Two entries in all.
    assert.equal(committed.applied - before.applied, 2);
    const all = (await (await fetch(`${r.address}/kv`)).json()) as Record<string, string>;
    assert.equal(Object.keys(all).length, 50);
    assert.equal(all['key-000049'], sampleValue(49, 64));
  });
});
