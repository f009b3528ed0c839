/**
 * Bad input: each case fails at once with a non-retryable failure whose message names the problem
 * and the accepted values, and nothing is created or changed. The CLI prints the same message and
 * exits non-zero.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { deploySampleWorkload } from '../../worker/deploy-sample';
import { REPO_ROOT } from '../../agent/site/home';
import { FedflowClient, FedflowError } from '../../client';
import { migrationWorkflowId } from '../../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { useServerAndFederation } from '../helpers/federation';
import { failureOf } from '../helpers/failures';

const CONFIG = {
  federation: 'bad-input',
  sites: [
    { id: 'dc:paris', provider: 'local', trust: 'trusted', capacity: { instances: 4 } },
    { id: 'dc:frankfurt', provider: 'local', trust: 'trusted', capacity: { instances: 4 } },
    { id: 'dc:full', provider: 'local', trust: 'trusted', capacity: { instances: 0 } },
  ],
};

describe('bad input is refused with a clear, non-retryable error and changes nothing', () => {
  let configPath: string;
  const suite = useServerAndFederation({ config: CONFIG });

  before(async () => {
    configPath = join(suite.fed.home, 'federation.json');
    writeFileSync(configPath, JSON.stringify(CONFIG));
    await deploySampleWorkload({ client: suite.env.client, config: suite.fed.config, home: suite.fed.home, keys: 20, valueBytes: 16 });
  });

  async function refused(input: unknown, workflowId = migrationWorkflowId('kv-demo')) {
    const stateBefore = JSON.stringify(await suite.fed.committed());
    const handle = await suite.env.client.workflow.start('migrateWorkload', { taskQueue: CONTROL_TASK_QUEUE, workflowId, args: [input] });
    const f = await failureOf(handle.result());
    assert.equal(f.nonRetryable, true, `${f.type} must be non-retryable`);
    assert.equal(JSON.stringify(await suite.fed.committed()), stateBefore, 'the federation log must not change');
    for (const site of ['dc:frankfurt', 'dc:full']) assert.equal(suite.fed.provider(site).liveInstances().length, 0, `nothing created on ${site}`);
    return f;
  }

  // Asynchronous on purpose: this process hosts the workers, and a blocked event loop stalls them.
  function cli(...args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
    return new Promise((resolve) => {
      execFile(
        join(REPO_ROOT, 'bin', 'fedflow'),
        args,
        { encoding: 'utf8', env: { ...process.env, TEMPORAL_ADDRESS: suite.env.address, FEDFLOW_HOME: suite.fed.home, FEDFLOW_CONFIG: configPath }, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  it('an unknown site', async () => {
    const f = await refused({ workloadId: 'kv-demo', targetSite: 'aws:us-east-9' });
    assert.equal(f.type, 'UnknownSite');
    assert.match(f.message, /target site 'aws:us-east-9' is not in the federation \(known: dc:paris, dc:frankfurt, dc:full\)/);
    const out = await cli('migrate', 'kv-demo', '--to', 'aws:us-east-9');
    assert.equal(out.code, 1);
    assert.match(out.stderr, /target site 'aws:us-east-9' is not in the federation \(known: dc:paris, dc:frankfurt, dc:full\)/);
  });

  it('the same source and target', async () => {
    const f = await refused({ workloadId: 'kv-demo', targetSite: 'dc:paris' });
    assert.equal(f.type, 'SameSourceAndTarget');
    assert.match(f.message, /already runs on 'dc:paris': source and target must differ \(other sites: dc:frankfurt, dc:full\)/);
    const out = await cli('migrate', 'kv-demo', '--to', 'dc:paris');
    assert.equal(out.code, 1);
    assert.match(out.stderr, /source and target must differ/);
  });

  it('an unknown workload', async () => {
    const f = await refused({ workloadId: 'nope', targetSite: 'dc:frankfurt' }, migrationWorkflowId('nope'));
    assert.equal(f.type, 'UnknownWorkload');
    assert.match(f.message, /workload 'nope' is not in the federation log \(known: kv-demo\)/);
    const out = await cli('migrate', 'nope', '--to', 'dc:frankfurt');
    assert.equal(out.code, 1);
    assert.match(out.stderr, /workload 'nope' is not in the federation log \(known: kv-demo\)/);
    // With --json the same refusal is one JSON object on stdout, with the failure's type.
    for (const args of [['migrate', 'nope', '--to', 'dc:frankfurt', '--json'], ['migrate', 'nope', '--to', 'dc:frankfurt', '--wait', '--json']]) {
      const json = await cli(...args);
      assert.equal(json.code, 1, args.join(' '));
      const { error } = JSON.parse(json.stdout) as { error: { type: string; message: string } };
      assert.equal(error.type, 'UnknownWorkload');
      assert.match(error.message, /workload 'nope' is not in the federation log \(known: kv-demo\)/);
    }
    // `status` of the failed run names the activity's failure, not "Activity task failed", and exits 1.
    const status = await cli('status', 'nope');
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /failed: workload 'nope' is not in the federation log \(known: kv-demo\)[^\n]*\[UnknownWorkload\]/);
    assert.doesNotMatch(status.stdout, /Activity task failed| \? -> /);
    const statusJson = await cli('status', 'nope', '--json');
    assert.equal(statusJson.code, 1);
    const shown = JSON.parse(statusJson.stdout) as { status: string; error: { type: string; message: string } };
    assert.equal(shown.status, 'FAILED');
    assert.equal(shown.error.type, 'UnknownWorkload');
    assert.match(shown.error.message, /workload 'nope' is not in the federation log/);
  });

  it('status when no worker polls the migration: one line naming what to start, at once, no stack', async () => {
    // A real run whose task queue nobody polls: the progress query cannot be answered.
    await suite.env.client.workflow.start('migrateWorkload', { taskQueue: 'nobody-polls-this', workflowId: migrationWorkflowId('orphan'), args: [{ workloadId: 'orphan', targetSite: 'dc:frankfurt' }] });
    for (const json of [false, true]) {
      const t0 = Date.now();
      const out = await cli('status', 'orphan', ...(json ? ['--json'] : []));
      // Said from the task queue's pollers at once, not after the progress query's timeout (15-30 s):
      // what is left is the CLI's own start-up.
      assert.ok(Date.now() - t0 < 10_000, `status took ${Date.now() - t0} ms to say no worker polls`);
      assert.equal(out.code, 1, out.stdout + out.stderr);
      const message = json ? (JSON.parse(out.stdout) as { error: { type: string; message: string } }).error : { type: 'NoWorker', message: out.stderr.trim().replace(/^fedflow: /, '') };
      assert.equal(message.type, 'NoWorker');
      assert.match(message.message, /no fedflow worker is running: nothing polls task queue 'nobody-polls-this' on Temporal at 127\.0\.0\.1:\d+; start the workers with `fedflow up`/);
      assert.equal(message.message.split('\n').length, 1, 'one line');
      assert.doesNotMatch(out.stdout + out.stderr, /ServiceError|\n\s+at /);
    }
    await suite.env.client.workflow.getHandle(migrationWorkflowId('orphan')).terminate('test over');
  });

  it('a target site without capacity', async () => {
    const f = await refused({ workloadId: 'kv-demo', targetSite: 'dc:full' });
    assert.equal(f.type, 'NoCapacity');
    assert.match(f.message, /target site 'dc:full' has no capacity: 0 of 0 instances in use \(sites with room: dc:frankfurt\)/);
  });

  it('malformed or incomplete JSON from the UI', async () => {
    let f = await refused({ workloadId: 'kv-demo' });
    assert.equal(f.type, 'InvalidMigrationRequest');
    assert.match(f.message, /'targetSite' is required: a site id such as "dc:frankfurt"/);
    f = await refused('{"workloadId": "kv-demo", "targetSite": ');
    assert.match(f.message, /input is not valid JSON; expected an object such as \{"workloadId": "kv-demo", "targetSite": "dc:frankfurt"\}/);
    f = await refused({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt', mode: 'warp' });
    assert.match(f.message, /'mode' "warp" is not a mode \(accepted: datacenter, internet, hybrid\)/);
    f = await refused({ workloadId: 'kv-demo', target: 'dc:frankfurt' });
    assert.match(f.message, /unknown field 'target' \(accepted: workloadId, targetSite, sourceSite, mode\)/);
    f = await refused({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }, 'my-own-id');
    assert.equal(f.type, 'WrongWorkflowId');
    assert.match(f.message, /workflow id 'my-own-id' must be 'migrate-kv-demo'/);
  });

  it('a second migration of a workload that is already migrating; then a cancel rolls the first back', async () => {
    const c = FedflowClient.fromClient(suite.env.client);
    await c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' });
    // Hold it once it has validated (it holds the workload's lock from then on).
    await c.pause('kv-demo');
    await assert.rejects(c.startMigration({ workloadId: 'kv-demo', targetSite: 'dc:frankfurt' }), (err: unknown) => {
      assert.ok(err instanceof FedflowError);
      assert.equal(err.type, 'AlreadyMigrating');
      assert.match(err.message, /workload 'kv-demo' is already migrating \(workflow migrate-kv-demo is running\)/);
      return true;
    });
    const out = await cli('migrate', 'kv-demo', '--to', 'dc:frankfurt');
    assert.equal(out.code, 1);
    assert.match(out.stderr, /already migrating/);
    const json = await cli('migrate', 'kv-demo', '--to', 'dc:frankfurt', '--json');
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as { error: { type: string } }).error.type, 'AlreadyMigrating');

    await c.cancel('kv-demo', 'test cancels');
    await assert.rejects(c.waitForResult('kv-demo'), /migration cancelled: test cancels; the source keeps serving/);
    const p = await c.getProgress('kv-demo');
    assert.equal(p.phase, 'cancelled');
    // `status` of the cancelled run says why it ended and exits non-zero, as text and as JSON.
    const status = await cli('status', 'kv-demo');
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /phase cancelled/);
    assert.match(status.stdout, /failed: migration cancelled: test cancels; the source keeps serving/);
    const statusJson = await cli('status', 'kv-demo', '--json');
    assert.equal(statusJson.code, 1);
    assert.match((JSON.parse(statusJson.stdout) as { error: { message: string } }).error.message, /migration cancelled: test cancels/);
    // Rolled back: the source serves and takes writes, the lock is gone, nothing is left on the target.
    const placed = (await suite.fed.workload('kv-demo'))!;
    assert.equal(placed.site, 'dc:paris');
    assert.deepEqual((await suite.fed.committed()).reservations, {}, 'the reservation is released');
    const put = await fetch(`${placed.address}/kv/after-cancel`, { method: 'PUT', body: 'ok' });
    assert.equal(put.status, 200);
    assert.equal(suite.fed.provider('dc:frankfurt').liveInstances().length, 0);
  });
});
