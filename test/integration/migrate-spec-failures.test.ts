/**
 * The cut-over's failure paths for a workload added from a spec (issue 14, item 9), each with a
 * real fault in the spec's own hooks: a freeze hook that exits non-zero, one that hangs past its
 * timeout, data changed behind the source's back after its verification, and a target that never
 * passes its health check. The workload is the sample service run from a spec (workloads/kv.yaml
 * with the faulty hook swapped in). Each time the migration fails with the fault's type, the
 * compensations run, the source serves reads and writes again through its stable address, and
 * exactly one site runs the workload: the source, where the log still places it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { WorkloadRunner } from '../../agent/workload/runner';
import { FedflowClient } from '../../client';
import { CONTROL_TASK_QUEUE, migrationWorkflowId } from '../../core/contracts/task-queues';
import type { WorkloadSpec } from '../../core/workload-spec';
import { eventually } from '../helpers/eventually';
import { useServerAndFederation } from '../helpers/federation';

const KV = parseYaml(readFileSync(join(REPO_ROOT, 'workloads', 'kv.yaml'), 'utf8')) as WorkloadSpec;
const FREEZE_OVER_HTTP = 'curl -sf -X POST http://{host}:{port}/admin/freeze >/dev/null';

describe('a spec workload whose cut-over fails compensates, and the source serves again', () => {
  const suite = useServerAndFederation({ fronts: { intervalMs: 60_000 } });
  let sdk: FedflowClient;
  before(() => {
    sdk = FedflowClient.fromClient(suite.env.client);
  });

  const runner = (site: string) => new WorkloadRunner({ site, siteDir: siteDir(site, suite.fed.home), fedflowRoot: REPO_ROOT });

  /** Adds `spec` at dc:paris, writes through its front, migrates it to dc:frankfurt, expects a failure of `type`. */
  async function failingMigration(spec: WorkloadSpec, type: string, message: RegExp): Promise<void> {
    const { env, fed } = suite;
    await sdk.addWorkload(spec, { config: fed.config, home: fed.home, site: 'dc:paris' });
    const fronts = fed.runtime.fronts!;
    // A read of the log already under way when the workload was added does not show it: read until one does.
    const front = `http://${await eventually(`a front for ${spec.id}`, async () => (await fronts.sync(), fronts.address(spec.id)))}`;
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${front}/kv/before-${i}`, { method: 'PUT', body: `v${i}` })).status, 200);
    const before = await (await fetch(`${front}/admin/digest`)).json();

    const handle = await env.client.workflow.start('migrateWorkload', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: migrationWorkflowId(spec.id),
      args: [{ workloadId: spec.id, targetSite: 'dc:frankfurt' }],
    });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      let cause: unknown = err.cause;
      while (cause && !(cause instanceof ApplicationFailure)) cause = (cause as { cause?: unknown }).cause;
      assert.ok(cause instanceof ApplicationFailure, `an ApplicationFailure under ${String(err.cause)}`);
      assert.equal(cause.type, type, cause.message);
      assert.match(cause.message, message);
      return true;
    });

    // The source serves again, reads and writes, through the same stable address.
    assert.deepEqual(await (await fetch(`${front}/admin/digest`)).json(), before, 'the source holds what it held');
    assert.equal((await fetch(`${front}/kv/after`, { method: 'PUT', body: 'x' })).status, 200, 'the source takes writes again');
    assert.equal(await (await fetch(`${front}/kv/after`)).text(), 'x');
    // Exactly one site runs it: the source. The target's copy is gone; the log places it at the source.
    assert.equal(runner('dc:paris').info(spec.id).running, true);
    assert.equal(runner('dc:paris').info(spec.id).status, 'running');
    assert.equal(runner('dc:frankfurt').installed(spec.id), false, "the target's copy was removed");
    const placed = await fed.workload(spec.id);
    assert.equal(placed?.site, 'dc:paris');
    const committed = await fed.committed();
    assert.deepEqual(
      Object.values(committed.reservations).filter((r) => r.workload === spec.id),
      [],
      'no reservation is left',
    );
    await sdk.removeWorkload(spec.id, { config: fed.config, home: fed.home, deleteVolumes: true });
  }

  it('a freeze hook that exits non-zero (after freezing): WorkloadHookFailed, thawed', async () => {
    await failingMigration(
      { ...KV, id: 'kv-freeze-fails', hooks: { ...KV.hooks, freeze: { command: ['sh', '-c', `${FREEZE_OVER_HTTP}; echo 'no space left on device' >&2; exit 3`], stopsInstance: false, timeoutSeconds: 10 } } },
      'WorkloadHookFailed',
      /freeze hook of workload 'kv-freeze-fails' at dc:paris .* exited with code 3: no space left on device/,
    );
  });

  it('a freeze hook that hangs past its timeout: WorkloadHookTimeout, thawed', async () => {
    await failingMigration(
      { ...KV, id: 'kv-freeze-hangs', hooks: { ...KV.hooks, freeze: { command: ['sh', '-c', `${FREEZE_OVER_HTTP}; sleep 60`], stopsInstance: false, timeoutSeconds: 2 } } },
      'WorkloadHookTimeout',
      /freeze hook of workload 'kv-freeze-hangs' at dc:paris .* did not finish within 2 s and was killed/,
    );
  });

  it('data changed behind the source after its verification: DataMismatch, the target removed', async () => {
    // The verification prints the digest, then a key is appended to the frozen volume behind the
    // service's back: the image the target gets is not what the source verified.
    const tamper = `curl -sf http://{host}:{port}/admin/digest; echo '{"k":"behind-its-back","v":"x"}' >> {volume}/kv.jsonl`;
    await failingMigration({ ...KV, id: 'kv-tampered', verify: { command: ['sh', '-c', tamper], timeoutSeconds: 10 } }, 'DataMismatch', /workload 'kv-tampered' on dc:frankfurt verifies to digest [0-9a-f]{12} after activation, but the source's verification at the freeze gave [0-9a-f]{12}/);
  });

  it('a target that never passes its health check: WorkloadUnhealthy, the target removed', async () => {
    // Healthy only where the site says so: dc:paris does, dc:frankfurt does not.
    writeFileSync(join(siteDir('dc:paris', suite.fed.home), 'kv-healthy-here'), 'yes');
    const health = { command: ['sh', '-c', 'curl -sf http://{host}:{port}/health >/dev/null && test -e {dataDir}/../../../kv-healthy-here'], periodSeconds: 0.2, timeoutSeconds: 2, failureThreshold: 3, startTimeoutSeconds: 3 };
    await failingMigration({ ...KV, id: 'kv-unhealthy', health: health as WorkloadSpec['health'] }, 'WorkloadUnhealthy', /workload 'kv-unhealthy' at dc:frankfurt did not pass its health check within 3 s/);
  });
});
