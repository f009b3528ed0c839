/** Step `switch`: the route follows the workload to the target; from here the migration rolls forward. */
import { CancellationScope } from '@temporalio/workflow';
import type { Migration } from '../context';
import { control, controlLocal } from '../proxies';
import type { TargetInstance } from './start';
import { targetRecord } from '../records';

/** Returns when the route pointed at the target (the end of the downtime window). */
export async function switchRoute(m: Migration, target: TargetInstance): Promise<number> {
  const { req, v, runner } = m;
  // Once the placement is committed, a cancel of the run (say from the UI) must not stop the route
  // from following it: the switch and what comes after run outside the cancellable scope.
  const switchStep = <T>(fn: () => Promise<T>) => (runner.rollForward ? CancellationScope.nonCancellable(fn) : fn());
  const switchedAtMs = await switchStep(() =>
    runner.run(
      'switch',
      () =>
        // Inside the downtime window: a local activity when the run has the federation commits
        // (a shape new with that patch), a task-queue activity in runs recorded before it.
        (m.shape.federationCommits ? controlLocal : control)(`Route ${req.workloadId} to ${v.target}`).switchRoute({
          workloadId: req.workloadId,
          target: v.target,
          instance: target.instance,
          volume: { ...v.volume, site: v.target },
          address: target.address,
          image: v.image,
          federation: v.federation,
          // The commit step committed the placement with this record: the log already holds the route.
          placedWithRecord: m.shape.federationCommits && targetRecord(m, target) !== undefined,
        }),
      () => `served from ${v.target} at ${target.address}`,
    ),
  );
  runner.rollForward = true;
  return switchedAtMs;
}
