/**
 * Keeps the federation's entity workflow (`federation-<name>`) running: the control worker starts
 * it when it comes up, and the migration's validation asks for it again, so a migration never
 * depends on the order in which processes started. Starting is idempotent (USE_EXISTING): a
 * running federation is left alone, with its term, log and queue.
 */
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { FederationConfig } from '../core/federation-config';
import { foundingSites } from '../activities/consensus-keys';
import { type FederationInput } from '../core/contracts/federation';
import { federationWorkflowId } from '../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../core/contracts/task-queues';

/** The federation cannot be started as configured (a founding site's public key is unknown): retrying will not help. */
export class FederationNotReady extends Error {
  override readonly name = 'FederationNotReady';
}

export interface EnsureFederationOptions {
  client: Client;
  config: FederationConfig;
  home: string;
}

/**
 * Starts the federation workflow unless one is running; returns the federation's name.
 * Throws (with the fix in the message) when a founding site has no known public key yet.
 */
export async function ensureFederationWorkflow({ client, config, home }: EnsureFederationOptions): Promise<string> {
  const name = config.federation;
  const workflowId = federationWorkflowId(name);
  let input: FederationInput;
  try {
    input = { name, sites: foundingSites(config, home) };
  } catch (err) {
    throw new FederationNotReady((err as Error).message);
  }
  try {
    await client.workflow.start('federation', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `Federation '${name}': the log every site replicates (placements, reservations, membership)`,
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return name;
}
