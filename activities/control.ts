/**
 * Activities of the control worker (task queue `fedflow`): the request checked against the
 * federation log, and the route switch. The log is the one record of where workloads run and
 * what sites hold, so every decision here reads it (a query of the federation workflow); nothing
 * here keeps state of its own. They never touch a site's bytes.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FederationConfig, Trust } from '../core/federation-config';
import type { MigrationRequest } from '../core/migration';
import type { CommittedState, WorkloadRecord } from '../core/consensus/entries';
import type { InstanceRef, VolumeRef } from '../core/contracts/providers';
import { committedStateQuery } from '../core/contracts/federation';
import { federationWorkflowId } from '../core/contracts/task-queues';
import { badRequest, FailureType } from '../core/contracts/failures';
import { proposeByUpdate, type FastProposal, type FastProposalRequest } from './federation-propose';
import type { FrontHooks } from '../agent/front/front-set';

export type { FastProposal } from './federation-propose';

export interface ControlDeps {
  config: FederationConfig;
  /** Reads the federation log (a query) and proposes to it (an update). */
  client: Client;
  /**
   * Makes sure the federation's entity workflow runs and returns the federation's name; the
   * migration commits its reservation and placement through it. The worker wires the real one.
   * Throws an error named `FederationNotReady` when a founding site's public key is unknown.
   */
  ensureFederation: () => Promise<string>;
  /**
   * The workload fronts of this process (agent/front/): the switch points the workload's front at
   * the target at once; the fronts' next read of the log confirms it (the log wins).
   */
  front?: FrontHooks;
}

/**
 * How long the route switch waits for the log to take a placement it had to propose itself: under
 * the switch step's one-minute start-to-close timeout (with the query before it), so a slow quorum
 * is reported in words rather than as a bare timeout.
 */
const SWITCH_PROPOSAL_WAIT_MS = 45_000;

export interface ValidatedMigration {
  workloadId: string;
  source: string;
  target: string;
  image: string;
  instance: InstanceRef;
  volume: VolumeRef;
  sourceTrust: Trust;
  targetTrust: Trust;
  /** The federation whose log the migration commits to (workflow `federation-<name>`). */
  federation: string;
  /**
   * The workload's record in the log at validation: what a reverted placement names again.
   * Absent in results recorded before the log held records.
   */
  record?: WorkloadRecord;
}

/** The migration run that called the activity. */
function callingRun(): { workflowId: string; runId: string } {
  const exec = Context.current().info.workflowExecution;
  if (!exec) throw ApplicationFailure.nonRetryable('this activity must be called from a migration workflow', FailureType.NotInWorkflow);
  return exec;
}

export function createControlActivities(deps: ControlDeps) {
  const { config, client } = deps;
  const siteIds = () => config.sites.map((s) => s.id);
  const committed = (federation: string): Promise<CommittedState> => client.workflow.getHandle(federationWorkflowId(federation)).query(committedStateQuery);

  return {
    /**
     * Checks the request against the federation log: the target is a member with room, the
     * workload is placed on another site and the log knows what it runs on. Throws a
     * non-retryable failure naming the problem; it changes nothing either way. A second migration
     * of the same workload is refused by Temporal itself (one `migrate-<workloadId>` at a time).
     */
    async validateMigration(req: MigrationRequest): Promise<ValidatedMigration> {
      callingRun();
      const target = config.sites.find((s) => s.id === req.targetSite);
      if (!target) {
        throw badRequest(FailureType.UnknownSite, `target site '${req.targetSite}' is not in the federation (known: ${siteIds().join(', ')})`);
      }
      let federation: string;
      try {
        federation = await deps.ensureFederation();
      } catch (err) {
        // A missing site key is configuration: retrying cannot fix it. Anything else (the server
        // briefly unreachable) is retried.
        if ((err as Error).name !== 'FederationNotReady') throw err;
        throw ApplicationFailure.nonRetryable(`the federation '${config.federation}' cannot commit changes: ${(err as Error).message}`, FailureType.FederationUnavailable);
      }
      const log = await committed(federation);
      const at = log.placements[req.workloadId];
      const record = log.workloads?.[req.workloadId];
      if (at === undefined || !record) {
        const known = Object.keys(log.workloads ?? {}).sort();
        throw badRequest(
          FailureType.UnknownWorkload,
          `workload '${req.workloadId}' is not in the federation log (known: ${known.length ? known.join(', ') : 'none; `fedflow up` deploys the sample, `fedflow workloads` lists them'})`,
        );
      }
      if (req.sourceSite && req.sourceSite !== at) {
        throw badRequest(FailureType.InvalidRequest, `workload '${req.workloadId}' runs on '${at}', not on the given sourceSite '${req.sourceSite}'`);
      }
      if (at === req.targetSite) {
        throw badRequest(FailureType.SameSite, `workload '${req.workloadId}' already runs on '${at}': source and target must differ (other sites: ${siteIds().filter((s) => s !== at).join(', ')})`);
      }
      const source = config.sites.find((s) => s.id === at);
      if (!source) throw badRequest(FailureType.UnknownSite, `workload '${req.workloadId}' runs on '${at}', which is no longer in the federation config (known: ${siteIds().join(', ')})`);
      const member = log.members[target.id];
      if (!member) {
        throw badRequest(FailureType.UnknownSite, `target site '${target.id}' is in the config but not a member of the federation log (members: ${Object.keys(log.members).sort().join(', ') || 'none'})`);
      }
      // Capacity as the log counts it: one instance per placed workload plus every reservation
      // (a migration heading there holds one). The reserve step commits the same check.
      const used = log.used[target.id] ?? 0;
      if (used >= member.capacity) {
        const free = Object.entries(log.members)
          .filter(([id, m]) => id !== at && (log.used[id] ?? 0) < m.capacity)
          .map(([id]) => id)
          .sort();
        throw badRequest(FailureType.NoCapacity, `target site '${target.id}' has no capacity: ${used} of ${member.capacity} instances in use (sites with room: ${free.join(', ') || 'none'})`);
      }
      return {
        workloadId: req.workloadId,
        source: at,
        target: target.id,
        image: record.image,
        instance: record.instance,
        volume: record.volume,
        sourceTrust: source.trust,
        targetTrust: target.trust,
        federation,
        record,
      };
    },

    /**
     * Makes the route follow the log: the log's placement of the workload must name the target
     * and what it runs on there. The cut-over's commit put it there in runs with federation
     * commits; runs without them (recorded before federation-commits-v1), and placements
     * committed without a record (runs validated before the log held records, still open at the
     * upgrade), have it proposed here. Returns when the route holds (ms).
     *
     * `placedWithRecord`: the commit step's answer already names this record, so the log is right
     * and no query is spent inside the downtime window. `image` and `federation` come from the
     * run's validation; runs recorded before they were passed fall back to the log and the config.
     */
    async switchRoute(args: { workloadId: string; target: string; instance: InstanceRef; volume: VolumeRef; address: string; image?: string; federation?: string; placedWithRecord?: boolean }): Promise<number> {
      const switched = () => {
        deps.front?.switched(args.workloadId, args.address);
        return Date.now();
      };
      if (args.placedWithRecord) return switched();
      const { workflowId, runId } = callingRun();
      const federation = args.federation ?? config.federation;
      const log = await committed(federation);
      const now = log.workloads?.[args.workloadId];
      if (log.placements[args.workloadId] === args.target && now && now.address === args.address && now.instance.id === args.instance.id && now.volume.id === args.volume.id) return switched();
      const image = args.image ?? now?.image;
      if (!image) throw badRequest(FailureType.UnknownWorkload, `workload '${args.workloadId}' has no record in the federation log and the run names no image, so its route cannot follow it`);
      const record: WorkloadRecord = { image, instance: args.instance, volume: args.volume, address: args.address };
      const r = await proposeByUpdate(client, {
        federation,
        proposal: { entries: [{ kind: 'placement', workload: args.workloadId, site: args.target, record }], requestId: `${workflowId}/${runId}/route` },
        waitMs: SWITCH_PROPOSAL_WAIT_MS,
      });
      if ('pending' in r) throw new Error(`the federation log has not taken the route of ${args.workloadId} to ${args.target} yet: ${r.pending}`);
      if (r.result.rejected.length) {
        throw badRequest(FailureType.FederationChangeRejected, `the federation log rejected the route of ${args.workloadId} to ${args.target}: ${r.result.rejected.map((x) => x.reason).join('; ')}`);
      }
      return switched();
    },

    /**
     * How a migration proposes to the federation log: the proposal goes to `federation-<name>` as
     * an update, and the answer comes back in the same call. Waits at most `waitMs`; without an
     * answer by then, or on any failure, it returns `{ pending }` with the federation's status
     * line, and the workflow sends the same request id again (the federation queues it once and
     * answers every copy). Runs of v3 fell back to the signal path instead. The result leaves out
     * the signatures.
     */
    async proposeFast(args: FastProposalRequest): Promise<FastProposal> {
      // Run as a task-queue activity (a long wait for quorum), it heartbeats while it waits.
      const ctx = Context.current();
      const beat = ctx.info.isLocal ? undefined : setInterval(() => ctx.heartbeat(), 1_000);
      try {
        return await proposeByUpdate(client, args);
      } finally {
        if (beat) clearInterval(beat);
      }
    },

    /** Starts the federation workflow again if it is gone (a migration waiting to commit its placement asks). */
    async ensureFederation(): Promise<string> {
      return deps.ensureFederation();
    },

    /**
     * Runs started before the log became the one record took a migration lock in a state file and
     * release it here, as their validate step's compensation; recorded histories replay it. The
     * lock is gone (Temporal's workflow id refuses a second migration of a workload), so there is
     * nothing left to release.
     */
    async releaseMigration(_args: { workloadId: string }): Promise<void> {
      callingRun();
    },
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
