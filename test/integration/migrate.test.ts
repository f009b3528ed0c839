import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { sampleValue } from '../../agent/workload/sample';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { type MigrationResult } from '../../core/migration';
import { migrationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { MIN_SAMPLES } from '../../models/features';
import { progressQuery } from '../../core/contracts/migration-messages';
import { committedStateQuery } from '../../core/contracts/federation';
import { federationWorkflowId } from '../../core/contracts/task-queues';
import { useServerAndFederation } from '../helpers/federation';

describe('migrateWorkload on a real dev server', () => {
  const suite = useServerAndFederation();

  it('moves kv-demo from dc:paris to dc:frankfurt with every key intact', async () => {
    const sample = await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home, keys: 300, valueBytes: 128 });
    assert.equal(sample.site, 'dc:paris');
    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }],
    });
    const result = (await handle.result()) as MigrationResult;
    assert.equal(result.status, 'completed');
    assert.equal(result.source, 'dc:paris');
    assert.equal(result.target, 'dc:frankfurt');
    assert.equal(result.keys, 300);
    assert.equal(result.verified, true);
    assert.ok(result.volumeBytes > 300 * 128, `volumeBytes ${result.volumeBytes}`);
    assert.ok(result.bytesTransferred > 0 && result.bytesTransferred < 2 * result.volumeBytes, `bytesTransferred ${result.bytesTransferred}`);
    // Both sites trusted, on loopback: fast and short, so never internet mode.
    assert.notEqual(result.mode, 'internet', result.decision.reason);
    assert.equal(result.decision.override, false);
    assert.ok(result.decision.prediction.meanMbps > 0);
    assert.ok(result.rounds.length >= 2, 'at least one pre-copy round and the final one');
    assert.equal(result.rounds.at(-1)!.kind, 'final');
    // The workload was idle: the final round finds every chunk already on the target.
    assert.equal(result.rounds.at(-1)!.chunksSent, 0);
    // The pre-copy rounds laid the image down at the target; the final round patched it in place
    // and, the workload being idle, wrote nothing (issue 14 item 5).
    assert.equal(result.rounds[0]!.extract?.method, 'full', JSON.stringify(result.rounds[0]));
    const finalExtract = result.rounds.at(-1)!.extract;
    assert.equal(finalExtract?.method, 'patch', JSON.stringify(finalExtract));
    assert.equal(finalExtract.bytesWritten, 0, JSON.stringify(finalExtract));
    assert.ok(result.downtimeMs >= 0 && result.downtimeMs < result.durationMs);
    // Both sites trusted: the reservation and the placement are crash-tolerant commits, each acked
    // by a majority of the three trusted sites (the untrusted one's ack would not count).
    assert.ok(result.consensus, 'the result carries the federation commits');
    for (const c of [result.consensus.reservation, result.consensus.placement]) {
      assert.equal(c.protocol, 'cft');
      assert.equal(c.certificate.protocol, 'cft');
      assert.deepEqual([c.quorum.needed, c.quorum.total], [2, 3]);
      if (c.certificate.protocol === 'cft') assert.ok(c.certificate.ackedBy.length >= 2 && c.certificate.ackedBy.every((s) => s !== 'edge:lisbon'), JSON.stringify(c));
    }
    assert.ok(result.consensus.placement.round > result.consensus.reservation.round);
    // Every site's log agrees: kv-demo runs on dc:frankfurt, and the reservation became that placement.
    const committed = await suite.env.client.workflow.getHandle(federationWorkflowId(suite.fed.config.federation)).query(committedStateQuery);
    assert.equal(committed.placements['kv-demo'], 'dc:frankfurt');
    assert.deepEqual(committed.reservations, {});
    assert.equal(committed.used['dc:frankfurt'], 1);

    // The log's record follows the workload: what it runs on at the target, and where it serves.
    const placed = (await suite.fed.workload('kv-demo'))!;
    assert.equal(placed.site, 'dc:frankfurt');
    assert.equal(placed.address, result.address);
    assert.equal(placed.instance.site, 'dc:frankfurt');
    assert.equal(placed.volume.site, 'dc:frankfurt');
    const all = (await (await fetch(`${result.address}/kv`)).json()) as Record<string, string>;
    assert.equal(Object.keys(all).length, 300);
    for (let i = 0; i < 300; i++) assert.equal(all[`key-${String(i).padStart(6, '0')}`], sampleValue(i, 128));
    // The source is gone: no live instance left on dc:paris.
    assert.equal(suite.fed.provider('dc:paris').liveInstances().length, 0);

    const progress = await handle.query(progressQuery);
    assert.equal(progress.phase, 'completed');
    assert.ok(progress.steps.every((s) => s.status === 'done'), JSON.stringify(progress.steps));
    const desc = await handle.describe();
    assert.equal(desc.searchAttributes.FedPhase?.[0], 'completed');
    assert.equal(desc.searchAttributes.FedSource?.[0], 'dc:paris');
    assert.equal(desc.searchAttributes.FedTarget?.[0], 'dc:frankfurt');
  });

  it('runs in internet mode to the untrusted site, with the decision and its inputs in the result', async () => {
    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'edge:lisbon' }],
    });
    const r = (await handle.result()) as MigrationResult;
    assert.equal(r.mode, 'internet');
    assert.equal(r.decision.mode, 'internet');
    assert.match(r.decision.reason, /untrusted/);
    assert.ok(r.decision.prediction.meanMbps > 0 && r.decision.prediction.sampleCount >= 1, JSON.stringify(r.decision));
    // The link frankfurt/paris -> lisbon was never probed before this test: the probe takes a short
    // series, so even the first migration over it is decided by the model, not the fallback.
    assert.equal(r.decision.prediction.source, 'onnx', JSON.stringify(r.decision));
    assert.ok(r.decision.prediction.sampleCount >= MIN_SAMPLES, JSON.stringify(r.decision));
    assert.equal(r.decision.plan.codec, 'zstd');
    assert.ok(r.rounds.every((x) => x.codec.startsWith('zstd')), 'internet mode sends with Zstd');
    assert.equal(r.keys, 300);
    const desc = await handle.describe();
    assert.equal(desc.searchAttributes.FedMode?.[0], 'internet');
    // The placement touches an untrusted site: a Byzantine commit, 2f+1 = 3 of 4 signed commit votes.
    const placement = r.consensus!.placement;
    assert.equal(placement.protocol, 'bft');
    assert.equal(placement.certificate.protocol, 'bft');
    if (placement.certificate.protocol === 'bft') {
      assert.ok(placement.certificate.signers.length >= 3, JSON.stringify(placement));
      assert.match(placement.certificate.digest, /^[0-9a-f]{64}$/);
    }
    assert.deepEqual([placement.quorum.needed, placement.quorum.total], [3, 4]);
    assert.equal(r.consensus!.reservation.protocol, 'bft');
    const committed = await suite.env.client.workflow.getHandle(federationWorkflowId(suite.fed.config.federation)).query(committedStateQuery);
    assert.equal(committed.placements['kv-demo'], 'edge:lisbon');
    assert.equal(committed.used['dc:frankfurt'], 0, 'the move off dc:frankfurt gave its instance back');
  });

  it('honours an explicit mode and records it as an override', async () => {
    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'dc:london', mode: 'hybrid' }],
    });
    const r = (await handle.result()) as MigrationResult;
    assert.equal(r.mode, 'hybrid');
    assert.equal(r.decision.override, true);
  });

  it('refuses an unknown site with a non-retryable error naming the known sites, and changes nothing', async () => {
    const before = JSON.stringify(await suite.fed.committed());
    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'aws:us-east-9' }],
    });
    const err = await handle.result().then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    const msg = String((err.cause as Error)?.cause ? ((err.cause as { cause: Error }).cause.message) : (err.cause as Error).message);
    assert.match(msg, /'aws:us-east-9' is not in the federation \(known: dc:paris, dc:frankfurt, dc:london, edge:lisbon\)/);
    assert.equal(JSON.stringify(await suite.fed.committed()), before);
  });
});
