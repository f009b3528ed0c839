/** The completed migration's result: what moved, how, and the downtime it cost. */
import type { MigrationResult } from '../../core/migration';
import type { Migration } from './context';
import type { SyncVolumeResult } from './sync-volume';
import type { CutoverResult } from './steps/cutover-activities';
import type { Measured } from './steps/measure';
import type { TargetInstance } from './steps/start';

export interface Finished {
  measured: Measured;
  target: TargetInstance;
  sync: SyncVolumeResult;
  cut: CutoverResult;
  switchedAtMs: number;
  finishedAtMs: number;
}

export function completedResult(m: Migration, { measured, target, sync, cut, switchedAtMs, finishedAtMs }: Finished): MigrationResult {
  const { req, v, info, consensus } = m;
  const startedAtMs = info.runStartTime.getTime();
  const rounds = [...sync.rounds, cut.figures];
  return {
    workflowId: info.workflowId,
    workloadId: req.workloadId,
    status: 'completed',
    source: v.source,
    target: v.target,
    address: target.address,
    mode: sync.plan.mode,
    decision: measured.record,
    modeSwitches: sync.modeSwitches,
    bytesTransferred: sync.wireBytes + cut.figures.wireBytes,
    // Counted by agents of this version; a round from an older agent adds nothing.
    resentBytes: rounds.reduce((a, r) => a + (r.resentBytes ?? 0), 0),
    volumeBytes: cut.figures.bytesScanned,
    rootHash: cut.image.manifest.rootHash,
    rounds,
    precopyRounds: sync.precopyRounds,
    converged: sync.converged,
    notConverging: sync.notConverging,
    keys: cut.served.keys,
    digest: cut.served.sha256,
    verified: true,
    startedAtMs,
    finishedAtMs,
    durationMs: finishedAtMs - startedAtMs,
    // From the source's freeze until the route pointed at the serving target.
    downtimeMs: switchedAtMs - cut.image.frozenAtMs!,
    ...(consensus.reservation && consensus.placement ? { consensus: { reservation: consensus.reservation, placement: consensus.placement } } : {}),
  } satisfies MigrationResult;
}
