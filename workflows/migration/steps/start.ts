/** Step `start`: the target boots in standby while pre-copy runs, so the cut-over pays only for loading data. */
import type { SiteActivities } from '../../../activities/site';
import type { Migration } from '../context';
import { atSite, atSync, TIMEOUTS } from '../proxies';

export type TargetInstance = Awaited<ReturnType<SiteActivities['startInstance']>>;

export async function startTarget(m: Migration): Promise<TargetInstance> {
  const { req, v } = m;
  // Pushed before the target is touched: a failure anywhere after this removes the target's
  // instance (found by its idempotency key) and copy, and lets the source take writes again
  // (both are no-ops when there is nothing to undo).
  const startKey = `${m.key}/start-target`;
  m.saga.push('sync', () => atSite(v.source, `Resume writes on ${v.source}`).thawWorkload({ instance: v.instance }));
  m.saga.push('cutover', async () => {
    if (m.finalRoot) await atSync(v.source, `Release the final image on ${v.source}`, TIMEOUTS.quick).releaseImage({ root: m.finalRoot });
  });
  m.saga.push('start', () => atSite(v.target, `Remove the copy on ${v.target}`).removeTargetCopy({ name: req.workloadId, idempotencyKey: startKey, volumeId: v.volume.id }));

  return m.runner.run(
    'start',
    () =>
      atSite(v.target, `Boot ${req.workloadId} on ${v.target} (standby)`, TIMEOUTS.start).startInstance({
        name: req.workloadId,
        image: v.image,
        volumeId: v.volume.id,
        idempotencyKey: startKey,
        standby: true,
        // A workload added from a spec: the target installs it from the spec the log holds.
        ...(v.record?.spec ? { spec: v.record.spec } : {}),
      }),
    (t) => `${t.instance.id} at ${t.address}, standby`,
  );
}
