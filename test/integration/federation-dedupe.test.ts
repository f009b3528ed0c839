/**
 * The federation queues a request id once (patch federation-dedupe-pending-v1): a proposal sent
 * again while the first is still queued or in its round joins it, and a proposal that reuses the
 * id with other entries is refused, on a real dev server. The first proposal is held in its round
 * by taking two of the three trusted sites down, so the others arrive while it is pending, every
 * time (sent together, the server may deliver them in any order, and a fast round may be over).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import { foundingSites } from '../../activities/consensus-keys';
import { committedStateQuery, proposeUpdate, type FederationInput } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import type { RunningFederation } from '../../worker/federation-runtime';
import { useServerAndFederation } from '../helpers/federation';

type Settled<T> = { status: 'fulfilled'; value: T } | { status: 'rejected'; reason: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ status: 'fulfilled' as const, value }),
    (reason: unknown) => ({ status: 'rejected' as const, reason }),
  );

describe('one request id, proposed more than once while pending', () => {
  let returned: RunningFederation | undefined;
  const suite = useServerAndFederation({ federationWorkflow: false }, { beforeStop: async () => returned?.shutdown() });


  it('commits it once, answers every sender with the same result, and refuses the id with other entries', async () => {
    const input: FederationInput = { name: suite.fed.config.federation, sites: foundingSites(suite.fed.config, suite.fed.home) };
    const handle = await suite.env.client.workflow.start('federation', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: federationWorkflowId(suite.fed.config.federation),
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    const before = await handle.query(committedStateQuery);
    const same = { entries: [{ kind: 'reservation' as const, op: 'reserve' as const, workload: 'w-dup', site: 'dc:frankfurt', instances: 1 }], touches: ['dc:paris'], requestId: 'dup-1' };
    // The same entries with the keys in another order and the touches repeated: still the same proposal.
    const sameAgain = { requestId: 'dup-1', touches: ['dc:paris'], entries: [{ site: 'dc:frankfurt', instances: 1, workload: 'w-dup', op: 'reserve' as const, kind: 'reservation' as const }] };
    const other = { entries: [{ kind: 'reservation' as const, op: 'reserve' as const, workload: 'w-other', site: 'dc:frankfurt', instances: 1 }], requestId: 'dup-1' };
    // Two of the three trusted sites down: the round cannot reach its quorum (2 of 3) and waits.
    await suite.fed.stopAgents('dc:frankfurt', 'dc:london');
    const first = await handle.startUpdate(proposeUpdate, { args: [same], waitForStage: WorkflowUpdateStage.ACCEPTED });
    const a0 = settle(first.result());
    const b = settle(handle.executeUpdate(proposeUpdate, { args: [sameAgain] }));
    // The reused id with other entries is refused at once, while the first is still pending.
    const refused = await settle(handle.executeUpdate(proposeUpdate, { args: [other] }));
    assert.equal((await handle.query(committedStateQuery)).applied, before.applied, 'nothing committed yet: the first proposal is still pending');
    // The two sites come back (same directories, same keys): the round commits.
    returned = await suite.fed.restartAgents('dc:frankfurt', 'dc:london');
    const [a, bb] = await Promise.all([a0, b]);
    assert.equal(a.status, 'fulfilled', String(a.status === 'rejected' && a.reason));
    assert.equal(bb.status, 'fulfilled', String(bb.status === 'rejected' && bb.reason));
    if (a.status !== 'fulfilled' || bb.status !== 'fulfilled') return;
    assert.equal(a.value.requestId, 'dup-1');
    assert.deepEqual([bb.value.round, bb.value.requestId], [a.value.round, a.value.requestId]);
    assert.equal(refused.status, 'rejected');
    if (refused.status === 'rejected') {
      assert.ok(refused.reason instanceof WorkflowUpdateFailedError, String(refused.reason));
      const cause = (refused.reason as WorkflowUpdateFailedError).cause as { message?: string; type?: string };
      assert.equal(cause.type, 'RequestIdReused');
      assert.match(cause.message ?? '', /request id 'dup-1' is already queued with other entries/);
    }
    const after = await handle.query(committedStateQuery);
    assert.equal(after.applied - before.applied, 1, 'one entry in the log, not two or three');
    assert.ok(after.reservations['w-dup@dc:frankfurt']);
    assert.equal(after.reservations['w-other@dc:frankfurt'], undefined);
  });
});
