/**
 * The one way a migration proposes (shape v4): `proposeByUpdate` against a real federation on a
 * real dev server, and how it tells its answers apart, since the migration acts on each:
 * - no federation workflow: `notRunning` (the commit step starts it again);
 * - the validator refuses the proposal (a site that is not a member): `refused` (nothing entered
 *   the log; the step fails as rejected, and is not sent again);
 * - no quorum: `pending`, with the federation's own status line; the same request sent again under
 *   the same update id attaches to the waiting update and, once the quorum is back, gets the one
 *   answer; the log holds the entry once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foundingSites } from '../../activities/consensus-keys';
import { proposeByUpdate } from '../../activities/federation-propose';
import { committedStateQuery, type FederationInput } from '../../core/contracts/federation';
import { CONTROL_TASK_QUEUE, federationWorkflowId } from '../../core/contracts/task-queues';
import type { RunningFederation } from '../../worker/federation-runtime';
import { eventually } from '../helpers/eventually';
import { useServerAndFederation } from '../helpers/federation';

describe('proposeByUpdate against a real federation', () => {
  let returned: RunningFederation | undefined;
  const suite = useServerAndFederation({ federationWorkflow: false }, { beforeStop: async () => returned?.shutdown() });

  it('says not running, refused, and pending with the status line; a re-send attaches and gets the one answer', async () => {
    const client = suite.env.client;
    const name = suite.fed.config.federation;
    const reserve = { kind: 'reservation' as const, op: 'reserve' as const, workload: 'w-upd', site: 'dc:frankfurt', instances: 1 };

    const missing = await proposeByUpdate(client, { federation: 'no-such-federation', proposal: { entries: [reserve], requestId: 'r-missing' }, waitMs: 2_000 });
    assert.ok('pending' in missing && missing.notRunning, JSON.stringify(missing));

    const input: FederationInput = { name, sites: foundingSites(suite.fed.config, suite.fed.home) };
    const handle = await client.workflow.start('federation', { taskQueue: CONTROL_TASK_QUEUE, workflowId: federationWorkflowId(name), args: [input], workflowIdConflictPolicy: 'USE_EXISTING' });
    const before = await handle.query(committedStateQuery);

    const refused = await proposeByUpdate(client, { federation: name, proposal: { entries: [{ ...reserve, site: 'dc:nowhere' }], requestId: 'r-refused' }, waitMs: 5_000 });
    assert.ok('pending' in refused && refused.refused === true && !refused.failed, JSON.stringify(refused));
    assert.match(refused.pending, /refused the proposal: .*dc:nowhere.* is not a member/);

    // Two of the three trusted sites down: the round cannot reach its quorum and waits.
    await suite.fed.stopAgents('dc:frankfurt', 'dc:london');
    const args = { federation: name, proposal: { entries: [reserve], touches: ['dc:paris'], requestId: 'r-quorum' }, waitMs: 1_500 };
    // Sent again and again under the same update id until the round says why it waits (the
    // federation notices the silent sites after its timeouts).
    let sends = 0;
    const waiting = await eventually('the federation to say it waits for quorum', async () => {
      const r = await proposeByUpdate(client, args);
      sends++;
      assert.ok('pending' in r && !r.refused && !r.notRunning && !r.failed, JSON.stringify(r));
      assert.match(r.pending, /no answer within 1500 ms/);
      return r.status?.startsWith('waiting for quorum') ? r : undefined;
    });
    assert.match(waiting.status!, /^waiting for quorum: \d+ of \d+ sites reachable, need \d+/);
    assert.equal((await handle.query(committedStateQuery)).applied, before.applied, 'nothing committed without quorum');

    returned = await suite.fed.restartAgents('dc:frankfurt', 'dc:london');
    const answered = await proposeByUpdate(client, { ...args, waitMs: 60_000 });
    assert.ok('result' in answered, JSON.stringify(answered));
    assert.equal(answered.result.requestId, 'r-quorum');
    assert.deepEqual(answered.result.rejected, []);
    const after = await handle.query(committedStateQuery);
    assert.equal(after.applied - before.applied, 1, `sent ${sends + 1} times, in the log once`);
    assert.ok(after.reservations['w-upd@dc:frankfurt']);
  });
});
