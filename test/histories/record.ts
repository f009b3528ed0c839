/**
 * Records migrateWorkload histories for the replay test: a completed migration and a cancelled
 * (compensated) one, run on a real dev server. Run it only when a workflow shape ships:
 *
 *   node --import tsx test/histories/record.ts <tag>             # the sample: migrate-kv-demo*.<tag>-*.json
 *   node --import tsx test/histories/record.ts <tag> postgres    # a spec workload, PostgreSQL 15 from
 *                                                                # workloads/postgres.yaml (freeze by clean
 *                                                                # stop, private-boot verification, digest
 *                                                                # announced after the image): migrate-postgres*.<tag>-*.json
 *
 * Recorded histories are never edited: a change that breaks their replay needs `patched()`.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../agent/site/home';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { FedflowClient } from '../../client';
import { startTestServer } from '../helpers/temporal';
import { startTestFederation, type TestFederation } from '../helpers/federation';
import { exportHistory } from './export';

/** Adds the workload at dc:paris with some data; returns its id. */
const WORKLOADS: Record<string, (c: FedflowClient, fed: TestFederation, env: Awaited<ReturnType<typeof startTestServer>>) => Promise<string>> = {
  kv: async (_c, fed, env) => {
    await deploySampleWorkload({ client: env.client, config: fed.config, home: fed.home, keys: 100, valueBytes: 64 });
    return 'kv-demo';
  },
  postgres: async (c, fed) => {
    // PostgreSQL runs as `nobody` (the agent is root): it must pass through the home to its site.
    chmodSync(fed.home, 0o711);
    const added = await c.addWorkload(readFileSync(join(REPO_ROOT, 'workloads', 'postgres.yaml'), 'utf8'), { config: fed.config, home: fed.home, site: 'dc:paris', source: 'workloads/postgres.yaml' });
    execFileSync('psql', ['-h', '127.0.0.1', '-p', String(added.port), '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', 'CREATE TABLE t AS SELECT g AS n, md5(g::text) AS v FROM generate_series(1, 20000) g']);
    return 'postgres';
  },
};

async function run(): Promise<void> {
  const [tag, kind = 'kv'] = process.argv.slice(2);
  const add = WORKLOADS[kind];
  if (!tag || !add) throw new Error(`usage: record.ts <tag> [${Object.keys(WORKLOADS).join('|')}]  (e.g. v4, or v4-spec postgres)`);
  const env = await startTestServer();
  const fed = await startTestFederation(env);
  try {
    const c = FedflowClient.fromClient(env.client);
    const id = await add(c, fed, env);
    const save = async (name: string) => {
      for (const workflowId of [`migrate-${id}`, `migrate-${id}-sync`]) await exportHistory(env.address, workflowId, tag, name);
    };
    await c.startMigration({ workloadId: id, targetSite: 'dc:frankfurt' });
    await c.waitForResult(id);
    await save('completed');
    await c.startMigration({ workloadId: id, targetSite: 'dc:paris' });
    // Pause once pre-copy has started, so the cancel finds a child and compensations to run.
    for (;;) {
      const p = await c.getProgress(id);
      if (p.steps.find((s) => s.id === 'sync')?.status !== 'pending') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await c.pause(id);
    await new Promise((r) => setTimeout(r, 300));
    await c.cancel(id, 'recorded cancel');
    await c.waitForResult(id).catch(() => undefined);
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
