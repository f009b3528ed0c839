/**
 * The typed client SDK: start, watch, pause, resume, cancel and await migrations; add and
 * remove workloads.
 * The `fedflow` CLI is built on it; so can any program that wants to drive fedflow.
 */
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, TemporalFailure } from '@temporalio/common';
import { parseMigrationRequest, type MigrationProgress, type MigrationRequest, type MigrationResult } from '../core/migration';
import { migrationWorkflowId } from '../core/contracts/task-queues';
import { CONTROL_TASK_QUEUE } from '../core/contracts/task-queues';
import { cancelSignal, pauseSignal, progressQuery, resumeSignal } from '../core/contracts/migration-messages';
import { resolveConnection } from './connection';
import { FedflowError, FederationLog } from './federation';
import { addWorkload, removeWorkload, type AddedWorkload, type AddWorkloadOptions, type RemovedWorkload, type WorkloadSiteOptions } from './workloads';
import { unreachable } from './unreachable';
import type { PullHeartbeat } from '../activities/sync';

export type { MigrationProgress, MigrationRequest, MigrationResult } from '../core/migration';

export { FedflowError, FederationLog, type FederationView, type PlacedWorkload } from './federation';
export type { AddedWorkload, AddWorkloadOptions, RemovedWorkload, WorkloadSiteOptions } from './workloads';

/** The innermost failure message: an activity's ApplicationFailure rather than "Activity task failed". */
export function rootFailure(err: unknown): { message: string; type: string } {
  let cur: unknown = err;
  let best: { message: string; type: string } | undefined;
  while (cur instanceof Error) {
    if (cur instanceof ApplicationFailure) best = { message: cur.message, type: cur.type ?? 'ApplicationFailure' };
    else if (cur instanceof TemporalFailure && !best) best = { message: cur.message, type: cur.name };
    cur = (cur as { cause?: unknown }).cause;
  }
  return best ?? { message: err instanceof Error ? err.message : String(err), type: 'Error' };
}

/** Every message down an error's cause chain, joined: "Failed to start Workflow: <the server's reason>". */
export function reasonOf(err: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = err; cur instanceof Error && parts.length < 5; cur = (cur as { cause?: unknown }).cause) {
    if (cur.message && !parts.includes(cur.message)) parts.push(cur.message);
  }
  return parts.length ? parts.join(': ') : String(err);
}

export interface LiveProgress extends MigrationProgress {
  workflowId: string;
  status: string;
  /**
   * Why a failed, cancelled or terminated run ended: the innermost failure (an activity's
   * ApplicationFailure, not "Activity task failed"). Absent while it runs and once it completed.
   */
  failure?: { type: string; message: string };
  /** The round being pulled right now, from its activity's last heartbeat. */
  live?: { round: number; bytesSent: number; wireBytes: number; batchesDone: number; batches: number };
}

export class FedflowClient {
  private constructor(
    readonly client: Client,
    private readonly connection?: Connection,
    /** Where Temporal was looked for, for messages that say it cannot be reached. */
    private readonly address?: string,
  ) {}

  /** Connects with the envconfig settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, profile). */
  static async connect(): Promise<FedflowClient> {
    const resolved = resolveConnection();
    let connection: Connection;
    try {
      connection = await Connection.connect({ ...resolved.connectionOptions, connectTimeout: '5s' } as never);
    } catch (err) {
      throw new FedflowError(
        `cannot reach Temporal at ${resolved.address} (namespace '${resolved.namespace}'): ${(err as Error).message}. Start the embedded stack with \`fedflow up\`, or set TEMPORAL_ADDRESS to your cluster.`,
        'ConnectionFailed',
      );
    }
    return new FedflowClient(new Client({ connection, namespace: resolved.namespace }), connection, resolved.address);
  }

  static fromClient(client: Client): FedflowClient {
    return new FedflowClient(client);
  }

  /** The federation log of federation `name` (the `federation` of the federation config). */
  federation(name: string): FederationLog {
    return new FederationLog(this.client, name);
  }

  /**
   * Adds a workload from its spec (YAML/JSON text or a parsed value): every problem of the spec
   * or its volumes at once and nothing changed, or it is started at the site, healthy, and
   * committed to the federation log with its placement and spec.
   */
  addWorkload(spec: string | unknown, opts: AddWorkloadOptions): Promise<AddedWorkload> {
    return addWorkload(this.federation(opts.config.federation), spec, opts);
  }

  /** Takes a workload out of the federation log, then stops it (volumes kept unless deleteVolumes). */
  removeWorkload(id: string, opts: WorkloadSiteOptions & { deleteVolumes?: boolean }): Promise<RemovedWorkload> {
    return removeWorkload(this.federation(opts.config.federation), id, opts);
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }

  private handle(workloadId: string): WorkflowHandle {
    return this.client.workflow.getHandle(migrationWorkflowId(workloadId));
  }

  /** Starts a migration. Refused at once when the request is malformed or the workload is already migrating. */
  async startMigration(request: MigrationRequest): Promise<{ workflowId: string; runId: string }> {
    const parsed = parseMigrationRequest(request);
    if (!parsed.ok) throw new FedflowError(`invalid migration request: ${parsed.problems.join('; ')}`, 'InvalidMigrationRequest');
    const workflowId = migrationWorkflowId(parsed.value.workloadId);
    try {
      const h = await this.client.workflow.start('migrateWorkload', { taskQueue: CONTROL_TASK_QUEUE, workflowId, args: [parsed.value] });
      return { workflowId, runId: h.firstExecutionRunId };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new FedflowError(`workload '${parsed.value.workloadId}' is already migrating (workflow ${workflowId} is running); wait for it, or cancel it with \`fedflow cancel ${parsed.value.workloadId}\``, 'AlreadyMigrating');
      }
      // The SDK says only "Failed to start Workflow"; the server's reason is in the cause chain.
      throw new FedflowError(`cannot start migration ${workflowId}: ${reasonOf(err)}`, 'StartFailed');
    }
  }

  /** Where the migration of a workload stands, with live copy bytes from the copy's heartbeat. */
  async getProgress(workloadId: string): Promise<LiveProgress> {
    const h = this.handle(workloadId);
    let desc;
    let p;
    try {
      desc = await h.describe();
      p = await h.query(progressQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new FedflowError(`no migration of workload '${workloadId}' was found (workflow ${migrationWorkflowId(workloadId)})`, 'MigrationNotFound');
      throw unreachable(err, { address: this.address, taskQueue: desc?.taskQueue }) ?? err;
    }
    let failure: LiveProgress['failure'];
    if (!['RUNNING', 'COMPLETED', 'CONTINUED_AS_NEW'].includes(desc.status.name)) {
      // The progress query keeps the workflow's own last word ("Activity task failed"); the
      // result's failure chain holds the cause a person can act on.
      failure = await h.result().then(
        () => undefined,
        (err: unknown) => rootFailure(err),
      );
    }
    let live: LiveProgress['live'];
    if (desc.status.name === 'RUNNING' && p.steps.find((s) => s.id === 'sync')?.status === 'running') {
      // The pull runs in the syncVolume child; its heartbeat carries the cursor and bytes so far.
      const child = await this.client.workflow.getHandle(`${h.workflowId}-sync`).describe().catch(() => undefined);
      for (const a of child?.raw.pendingActivities ?? []) {
        const payload = a.heartbeatDetails?.payloads?.[0];
        if (a.activityType?.name !== 'pullDelta' || !payload) continue;
        const hb = defaultPayloadConverter.fromPayload<PullHeartbeat>(payload as never);
        if (hb && typeof hb.cursor === 'number') {
          live = { round: p.rounds.length + 1, bytesSent: hb.rawBytes, wireBytes: hb.wireBytes, batchesDone: hb.cursor, batches: hb.batches };
        }
      }
    }
    return { ...p, workflowId: h.workflowId, status: desc.status.name, ...(failure ? { failure } : {}), live };
  }

  async pause(workloadId: string): Promise<void> {
    await this.handle(workloadId).signal(pauseSignal);
  }
  async resume(workloadId: string): Promise<void> {
    await this.handle(workloadId).signal(resumeSignal);
  }
  /** Asks for a roll-back. Before the route switch the source keeps serving; after it, the migration rolls forward. */
  async cancel(workloadId: string, reason = 'cancelled from the client'): Promise<void> {
    await this.handle(workloadId).signal(cancelSignal, reason);
  }

  /** Waits for the migration to end; a failure becomes a FedflowError with the root cause's message. */
  async waitForResult(workloadId: string): Promise<MigrationResult> {
    try {
      return (await this.handle(workloadId).result()) as MigrationResult;
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        const root = rootFailure(err);
        throw new FedflowError(root.message, root.type);
      }
      throw err;
    }
  }
}
