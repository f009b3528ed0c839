/**
 * Activities that act on one workload at one site (task queue `fedflow-site-<siteId>`), through
 * the site's workload runner (agent/workload/runner.ts): install a spec, start, check health,
 * freeze, thaw, verify, stop and remove, per workload id. This is what a migration's cut-over
 * calls at the source and at the target for a workload added from a spec.
 *
 * Every runner failure is a non-retryable ApplicationFailure whose type is the runner's
 * (core/contracts/failures.ts: WorkloadHookFailed, WorkloadHookTimeout, WorkloadUnhealthy, …):
 * the workflow decides what to do about a hook that failed (compensate), a retry would only run
 * the hook again. Other errors (an fs hiccup) keep Temporal's retries.
 */
import { ApplicationFailure } from '@temporalio/common';
import { WorkloadError, type HookOutcome, type InstanceInfo, type StartedInstance, type WorkloadRunner } from '../agent/workload/runner';
import { FailureType } from '../core/contracts/failures';
import { parseWorkloadSpec } from '../core/workload-spec';
import { currentActivity } from './activity-context';
import type { FrontHooks } from '../agent/front/front-set';

export interface WorkloadDeps {
  site: string;
  runner: WorkloadRunner;
  /** The workload fronts of this process (agent/front/): held at the freeze, released to the source at the thaw. */
  front?: FrontHooks;
}

export interface WorkloadArgs {
  workloadId: string;
}

/** A runner's failure as a non-retryable ApplicationFailure of its type (a hook is not retried: the workflow compensates); other errors as they are. */
export function asActivityFailure(err: unknown): never {
  if (err instanceof WorkloadError) throw ApplicationFailure.nonRetryable(err.message, err.type, { problems: err.problems });
  throw err;
}

/** Runs `fn`, heartbeating while it runs (a start waits up to the spec's startTimeoutSeconds), and maps its failures. */
async function act<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = currentActivity();
  const beat = ctx ? setInterval(() => ctx.heartbeat(), 1000) : undefined;
  try {
    return await fn();
  } catch (err) {
    return asActivityFailure(err);
  } finally {
    if (beat) clearInterval(beat);
  }
}

export function createWorkloadActivities(deps: WorkloadDeps) {
  const { runner } = deps;
  return {
    /**
     * Installs a workload from its spec at this site (validated again here: the spec may come from
     * anywhere). A migration's target passes `initVolumes: false`: its volumes come from the sync.
     */
    async workloadInstall(args: { spec: unknown; initVolumes?: boolean }): Promise<void> {
      const parsed = parseWorkloadSpec(args.spec);
      if (!parsed.ok) throw ApplicationFailure.nonRetryable(`invalid workload spec: ${parsed.problems.join('; ')}`, FailureType.InvalidWorkloadSpec, { problems: parsed.problems });
      await act(() => runner.install(parsed.spec, { initVolumes: args.initVolumes }));
    },
    /** Starts it (or finds it running) and waits for its first passing health check. */
    workloadStart: (a: WorkloadArgs): Promise<StartedInstance> => act(() => runner.start(a.workloadId)),
    /** Whether it is healthy now (failureThreshold checks in a row failing is unhealthy). */
    workloadHealthy: (a: WorkloadArgs): Promise<{ healthy: boolean; detail: string }> => act(() => runner.healthy(a.workloadId)),
    /** The spec's freeze hook; the instance then takes no writes (or has stopped cleanly). */
    workloadFreeze: (a: WorkloadArgs): Promise<HookOutcome> => {
      // New connections are held at the front from here: none reaches the source while it freezes.
      deps.front?.freezingWorkload(a.workloadId);
      return act(() => runner.freeze(a.workloadId));
    },
    /** The spec's thaw hook: the compensation of a freeze. */
    workloadThaw: async (a: WorkloadArgs): Promise<HookOutcome> => {
      const outcome = await act(() => runner.thaw(a.workloadId));
      deps.front?.thawedWorkload(a.workloadId);
      return outcome;
    },
    /** The spec's verification: the digest it prints (compare the source's at the freeze with the target's). */
    workloadVerify: (a: WorkloadArgs): Promise<{ digest: string; ms: number; privateBoot: boolean }> => act(() => runner.verify(a.workloadId)),
    /** A clean stop. */
    workloadStop: (a: WorkloadArgs): Promise<void> => act(() => runner.stop(a.workloadId)),
    /** Stops it and forgets it at this site; volumes go only with deleteVolumes. */
    workloadRemove: (a: WorkloadArgs & { deleteVolumes?: boolean }): Promise<void> => act(() => runner.remove(a.workloadId, { deleteVolumes: a.deleteVolumes })),
    workloadInfo: async (a: WorkloadArgs): Promise<InstanceInfo> => runner.info(a.workloadId),
  };
}

export type WorkloadActivities = ReturnType<typeof createWorkloadActivities>;
