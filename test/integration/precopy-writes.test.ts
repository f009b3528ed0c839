/**
 * Pre-copy while the workload keeps writing, on a real Temporal dev server: a writer PUTs new keys
 * at about 1 MB/s for the whole migration and records every key the service acknowledged (200).
 * After the migration every acknowledged key must be on the target with its value. Writes refused
 * with 503 (frozen for the cut-over) or failing to connect (source gone) were never acknowledged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { type MigrationResult } from '../../core/migration';
import { migrationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { useServerAndFederation } from '../helpers/federation';
import { eventually } from '../helpers/eventually';
import { startWriter, valueFor } from '../helpers/writer';

describe('pre-copy while the workload writes', () => {
  const suite = useServerAndFederation();

  it('keeps every write acknowledged before the pause, with per-round pre-copy figures', async (t) => {
    const sample = await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home, keys: 200, valueBytes: 256 });
    const writer = startWriter(sample.address);
    // Let the writer get going so the first round already copies live data.
    await eventually('the writer to get writes acknowledged', () => writer.log.acked.size >= 20);
    const handle = await suite.env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId('kv-demo'),
      args: [{ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }],
    });
    let result: MigrationResult;
    try {
      result = (await handle.result()) as MigrationResult;
    } finally {
      await writer.stop();
    }
    const { log } = writer;
    t.diagnostic(`downtimeMs=${result.downtimeMs} durationMs=${result.durationMs} precopyRounds=${result.precopyRounds} rounds=${JSON.stringify(result.rounds.map((r) => ({ round: r.round, kind: r.kind, chunksSent: r.chunksSent, bytesSent: r.bytesSent, wireBytes: r.wireBytes, durationMs: r.durationMs, extract: r.extract, standby: r.standby })))}`);
    const ackSeconds = ((log.firstFrozenAt ?? Date.now()) - log.startedAt) / 1000;
    t.diagnostic(`writers: attempted=${log.attempted} acked=${log.acked.size} frozen(503)=${log.frozen} failed=${log.failed} ackedMBps=${(log.ackedBytes / 1e6 / ackSeconds).toFixed(2)}`);

    assert.equal(result.status, 'completed');
    assert.equal(result.target, 'dc:frankfurt');
    assert.ok(log.acked.size >= 50, `the writer got ${log.acked.size} writes acknowledged; the test needs a live workload`);
    assert.ok(log.frozen + log.failed > 0, 'the writer met the pause (503) or the gone source: it wrote across the cut-over');
    // Acknowledged writes happened before the pause: none after the first 503.
    if (log.firstFrozenAt !== undefined) for (const [k, at] of log.acked) assert.ok(at <= log.firstFrozenAt + 1000, `${k} acknowledged at ${at}, after the pause at ${log.firstFrozenAt}`);

    // At least one pre-copy round, each with its own figures, then the final round.
    assert.ok(result.precopyRounds >= 1, `precopyRounds ${result.precopyRounds}`);
    const pre = result.rounds.filter((r) => r.kind === 'precopy');
    assert.equal(pre.length, result.precopyRounds);
    for (const r of pre) {
      assert.ok(r.bytesScanned > 0 && r.chunks > 0, `round ${r.round} scanned nothing`);
      assert.ok(r.durationMs >= 0 && r.wireBytes >= 0 && r.chunksSent + r.chunksReused >= 1, JSON.stringify(r));
    }
    assert.ok(pre[0]!.chunksSent > 0 && pre[0]!.wireBytes > 0, 'the first round sent the volume');
    // Each round that laid its image down asked the standby on it how far behind its read-ahead
    // was, and waited until it had caught up (docs/workloads.md, "Reading ahead").
    for (const r of pre.filter((x) => x.extract)) assert.ok(r.standby && r.standby.pendingAfter === 0 && !r.standby.gaveUp, `round ${r.round}: standby ${JSON.stringify(r.standby)}`);
    assert.equal(result.rounds.at(-1)!.kind, 'final');
    // The final round patched the volume the pre-copy rounds laid down: it wrote what the writer
    // added since the last round, not the volume (issue 14 item 5).
    const fin = result.rounds.at(-1)!.extract;
    assert.equal(fin?.method, 'patch', JSON.stringify(fin));
    assert.ok(fin.bytesWritten < result.volumeBytes, JSON.stringify(fin));
    assert.ok(result.downtimeMs >= 0 && result.downtimeMs < result.durationMs, `downtimeMs ${result.downtimeMs}`);

    // Every acknowledged key is on the target with its value; and the seed keys too.
    const all = (await (await fetch(`${result.address}/kv`)).json()) as Record<string, string>;
    const missing = [...log.acked.keys()].filter((k) => all[k] !== valueFor(k));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged key(s) missing or wrong on the target`);
    assert.equal(result.keys, Object.keys(all).length);
    assert.ok(Object.keys(all).length >= 200 + log.acked.size);
  });
});
