/**
 * The workflows that tests and the benchmark register beside the production ones (the control
 * worker's bundle, workflows/index.ts, registers only what production runs).
 *
 * `federationActivityRtt`: the benchmark's yardstick (bench/consensus.ts). It runs `count` bare
 * activities one after another on a site's task queue and returns each round trip as workflow
 * time, the same clock the federation uses for a proposal's `waitedMs`, so the two compare.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { ConsensusActivities } from '../../activities/consensus';
import type { WorkloadActivities } from '../../activities/workload';
import type { FederationEntry } from '../../core/consensus/entries';
import type { SiteId } from '../../core/consensus/types';
import { commitFederationChange, type FederationChangeOptions, type FederationChangeResult } from '../../workflows/federation/client';
export * from '../../workflows';
import { siteTaskQueue } from '../../core/contracts/task-queues';

export async function federationActivityRtt(input: { site: SiteId; count: number }): Promise<number[]> {
  const { consensusPing } = proxyActivities<ConsensusActivities>({ taskQueue: siteTaskQueue(input.site), startToCloseTimeout: '10 seconds' });
  const samples: number[] = [];
  for (let i = 0; i < input.count; i++) {
    const t0 = Date.now();
    await consensusPing();
    samples.push(Date.now() - t0);
  }
  return samples;
}

/**
 * `federationCommitProbe`: a workflow that commits through commitFederationChange exactly as the
 * migration does, for tests and the benchmark (the migration itself belongs to its owner).
 */
export async function federationCommitProbe(entries: FederationEntry[], opts: Omit<FederationChangeOptions, 'onStatus'> = {}): Promise<FederationChangeResult> {
  return commitFederationChange(entries, opts);
}

/**
 * `workloadStepsProbe`: calls the workload activities (activities/workload.ts) on a site's task
 * queue, one step after another, as a cut-over would at the source or the target; each step once
 * (no retries), so a failing hook surfaces as it is. Returns each step's result.
 */
export async function workloadStepsProbe(input: { site: SiteId; workloadId: string; steps: (keyof WorkloadActivities)[] }): Promise<unknown[]> {
  const acts = proxyActivities<WorkloadActivities>({ taskQueue: siteTaskQueue(input.site), startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 1 } });
  const out: unknown[] = [];
  for (const step of input.steps) out.push(await (acts[step] as (a: { workloadId: string }) => Promise<unknown>)({ workloadId: input.workloadId }));
  return out;
}
