/**
 * The serverless control worker (worker/lambda.ts on @temporalio/lambda-worker), invoked in
 * process against a real dev server as Lambda would invoke it: a context whose remaining time
 * runs down. Within one invocation it takes a workflow task and an activity task of the control
 * queue and completes them, and it returns before the invocation's deadline.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Context } from 'aws-lambda';
import { WorkflowFailedError } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { REPO_ROOT } from '../../agent/site/home';
import { CONTROL_TASK_QUEUE } from '../../core/contracts/task-queues';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes';
import { findTemporalCli } from '../../scripts/temporal-cli';
import { buildControlWorkerBundle } from '../../infra/lambda-bundle';
import { handler } from '../../worker/lambda';
import { eventually } from '../helpers/eventually';
import { freePort } from '../helpers/cli';

const VERSION = { buildId: 'lambda-test-1', deploymentName: 'fedflow-control' };

function lambdaContext(windowMs: number, requestId: string): { context: Context; deadline: number } {
  const deadline = Date.now() + windowMs;
  const context = {
    awsRequestId: requestId,
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:fedflow-control-worker',
    functionName: 'fedflow-control-worker',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  } as unknown as Context;
  return { context, deadline };
}

describe('serverless control worker (@temporalio/lambda-worker) against a dev server', () => {
  let env: TestWorkflowEnvironment;
  let scratch: string;

  before(async () => {
    const port = await freePort();
    // The Lambda worker reads its connection from the environment, as in a function.
    process.env.TEMPORAL_ADDRESS = `127.0.0.1:${port}`;
    process.env.TEMPORAL_NAMESPACE = 'default';
    // The function's own entry point (worker/lambda.handler), set up through its environment, with
    // a bundle built as for a deployment (the production workflows plus a probe).
    scratch = mkdtempSync(join(tmpdir(), 'fedflow-lambda-'));
    process.env.FEDFLOW_WORKFLOW_BUNDLE = join(scratch, 'workflow-bundle.js');
    await buildControlWorkerBundle(process.env.FEDFLOW_WORKFLOW_BUNDLE, require.resolve('./lambda-probe-workflows'));
    process.env.FEDFLOW_CONFIG = join(REPO_ROOT, 'config', 'federation.yaml');
    process.env.FEDFLOW_BUILD_ID = VERSION.buildId;
    process.env.FEDFLOW_DEPLOYMENT_NAME = VERSION.deploymentName;
    // Built before the server: the Lambda worker installs Temporal's Runtime, once per process,
    // and the test environment would otherwise install its own first.
    // An invocation with no time left is refused before connecting, as the Lambda worker documents.
    await assert.rejects(handler({}, lambdaContext(0, 'cold-start').context), /Insufficient time for Lambda worker/);
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: findTemporalCli().path }, ip: '127.0.0.1', port, searchAttributes: [...SEARCH_ATTRIBUTES], extraArgs: ['--log-level', 'error'] },
    });
  });
  after(async () => {
    await env?.teardown();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('an invocation takes and completes control tasks within its window, then returns before the deadline', async () => {
    // First invocation: the function polls as fedflow-control:lambda-test-1, which registers the
    // version; it is then made current, as after a real deployment.
    // Under load a short first invocation may end before its poll reached the server: invoke again
    // until the version can be made current.
    await eventually('version registered and made current', async () => {
      await handler({}, lambdaContext(10_000, 'warm-up').context);
      try {
        await env.connection.workflowService.setWorkerDeploymentCurrentVersion({ namespace: 'default', deploymentName: VERSION.deploymentName, buildId: VERSION.buildId, identity: 'fedflow infra test' });
        return true;
      } catch {
        return false;
      }
    }, 90_000);

    const probe = await env.client.workflow.start('controlProbe', { taskQueue: CONTROL_TASK_QUEUE, workflowId: `lambda-probe-${Date.now()}`, args: ['kv-demo'] });
    // A production workflow too: bad input fails it at its validation, a non-retryable failure.
    const bad = await env.client.workflow.start('migrateWorkload', { taskQueue: CONTROL_TASK_QUEUE, workflowId: 'migrate-kv-demo', args: [{ workloadId: 'kv-demo' }] });

    const WINDOW_MS = 30_000;
    const inv = lambdaContext(WINDOW_MS, 'invocation-2');
    let probeDoneAt = 0;
    let badDoneAt = 0;
    const probeResult = probe.result().then((r) => ((probeDoneAt = Date.now()), r));
    const badResult = bad.result().then(
      () => assert.fail('the bad migration should fail'),
      (err: unknown) => ((badDoneAt = Date.now()), err),
    );
    await handler({}, inv.context);
    const returnedAt = Date.now();

    assert.equal(await probeResult, 'released kv-demo');
    const err = await badResult;
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.match(String((err.cause as Error | undefined)?.message), /'targetSite' is required/);
    assert.ok(probeDoneAt > 0 && probeDoneAt <= returnedAt, 'the probe completed during the invocation');
    assert.ok(badDoneAt > 0 && badDoneAt <= returnedAt, 'the migration was decided during the invocation');
    // The worker drains before the deadline (7 s before it by default); the slack is for a loaded machine.
    assert.ok(returnedAt <= inv.deadline + 5_000, `the invocation returned ${returnedAt - inv.deadline} ms after its deadline`);

    // The tasks were completed by this invocation's worker: its identity is <requestId>@<function ARN>.
    const history = await probe.fetchHistory();
    const identities = (history.events ?? []).flatMap((e) => [e.workflowTaskCompletedEventAttributes?.identity, e.activityTaskStartedEventAttributes?.identity]).filter(Boolean);
    assert.ok(identities.length >= 2, JSON.stringify(identities));
    for (const id of identities) assert.match(String(id), /^invocation-2@arn:aws:lambda:us-east-1:123456789012:function:fedflow-control-worker$/);
  });
});
