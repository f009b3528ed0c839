/**
 * A cut-over whose final check fails after the target has proposed the placement: the target
 * holds the frozen image (verified, on disk) and proposes the placement while the workload
 * activates, but the activated workload does not serve what the source froze. The migration must
 * fail with DataMismatch, put the placement back on the source in the federation log, and leave
 * the source serving.
 *
 * The fault is real: a line in the middle of the source's log that the running source never reads
 * again (it keeps its keys in memory) but a fresh load stops at, so the target serves fewer keys.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { siteDir } from '../../agent/site/home';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { type MigrationProgress } from '../../core/migration';
import { migrationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { progressQuery } from '../../core/contracts/migration-messages';
import { committedStateQuery } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { useServerAndFederation } from '../helpers/federation';

describe('a cut-over that fails its final check after the placement was proposed', () => {
  const suite = useServerAndFederation();

  it('fails with DataMismatch, puts the placement back on the source and leaves the source serving', async () => {
    const sample = await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home, keys: 100, valueBytes: 64 });
    assert.equal(sample.site, 'dc:paris');
    const volume = (await suite.fed.workload('kv-demo'))!.volume;
    appendFileSync(join(siteDir('dc:paris', suite.fed.home), 'volumes', volume.id, 'kv.jsonl'), '{"k": torn\n');
    const put = await fetch(`${sample.address}/kv/after-the-tear`, { method: 'PUT', body: 'lost on a reload' });
    assert.equal(put.status, 200);

    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }],
    });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, `the migration fails, got ${String(err)}`);
    const cause = err.cause as { message?: string; cause?: { message?: string; type?: string } } | undefined;
    const text = `${cause?.message} ${cause?.cause?.message ?? ''} ${cause?.cause?.type ?? ''}`;
    assert.match(text, /serves 100 keys .* expected 101 keys|DataMismatch/, text);

    // The target had proposed the placement; the compensation proposed it back, after it.
    const committed = await suite.env.client.workflow.getHandle(federationWorkflowId(suite.fed.config.federation)).query(committedStateQuery);
    assert.equal(committed.placements['kv-demo'], 'dc:paris');
    assert.deepEqual(committed.reservations, {});
    const p = (await handle.query(progressQuery)) as MigrationProgress;
    assert.equal(p.steps.find((s) => s.id === 'commit')!.status, 'compensated');

    // The source serves again and takes writes; the route never moved.
    const placed = (await suite.fed.workload('kv-demo'))!;
    assert.equal(placed.site, 'dc:paris');
    assert.equal(placed.address, sample.address);
    const again = await fetch(`${sample.address}/kv/after-the-failure`, { method: 'PUT', body: 'x' });
    assert.equal(again.status, 200);
    assert.equal(await (await fetch(`${sample.address}/kv/after-the-tear`)).text(), 'lost on a reload');
  });
});
