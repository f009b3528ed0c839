/**
 * Activities of the control worker (task queue `fedflow`): checks against the federation's view
 * of the world, and the route switch. They touch the federation state, never a site's bytes.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FederationConfig, Trust } from '../core/federation-config';
import type { MigrationRequest } from '../core/migration';
import type { InstanceRef, VolumeRef } from '../adapters/common/cloud-provider';
import { badRequest, FailureType } from '../core/contracts/failures';
import type { FederationStateStore, WorkloadRecord } from '../agent/federation/state';
import { proposeByUpdate, type FastProposal, type FastProposalRequest } from './federation-propose';

export type { FastProposal } from './federation-propose';

export interface ControlDeps {
  config: FederationConfig;
  state: FederationStateStore;
  /** Used to tell a live migration's lock from one left by a run that is gone. */
  client?: Client;
  /**
   * Makes sure the federation's entity workflow runs and returns the federation's name; the
   * migration commits its reservation and placement through it. The worker wires the real one.
   * Throws an error named `FederationNotReady` when a founding site's public key is unknown.
   */
  ensureFederation: () => Promise<string>;
}

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
}

/** The migration run that called the activity: its identity is the lock owner. */
function callingRun(): { workflowId: string; runId: string } {
  const exec = Context.current().info.workflowExecution;
  if (!exec) throw ApplicationFailure.nonRetryable('this activity must be called from a migration workflow', FailureType.NotInWorkflow);
  return exec;
}

export function createControlActivities(deps: ControlDeps) {
  const { config, state } = deps;
  const siteIds = () => config.sites.map((s) => s.id);

  async function lockHolderIsLive(lock: NonNullable<WorkloadRecord['migration']>): Promise<boolean> {
    if (!deps.client) return true;
    try {
      const desc = await deps.client.workflow.getHandle(lock.workflowId, lock.runId).describe();
      return desc.status.name === 'RUNNING';
    } catch {
      return false;
    }
  }

  return {
    /**
     * Checks the request against the federation and takes the workload's migration lock.
     * Throws a non-retryable failure naming the problem; on failure nothing is changed.
     */
    async validateMigration(req: MigrationRequest): Promise<ValidatedMigration> {
      const { workflowId, runId } = callingRun();
      const target = config.sites.find((s) => s.id === req.targetSite);
      if (!target) {
        throw badRequest(FailureType.UnknownSite, `target site '${req.targetSite}' is not in the federation (known: ${siteIds().join(', ')})`);
      }
      const snapshot = state.read();
      const wl = snapshot.workloads[req.workloadId];
      if (!wl) {
        const known = Object.keys(snapshot.workloads);
        throw badRequest(FailureType.UnknownWorkload, `workload '${req.workloadId}' does not exist (known: ${known.length ? known.join(', ') : 'none; run `fedflow up` to deploy the sample'})`);
      }
      if (req.sourceSite && req.sourceSite !== wl.site) {
        throw badRequest(FailureType.InvalidRequest, `workload '${wl.id}' runs on '${wl.site}', not on the given sourceSite '${req.sourceSite}'`);
      }
      if (wl.site === req.targetSite) {
        throw badRequest(FailureType.SameSite, `workload '${wl.id}' already runs on '${wl.site}': source and target must differ (other sites: ${siteIds().filter((s) => s !== wl.site).join(', ')})`);
      }
      const source = config.sites.find((s) => s.id === wl.site);
      if (!source) throw badRequest(FailureType.UnknownSite, `workload '${wl.id}' runs on '${wl.site}', which is no longer in the federation config (known: ${siteIds().join(', ')})`);

      if (wl.migration && !(wl.migration.workflowId === workflowId && wl.migration.runId === runId)) {
        if (await lockHolderIsLive(wl.migration)) {
          throw badRequest(FailureType.AlreadyMigrating, `workload '${wl.id}' is already migrating to '${wl.migration.target}' (workflow ${wl.migration.workflowId}); wait for it or cancel it first`);
        }
      }
      // Checked after the request itself, so bad input is named first; before the lock, so a
      // federation that cannot commit leaves nothing taken.
      let federation: string;
      try {
        federation = await deps.ensureFederation();
      } catch (err) {
        // A missing site key is configuration: retrying cannot fix it. Anything else (the server
        // briefly unreachable) is retried.
        if ((err as Error).name !== 'FederationNotReady') throw err;
        throw ApplicationFailure.nonRetryable(`the federation '${config.federation}' cannot commit changes: ${(err as Error).message}`, FailureType.FederationUnavailable);
      }
      return state.update((s) => {
        const cur = s.workloads[req.workloadId]!;
        // Capacity as the federation sees it: workloads placed there plus migrations heading there.
        const used = Object.values(s.workloads).filter((w) => w.site === target.id || (w.migration?.target === target.id && w.id !== cur.id)).length;
        if (used >= target.capacity.instances) {
          const free = config.sites.filter((site) => site.id !== cur.site && Object.values(s.workloads).filter((w) => w.site === site.id || w.migration?.target === site.id).length < site.capacity.instances);
          throw badRequest(
            FailureType.NoCapacity,
            `target site '${target.id}' has no capacity: ${used} of ${target.capacity.instances} instances in use (sites with room: ${free.map((f) => f.id).join(', ') || 'none'})`,
          );
        }
        cur.migration = { workflowId, runId, target: target.id, since: new Date().toISOString() };
        return {
          workloadId: cur.id,
          source: cur.site,
          target: target.id,
          image: cur.image,
          instance: cur.instance,
          volume: cur.volume,
          sourceTrust: source.trust,
          targetTrust: target.trust,
          federation,
        };
      });
    },

    /** Points the workload's route at the target and records the new placement. Returns when it did (ms). */
    async switchRoute(args: { workloadId: string; target: string; instance: InstanceRef; volume: VolumeRef; address: string }): Promise<number> {
      const { workflowId } = callingRun();
      return state.update((s) => {
        const wl = s.workloads[args.workloadId];
        if (!wl) throw badRequest(FailureType.UnknownWorkload, `workload '${args.workloadId}' vanished from the federation state during its migration`);
        wl.site = args.target;
        wl.instance = args.instance;
        wl.volume = args.volume;
        delete wl.migration;
        s.routes[args.workloadId] = { site: args.target, address: args.address, since: new Date().toISOString(), switchedBy: workflowId };
        return Date.now();
      });
    },

    /**
     * The fast path of a migration's commit to the federation log: the proposal goes to
     * `federation-<name>` as an update, and the answer comes back in the same call; no signal hops
     * through the server each way. Waits at most `waitMs`. Without an answer by then, or on any
     * failure, it returns `{ pending }` and the workflow waits for the answer by signal under the
     * same request id (the federation queues a request id once and answers both ways), which is
     * also where waiting for quorum is reported. The result leaves out the signatures.
     */
    async proposeFast(args: FastProposalRequest): Promise<FastProposal> {
      return proposeByUpdate(deps.client, args);
    },

    /** Starts the federation workflow again if it is gone (a migration waiting to commit its placement asks). */
    async ensureFederation(): Promise<string> {
      return deps.ensureFederation();
    },

    /** Drops this run's migration lock (compensation, and the end of a failed run). */
    async releaseMigration(args: { workloadId: string }): Promise<void> {
      const { workflowId, runId } = callingRun();
      await state.update((s) => {
        const wl = s.workloads[args.workloadId];
        if (wl?.migration && wl.migration.workflowId === workflowId && wl.migration.runId === runId) delete wl.migration;
      });
    },
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
