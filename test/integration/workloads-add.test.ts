/**
 * Workloads enter through the federation: `fedflow workloads add -f workloads/postgres.yaml`
 * starts a real PostgreSQL 15 at the site, commits it with its placement and spec to the
 * federation log, and it answers queries; the site's agent then drives it through its activities
 * (health, verify, freeze, thaw) as a cut-over will; `fedflow workloads remove` takes it out of the
 * log and stops it. An invalid spec, or a volume outside the site's directory, is refused with one
 * line per problem, and neither the log nor the site changes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { REPO_ROOT, siteDir } from '../../agent/site/home';
import { processStartTime } from '../../agent/workload/exec';
import { WorkloadRunner } from '../../agent/workload/runner';
import { FedflowClient, FedflowError } from '../../client';
import { siteTaskQueue } from '../../core/contracts/task-queues';
import { restartSpecWorkloads } from '../../worker/restart-workloads';
import { useServerAndFederation } from '../helpers/federation';

const run = promisify(execFile);

describe('workloads add and remove', () => {
  const suite = useServerAndFederation();
  let sdk: FedflowClient;

  before(() => {
    sdk = FedflowClient.fromClient(suite.env.client);
    // mkdtemp made the home 0700: PostgreSQL runs as `nobody` (its spec's user, as the agent is
    // root here) and must pass through it to its site.
    chmodSync(suite.fed.home, 0o711);
  });

  // Asynchronous on purpose: this process hosts the workers, and a blocked event loop stalls them.
  function cli(...args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
    return new Promise((resolve) => {
      execFile(
        join(REPO_ROOT, 'bin', 'fedflow'),
        args,
        { encoding: 'utf8', cwd: REPO_ROOT, env: { ...process.env, TEMPORAL_ADDRESS: suite.env.address, FEDFLOW_HOME: suite.fed.home }, timeout: 120_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  }

  const runner = (site: string) => new WorkloadRunner({ site, siteDir: siteDir(site, suite.fed.home), fedflowRoot: REPO_ROOT });

  async function psql(address: string, sql: string): Promise<string> {
    const port = new URL(address).port;
    const { stdout } = await run('psql', ['-h', '127.0.0.1', '-p', port, '-U', 'postgres', '-d', 'postgres', '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
    return stdout.trim();
  }

  it('an invalid spec: every problem at once, nothing registered or started', async () => {
    const stateBefore = JSON.stringify(await suite.fed.committed());
    const bad = join(suite.fed.home, 'bad.yaml');
    writeFileSync(bad, ['id: Orders_DB', 'run: { local: { command: [] } }', 'volumes: []', 'health: { tcp: {}, http: { path: /h } }', 'hooks: { freeze: { stop: {} }, thaw: { command: "true" } }', 'verify: { command: "echo {nope}" }', ''].join('\n'));
    const out = await cli('workloads', 'add', '-f', bad, '--json');
    assert.equal(out.code, 1, out.stderr);
    const { error } = JSON.parse(out.stdout) as { error: { type: string; message: string; problems: string[] } };
    assert.equal(error.type, 'InvalidWorkloadSpec');
    assert.deepEqual(
      error.problems.map((p) => p.split(': ')[0]),
      ['id', 'run.local.command', 'volumes', 'health.tcp', 'verify.command', 'hooks.thaw'],
      error.problems.join('\n'),
    );
    assert.match(error.message, /^invalid workload spec .*bad\.yaml:\n {2}- id: /);
    // The same in text: one line per problem on stderr.
    const text = await cli('workloads', 'add', '-f', bad);
    assert.equal(text.code, 1);
    assert.equal(text.stderr.trim().split('\n').filter((l) => l.startsWith('  - ')).length, 6, text.stderr);
    assert.equal(JSON.stringify(await suite.fed.committed()), stateBefore, 'the federation log is unchanged');
    assert.equal(existsSync(join(siteDir('dc:paris', suite.fed.home), 'workloads')), false, 'nothing installed at the site');
  });

  it('volumes outside the site directory: one problem per volume, nothing registered or created', async () => {
    const stateBefore = JSON.stringify(await suite.fed.committed());
    const spec = { id: 'escaper', run: { local: { command: 'sleep 60' } }, volumes: [{ name: 'a', path: '../../../../../../tmp/escaped' }, { name: 'b' }, { name: 'c', path: '/etc/fedflow-c' }], health: { tcp: {} }, hooks: { freeze: { stop: {} }, thaw: { start: true } }, verify: { command: 'echo x' } };
    await assert.rejects(sdk.addWorkload(spec, { config: suite.fed.config, home: suite.fed.home, site: 'dc:frankfurt' }), (err: unknown) => {
      assert.ok(err instanceof FedflowError);
      assert.equal(err.type, 'VolumeOutsideSite');
      assert.equal(err.problems.length, 2, err.problems.join('\n'));
      assert.match(err.problems[0]!, /^volumes\.0\.path: '\.\.\/.*' resolves to \/tmp\/escaped, outside the workload's volume root .*dc_frankfurt\/volumes\/escaper in site dc:frankfurt's directory/);
      assert.match(err.problems[1]!, /^volumes\.2\.path: '\/etc\/fedflow-c' resolves to \/etc\/fedflow-c, outside/);
      return true;
    });
    assert.equal(JSON.stringify(await suite.fed.committed()), stateBefore, 'the federation log is unchanged');
    assert.equal(runner('dc:frankfurt').installed('escaper'), false);
    assert.equal(existsSync(runner('dc:frankfurt').volumeRoot('escaper')), false);
    assert.equal(existsSync('/tmp/escaped'), false);
  });

  it('an unknown site is refused, naming the known ones', async () => {
    const stateBefore = JSON.stringify(await suite.fed.committed());
    const out = await cli('workloads', 'add', '-f', join(REPO_ROOT, 'workloads', 'redis.yaml'), '--site', 'dc:mars');
    assert.equal(out.code, 1);
    assert.match(out.stderr, /site 'dc:mars' is not in the federation \(known: dc:paris, dc:frankfurt, dc:london, edge:lisbon\)/);
    assert.equal(JSON.stringify(await suite.fed.committed()), stateBefore);
  });

  it('adds PostgreSQL from workloads/postgres.yaml: placed in the log with its spec, answering queries; the agent verifies, freezes and thaws it; removed again', async () => {
    const out = await cli('workloads', 'add', '-f', join(REPO_ROOT, 'workloads', 'postgres.yaml'), '--site', 'dc:paris', '--json');
    assert.equal(out.code, 0, out.stderr || out.stdout);
    const added = JSON.parse(out.stdout) as { id: string; site: string; address: string; port: number };
    assert.equal(added.id, 'postgres');
    assert.equal(added.site, 'dc:paris');

    const placed = await suite.fed.workload('postgres');
    assert.ok(placed, 'the log places it');
    assert.equal(placed.site, 'dc:paris');
    assert.equal(placed.address, added.address);
    assert.equal(placed.spec?.id, 'postgres', 'the spec travels with the placement');
    assert.equal(placed.volume.id, 'postgres');
    assert.equal((await suite.fed.committed()).used['dc:paris'], 1, 'it takes an instance of the site');

    // A real PostgreSQL answers at the address the log gives.
    await psql(placed.address, 'CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts SELECT g, g * 10 FROM generate_series(1, 500) g');
    assert.equal(await psql(placed.address, 'SELECT sum(balance) FROM accounts'), String(10 * (500 * 501) / 2));
    const list = await cli('workloads', '--json');
    assert.deepEqual((JSON.parse(list.stdout) as { id: string; site: string }[]).map((w) => [w.id, w.site]), [['postgres', 'dc:paris']]);

    // Adding it again is refused; the log keeps one.
    await assert.rejects(sdk.addWorkload(placed.spec, { config: suite.fed.config, home: suite.fed.home }), /workload 'postgres' is in the federation already \(on dc:paris\); remove it first/);

    // The site's agent drives it through its task queue, as the cut-over will.
    const handle = await suite.env.client.workflow.start('workloadStepsProbe', {
      taskQueue: 'fedflow',
      workflowId: `probe-postgres-${Date.now()}`,
      args: [{ site: 'dc:paris', workloadId: 'postgres', steps: ['workloadHealthy', 'workloadVerify', 'workloadFreeze', 'workloadVerify', 'workloadThaw', 'workloadVerify'] }],
    });
    const [health, before, frozen, atFreeze, thawed, after] = (await handle.result()) as [{ healthy: boolean }, { digest: string }, { stopped: boolean }, { digest: string; privateBoot: boolean }, { hook: string }, { digest: string }];
    assert.equal(health.healthy, true);
    assert.match(before.digest, /^[0-9a-f]{32}$/);
    assert.equal(frozen.stopped, true);
    assert.deepEqual([atFreeze.digest, atFreeze.privateBoot], [before.digest, true]);
    assert.equal(thawed.hook, 'thaw');
    assert.equal(after.digest, before.digest);
    assert.equal(await psql(placed.address, 'SELECT count(*) FROM accounts'), '500', 'serving again after the thaw');

    // A step that fails reaches the workflow as the runner's non-retryable failure.
    const failing = await suite.env.client.workflow.start('workloadStepsProbe', {
      taskQueue: 'fedflow',
      workflowId: `probe-missing-${Date.now()}`,
      args: [{ site: 'dc:frankfurt', workloadId: 'postgres', steps: ['workloadVerify'] }],
    });
    await assert.rejects(failing.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      const cause = (err.cause as { cause?: unknown }).cause;
      assert.ok(cause instanceof ApplicationFailure, String(cause));
      assert.equal(cause.type, 'WorkloadNotInstalled');
      assert.equal(cause.nonRetryable, true);
      assert.match(cause.message, /workload 'postgres' is not installed at site dc:frankfurt/);
      return true;
    });
    assert.equal(siteTaskQueue('dc:paris'), 'fedflow-site-dc:paris');

    // `fedflow down` stops it; `fedflow up` starts it again where the log places it, same address.
    await runner('dc:paris').stop('postgres');
    await assert.rejects(psql(placed.address, 'SELECT 1'));
    const said: string[] = [];
    assert.deepEqual(await restartSpecWorkloads(suite.fed.log, suite.fed.config, suite.fed.home, (l) => said.push(l)), ['postgres'], said.join('\n'));
    assert.equal(await psql(placed.address, 'SELECT count(*) FROM accounts'), '500');
    assert.equal((await suite.fed.workload('postgres'))!.address, placed.address);

    const pid = runner('dc:paris').info('postgres').pid!;
    const removed = await cli('workloads', 'remove', 'postgres');
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /removed postgres from dc:paris \(volumes kept\)/);
    assert.equal(await suite.fed.workload('postgres'), undefined, 'out of the log');
    assert.equal((await suite.fed.committed()).used['dc:paris'], 0, 'its instance is given back');
    assert.equal(processStartTime(pid), undefined, 'PostgreSQL is stopped');
    await assert.rejects(psql(placed.address, 'SELECT 1'), 'nothing answers at its address');
    assert.ok(existsSync(join(runner('dc:paris').volumeRoot('postgres'), 'pgdata', 'PG_VERSION')), 'its volume is kept');

    const again = await cli('workloads', 'remove', 'postgres');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /workload 'postgres' is not in the federation \(workloads: none\)/);
  });
});
