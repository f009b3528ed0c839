/**
 * The upgrade path from the state file of earlier versions: `fedflow up` enters its workloads in
 * the federation log once (the log is now the one record), renames the file, and a migration of
 * such a workload then validates against the log and completes.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { SAMPLE_IMAGE, seedSample } from '../../agent/workload/sample';
import { CONTROL_TASK_QUEUE, migrationWorkflowId } from '../../core/contracts/task-queues';
import type { MigrationResult } from '../../core/migration';
import { importStateFile, stateFilePath } from '../../worker/import-state-file';
import { useServerAndFederation } from '../helpers/federation';

describe('a state file from an earlier version', () => {
  const suite = useServerAndFederation();

  it('enters its workloads in the federation log once, and they migrate from there', async () => {
    const { fed, env } = suite;
    // What an earlier `fedflow up` left: a running sample on dc:paris, recorded only in the file.
    const paris = fed.provider('dc:paris');
    const volume = paris.createVolume('kv-demo-data');
    const instance = await paris.createInstance({ name: 'kv-demo', image: SAMPLE_IMAGE, volume, tags: { 'fedflow-workload': 'kv-demo' } }, 'deploy/kv-demo/dc:paris');
    const address = (await paris.waitFor(instance, 'running', { timeoutMs: 15_000 })).address!;
    await seedSample(address, 40, 32);
    const path = stateFilePath(fed.home);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(
      path,
      JSON.stringify({
        workloads: {
          'kv-demo': { id: 'kv-demo', site: 'dc:paris', image: SAMPLE_IMAGE, instance, volume },
          // A workload whose route the file never recorded cannot be served: it is named, not entered.
          ghost: { id: 'ghost', site: 'dc:paris', image: SAMPLE_IMAGE, instance: { ...instance, id: 'gone' }, volume },
        },
        routes: { 'kv-demo': { site: 'dc:paris', address, since: '2026-12-01T00:00:00Z' } },
      }),
    );
    assert.equal(await fed.workload('kv-demo'), undefined, 'not in the log before the import');

    const said: string[] = [];
    assert.deepEqual(await importStateFile(fed.home, fed.log, (l) => said.push(l)), ['kv-demo']);
    assert.ok(said.some((l) => /ghost has no route on dc:paris/.test(l)), said.join('\n'));
    const placed = (await fed.workload('kv-demo'))!;
    assert.deepEqual({ site: placed.site, address: placed.address, instance: placed.instance.id }, { site: 'dc:paris', address, instance: instance.id });
    assert.equal((await fed.committed()).used['dc:paris'], 1, 'its instance counts against the site');
    assert.equal(existsSync(path), false, 'the file is renamed, never read again');
    assert.ok(existsSync(`${path}.imported`));
    assert.deepEqual(await importStateFile(fed.home, fed.log), [], 'a second run finds nothing to import');

    const handle = await env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }],
    });
    const r = (await handle.result()) as MigrationResult;
    assert.equal(r.status, 'completed');
    assert.equal(r.keys, 40);
    const moved = (await fed.workload('kv-demo'))!;
    assert.equal(moved.site, 'dc:frankfurt');
    assert.equal(moved.address, r.address);
  });
});
