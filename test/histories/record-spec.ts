/**
 * Records migrateWorkload histories of a spec workload (PostgreSQL 15 from workloads/postgres.yaml)
 * for the replay test: a completed migration (freeze by clean stop, private-boot verification,
 * digest announced after the image, target start and check) and a cancelled one. Run it only when a
 * workflow shape ships:
 *
 *   node --import tsx test/histories/record-spec.ts <tag>   # writes test/histories/migrate-postgres*.<tag>-*.json
 *
 * Recorded histories are never edited: a change that breaks their replay needs `patched()`.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../agent/site/home';
import { FedflowClient } from '../../client';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation } from '../helpers/federation';
import { exportHistory } from './export';

async function run(): Promise<void> {
  const tag = process.argv[2];
  if (!tag) throw new Error('usage: record-spec.ts <tag>  (e.g. v4-spec)');
  const env = await startTestServer();
  const fed = await startTestFederation(env);
  try {
    // PostgreSQL runs as `nobody` (the agent is root): it must pass through the home to its site.
    chmodSync(fed.home, 0o711);
    const c = FedflowClient.fromClient(env.client);
    const added = await c.addWorkload(readFileSync(join(REPO_ROOT, 'workloads', 'postgres.yaml'), 'utf8'), { config: fed.config, home: fed.home, site: 'dc:paris', source: 'workloads/postgres.yaml' });
    const [host, port] = [added.address.replace(/^.*@/, '').replace(/:\d+\/.*$/, ''), String(added.port)];
    execFileSync('psql', ['-h', host, '-p', port, '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', 'CREATE TABLE t AS SELECT g AS n, md5(g::text) AS v FROM generate_series(1, 20000) g']);
    const save = async (name: string) => {
      for (const workflowId of ['migrate-postgres', 'migrate-postgres-sync']) await exportHistory(env.address, workflowId, tag, name);
    };
    await c.startMigration({ workloadId: 'postgres', targetSite: 'dc:frankfurt' });
    await c.waitForResult('postgres');
    await save('completed');
    await c.startMigration({ workloadId: 'postgres', targetSite: 'dc:paris' });
    // Pause once pre-copy has started, so the cancel finds a child and compensations to run.
    for (;;) {
      const p = await c.getProgress('postgres');
      if (p.steps.find((s) => s.id === 'sync')?.status !== 'pending') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await c.pause('postgres');
    await new Promise((r) => setTimeout(r, 300));
    await c.cancel('postgres', 'recorded cancel');
    await c.waitForResult('postgres').catch(() => undefined);
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
