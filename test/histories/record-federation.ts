/**
 * Records a `federation` workflow history for the replay test: the default four-site federation
 * commits a CFT round (trusted sites only) and a BFT round (touching the untrusted site), then one
 * proposal sent twice at once under one request id (the second joins the first: the
 * `federation-dedupe-pending-v1` marker), on a real dev server. Run it only when the federation's shape ships:
 *
 *   node --import tsx test/histories/record-federation.ts <tag>   # writes test/histories/federation-local.<tag>-cft-bft.json
 *
 * The history ends while the workflow still runs (it is an entity workflow); replay covers it up
 * to there. Recorded histories are never edited: a change that breaks their replay needs `patched()`.
 */
import { foundingSites } from '../../activities/consensus-keys';
import { proposeUpdate, type FederationInput } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation } from '../helpers/federation';
import { exportHistory } from './export';

async function run(): Promise<void> {
  const tag = process.argv[2];
  if (!tag) throw new Error('usage: record-federation.ts <tag>  (e.g. v1)');
  const env = await startTestServer();
  const fed = await startTestFederation(env, { federationWorkflow: false });
  try {
    const workflowId = federationWorkflowId(fed.config.federation);
    const input: FederationInput = { name: fed.config.federation, sites: foundingSites(fed.config, fed.home) };
    const handle = await env.client.workflow.start('federation', { taskQueue: CONTROL_TASK_QUEUE, workflowId, args: [input], workflowIdConflictPolicy: 'USE_EXISTING' });
    const cft = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [{ kind: 'reservation', op: 'reserve', workload: 'w1', site: 'dc:frankfurt', instances: 1 }] }] });
    const bft = await handle.executeUpdate(proposeUpdate, { args: [{ entries: [{ kind: 'placement', workload: 'w2', site: 'edge:lisbon' }] }] });
    const twice = { entries: [{ kind: 'reservation' as const, op: 'reserve' as const, workload: 'w3', site: 'dc:london', instances: 1 }], requestId: 'recorded-twice' };
    const [a, b] = await Promise.all([handle.executeUpdate(proposeUpdate, { args: [twice] }), handle.executeUpdate(proposeUpdate, { args: [twice] })]);
    console.log(`committed: ${cft.protocol} round ${cft.round}, ${bft.protocol} round ${bft.round}, twice: rounds ${a.round} and ${b.round}`);
    // Let the BFT round's last deliveries land in history before it is exported.
    await new Promise((r) => setTimeout(r, 1500));
    await exportHistory(env.address, workflowId, tag, 'cft-bft');
  } finally {
    await fed.stop();
    await env.teardown();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
