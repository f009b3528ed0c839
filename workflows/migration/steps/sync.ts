/** Step `sync`: pre-copy rounds, run by the syncVolume child while the workload keeps serving. */
import { executeChild, upsertSearchAttributes } from '@temporalio/workflow';
import { CONTROL_TASK_QUEUE } from '../../../core/contracts/task-queues';
import { FedMode } from '../../../core/search-attributes';
import { planFromDecision } from '../../../core/transfer-plan';
import type { Migration } from '../context';
import { syncVolume, type SyncVolumeResult } from '../sync-volume';
import type { Measured } from './measure';

export async function preCopy(m: Migration, { policy, decision, mode }: Measured): Promise<SyncVolumeResult> {
  const { v, info, runner } = m;
  const sync = await runner.run(
    'sync',
    () =>
      executeChild(syncVolume, {
        workflowId: `${info.workflowId}-sync`,
        taskQueue: CONTROL_TASK_QUEUE,
        staticSummary: `Pre-copy ${v.volume.id} ${v.source} -> ${v.target} (${mode})`,
        args: [
          {
            volumeId: v.volume.id,
            source: v.source,
            target: v.target,
            mode,
            plan: planFromDecision(mode, decision.plan),
            // The migration runs the final round itself, inside its cut-over.
            final: false,
            notify: info.workflowId,
            bandwidthMbps: decision.inputs.prediction.meanMbps,
            policy: { ...policy, state: decision.state },
          },
        ],
      }),
    (s) => `${s.precopyRounds} pre-copy round(s)${s.notConverging ? ', not converging' : ', converged'}; ${s.wireBytes} bytes on the wire for a ${s.volumeBytes}-byte volume`,
  );
  runner.progress.syncStatus = sync.notConverging ? 'not converging' : 'converged';
  runner.progress.modeSwitches = sync.modeSwitches;
  // The cut-over uses the plan the last round ended with (the mode may have switched).
  if (sync.plan.mode !== mode) {
    runner.progress.mode = sync.plan.mode;
    upsertSearchAttributes([{ key: FedMode, value: sync.plan.mode }]);
  }
  return sync;
}
