/**
 * The federation queues a request id once (patch federation-dedupe-pending-v1): a proposal sent
 * again while the first is still queued or in its round joins it, and a proposal that reuses the
 * id with other entries is refused, on a real dev server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { foundingSites } from '../../activities/consensus-keys';
import { committedStateQuery, federationWorkflowId, proposeUpdate, type FederationInput } from '../../workflows/federation-types';
import { CONTROL_TASK_QUEUE } from '../../workflows/queues';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation, type TestFederation } from '../helpers/federation';

describe('one request id, proposed more than once while pending', () => {
  let env: TestWorkflowEnvironment;
  let fed: TestFederation;

  before(async () => {
    env = await startTestServer();
    fed = await startTestFederation(env, { federationWorkflow: false });
  });
  after(async () => {
    await fed?.stop();
    await env?.teardown();
  });

  it('commits it once, answers every sender with the same result, and refuses the id with other entries', async () => {
    const input: FederationInput = { name: fed.config.federation, sites: foundingSites(fed.config, fed.home) };
    const handle = await env.client.workflow.start('federation', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: federationWorkflowId(fed.config.federation),
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    const before = await handle.query(committedStateQuery);
    const same = { entries: [{ kind: 'reservation' as const, op: 'reserve' as const, workload: 'w-dup', site: 'dc:frankfurt', instances: 1 }], touches: ['dc:paris'], requestId: 'dup-1' };
    // The same entries with the keys in another order and the touches repeated: still the same proposal.
    const sameAgain = { requestId: 'dup-1', touches: ['dc:paris'], entries: [{ site: 'dc:frankfurt', instances: 1, workload: 'w-dup', op: 'reserve' as const, kind: 'reservation' as const }] };
    const other = { entries: [{ kind: 'reservation' as const, op: 'reserve' as const, workload: 'w-other', site: 'dc:frankfurt', instances: 1 }], requestId: 'dup-1' };
    const [a, b, c] = await Promise.allSettled([
      handle.executeUpdate(proposeUpdate, { args: [same] }),
      handle.executeUpdate(proposeUpdate, { args: [sameAgain] }),
      handle.executeUpdate(proposeUpdate, { args: [other] }),
    ]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(b.status, 'fulfilled');
    if (a.status !== 'fulfilled' || b.status !== 'fulfilled') return;
    assert.equal(a.value.requestId, 'dup-1');
    assert.deepEqual([b.value.round, b.value.requestId], [a.value.round, a.value.requestId]);
    assert.equal(c.status, 'rejected');
    if (c.status === 'rejected') {
      assert.ok(c.reason instanceof WorkflowUpdateFailedError, String(c.reason));
      const cause = (c.reason as WorkflowUpdateFailedError).cause as { message?: string; type?: string };
      assert.equal(cause.type, 'RequestIdReused');
      assert.match(cause.message ?? '', /request id 'dup-1' is already queued with other entries/);
    }
    const after = await handle.query(committedStateQuery);
    assert.equal(after.applied - before.applied, 1, 'one entry in the log, not two or three');
    assert.ok(after.reservations['w-dup@dc:frankfurt']);
    assert.equal(after.reservations['w-other@dc:frankfurt'], undefined);
  });
});
