/**
 * The serverless control worker's zip (`fedflow infra package-lambda`, infra/lambda-package.ts):
 * built, checked by an independent reader (Python's zipfile: every CRC, the layout, one platform's
 * core bridge, Lambda's 250 MB unzipped limit), unzipped into an empty directory, and its handler
 * loaded from there by a separate Node process (so nothing of this checkout's node_modules can be
 * reached) and invoked as Lambda would, against a dev server: a cold invocation registers its
 * version, and the next takes and completes a workflow task and an activity task in its window.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { REPO_ROOT } from '../../agent/site/home';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { LAMBDA_PLATFORM, packageControlWorker, type PackageResult } from '../../infra/lambda-package';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { eventually } from '../helpers/eventually';
import { freePort } from '../helpers/cli';

const FUNCTION_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:fedflow-control-worker';

/** What the Lambda runtime does for one invocation, in a fresh process: load worker/lambda.js from the task root, call handler(event, context). */
const INVOKE = `
const { handler } = require(require('node:path').join(process.cwd(), 'worker', 'lambda.js'));
const deadline = Date.now() + Number(process.argv[1]);
const context = { awsRequestId: process.argv[2], invokedFunctionArn: ${JSON.stringify(FUNCTION_ARN)}, functionName: 'fedflow-control-worker', getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
handler({}, context).then(() => { console.log('returned ' + (Date.now() - deadline)); process.exit(0); }, (err) => { console.error(err); process.exit(1); });
`;

describe('the serverless control worker zip (infra package-lambda)', () => {
  let env: TestWorkflowEnvironment;
  let scratch: string;
  let taskRoot: string;
  let pkg: PackageResult;
  /** What the output directory held right after packaging. */
  let besideZip: string[];
  let port: number;

  /** Invocations still running: `after` kills them, so a failed test leaves no process behind. */
  const children = new Set<ChildProcess>();

  /**
   * One invocation in its own process, as a cold Lambda container; resolves with its stdout. Like
   * Lambda, which ends an invocation at its timeout, it is killed (SIGKILL) if still running well
   * past its window: then `code` is null and `killed` says so.
   */
  const invoke = (windowMs: number, requestId: string): Promise<{ code: number | null; out: string; err: string; killed: boolean }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['-e', INVOKE, String(windowMs), requestId], {
        cwd: taskRoot,
        // Lambda's environment: the task root, the function's variables, and nothing of this checkout.
        env: { PATH: process.env.PATH ?? '', HOME: taskRoot, LAMBDA_TASK_ROOT: taskRoot, TEMPORAL_ADDRESS: `127.0.0.1:${port}`, TEMPORAL_NAMESPACE: 'default', FEDFLOW_HOME: join(scratch, 'home') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      let killed = false;
      // Generous past the window: a loaded machine is slow to start Node, but a hung handler must not hang the test.
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, windowMs + 60_000);
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      child.on('exit', (code) => {
        clearTimeout(timer);
        children.delete(child);
        resolve({ code, out, err: killed ? `killed (SIGKILL) ${windowMs + 60_000} ms after it started, still running; stderr: ${err}` : err, killed });
      });
    });

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'fedflow-lambda-zip-'));
    pkg = await packageControlWorker({ outFile: join(scratch, 'control-worker.zip'), configFile: join(REPO_ROOT, 'config', 'federation.yaml'), workflowsPath: require.resolve('./lambda-probe-workflows') });
    besideZip = readdirSync(scratch);
    taskRoot = join(scratch, 'task');
    const unzip = spawnSync('python3', ['-m', 'zipfile', '-e', pkg.outFile, taskRoot], { encoding: 'utf8' });
    assert.equal(unzip.status, 0, `python3 -m zipfile -e: ${unzip.stderr}`);
    port = await freePort();
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: findTemporalCli().path }, ip: '127.0.0.1', port, searchAttributes: [...SEARCH_ATTRIBUTES], extraArgs: ['--log-level', 'error'] },
    });
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await env?.teardown();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('holds the compiled handler, the bundle, the config and the Linux x64 production dependencies, within Lambda\'s limits', () => {
    const test = spawnSync('python3', ['-m', 'zipfile', '-t', pkg.outFile], { encoding: 'utf8' });
    assert.equal(test.status, 0, `python3 -m zipfile -t (every CRC): ${test.stdout}${test.stderr}`);
    for (const f of ['worker/lambda.js', 'worker/workflow-bundle.js', 'worker/build-id', 'config/federation.yaml', 'activities/control.js', `node_modules/@temporalio/core-bridge/releases/${LAMBDA_PLATFORM}/index.node`, 'node_modules/@temporalio/lambda-worker/package.json']) {
      assert.ok(existsSync(join(taskRoot, f)), `the zip has ${f}`);
    }
    assert.deepEqual(besideZip, ['control-worker.zip'], 'the workflow bundle is built elsewhere and removed: nothing is left beside the zip');
    assert.equal(readFileSync(join(taskRoot, 'worker', 'build-id'), 'utf8'), pkg.buildId);
    assert.deepEqual(spawnSync('ls', [join(taskRoot, 'node_modules/@temporalio/core-bridge/releases')], { encoding: 'utf8' }).stdout.trim().split('\n'), [LAMBDA_PLATFORM], 'one platform\'s core bridge');
    assert.ok(!existsSync(join(taskRoot, 'worker', 'lambda.ts')), 'no TypeScript sources');
    assert.ok(!pkg.packages.some((p) => p.startsWith('@types/') || p === 'typescript' || p === 'tsx'), pkg.packages.join(' '));
    // Lambda: 250 MB unzipped (deployment package from S3).
    assert.ok(pkg.unzippedBytes < 250 * 1024 * 1024, `unzipped ${pkg.unzippedBytes} bytes`);
    assert.equal(readFileSync(join(taskRoot, 'config', 'federation.yaml'), 'utf8'), readFileSync(join(REPO_ROOT, 'config', 'federation.yaml'), 'utf8'));
  });

  it('its handler, loaded from the unzipped task root in a fresh process, takes and completes control tasks within its invocation', async () => {
    const deploymentName = 'fedflow-control';
    // A cold invocation polls as fedflow-control:<build id> and so registers the version; it is then made current, as after a deployment.
    await eventually('the packaged version registered and made current', async () => {
      const r = await invoke(10_000, 'warm-up');
      assert.equal(r.code, 0, r.err);
      try {
        await env.connection.workflowService.setWorkerDeploymentCurrentVersion({ namespace: 'default', deploymentName, buildId: pkg.buildId, identity: 'fedflow infra test' });
        return true;
      } catch {
        return false;
      }
    }, 120_000);

    const probe = await env.client.workflow.start('controlProbe', { taskQueue: CONTROL_TASK_QUEUE, workflowId: `zip-probe-${Date.now()}`, args: ['kv-demo'] });
    const r = await invoke(30_000, 'invocation-2');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^returned -?\d+/m);
    assert.ok(Number(/returned (-?\d+)/.exec(r.out)![1]) <= 5_000, `returned ${r.out.trim()} ms after its deadline`);
    assert.equal(await probe.result(), 'released kv-demo');
    const history = await probe.fetchHistory();
    const identities = (history.events ?? []).flatMap((e) => [e.workflowTaskCompletedEventAttributes?.identity, e.activityTaskStartedEventAttributes?.identity]).filter(Boolean);
    assert.ok(identities.length >= 2, JSON.stringify(identities));
    for (const id of identities) assert.equal(id, `invocation-2@${FUNCTION_ARN}`);
  });
});
