/**
 * The serverless control worker: the control task queue (`fedflow`: the workflows and the
 * control activities) as an AWS Lambda function, on Temporal's `@temporalio/lambda-worker`.
 * Each invocation connects, polls and completes tasks until shortly before the invocation's
 * deadline (7 s before, the package's default: 5 s of graceful drain and 2 s of margin), then
 * shuts the worker down. The control workflows and activities keep no local state between tasks,
 * which is what makes this possible; site agents stay long-lived processes (they hold the data
 * and the chunk endpoint).
 *
 * Version alignment: @temporalio/lambda-worker 1.23.0 declares @temporalio/worker, common and
 * envconfig 1.23.0; package.json's `overrides` pins them to the project's 1.24.0, so one SDK
 * (one native core-bridge, one Runtime) is loaded. `npm ls @temporalio/worker` shows them deduped.
 *
 * Worker versioning is always on in the Lambda worker: the function polls as
 * `<deploymentName>:<buildId>` and workflows it starts are pinned to that version. After a
 * deployment, make the version current (`temporal worker deployment set-current-version`, or
 * infra's Temporal target) so new workflows are routed to it (docs/serverless-worker.md).
 *
 * Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY / TLS (envconfig, as every
 * fedflow process), FEDFLOW_CONFIG (the federation config shipped with the function),
 * FEDFLOW_WORKFLOW_BUNDLE (the pre-built workflow bundle; bundling at cold start would eat the
 * invocation), FEDFLOW_BUILD_ID (default: the zip's worker/build-id, written by
 * `fedflow infra package-lambda`) and FEDFLOW_DEPLOYMENT_NAME (default fedflow-control).
 */
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { Client, Connection } from '@temporalio/client';
import { runWorker, type LambdaHandler } from '@temporalio/lambda-worker';
import type { WorkerOptions } from '@temporalio/worker';
import { createControlActivities } from '../activities/control';
import { loadFederationConfig } from '../agent/site/config-file';
import { resolveConnection } from '../client/connection';
import { CONTROL_TASK_QUEUE } from '../core/contracts/task-queues';
import type { FederationConfig } from '../core/federation-config';
import { ensureFederationWorkflow } from './federation-workflow';

export interface ControlLambdaOptions {
  config: FederationConfig;
  version: { buildId: string; deploymentName: string };
  /** The pre-built workflow bundle (bundleWorkflowCode's output). */
  workflowBundle: NonNullable<WorkerOptions['workflowBundle']>;
  /** Where the federation's site keys are read from; Lambda's only writable place is /tmp. */
  home?: string;
  /** Extra activities (tests register a probe beside the control activities). */
  extraActivities?: Record<string, (...args: never[]) => Promise<unknown>>;
}

/** Builds the handler. Call once per process: the Lambda worker installs Temporal's Runtime. */
export function controlLambdaHandler(o: ControlLambdaOptions): LambdaHandler {
  return runWorker(o.version, (cfg) => {
    cfg.workerOptions.taskQueue = CONTROL_TASK_QUEUE;
    cfg.workerOptions.workflowBundle = o.workflowBundle;
    // Activities start workflows and query the federation through a client. Lazy: it connects on
    // first use and is kept across the warm invocations of this container.
    const resolved = resolveConnection();
    const client = new Client({ connection: Connection.lazy(resolved.connectionOptions as never), namespace: cfg.namespace });
    const home = o.home ?? join(tmpdir(), 'fedflow');
    cfg.workerOptions.activities = {
      ...createControlActivities({ config: o.config, client, ensureFederation: () => ensureFederationWorkflow({ client, config: o.config, home }) }),
      ...o.extraActivities,
    };
  });
}

let built: LambdaHandler | undefined;

/** The build id the packaged zip carries beside the handler (infra/lambda-package.ts). */
function packagedBuildId(): string | undefined {
  const file = join(__dirname, 'build-id');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/** The function's entry point (Handler: worker/lambda.handler). */
export async function handler(event: unknown, context: Context): Promise<void> {
  if (!built) {
    const bundlePath = process.env.FEDFLOW_WORKFLOW_BUNDLE ?? join(__dirname, 'workflow-bundle.js');
    built = controlLambdaHandler({
      config: loadFederationConfig(process.env.FEDFLOW_CONFIG),
      version: { buildId: process.env.FEDFLOW_BUILD_ID ?? packagedBuildId() ?? 'dev', deploymentName: process.env.FEDFLOW_DEPLOYMENT_NAME ?? 'fedflow-control' },
      workflowBundle: { code: readFileSync(bundlePath, 'utf8') },
    });
  }
  return built(event, context);
}
