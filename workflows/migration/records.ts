/**
 * What the federation log records of the workload at each end: its placement names the instance,
 * volume and address it runs on there, so the log alone answers "where does W run, on what".
 * Runs validated before validation returned the log's record (recorded histories) have none, and
 * propose placements without one, as they did.
 */
import type { WorkloadRecord } from '../../core/consensus/entries';
import type { Migration } from './context';
import type { TargetInstance } from './steps/start';

/** The workload as it will run at the target. */
export function targetRecord(m: Migration, target: TargetInstance): WorkloadRecord | undefined {
  if (!m.v.record) return undefined;
  return { image: m.v.image, instance: target.instance, volume: { ...m.v.volume, site: m.v.target }, address: target.address };
}

/** A placement entry for `site`, with the record when the run has one. */
export function placementEntry(m: Migration, site: string, record: WorkloadRecord | undefined) {
  return { kind: 'placement' as const, workload: m.req.workloadId, site, ...(record ? { record } : {}) };
}
