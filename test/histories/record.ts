/**
 * Records migrateWorkload histories for the replay test: a completed migration and a cancelled
 * (compensated) one, run on a real dev server. Run it only when a workflow shape ships:
 *
 *   node --import tsx test/histories/record.ts <tag>      # writes test/histories/<workflowId>.<tag>-*.json
 *
 * Recorded histories are never edited: a change that breaks their replay needs `patched()`.
 */
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { FedflowClient } from '../../client';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation } from '../helpers/federation';
import { exportHistory } from './export';

async function run(): Promise<void> {
  const tag = process.argv[2];
  if (!tag) throw new Error('usage: record.ts <tag>  (e.g. v1)');
  const env = await startTestServer();
  const fed = await startTestFederation(env);
  try {
    await deploySampleWorkload({ client: env.client, config: fed.config, home: fed.home, keys: 100, valueBytes: 64 });
    const c = FedflowClient.fromClient(env.client);
    const save = async (name: string) => {
      for (const workflowId of ['migrate-kv-demo', 'migrate-kv-demo-sync']) await exportHistory(env.address, workflowId, tag, name);
    };
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    await c.waitForResult('kv-demo');
    await save('completed');
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:paris' });
    // Pause once pre-copy has started, so the cancel finds a child and compensations to run.
    for (;;) {
      const p = await c.getProgress('kv-demo');
      if (p.steps.find((s) => s.id === 'sync')?.status !== 'pending') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await c.pause('kv-demo');
    await new Promise((r) => setTimeout(r, 300));
    await c.cancel('kv-demo', 'recorded cancel');
    await c.waitForResult('kv-demo').catch(() => undefined);
    await save('cancelled');
  } finally {
    await fed.stop();
    await env.teardown();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
